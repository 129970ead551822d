"""Plumbing shared by the spectral estimators (one copy each).

The one conversion of an estimator's input (:func:`spectral_operator`: complex
refused, half precision computed in float32), the operator description stored
in a result's ``settings``, the torch generator built from the package's one
seed rule, the progress bar, the basis precision, and the symmetry tolerances,
measure and message.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator
from tqdm.auto import tqdm

from ..distributed import broadcast_seed
from ..exceptions import DTypeError, InvalidInputError, NotSymmetricError
from ..operators import CurvatureOperator, DenseOperator, as_operator

__all__: list[str] = []

#: Relative asymmetry accepted by default, by operator precision.
SYMMETRY_RTOL = {
    torch.float64: 1e-8, torch.float32: 1e-3, torch.float16: 5e-2, torch.bfloat16: 5e-2,
}

#: Precisions too coarse for Krylov products (a relative error of ~1e-3 per product).
HALF_DTYPES = (torch.float16, torch.bfloat16)


def _is_complex(A: Any) -> bool:
    if isinstance(A, torch.Tensor):
        return bool(A.is_complex())
    if isinstance(A, (np.ndarray, LinearOperator)):
        return np.dtype(A.dtype).kind == "c"
    return False


def spectral_operator(A: Any, *, krylov: bool = True) -> CurvatureOperator:
    """Convert an estimator's input once (:func:`~gn_theory.operators.as_operator`).

    Complex matrices and operators are refused (their imaginary part would be
    dropped). With ``krylov``, a half-precision (float16, bfloat16) dense
    matrix is computed in float32 (exactly the stored values); any other
    half-precision operator is refused, since products that carry a relative
    error of ~1e-3 make Lanczos vectors lose orthogonality and report
    meaningless residuals.

    Raises
    ------
    DTypeError
        Complex input, or (``krylov``) a half-precision operator that is not a
        dense matrix.
    InvalidInputError
        If ``A`` is not an operator or a matrix.
    """
    if _is_complex(A):
        raise DTypeError(
            "complex matrices and operators are not supported (the imaginary part would be "
            "dropped): gn_theory.spectra works with real symmetric operators. For a Hermitian "
            "H = X + iY, the real symmetric [[X, -Y], [Y, X]] has each eigenvalue of H twice"
        )
    op = as_operator(A)
    if krylov and op.torch_dtype in HALF_DTYPES:
        if isinstance(op, DenseOperator):
            return DenseOperator(op.matrix, dtype=torch.float32)
        raise DTypeError(
            f"the operator computes in {dtype_name(op.torch_dtype)}: products carry a relative "
            "error of ~1e-3, too coarse for Krylov methods (Lanczos would report wrong values "
            "as converged). Build the operator in float32 or float64 (e.g. model.float())"
        )
    return op


def compute_settings(A: Any, op: CurvatureOperator) -> dict[str, Any]:
    """``compute_dtype`` (the precision of the products), and ``dtype`` of the input ``A``.

    Merged after :func:`operator_settings` so that a float16 matrix computed in
    float32 records both.
    """
    out: dict[str, Any] = {"compute_dtype": dtype_name(op.torch_dtype)}
    given = A.torch_dtype if isinstance(A, CurvatureOperator) else getattr(A, "dtype", None)
    if isinstance(given, (torch.dtype, np.dtype)):
        out["dtype"] = str(given).replace("torch.", "")
    return out


def asymmetry(x: torch.Tensor, Ax: torch.Tensor, y: torch.Tensor, Ay: torch.Tensor) -> float:
    r"""Relative asymmetry :math:`|x^\top Ay - y^\top Ax| / (\|x\|\|Ay\| + \|y\|\|Ax\|)`."""
    a = float(x @ Ay)
    b = float(y @ Ax)
    denom = float(
        torch.linalg.vector_norm(x) * torch.linalg.vector_norm(Ay)
        + torch.linalg.vector_norm(y) * torch.linalg.vector_norm(Ax)
    )
    return abs(a - b) / denom if denom > 0 else 0.0


def symmetry_rtol(op: CurvatureOperator, rtol: float | None = None) -> float:
    """The asymmetry accepted for ``op``: ``rtol`` or the default of its precision."""
    return SYMMETRY_RTOL.get(op.torch_dtype, 1e-3) if rtol is None else float(rtol)


def raise_if_asymmetric(rel: float, tol: float, who: str) -> None:
    """Raise NotSymmetricError (the one message) if the measured asymmetry exceeds ``tol``."""
    if rel > tol:
        raise NotSymmetricError(
            f"{who}: the operator is not symmetric: |u'(Av) - v'(Au)| / (|u||Av| + |v||Au|) = "
            f"{rel:.3g} > {tol:.1g} for random u, v; spectral estimators need a symmetric "
            "operator (symmetrise with (A + A.T) / 2; an operator whose products change from "
            "call to call, e.g. data reshuffled between passes, fails this check too)"
        )


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float64`` -> ``"float64"``."""
    return str(dtype).replace("torch.", "")


def operator_settings(op: CurvatureOperator) -> dict[str, Any]:
    """The operator's description (kind, model, loss, ...) plus P, dtype and device."""
    settings = op.settings  # a copy of the operator's metadata (with its fingerprint)
    settings.setdefault("kind", op.kind)
    settings["num_params"] = op.num_params
    settings["dtype"] = dtype_name(op.torch_dtype)
    settings["device"] = str(op.device)
    return settings


def generator(seed: int | None) -> tuple[torch.Generator, int]:
    """A CPU torch generator seeded by :func:`gn_theory._checks.check_seed`, and the seed.

    In a data-parallel run the seed is rank 0's (:func:`gn_theory.distributed.broadcast_seed`:
    ``None`` draws entropy on rank 0 only), so every rank draws the same start and probe
    vectors from its own generator.
    """
    seed = broadcast_seed(seed)
    return torch.Generator().manual_seed(seed), seed


def progress_bar(progress: bool, total: int, desc: str) -> Any:
    """A tqdm bar counting products, or ``None`` when ``progress`` is false."""
    if not progress:
        return None
    return tqdm(total=total, desc=desc, unit="matvec")


def basis_dtype(op: CurvatureOperator, dtype: torch.dtype | None) -> torch.dtype:
    """The Krylov basis precision: ``dtype`` (float32 or float64) or the operator's."""
    if dtype is None:
        return op.torch_dtype
    if dtype not in (torch.float32, torch.float64):
        raise InvalidInputError(f"dtype must be torch.float32 or torch.float64; got {dtype}")
    return dtype
