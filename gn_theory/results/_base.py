"""The one base class of every gn_theory result (numpy-only, no torch).

A result is a dataclass holding data only: arrays, numbers, strings, lists and
dicts of those, and other results. It never holds a model, an operator or a
tensor. Every result shares one vocabulary:

``settings``
    dict of the options that produced it (and a ``fingerprint`` of the inputs
    where known), stored with the result.
``num_matvecs``
    operator-vector products spent (a block of b columns counts b).
``params``, ``param_names``, ``bse``
    estimated parameters, their names and standard errors (1-d arrays).
``conf_int(alpha)``
    confidence intervals as an array of shape ``(len(params), 2)``.
eigenvalues
    always **descending** (largest first), with eigenvector columns matching.

and the same methods: :meth:`Result.summary` (text, ``as_html()`` and a notebook
``_repr_html_``), :meth:`Result.to_dict` / :meth:`Result.from_dict` (exact round
trip), :meth:`Result.save` / :meth:`Result.load`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from ..exceptions import InvalidInputError, ResultFileError
from . import _store
from ._summary import Summary

__all__ = ["Result", "load_result"]

T = TypeVar("T", bound="Result")

#: Result classes by name, filled by ``Result.__init_subclass__``.
_REGISTRY: dict[str, type] = {}


class Result:
    """Base of every result: summary, dict round trip, atomic save and load.

    Subclasses are dataclasses. Fields are stored as they are (arrays bit for
    bit with their dtype, floats exactly, nested results recursively); anything
    derived is a property or a ``functools.cached_property``, never a field.
    """

    #: The title printed by :meth:`summary` (the class name if empty).
    _title: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    # -- fields -----------------------------------------------------------------------
    def _fields(self) -> dict[str, Any]:
        if not dataclasses.is_dataclass(self):  # pragma: no cover - programming error
            raise TypeError(f"{type(self).__name__} must be a dataclass to be a Result")
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def _from_fields(cls: type[T], fields: dict[str, Any]) -> T:
        return cls(**fields)

    @property
    def provenance(self) -> dict[str, Any]:
        """Versions, time and input fingerprint recorded when the result was saved.

        Empty for a result that was never loaded from a file.
        """
        return dict(getattr(self, "_provenance", {}) or {})

    # -- text -------------------------------------------------------------------------
    def summary(self) -> Summary:
        """A table of the result's scalar fields and array shapes.

        Result types override this with their own table and numbered notes.

        Returns
        -------
        Summary
            ``str()`` / ``as_text()`` for text, ``as_html()`` for HTML.
        """
        rows: list[tuple[str, str]] = []
        for name, value in self._fields().items():
            if isinstance(value, np.ndarray):
                rows.append((name, f"array {value.shape} {value.dtype}"))
            elif isinstance(value, Result):
                rows.append((name, type(value).__name__))
            elif isinstance(value, (dict, list, tuple)):
                rows.append((name, f"{type(value).__name__} of {len(value)}"))
            else:
                rows.append((name, str(value)))
        return Summary(self._title or type(self).__name__, rows, [])

    def _repr_html_(self) -> str:
        return self.summary().as_html()

    # -- dicts ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-serialisable dict that :meth:`from_dict` inverts exactly.

        Returns
        -------
        dict
            ``{"type": ..., "schema_version": ..., "fields": {...}}``; arrays appear as
            ``{"__array__": {"dtype", "shape", "data"}}``, non-finite floats as
            ``{"__float__": "nan"}``, tuples and nested results tagged likewise.
        """
        return {
            "type": type(self).__name__,
            "schema_version": _store.SCHEMA_VERSION,
            "fields": _store.encode_fields(self, None, ""),
        }

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """Rebuild a result from :meth:`to_dict`'s output.

        Parameters
        ----------
        data : dict
            As returned by :meth:`to_dict` (possibly through ``json.dumps``/``loads``).

        Returns
        -------
        Result
            An instance of the type named in ``data`` (which must be ``cls`` or a subclass).

        Raises
        ------
        InvalidInputError
            If ``data`` is not such a dict or names another type.
        """
        if not isinstance(data, dict) or not {"type", "fields"} <= set(data):
            raise InvalidInputError("from_dict expects the dict returned by to_dict()")
        if data.get("schema_version", 1) > _store.SCHEMA_VERSION:
            raise InvalidInputError(
                f"the dict has schema version {data['schema_version']}, newer than this "
                f"gn_theory's ({_store.SCHEMA_VERSION})"
            )
        try:
            target = _store.lookup(data["type"], _REGISTRY)
        except KeyError:
            raise InvalidInputError(f"unknown result type {data['type']!r}") from None
        if not issubclass(target, cls):
            raise InvalidInputError(f"the dict holds a {data['type']}, not a {cls.__name__}")
        fields = {k: _store.decode(v, None, _REGISTRY) for k, v in data["fields"].items()}
        return target._from_fields(fields)

    # -- files ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Save to ``<stem>.npz`` + ``<stem>.json`` so that a crash never leaves a mix.

        Parameters
        ----------
        path : str or os.PathLike
            The stem; a trailing ``.npz`` or ``.json`` is stripped, other dots are
            kept (``runs/lr_0.1`` writes ``runs/lr_0.1.npz`` and ``runs/lr_0.1.json``).

        Returns
        -------
        pathlib.Path
            The ``.json`` path (the file that makes the pair valid).

        Raises
        ------
        InvalidInputError
            If a field cannot be stored (nothing is written then).
        """
        return _store.write_pair(self, path)

    @classmethod
    def load(cls: type[T], path: str | os.PathLike) -> T:
        """Load a result written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
            The stem, or the ``.npz``/``.json`` path.

        Returns
        -------
        Result
            An instance of ``cls``.

        Raises
        ------
        ResultFileError
            If a file is missing, corrupt, foreign, of a newer schema, or holds
            another result type.
        """
        obj = load_result(path)
        if not isinstance(obj, cls):
            raise ResultFileError(
                f"{_store.result_stem(path)} holds a {type(obj).__name__}, not a {cls.__name__}"
            )
        return obj


def load_result(path: str | os.PathLike) -> Any:
    """Load any gn_theory result saved with ``save``, whatever its type.

    Parameters
    ----------
    path : str or os.PathLike
        The stem, or the ``.npz``/``.json`` path.

    Returns
    -------
    Result
        The result object, with :attr:`Result.provenance` filled from the file.

    Raises
    ------
    ResultFileError
        If a file is missing, empty, truncated, foreign or of a newer schema, or if
        the arrays do not match their JSON.
    """
    return _store.read_pair(path, _REGISTRY)
