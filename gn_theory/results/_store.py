"""How a result is stored: a ``.npz`` + ``.json`` pair that is never half-written.

Layout of a saved result with stem ``runs/lr_0.1``:

* ``runs/lr_0.1.npz`` -- every numpy array of the result (``numpy.savez``, no pickles);
* ``runs/lr_0.1.json`` -- everything else: the result type, the schema version, the
  fields (arrays replaced by references into the ``.npz``), the SHA-256 of the
  ``.npz`` bytes and the provenance (package versions, time, fingerprint of the inputs).

The JSON is the file that makes the pair valid: it is written last and names the
checksum of the arrays it belongs to. A save runs in this order:

1. encode and validate every field, serialise both files in memory (nothing is
   written if any field cannot be stored);
2. write the arrays to ``<stem>.npz.new`` (temporary file, fsync, rename);
3. write the JSON (temporary file, fsync, rename): from here on the new result is
   the valid one;
4. rename ``<stem>.npz.new`` to ``<stem>.npz``.

A crash at any moment leaves either the old pair (its JSON matches ``<stem>.npz``)
or the new one (its JSON matches ``<stem>.npz.new`` or, after step 4,
``<stem>.npz``); :func:`read_pair` picks the arrays file whose checksum the JSON
names and finishes an interrupted step 4. The stem is taken literally: only a
trailing ``.npz`` or ``.json`` is stripped, so ``runs/lr_0.1`` is its own result.

This module is numpy-only (no torch).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import io
import json
import math
import os
import platform
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__ as _version
from ..exceptions import InvalidInputError, ResultFileError

__all__ = [
    "SCHEMA_VERSION",
    "FORMAT",
    "result_stem",
    "provenance",
    "fingerprint",
    "atomic_write_bytes",
    "encode",
    "decode",
    "write_pair",
    "read_pair",
]

#: Schema version written into every result's JSON. Files with a larger version
#: are refused; version 1 is the first versioned schema (gn_theory 0.2).
SCHEMA_VERSION = 1
#: The ``format`` tag of a result JSON.
FORMAT = "gn_theory.result"

#: The process umask, read once at import (os.umask can only be read by setting it).
_UMASK = os.umask(0)
os.umask(_UMASK)

_TAGS = ("__array__", "__result__", "__tuple__", "__float__", "__complex__")


# ============================================================================ paths
def result_stem(path: str | os.PathLike) -> Path:
    """The stem of a result pair: ``path`` with a trailing ``.npz``/``.json`` removed.

    Parameters
    ----------
    path : str or os.PathLike
        ``runs/a``, ``runs/a.npz`` or ``runs/a.json``. Other dots are part of the
        name (``runs/lr_0.1`` is the stem ``runs/lr_0.1``).

    Returns
    -------
    pathlib.Path
        The stem.

    Examples
    --------
    >>> str(result_stem("runs/lr_0.1")), str(result_stem("runs/lr_0.1.json"))
    ('runs/lr_0.1', 'runs/lr_0.1')
    """
    p = Path(path)
    if p.name in ("", ".", ".."):
        raise InvalidInputError(f"a result path needs a file name; got {str(path)!r}")
    if p.suffix in (".npz", ".json"):
        p = p.with_name(p.name[: -len(p.suffix)])
    return p


def _with(stem: Path, suffix: str) -> Path:
    return stem.with_name(stem.name + suffix)


def pair_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """The ``(.npz, .json)`` paths of the result stored at ``path``."""
    stem = result_stem(path)
    return _with(stem, ".npz"), _with(stem, ".json")


# ============================================================================ provenance
def provenance(fingerprint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Versions, time stamp and input fingerprint recorded with every saved result.

    Parameters
    ----------
    fingerprint : dict, optional
        What produced the result (hashes of model parameters, data, settings),
        as the measuring function recorded it.

    Returns
    -------
    dict
        Package versions (gn_theory, numpy, scipy, and torch only if it is already
        imported: provenance never imports torch), the Python version, the
        platform, an ISO-8601 UTC time stamp and ``fingerprint`` when given.
    """
    info: dict[str, Any] = {
        "gn_theory": _version,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
    }
    for mod in ("scipy", "torch"):
        m = sys.modules.get(mod)
        if m is not None:
            info[mod] = getattr(m, "__version__", "unknown")
    if fingerprint:
        info["fingerprint"] = fingerprint
    return info


