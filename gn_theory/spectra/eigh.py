"""The full spectrum of an operator from its dense matrix (``torch.linalg.eigh``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import _checks_torch, _memory
from ..exceptions import InvalidInputError, NotSymmetricError
from ..results.spectra import Spectrum
from ._common import SYMMETRY_RTOL, dtype_name, operator_settings, spectral_operator

__all__ = ["eigh"]


def eigh(
    A: Any,
    *,
    dtype: torch.dtype = torch.float64,
    return_eigenvectors: bool = False,
    max_bytes: int | None = None,
    max_memory: int | str | None = None,
) -> Spectrum:
    """Full spectrum from the dense matrix and a symmetric eigensolver.

    Parameters
    ----------
    A : CurvatureOperator, scipy LinearOperator, numpy.ndarray or torch.Tensor
        Symmetric operator or matrix.
    dtype : torch.dtype, default torch.float64
        Precision of the eigensolve, ``torch.float32`` or ``torch.float64``
        (the dense matrix is cast to it; a half-precision matrix is solved in
        this precision too).
    return_eigenvectors : bool, default False
        Keep the (P, P) eigenvectors.
    max_bytes : int, optional
        Memory budget for ``to_dense`` (default 4 GiB).
    max_memory : int or str, optional
        The memory the eigensolve may take (bytes or ``"4GiB"``): the matrix, its
        symmetrised copy, the eigenvectors and the residual products, about
        ``5 P^2`` numbers; default the environment variable ``GN_THEORY_MAX_MEMORY``,
        else the memory available on the operator's device. Checked before the
        dense export.

    Returns
    -------
    Spectrum
        All P eigenvalues, **descending** (largest first), eigenvector
        columns matching; ``residual_norms`` are computed from the dense
        matrix; ``num_matvecs`` is P (one product per column) unless the
        operator wraps a dense matrix.

    Raises
    ------
    MemoryBudgetError
        If the dense matrix would exceed ``max_bytes``, or the eigensolve ``max_memory``.
    NotSymmetricError
        If the dense matrix is not symmetric to ``1e-8`` (float64) relative.
    NonFiniteError
        If the dense matrix holds NaN or inf.
    InvalidInputError
        If ``dtype`` is not float32 or float64.
    DTypeError
        If ``A`` is complex (a Hermitian matrix: see :func:`lanczos`'s notes on
        the real embedding).

    Examples
    --------
    >>> import numpy as np
    >>> from gn_theory.spectra import eigh
    >>> eigh(np.diag([3.0, -1.0, 2.0])).eigenvalues.tolist()
    [3.0, 2.0, -1.0]
    """
    if dtype not in (torch.float32, torch.float64):
        raise InvalidInputError(
            f"dtype must be torch.float32 or torch.float64 (the precision of the eigensolve); "
            f"got {dtype}"
        )
    op = spectral_operator(A, krylov=False)
    before = op.num_matvecs
    P = op.num_params
    _memory.check_memory(
        5 * P * P * max(dtype.itemsize, op.torch_dtype.itemsize),
        f"eigh: the dense {P:,} x {P:,} matrix, its symmetrised copy, the eigenvectors and "
        "the residual products (5 P^2 numbers)",
        fix="matrix-free methods (lanczos for the extreme eigenvalues, spectral_density for "
        "the density)" + (", dtype=torch.float32" if dtype.itemsize > 4 else ""),
        max_memory=max_memory, device=op.device,
    )
    M = op.to_dense(max_bytes=max_bytes, max_memory=max_memory).to(dtype)
    _checks_torch.check_finite_tensor(M, "the dense matrix")
    scale = float(M.abs().max()) if M.numel() else 0.0
    asym = float((M - M.T).abs().max()) if M.numel() else 0.0
    tol = SYMMETRY_RTOL.get(op.torch_dtype, 1e-3)
    if asym > tol * max(scale, np.finfo(float).tiny):
        raise NotSymmetricError(
            f"the matrix is not symmetric: max |A - A^T| = {asym:.3g} vs max |A| = {scale:.3g}"
        )
    M = 0.5 * (M + M.T)
    w, V = torch.linalg.eigh(M)
    w, V = w.flip(0), V.flip(1)  # descending, columns matching
    res = torch.linalg.vector_norm(M @ V - V * w, dim=0)
    return Spectrum(
        eigenvalues=w.double().cpu().numpy(),
        eigenvectors=V.double().cpu().numpy() if return_eigenvectors else None,
        residual_norms=res.double().cpu().numpy(),
        converged=np.ones(op.num_params, dtype=bool),
        num_matvecs=op.num_matvecs - before,
        which="all",
        method="eigh",
        num_params=op.num_params,
        seed=None,
        settings={**operator_settings(op), "solver_dtype": dtype_name(dtype)},
    )
