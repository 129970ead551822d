"""A cheap symmetry probe for operators: two random vectors, one batched product."""

from __future__ import annotations

from typing import Any

import torch

from ..exceptions import NotSymmetricError
from ..operators import as_operator
from . import _krylov
from ._common import SYMMETRY_RTOL, generator

__all__ = ["check_symmetric"]


def check_symmetric(A: Any, *, rtol: float | None = None, seed: int | None = 0) -> float:
    r"""Probe an operator for symmetry with two random vectors.

    Computes :math:`|u^\top(Av) - v^\top(Au)| / (\|u\|\|Av\| + \|v\|\|Au\|)` for
    Gaussian u, v (one batched product of two vectors).

    Parameters
    ----------
    A : CurvatureOperator, scipy LinearOperator, numpy.ndarray or torch.Tensor
        The operator.
    rtol : float, optional
        Largest relative asymmetry accepted; default 1e-8 in float64, 1e-3 in
        float32.
    seed : int, optional
        Seed of the probe vectors.

    Returns
    -------
    float
        The relative asymmetry measured.

    Raises
    ------
    NotSymmetricError
        If the asymmetry exceeds ``rtol``.
    NonFiniteError
        If the product is not finite.
    InvalidInputError
        If ``A`` is not an operator or matrix, or ``seed`` is not an integer.

    Examples
    --------
    >>> import numpy as np
    >>> from gn_theory.spectra import check_symmetric
    >>> check_symmetric(np.diag([1.0, 2.0, 3.0])) < 1e-12
    True
    """
    op = as_operator(A)
    gen, _ = generator(seed)
    U = _krylov.random_rows(2, op.num_params, gen, op.device, op.torch_dtype)
    AU = _krylov.apply_rows(op, U, "symmetry probe")
    a = float(U[0] @ AU[1])
    b = float(U[1] @ AU[0])
    denom = float(
        torch.linalg.vector_norm(U[0]) * torch.linalg.vector_norm(AU[1])
        + torch.linalg.vector_norm(U[1]) * torch.linalg.vector_norm(AU[0])
    )
    rel = abs(a - b) / denom if denom > 0 else 0.0
    tol = SYMMETRY_RTOL.get(op.torch_dtype, 1e-3) if rtol is None else float(rtol)
    if rel > tol:
        raise NotSymmetricError(
            f"the operator is not symmetric: |u'(Av) - v'(Au)| / (|u||Av| + |v||Au|) = "
            f"{rel:.3g} > {tol:.1g} for random u, v; spectral estimators need a symmetric "
            "operator (symmetrise with (A + A.T) / 2)"
        )
    return rel
