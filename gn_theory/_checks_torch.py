"""Private tensor validators (shape, dtype, device, finiteness); torch-free ones are in ``_checks``."""

from __future__ import annotations

import torch

from .exceptions import DeviceMismatchError, DTypeError, NonFiniteError, ShapeError

__all__: list[str] = []

#: The floating dtypes an operator computes in (those numpy mirrors for scipy's ``dtype``).
FLOAT_DTYPES: tuple[torch.dtype, ...] = (torch.float16, torch.float32, torch.float64)


def check_float_dtype(dtype: object, *, name: str = "dtype") -> torch.dtype:
    """Return ``dtype`` if it is one of :data:`FLOAT_DTYPES`, else raise DTypeError."""
    if dtype not in FLOAT_DTYPES:
        raise DTypeError(
            f"{name} must be a floating torch dtype (torch.float16, torch.float32 or "
            f"torch.float64); got {dtype}"
        )
    return dtype  # type: ignore[return-value]


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
