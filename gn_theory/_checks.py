"""Private torch-free validators shared by the public entry points (one message style).

Tensor validators live in :mod:`gn_theory._checks_torch`.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .exceptions import InvalidInputError, ShapeError

__all__: list[str] = []


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise InvalidInputError."""
    if value not in choices:
        raise InvalidInputError(
            f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}"
        )
    return value


def check_positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` as int if it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidInputError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}; got {value}")
    return int(value)


def check_nonneg_int(name: str, value: Any) -> int:
    """Return ``value`` as int if it is an integer >= 0."""
    return check_positive_int(name, value, minimum=0)


def check_alpha(alpha: Any) -> float:
    """Return ``alpha`` as float if it lies in (0, 1) (a significance level)."""
    try:
        a = float(alpha)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"alpha must be a number in (0, 1); got {alpha!r}") from exc
    if not 0.0 < a < 1.0:
        raise InvalidInputError(f"alpha must be in (0, 1); got {alpha!r}")
    return a


def check_seed(seed: Any) -> int:
    """Return ``seed`` as an int in [0, 2**63); ``None`` draws one from fresh OS entropy.

    The one seed rule of the package: torch generators (``torch.Generator().manual_seed``)
    and numpy generators (``numpy.random.default_rng``) are both seeded with the int
    returned here, and results record it so that a run can be replayed.
    """
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InvalidInputError(f"seed must be an integer or None; got {seed!r}")
    if not 0 <= int(seed) < 2**63:
        raise InvalidInputError(f"seed must be an integer in [0, 2**63); got {seed}")
    return int(seed)


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a float if it is one finite real number within the bounds.

    The one real-number rule (tolerances, ratios, edges, widths): Python and numpy reals
    (``int``, ``float``, ``np.float32``, ``np.int64``, a 0-d real array) are accepted;
    ``bool`` (``True`` is not 1 here), strings, complex numbers, ``None``, arrays with more
    than one entry, NaN and inf are refused.

    Parameters
    ----------
    name : str
        Used in the messages.
    value : Any
        The candidate.
    low, high : float, optional
        Bounds; ``low_open`` / ``high_open`` make them strict.

    Returns
    -------
    float

    Raises
    ------
    InvalidInputError
        Not a finite real number, or out of bounds.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    ok = isinstance(value, (numbers.Real, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )
    if not ok:
        raise InvalidInputError(f"{name} must be a real number; got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise InvalidInputError(f"{name} must be a finite real number; got {value!r}")
    too_low = low is not None and (v <= low if low_open else v < low)
    too_high = high is not None and (v >= high if high_open else v > high)
    if too_low or too_high:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        raise InvalidInputError(
            f"{name} must be a real number {' and '.join(t for t in (lo, hi) if t)}; "
            f"got {value!r}"
        )
    return v


def check_positive_float(name: str, value: Any) -> float:
    """Return ``value`` as float if it is a finite real number > 0 (:func:`check_real`'s rule)."""
    return check_real(name, value, low=0.0, low_open=True)


def check_fraction(name: str, value: Any) -> float:
    """Return ``value`` as float if it lies in [0, 1) (a mass or a relative tolerance)."""
    return check_real(name, value, low=0.0, high=1.0, high_open=True)


def check_real_array(
    values: Any,
    name: str,
    *,
    ndim: int | None = 1,
    scalar: bool = False,
    allow_empty: bool = False,
    nonnegative: bool = False,
) -> np.ndarray:
    """Return ``values`` as a finite float64 array, saying what is wrong otherwise.

    Parameters
    ----------
    values : array_like
        Numbers (a torch tensor is read through ``.detach().cpu()``, without importing torch).
    name : str
        Used in the messages.
    ndim : int or None, default 1
        Required number of dimensions (None: any).
    scalar : bool, default False
        Accept a 0-d input: reshaped to (1,) when ``ndim == 1``, kept 0-d when ``ndim`` is None.
    allow_empty : bool, default False
        Accept an array with no entries.
    nonnegative : bool, default False
        Reject entries below ``-1e-10 * max|x|`` (eigenvalues of a PSD matrix) and clip the
        round-off above that to 0.

    Returns
    -------
    numpy.ndarray
        A new float64 array.

    Raises
    ------
    InvalidInputError
        Not numbers, empty, non-finite or negative entries.
    ShapeError
        Wrong number of dimensions.
    """
    if isinstance(values, (str, bytes, dict)) or values is None:
        raise InvalidInputError(f"{name} must be real numbers; got {values!r}")
    if hasattr(values, "detach") and hasattr(values, "cpu"):  # a torch tensor, without torch
        values = values.detach().cpu().double().numpy()
    try:
        arr = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be real numbers; got {values!r}") from exc
    if arr.ndim == 0 and ndim is not None and ndim != 0:
        if not scalar:
            raise ShapeError(f"{name} must be {ndim}-d; got a scalar ({values!r})")
        arr = arr.reshape((1,) * ndim)
    if ndim is not None and arr.ndim != ndim:
        raise ShapeError(f"{name} must be {ndim}-d; got shape {arr.shape}")
    if arr.ndim == 0 and not scalar:
        raise ShapeError(f"{name} must be an array; got a scalar ({values!r})")
    if arr.size == 0 and not allow_empty:
        raise InvalidInputError(f"{name} is empty")
    bad = np.flatnonzero(~np.isfinite(arr.ravel()))
    if bad.size:
        raise InvalidInputError(
            f"{name} holds {bad.size} non-finite value(s) (NaN or inf) at positions "
            f"{bad[:10].tolist()}"
        )
    if nonnegative and arr.size:
        tol = 1e-10 * max(1.0, float(np.max(np.abs(arr))))
        neg = np.flatnonzero(arr.ravel() < -tol)
        if neg.size:
            raise InvalidInputError(
                f"{name} must be >= 0 (eigenvalues of a PSD matrix); got "
                f"{arr.ravel()[neg][:5].tolist()} at positions {neg[:10].tolist()}"
            )
        arr = np.clip(arr, 0.0, None)
    return arr


def check_rng(seed: Any) -> np.random.Generator:
    """A numpy Generator: ``seed`` itself if it is one, else seeded by :func:`check_seed`."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(check_seed(seed))
