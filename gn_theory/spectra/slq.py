"""Stochastic Lanczos quadrature (SLQ): a spectral density from a few random probes."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from .. import _checks
from ..results.spectra import SpectralDensity
from . import _krylov
from ._common import (
    asymmetry,
    basis_dtype,
    compute_settings,
    dtype_name,
    generator,
    operator_settings,
    progress_bar,
    raise_if_asymmetric,
    spectral_operator,
    symmetry_rtol,
)

__all__ = ["slq", "DEFAULT_SLQ_STEPS", "DEFAULT_SLQ_PROBES"]

#: Default number of SLQ Lanczos steps (Papyan uses M = 128; docs/theory.md 3.2).
DEFAULT_SLQ_STEPS = 128
#: Default number of SLQ probes.
DEFAULT_SLQ_PROBES = 10


def slq(
    A: Any,
    *,
    num_probes: int = DEFAULT_SLQ_PROBES,
    num_steps: int = DEFAULT_SLQ_STEPS,
    seed: int | None = None,
    probes: Literal["rademacher", "gaussian"] = "rademacher",
    reorthogonalize: bool = True,
    dtype: torch.dtype | None = None,
    check_symmetric: bool = True,
    progress: bool = False,
) -> SpectralDensity:
    r"""Stochastic Lanczos quadrature: a spectral density from a few random probes.

    Each probe :math:`v_l` (normalised) runs its own Lanczos recurrence of
    ``num_steps`` steps; the products of all probes at one step are one
    batched (P, num_probes) product. The Ritz values :math:`\theta^{(l)}_k`
    and Gauss weights :math:`\tau^{(l)}_k = (e_1^\top s_k)^2` (from
    ``scipy.linalg.eigh_tridiagonal``) are kept per probe (docs/theory.md 3.2).

    Parameters
    ----------
    A : CurvatureOperator, scipy LinearOperator, numpy.ndarray or torch.Tensor
        Symmetric operator.
    num_probes : int, default 10
        Probes :math:`n_v` (Ghorbani et al. use 1; more reduce the variance of
        the weights, about :math:`1/\sqrt{n_v P}`).
    num_steps : int, default 128
        Lanczos steps m per probe (Papyan's M = 128, docs/theory.md 3.2), capped at P.
    seed : int, optional
        Seed of the probes.
    probes : {"rademacher", "gaussian"}, default "rademacher"
        Probe distribution (before normalisation).
    reorthogonalize : bool, default True
        Full reorthogonalisation (twice) against each probe's basis; avoids
        ghost Ritz values. Needs ``num_probes * num_steps * P`` numbers of
        memory; without it memory is ``O(num_probes * P)``.
    dtype : torch.dtype, optional
        Basis precision (default the operator's).
    check_symmetric : bool, default True
        Check symmetry on the first step: with two or more probes,
        :math:`v_1^\top Av_2` against :math:`v_2^\top Av_1` (free); with one,
        one extra product with a random vector. A non-symmetric operator
        would give a meaningless density without any other sign.
    progress : bool, default False
        Show a tqdm bar.

    Returns
    -------
    SpectralDensity
        ``nodes`` (num_probes, m), each row **descending** (largest Ritz value
        first), ``weights`` matching; ``bounds``, ``num_matvecs``, ``settings``.

    Raises
    ------
    InvalidInputError
        Non-positive ``num_probes`` or ``num_steps``, unknown ``probes``.
    NotSymmetricError
        If ``check_symmetric`` and the probe fails.
    NonFiniteError
        If a product is NaN or inf (the step is named).
    DTypeError
        Complex input, or a half-precision operator that is not a dense
        matrix (a float16 or bfloat16 matrix is computed in float32).

    Examples
    --------
    >>> import numpy as np
    >>> from gn_theory.spectra import slq
    >>> A = np.diag(np.linspace(-1.0, 2.0, 300))
    >>> d = slq(A, num_probes=4, num_steps=30, seed=0)
    >>> d.nodes.shape, np.allclose(d.weights.sum(axis=1), 1.0)
    ((4, 30), True)
    >>> round(d.moment(1), 1)  # tr(A) / P = 0.5
    0.5
    """
    op = spectral_operator(A)
    P = op.num_params
    num_probes = _checks.check_positive_int("num_probes", num_probes)
    num_steps = _checks.check_positive_int("num_steps", num_steps)
    _checks.check_choice("probes", probes, ("rademacher", "gaussian"))
    m = min(num_steps, P)
    bdtype = basis_dtype(op, dtype)
    gen, seed = generator(seed)
    before = op.num_matvecs
    measured: list[float] = []
    probe: Any = None
    probe_rows = None
    if check_symmetric and P > 1:
        rtol = symmetry_rtol(op)
        if num_probes == 1:  # the probe against one more random vector: one product
            probe_gen = torch.Generator().manual_seed((seed + 1) % 2**63)
            probe_rows = _krylov.random_rows(1, P, probe_gen, op.device, bdtype)

        def check(V: torch.Tensor, AV: torch.Tensor, U: Any, AU: Any) -> None:
            if U is None:  # two probes and their first products, free
                rel = asymmetry(V[0], AV[0], V[1], AV[1])
            else:
                rel = asymmetry(V[0], AV[0], U[0], AU[0])
            measured.append(rel)
            raise_if_asymmetric(rel, rtol, "slq")

        probe = check

    V0 = _krylov.random_rows(num_probes, P, gen, op.device, bdtype, probes)
    bar = progress_bar(progress, num_probes * m, "slq")
    try:
        alpha, beta, lengths = _krylov.batched_lanczos(
            op, V0, m, reorthogonalize=reorthogonalize, probe=probe, probe_rows=probe_rows,
            progress=None if bar is None else bar.update,
        )
    finally:
        if bar is not None:
            bar.close()
    nodes, weights, lo, hi = _krylov.gauss_quadrature(alpha, beta, lengths)
    return SpectralDensity(
        nodes=nodes,
        weights=weights,
        num_params=P,
        num_steps=m,
        num_probes=num_probes,
        bounds=np.array([lo.min(), hi.max()]),
        num_matvecs=op.num_matvecs - before,
        seed=seed,
        settings={
            **operator_settings(op),
            **compute_settings(A, op),
            "probes": probes,
            "reorthogonalize": bool(reorthogonalize),
            "basis_dtype": dtype_name(bdtype),
            "lengths": lengths.tolist(),
            "kernel": "gaussian, Papyan width (docs/theory.md 3.2)",
            "check_symmetric": bool(check_symmetric),
            "asymmetry": measured[0] if measured else None,
        },
    )
