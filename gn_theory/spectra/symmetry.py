"""A cheap symmetry probe for operators: two random vectors, one batched product."""

from __future__ import annotations

from typing import Any

from .. import _checks
from . import _krylov
from ._common import asymmetry, generator, raise_if_asymmetric, spectral_operator, symmetry_rtol

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
        Largest relative asymmetry accepted (a real number >= 0); default
        1e-8 in float64, 1e-3 in float32, 5e-2 in half precision.
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
        If ``A`` is not an operator or matrix, ``seed`` is not an integer in
        ``[0, 2**63)``, or ``rtol`` is not a real number >= 0.
    DTypeError
        If ``A`` is complex.

    Examples
    --------
    >>> import numpy as np
    >>> from gn_theory.spectra import check_symmetric
    >>> check_symmetric(np.diag([1.0, 2.0, 3.0])) < 1e-12
    True
    """
    op = spectral_operator(A, krylov=False)
    tol = symmetry_rtol(op, None if rtol is None else _checks.check_real("rtol", rtol, low=0.0))
    gen, _ = generator(seed)
    U = _krylov.random_rows(2, op.num_params, gen, op.device, op.torch_dtype)
    AU = _krylov.apply_rows(op, U, "symmetry probe")
    rel = asymmetry(U[0], AU[0], U[1], AU[1])
    raise_if_asymmetric(rel, tol, "check_symmetric")
    return rel