def fingerprint(*parts: Any) -> str:
    """A short SHA-256 hex digest of arrays, bytes and JSON-able values.

    Parameters
    ----------
    *parts
        numpy arrays (dtype, shape and bytes are hashed), ``bytes``, or values that
        ``json.dumps`` accepts (hashed through their sorted JSON text).

    Returns
    -------
    str
        The first 16 hex digits of the digest.

    Examples
    --------
    >>> fingerprint(np.arange(3.0)) == fingerprint(np.arange(3.0))
    True
    >>> fingerprint(np.arange(3.0)) == fingerprint(np.arange(3.0, dtype=np.float32))
    False
    """
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            a = np.ascontiguousarray(part)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        elif isinstance(part, (bytes, bytearray, memoryview)):
            h.update(bytes(part))
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]


# ============================================================================ atomic writes
def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename).

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
        # mkstemp creates the file 0600; give it the mode a plain open() would (0666 & ~umask)
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


# ============================================================================ encoding
def _array_key(path: str, arrays: dict[str, np.ndarray]) -> str:
    key = path or "array"
    n = 1
    while key in arrays:
        n += 1
        key = f"{path}~{n}"
    return key


def encode(value: Any, arrays: dict[str, np.ndarray] | None, path: str = "") -> Any:
    """Encode a field value as JSON-able data.

    Arrays go into ``arrays`` (a reference ``{"__array__": key}`` stays in the
    tree) or, with ``arrays=None``, inline as ``{"__array__": {"dtype", "shape",
    "data"}}``. Nested results, tuples, non-finite floats and complex numbers are
    tagged so that :func:`decode` restores them exactly.

    Raises
    ------
    InvalidInputError
        For a value that cannot be stored (object arrays, sets, arbitrary objects,
        dict keys that are not strings or that collide with a tag).
    """
    from ._base import Result  # the base class imports this module: deferred to break the cycle

    where = path or "<root>"
    if isinstance(value, Result):
        return {"__result__": type(value).__name__, "fields": encode_fields(value, arrays, path)}
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise InvalidInputError(f"cannot store field {where}: object arrays are not allowed")
        if arrays is None:
            data = value.tolist()
            if value.dtype.kind in "fc":
                data = encode(data, None, path)
            return {"__array__": {"dtype": value.dtype.str, "shape": list(value.shape), "data": data}}
        key = _array_key(path, arrays)
        arrays[key] = value
        return {"__array__": key}
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else {"__float__": repr(v)}
    if isinstance(value, (complex, np.complexfloating)):
        v = complex(value)
        return {"__complex__": [encode(v.real, None), encode(v.imag, None)]}
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, arrays, f"{path}.{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode(v, arrays, f"{path}.{i}") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidInputError(
                    f"cannot store field {where}: dict keys must be strings; got {k!r}"
                )
            if k in _TAGS:
                raise InvalidInputError(f"cannot store field {where}: the key {k!r} is reserved")
            out[k] = encode(v, arrays, f"{path}.{k}" if path else k)
        return out
    raise InvalidInputError(
        f"cannot store field {where}: values of type {type(value).__name__} are not supported "
        "(use arrays, numbers, strings, lists, dicts or results)"
    )


def encode_fields(result: Any, arrays: dict[str, np.ndarray] | None, path: str) -> dict:
    out = {}
    for name, value in result._fields().items():
        out[name] = encode(value, arrays, f"{path}.{name}" if path else name)
    return out


def decode(value: Any, arrays: dict[str, np.ndarray] | None, registry: dict[str, type]) -> Any:
    """Invert :func:`encode` (``arrays=None`` for inline arrays)."""
    if isinstance(value, list):
        return [decode(v, arrays, registry) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == "__float__":
            return float(inner)
        if tag == "__complex__":
            return complex(decode(inner[0], None, registry), decode(inner[1], None, registry))
        if tag == "__tuple__":
            return tuple(decode(v, arrays, registry) for v in inner)
        if tag == "__array__":
            if isinstance(inner, dict):
                data = decode(inner["data"], None, registry)
                return np.array(data, dtype=np.dtype(inner["dtype"])).reshape(inner["shape"])
            if arrays is None or inner not in arrays:
                raise KeyError(f"array {inner!r} is missing from the .npz file")
            return arrays[inner]
    if set(value) == {"__result__", "fields"}:
        cls = lookup(value["__result__"], registry)
        fields = {k: decode(v, arrays, registry) for k, v in value["fields"].items()}
        return cls._from_fields(fields)
    return {k: decode(v, arrays, registry) for k, v in value.items()}


#: Modules holding result classes that ``gn_theory.results`` does not import itself
#: (torch-free); imported on demand when a file names one of their types.
_LAZY_MODULES = ("gn_theory.rmt", "gn_theory.explain", "gn_theory.analysis")


def lookup(name: Any, registry: dict[str, type]) -> type:
    """The result class called ``name``, importing the torch-free modules that define one."""
    if name not in registry:
        for mod in _LAZY_MODULES:
            importlib.import_module(mod)
    if name not in registry:
        raise KeyError(f"unknown result type {name!r}")
    return registry[name]


# ============================================================================ the pair
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def serialise(result: Any) -> tuple[bytes, bytes]:
    """Both files of ``result`` in memory: ``(npz_bytes, json_bytes)``.

    Raises
    ------
    InvalidInputError
        If a field cannot be stored.
    """
    arrays: dict[str, np.ndarray] = {}
    fields = encode_fields(result, arrays, "")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    npz = buf.getvalue()
    settings = getattr(result, "settings", None)
    fp = settings.get("fingerprint") if isinstance(settings, dict) else None
    meta = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "type": type(result).__name__,
        "fields": fields,
        "arrays": {"sha256": _sha256(npz), "keys": sorted(arrays)},
        "provenance": encode(provenance(fp), None),
    }
    js = json.dumps(meta, indent=1, sort_keys=True, allow_nan=False).encode()
    return npz, js


