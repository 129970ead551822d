"""Resolve a user's ``module:callable`` (or ``path/to/file.py:callable``) string (torch-free).

Used by :func:`gn_theory.data.load_dataset` and :func:`gn_theory.models.build_model`
so that a command line can name the user's dataset or model factory.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .exceptions import InvalidInputError

__all__: list[str] = []


def is_callable_spec(spec: Any) -> bool:
    """Whether ``spec`` looks like ``module:callable`` (a colon, not a Windows drive)."""
    if not isinstance(spec, str) or ":" not in spec:
        return False
    head, _, tail = spec.rpartition(":")
    return bool(head) and bool(tail) and tail.replace(".", "_").isidentifier() and "\\" not in tail


def resolve_callable(spec: str, *, what: str) -> Callable[..., Any]:
    """The object named by ``"package.module:attr.path"`` or ``"file.py:attr"``.

    Parameters
    ----------
    spec : str
        ``module:callable``; the module part may be a dotted import path or the
        path of a ``.py`` file; the callable part may be dotted (``Class.factory``).
    what : str
        What the callable is for (``"dataset"``, ``"model"``), for error messages.

    Returns
    -------
    callable

    Raises
    ------
    InvalidInputError
        If the module cannot be imported, the attribute is missing or not callable.
    """
    module_name, _, attr_path = spec.rpartition(":")
    if not module_name or not attr_path:
        raise InvalidInputError(
            f"a {what} given as a callable must read 'module:callable'; got {spec!r}"
        )
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise InvalidInputError(f"{what} {spec!r}: no such file {str(path)!r}")
            name = f"_gn_theory_user_{path.stem}_{zlib.crc32(str(path.resolve()).encode()):08x}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            if module_spec is None or module_spec.loader is None:  # pragma: no cover
                raise InvalidInputError(f"{what} {spec!r}: cannot import {str(path)!r}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except InvalidInputError:
        raise
    except Exception as exc:  # the user's module raised while importing
        raise InvalidInputError(
            f"{what} {spec!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise InvalidInputError(
                f"{what} {spec!r}: {module_name!r} has no attribute {attr_path!r}"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise InvalidInputError(f"{what} {spec!r}: {attr_path!r} is not callable")
    return obj


def call_with_accepted(
    fn: Callable[..., Any], offered: dict[str, Any], *, spec: str, what: str
) -> Any:
    """Call ``fn`` with those keyword arguments of ``offered`` that its signature accepts.

    Raises
    ------
    InvalidInputError
        If the call raises (the message names the spec and the exception).
    """
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature: offer nothing
        params = {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = dict(offered)
    else:
        kwargs = {k: v for k, v in offered.items() if k in params}
    try:
        return fn(**kwargs)
    except Exception as exc:
        raise InvalidInputError(
            f"{what} {spec!r}: calling it with {sorted(kwargs)} raised "
            f"{type(exc).__name__}: {exc}"
        ) from exc
