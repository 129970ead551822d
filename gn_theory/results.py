"""Shared plumbing for results objects: ``to_dict``, ``save`` and ``load``.

A result is saved as two files next to each other: ``<stem>.npz`` with every
numpy array, and ``<stem>.json`` with everything else (scalars, strings,
lists, nested dicts) plus provenance (class name, package versions, time).
Both files are written atomically (a temporary file renamed into place), so an
interrupted run never leaves a half-written result behind.

Results classes are dataclasses that inherit from :class:`ResultMixin`. Fields
holding ``numpy.ndarray`` go to the ``.npz``; ``None`` and JSON-serialisable
values go to the ``.json``. Loading rebuilds the dataclass exactly (arrays
bit-for-bit, dtypes included).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .exceptions import InvalidInputError

__all__ = ["ResultMixin", "load_result", "provenance", "atomic_write_bytes"]

T = TypeVar("T", bound="ResultMixin")

#: Registry of result classes by name, filled by ``ResultMixin.__init_subclass__``.
_REGISTRY: dict[str, type] = {}


def provenance() -> dict[str, Any]:
    """Versions and time stamp recorded with every saved result.

    Returns
    -------
    dict
        Package versions (gn_theory, numpy, and torch/scipy where importable),
        the Python version, the host platform and an ISO-8601 UTC time stamp.
    """
    from . import __version__

    info: dict[str, Any] = {
        "gn_theory": __version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
    }
    for mod in ("scipy", "torch"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:  # pragma: no cover - scipy is a dependency
            pass
    return info


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, then rename).

    Parameters
    ----------
    path : str or os.PathLike
        Destination file. Its folder is created if missing.
    data : bytes
        Content.

    Returns
    -------
    pathlib.Path
        The destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars/tuples recursively into JSON-serialisable values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return {"__float__": repr(value)}
    return value


def _unjsonable(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        return {k: _unjsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unjsonable(v) for v in value]
    return value


def _stem(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix in (".npz", ".json"):
        path = path.with_suffix("")
    return path


class ResultMixin:
    """Mixin giving a dataclass ``to_dict``, ``save`` and ``load``.

    Subclasses must be dataclasses. Array fields are stored in ``.npz``, the
    other fields in the ``.json`` sidecar under ``"fields"``; a free-form
    ``metadata`` dict field, if present, is stored as is.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls

    # -- serialisation -------------------------------------------------------
    def _split_fields(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if not dataclasses.is_dataclass(self):  # pragma: no cover - programming error
            raise TypeError(f"{type(self).__name__} must be a dataclass to use ResultMixin")
        arrays: dict[str, np.ndarray] = {}
        other: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                arrays[f.name] = value
            else:
                other[f.name] = value
        return arrays, other

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-serialisable dict (arrays as lists).

        Returns
        -------
        dict
            Field name to value, with arrays converted by ``tolist()``.
        """
        arrays, other = self._split_fields()
        out = {k: v.tolist() for k, v in arrays.items()}
        out.update(_jsonable(other))
        out["type"] = type(self).__name__
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Save to ``<stem>.npz`` and ``<stem>.json``, atomically.

        Parameters
        ----------
        path : str or os.PathLike
            File stem; a ``.npz`` or ``.json`` suffix is stripped.

        Returns
        -------
        pathlib.Path
            The path of the ``.npz`` file.
        """
        import io

        stem = _stem(path)
        arrays, other = self._split_fields()
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        npz = atomic_write_bytes(stem.with_suffix(".npz"), buf.getvalue())
        meta = {
            "type": type(self).__name__,
            "fields": _jsonable(other),
            "arrays": sorted(arrays),
            "provenance": provenance(),
        }
        atomic_write_bytes(
            stem.with_suffix(".json"), json.dumps(meta, indent=2, sort_keys=True).encode()
        )
        return npz

    @classmethod
    def load(cls: type[T], path: str | os.PathLike) -> T:
        """Load a result written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
            File stem, or the ``.npz``/``.json`` path.

        Returns
        -------
        ResultMixin
            An instance of the class that was saved.

        Raises
        ------
        InvalidInputError
            If a file is missing or holds a result of another type.
        """
        obj = load_result(path)
        if not isinstance(obj, cls):
            raise InvalidInputError(
                f"{_stem(path)} holds a {type(obj).__name__}, not a {cls.__name__}"
            )
        return obj


def load_result(path: str | os.PathLike) -> Any:
    """Load any gn_theory result saved with ``save``, whatever its class.

    Parameters
    ----------
    path : str or os.PathLike
        File stem, or the ``.npz``/``.json`` path.

    Returns
    -------
    ResultMixin
        The result object.

    Raises
    ------
    InvalidInputError
        If a file is missing or names an unknown result type.
    """
    stem = _stem(path)
    npz, js = stem.with_suffix(".npz"), stem.with_suffix(".json")
    for p in (npz, js):
        if not p.exists():
            raise InvalidInputError(f"cannot load result {stem}: {p} does not exist")
    meta = json.loads(js.read_text())
    name = meta.get("type")
    cls = _REGISTRY.get(name)
    if cls is None:
        # importing the package registers every results class
        import gn_theory  # noqa: F401

        cls = _REGISTRY.get(name)
    if cls is None:
        raise InvalidInputError(f"{js} holds an unknown result type {name!r}")
    with np.load(npz, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    fields = _unjsonable(meta["fields"])
    fields.update(arrays)
    return cls(**fields)