def write_pair(result: Any, path: str | os.PathLike) -> Path:
    """Save ``result`` as ``<stem>.npz`` + ``<stem>.json`` (see the module docstring).

    Returns
    -------
    pathlib.Path
        The path of the ``.json`` file (the one that makes the pair valid).
    """
    npz_path, json_path = pair_paths(path)
    npz, js = serialise(result)  # everything is validated before the first byte is written
    new = _with(npz_path, ".new")
    atomic_write_bytes(new, npz)
    atomic_write_bytes(json_path, js)
    os.replace(new, npz_path)
    _fsync_dir(npz_path.parent)
    return json_path


def _bad(path: Path, what: str) -> ResultFileError:
    return ResultFileError(f"cannot load result {path}: {what}")


def read_meta(json_path: Path) -> dict[str, Any]:
    """Read and check the JSON half of a pair (format tag and schema version)."""
    if not json_path.exists():
        raise _bad(json_path, "the file does not exist")
    try:
        raw = json_path.read_bytes()
    except OSError as exc:
        raise _bad(json_path, f"cannot read the file ({exc})") from None
    if not raw.strip():
        raise _bad(json_path, "the file is empty")
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _bad(json_path, f"not valid JSON ({exc}); the file is truncated or not a result") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _bad(json_path, f"not a gn_theory result file (no \"format\": \"{FORMAT}\" entry)")
    version = meta.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _bad(json_path, f"invalid schema_version {version!r}")
    if version > SCHEMA_VERSION:
        raise _bad(
            json_path,
            f"written with result schema version {version}, newer than this gn_theory's "
            f"({SCHEMA_VERSION}); upgrade gn_theory to read it",
        )
    for key in ("type", "fields", "arrays"):
        if key not in meta:
            raise _bad(json_path, f"the entry {key!r} is missing")
    return meta


def read_pair(path: str | os.PathLike, registry: dict[str, type]) -> Any:
    """Load the result stored at ``path`` (stem, ``.npz`` or ``.json``).

    Raises
    ------
    ResultFileError
        If a file is missing, empty, truncated, foreign, of a newer schema, or
        if the arrays do not match the checksum their JSON names.
    """
    npz_path, json_path = pair_paths(path)
    meta = read_meta(json_path)
    want = meta["arrays"].get("sha256") if isinstance(meta["arrays"], dict) else None
    data = None
    new = _with(npz_path, ".new")
    for candidate in (npz_path, new):
        if candidate.exists():
            blob = candidate.read_bytes()
            if _sha256(blob) == want:
                data = blob
                if candidate == new:  # finish a save interrupted before its last rename
                    try:
                        os.replace(new, npz_path)
                    except OSError:  # pragma: no cover - read-only folder: still loadable
                        pass
                break
    if data is None:
        if not npz_path.exists():
            raise _bad(npz_path, "the arrays file does not exist")
        raise _bad(
            npz_path,
            f"the arrays do not match the checksum recorded in {json_path.name} "
            "(the file is truncated, corrupt, or belongs to another result)",
        )
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise _bad(npz_path, f"unreadable arrays file ({exc})") from None
    try:
        cls = lookup(meta["type"], registry)
    except KeyError:
        raise _bad(json_path, f"unknown result type {meta['type']!r}") from None
    try:
        fields = {k: decode(v, arrays, registry) for k, v in meta["fields"].items()}
        obj = cls._from_fields(fields)
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(json_path, f"the fields do not make a {meta['type']} ({exc})") from None
    obj._provenance = decode(meta.get("provenance", {}), None, registry)
    return obj
