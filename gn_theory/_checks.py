"""Private validators shared by the public entry points (one message style)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .exceptions import (
    DeviceMismatchError,
    DTypeError,
    InvalidInputError,
    NonFiniteError,
    ShapeError,
)

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


def check_finite_tensor(t: torch.Tensor, what: str) -> None:
    """Raise NonFiniteError naming ``what`` if ``t`` holds NaN or inf."""
    if not bool(torch.isfinite(t).all()):
        n_bad = int((~torch.isfinite(t)).sum())
        raise NonFiniteError(f"{what} contains {n_bad} non-finite value(s) (NaN or inf)")


def check_vector(
    v: torch.Tensor, size: int, dtype: torch.dtype, device: torch.device, *, name: str = "v"
) -> None:
    """Check that ``v`` has shape (size,) or (size, k), the dtype and device given."""
    if v.ndim not in (1, 2) or v.shape[0] != size:
        raise ShapeError(
            f"expected {name} of shape ({size},) or ({size}, k); got {tuple(v.shape)}"
        )
    if v.ndim == 2 and v.shape[1] == 0:
        raise ShapeError(f"expected {name} of shape ({size}, k) with k >= 1; got {tuple(v.shape)}")
    if v.dtype != dtype:
        raise DTypeError(
            f"expected {name} of dtype {dtype} (the operator's dtype); got {v.dtype}. "
            f"Convert with v.to({dtype})."
        )
    if v.device != device:
        raise DeviceMismatchError(
            f"{name} is on {v.device} but the operator computes on {device}; "
            f"move it with v.to('{device}')."
        )
