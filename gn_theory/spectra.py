r"""Spectra of symmetric operators: dense, Lanczos top/bottom-k, SLQ densities, traces.

Every estimator takes any symmetric operator: a :class:`~gn_theory.CurvatureOperator`
(``hessian_operator``, ``ggn_operator``, ``residual_operator``, ``DenseOperator``),
any :class:`scipy.sparse.linalg.LinearOperator`, a dense numpy array or a dense
torch tensor. They are converted once by :func:`gn_theory.operators.as_operator`;
all Krylov work then runs in torch on the operator's device, and only small
projected matrices (m x m, tridiagonals) visit the host.

* :func:`eigh` -- full spectrum from the dense matrix (float64 by default).
* :func:`lanczos` -- k largest / smallest / both-end eigenpairs by thick-restart
  block Lanczos with full reorthogonalisation; memory ``O(P (m + b))``.
* :func:`slq` -- stochastic Lanczos quadrature: a :class:`SpectralDensity`
  keeping every probe's Ritz nodes and Gauss weights; all probes share one
  batched product per step.
* :func:`trace` -- Hutchinson or Hutch++ with a standard error, probes batched.
* :func:`outliers` -- separate outliers from the bulk (largest log gap, or
  above a supplied bulk edge).

References
----------
See ``THEORY.md`` section 3 (Lanczos 3.1, SLQ 3.2, traces 3.4, negative
eigenvalues 3.5). Papyan, arXiv:1811.07062 and arXiv:2008.11865 (SLQ
normalisation and kernel width); Ghorbani, Krishnan, Xiao, arXiv:1901.10159;
Meyer, Musco, Musco, Woodruff, SOSA 2021 (Hutch++); Wu and Simon, SIAM J.
Matrix Anal. Appl. 22 (2000) (thick-restart Lanczos).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from . import _checks, _checks_torch, _krylov
from .exceptions import (
    ConvergenceWarning,
    InvalidInputError,
    NonFiniteError,
    NotSymmetricError,
)
from .operators import CurvatureOperator, as_operator
from .results.spectra import (
    PAPYAN_KAPPA,
    Outliers,
    SpectralDensity,
    Spectrum,
    TraceEstimate,
    spectral_measure,
)

__all__ = [
    "Spectrum",
    "SpectralDensity",
    "TraceEstimate",
    "Outliers",
    "eigh",
    "lanczos",
    "slq",
    "trace",
    "outliers",
    "check_symmetric",
]

#: Default number of SLQ Lanczos steps (Papyan uses M = 128; THEORY 3.2).
DEFAULT_SLQ_STEPS = 128
#: Default number of SLQ probes.
DEFAULT_SLQ_PROBES = 10

_SYMMETRY_RTOL = {torch.float64: 1e-8, torch.float32: 1e-3, torch.float16: 5e-2}


# =============================================================================== helpers
def _operator_metadata(op: CurvatureOperator) -> dict[str, Any]:
    meta = dict(op.metadata)
    meta.setdefault("kind", op.kind)
    meta["num_params"] = op.num_params
    meta["dtype"] = str(op.torch_dtype).replace("torch.", "")
    meta["device"] = str(op.device)
    return meta


def _generator(seed: int | None) -> tuple[torch.Generator, int]:
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**63))
    elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InvalidInputError(f"seed must be an integer or None; got {seed!r}")
    return torch.Generator().manual_seed(int(seed)), int(seed)


def _progress_bar(progress: bool, total: int, desc: str) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="matvec")


def _basis_dtype(op: CurvatureOperator, dtype: torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return op.torch_dtype
    if dtype not in (torch.float32, torch.float64):
        raise InvalidInputError(f"dtype must be torch.float32 or torch.float64; got {dtype}")
    return dtype


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

    Examples
    --------
    >>> import numpy as np
    >>> from gn_theory.spectra import check_symmetric
    >>> check_symmetric(np.diag([1.0, 2.0, 3.0])) < 1e-12
    True
    """
    op = as_operator(A)
    gen, _ = _generator(seed)
    U = _krylov.random_rows(2, op.num_params, gen, op.device, op.torch_dtype)
    AU = _krylov.apply_rows(op, U, "symmetry probe")
    a = float(U[0] @ AU[1])
    b = float(U[1] @ AU[0])
    denom = float(
        torch.linalg.vector_norm(U[0]) * torch.linalg.vector_norm(AU[1])
        + torch.linalg.vector_norm(U[1]) * torch.linalg.vector_norm(AU[0])
    )
    rel = abs(a - b) / denom if denom > 0 else 0.0
    tol = _SYMMETRY_RTOL.get(op.torch_dtype, 1e-3) if rtol is None else float(rtol)
    if rel > tol:
        raise NotSymmetricError(
            f"the operator is not symmetric: |u'(Av) - v'(Au)| / (|u||Av| + |v||Au|) = "
            f"{rel:.3g} > {tol:.1g} for random u, v; spectral estimators need a symmetric "
            "operator (symmetrise with (A + A.T) / 2)"
        )
    return rel


_probe_symmetry = check_symmetric


# =============================================================================== eigh
def eigh(
    A: Any,
    *,
    dtype: torch.dtype = torch.float64,
    return_eigenvectors: bool = False,
    max_bytes: int | None = None,
) -> Spectrum:
    """Full spectrum from the dense matrix and a symmetric eigensolver.

    Parameters
    ----------
    A : CurvatureOperator, scipy LinearOperator, numpy.ndarray or torch.Tensor
        Symmetric operator or matrix.
    dtype : torch.dtype, default torch.float64
        Precision of the eigensolve (the dense matrix is cast to it).
    return_eigenvectors : bool, default False
        Keep the (P, P) eigenvectors.
    max_bytes : int, optional
        Memory budget for ``to_dense`` (default 4 GiB).

    Returns
    -------
    Spectrum
        All P eigenvalues, ascending; ``residual_norms`` are computed from the
        dense matrix; ``matvecs`` is P (one product per column) unless the
        operator wraps a dense matrix.

    Raises
    ------
    MemoryBudgetError
        If the dense matrix would exceed the budget.
    NotSymmetricError
        If the dense matrix is not symmetric to ``1e-8`` (float64) relative.
    NonFiniteError
        If the dense matrix holds NaN or inf.

    Examples
    --------
    >>> import numpy as np
    >>> from gn_theory.spectra import eigh
    >>> eigh(np.diag([3.0, -1.0, 2.0])).eigenvalues.tolist()
    [-1.0, 2.0, 3.0]
    """
    op = as_operator(A)
    before = op.matvecs
    M = op.to_dense(max_bytes=max_bytes).to(dtype)
    _checks_torch.check_finite_tensor(M, "the dense matrix")
    scale = float(M.abs().max()) if M.numel() else 0.0
    asym = float((M - M.T).abs().max()) if M.numel() else 0.0
    tol = _SYMMETRY_RTOL.get(op.torch_dtype, 1e-3)
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
        num_matvecs=op.matvecs - before,
        which="all",
        method="eigh",
        num_params=op.num_params,
        seed=None,
        settings={**_operator_metadata(op), "solver_dtype": str(dtype).replace("torch.", "")},
    )


# =============================================================================== lanczos
def _default_block_size(op: CurvatureOperator, k: int) -> int:
    # Block Krylov needs more products than single-vector Lanczos for the same
    # accuracy (3-4x for k = 10 on the benchmark MLP); it pays only where a
    # (P, b) product costs about as much as one vector (a GPU). On a CPU a
    # vmapped block product saved at most ~1.5x per vector in our measurements
    # (docs/performance.md), and a generic scipy operator gains nothing.
    if op.device.type == "cpu" or op.kind == "scipy":
        return 1
    return max(1, min(k, 8))


def lanczos(
    A: Any,
    k: int,
    which: Literal["largest", "smallest", "both"] = "largest",
    *,
    tol: float = 1e-8,
    max_matvecs: int | None = None,
    seed: int | None = None,
    block_size: int | None = None,
    basis_size: int | None = None,
    return_eigenvectors: bool = True,
    dtype: torch.dtype | None = None,
    check_symmetric: bool = False,
    progress: bool = False,
    warn: bool = True,
) -> Spectrum:
    r"""Extreme eigenpairs by thick-restart block Lanczos, in torch on the operator's device.

    A block of ``b`` orthonormal vectors is multiplied by the operator per
    step; the basis (at most ``basis_size + b`` vectors of length P) is kept
    orthonormal by full reorthogonalisation (classical Gram-Schmidt, twice).
    When it is full, the best Ritz vectors (the wanted k plus a buffer) are
    kept and the rest discarded (thick restart, Wu and Simon 2000), so memory
    stays :math:`O(P(m + b))`. A Ritz pair :math:`(\theta, x)` is converged
    when its residual :math:`\|Ax - \theta x\|`, read off the Krylov relation,
    is at most ``tol`` times the largest Ritz magnitude (an estimate of
    :math:`\|A\|`); then :math:`|\theta - \lambda| \le` the residual, and
    typically residual²/gap.

    Parameters
    ----------
    A : CurvatureOperator, scipy LinearOperator, numpy.ndarray or torch.Tensor
        Symmetric operator.
    k : int
        Number of eigenpairs, ``1 <= k <= P``.
    which : {"largest", "smallest", "both"}, default "largest"
        Algebraically largest, algebraically smallest (most negative), or
        both ends: ``ceil(k/2)`` largest and ``floor(k/2)`` smallest (scipy's
        ``"BE"``).
    tol : float, default 1e-8
        Relative residual tolerance.
    max_matvecs : int, optional
        Budget of products; default ``max(2000, 40 * basis_size)``.
    seed : int, optional
        Seed of the random starting block (drawn on the CPU, reproducible
        across devices).
    block_size : int, optional
        Vectors per product. Default 1 on the CPU and for plain scipy
        operators (fewest products; blocks do not pay there), ``min(k, 8)``
        on accelerators, where a block costs about as much as one vector.
    basis_size : int, optional
        Basis vectors kept before a restart, m; default ``max(2k + 2b, 20 + b)``
        (at most P). Must be at least ``k + 1``; the block size is reduced if
        needed so that ``m >= k + b``.
    return_eigenvectors : bool, default True
        Return the (P, k) Ritz vectors.
    dtype : torch.dtype, optional
        Precision of the basis and reorthogonalisation (default the
        operator's; float64 on a float32 operator is allowed).
    check_symmetric : bool, default False
        Probe symmetry first with :func:`check_symmetric` (two products).
    progress : bool, default False
        Show a tqdm bar of products.
    warn : bool, default True
        Issue a :class:`ConvergenceWarning` if some pairs did not converge.

    Returns
    -------
    Spectrum
        ``eigenvalues`` ascending, ``residual_norms``, ``converged``,
        ``matvecs``; ``metadata`` holds iterations, restarts, block and
        basis sizes and the norm estimate.

    Raises
    ------
    InvalidInputError
        ``k`` outside ``[1, P]``, unknown ``which``, bad sizes or tolerance.
    NotSymmetricError
        If ``check_symmetric`` and the probe fails.
    NonFiniteError
        If a product is NaN or inf (the iteration is named).

    Warns
    -----
    ConvergenceWarning
        If ``max_matvecs`` ran out before every pair converged.

    Examples
    --------
    >>> import numpy as np
    >>> from gn_theory.spectra import lanczos
    >>> A = np.diag(np.arange(1.0, 201.0))
    >>> s = lanczos(A, 3, seed=0)
    >>> np.allclose(s.eigenvalues, [198, 199, 200], rtol=1e-10), s.all_converged
    (True, True)
    >>> lanczos(A, 2, "smallest", seed=0).eigenvalues.round(8).tolist()
    [1.0, 2.0]
    """
    op = as_operator(A)
    P = op.num_params
    _checks.check_choice("which", which, ("largest", "smallest", "both"))
    k = _checks.check_positive_int("k", k)
    if k > P:
        raise InvalidInputError(f"k must be at most the dimension P = {P}; got k = {k}")
    if not (isinstance(tol, (int, float)) and tol > 0 and math.isfinite(tol)):
        raise InvalidInputError(f"tol must be a positive number; got {tol!r}")
    if block_size is not None:
        block_size = _checks.check_positive_int("block_size", block_size)
    b = block_size if block_size is not None else _default_block_size(op, k)
    if basis_size is not None:
        m = _checks.check_positive_int("basis_size", basis_size)
        if m < min(k + 1, P):
            raise InvalidInputError(
                f"basis_size must be at least k + 1 = {k + 1} to hold k Ritz vectors and a "
                f"new direction; got {m}"
            )
        if block_size is None:
            b = max(1, min(b, m - k))
        elif m < min(k + b, P):
            raise InvalidInputError(
                f"basis_size must be at least k + block_size = {k + b}; got {m}"
            )
    else:
        m = max(2 * k + 2 * b, 20 + b)
    m = min(m, P)
    b = min(b, P)
    if max_matvecs is None:
        max_matvecs = max(2000, 40 * m)
    max_matvecs = _checks.check_positive_int("max_matvecs", max_matvecs)
    bdtype = _basis_dtype(op, dtype)
    gen, seed = _generator(seed)
    before = op.matvecs
    if check_symmetric:
        _probe_symmetry(op, seed=seed)
    bar = _progress_bar(progress, max_matvecs, f"lanczos ({which} {k})")
    try:
        out = _krylov.block_lanczos(
            op, k, which, block_size=b, basis_size=m, tol=float(tol),
            max_matvecs=max_matvecs, gen=gen, dtype=bdtype,
            want_vectors=return_eigenvectors, progress=None if bar is None else bar.update,
        )
    finally:
        if bar is not None:
            bar.close()
    spec = Spectrum(
        eigenvalues=np.asarray(out["eigenvalues"], float),
        eigenvectors=out["eigenvectors"],
        residual_norms=np.asarray(out["residual_norms"], float),
        converged=np.asarray(out["converged"], bool),
        num_matvecs=op.matvecs - before,
        which=which,
        method="lanczos",
        num_params=P,
        seed=seed,
        settings={
            **_operator_metadata(op),
            "tol": float(tol),
            "block_size": out["block_size"],
            "basis_size": out["basis_size"],
            "iterations": out["iterations"],
            "restarts": out["restarts"],
            "norm_estimate": out["norm_estimate"],
            "basis_dtype": str(bdtype).replace("torch.", ""),
            "max_matvecs": max_matvecs,
        },
    )
    if warn and not spec.all_converged:
        import warnings

        warnings.warn(
            f"lanczos: {spec.num_converged} of {k} {which} eigenpairs converged to tol={tol:g} "
            f"within max_matvecs={max_matvecs} (largest residual "
            f"{float(spec.residual_norms.max()):.3g}); raise max_matvecs or basis_size",
            ConvergenceWarning,
            stacklevel=2,
        )
    return spec


# =============================================================================== slq
def slq(
    A: Any,
    *,
    num_probes: int = DEFAULT_SLQ_PROBES,
    num_steps: int = DEFAULT_SLQ_STEPS,
    seed: int | None = None,
    probes: Literal["rademacher", "gaussian"] = "rademacher",
    reorthogonalize: bool = True,
    dtype: torch.dtype | None = None,
    check_symmetric: bool = False,
    progress: bool = False,
) -> SpectralDensity:
    r"""Stochastic Lanczos quadrature: a spectral density from a few random probes.

    Each probe :math:`v_l` (normalised) runs its own Lanczos recurrence of
    ``num_steps`` steps; the products of all probes at one step are one
    batched (P, num_probes) product. The Ritz values :math:`\theta^{(l)}_k`
    and Gauss weights :math:`\tau^{(l)}_k = (e_1^\top s_k)^2` (from
    ``scipy.linalg.eigh_tridiagonal``) are kept per probe (THEORY 3.2).

    Parameters
    ----------
    A : CurvatureOperator, scipy LinearOperator, numpy.ndarray or torch.Tensor
        Symmetric operator.
    num_probes : int, default 10
        Probes :math:`n_v` (Ghorbani et al. use 1; more reduce the variance of
        the weights, about :math:`1/\sqrt{n_v P}`).
    num_steps : int, default 128
        Lanczos steps m per probe (Papyan's M = 128, THEORY 3.2), capped at P.
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
    check_symmetric : bool, default False
        Probe symmetry first.
    progress : bool, default False
        Show a tqdm bar.

    Returns
    -------
    SpectralDensity

    Raises
    ------
    InvalidInputError
        Non-positive ``num_probes`` or ``num_steps``, unknown ``probes``.
    NotSymmetricError
        If ``check_symmetric`` and the probe fails.
    NonFiniteError
        If a product is NaN or inf (the step is named).

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
    op = as_operator(A)
    P = op.num_params
    num_probes = _checks.check_positive_int("num_probes", num_probes)
    num_steps = _checks.check_positive_int("num_steps", num_steps)
    _checks.check_choice("probes", probes, ("rademacher", "gaussian"))
    m = min(num_steps, P)
    bdtype = _basis_dtype(op, dtype)
    gen, seed = _generator(seed)
    before = op.matvecs
    if check_symmetric:
        _probe_symmetry(op, seed=seed)
    V0 = _krylov.random_rows(num_probes, P, gen, op.device, bdtype, probes)
    bar = _progress_bar(progress, num_probes * m, "slq")
    try:
        alpha, beta, lengths = _krylov.batched_lanczos(
            op, V0, m, reorthogonalize=reorthogonalize,
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
        num_matvecs=op.matvecs - before,
        seed=seed,
        settings={
            **_operator_metadata(op),
            "probes": probes,
            "reorthogonalize": bool(reorthogonalize),
            "basis_dtype": str(bdtype).replace("torch.", ""),
            "lengths": lengths.tolist(),
            "kernel": "gaussian, Papyan width (THEORY 3.2)",
        },
    )


# =============================================================================== traces
def trace(
    A: Any,
    *,
    method: Literal["hutchinson", "hutch++"] = "hutchinson",
    num_matvecs: int = 100,
    seed: int | None = None,
    probes: Literal["rademacher", "gaussian"] = "rademacher",
    block_size: int = 32,
) -> TraceEstimate:
    r"""Stochastic trace estimate with a standard error (THEORY 3.4).

    ``"hutchinson"``: :math:`\operatorname{tr}A\approx\frac1m\sum_i z_i^\top Az_i`
    over ``m = num_matvecs`` probes; stderr = sample standard deviation
    / :math:`\sqrt m`. ``"hutch++"`` (Meyer et al. 2021): a third of the
    products sketch :math:`Q=\mathrm{orth}(AS)`, a third give
    :math:`\operatorname{tr}(Q^\top AQ)` exactly, the rest estimate the trace
    of the deflated :math:`(I-QQ^\top)A(I-QQ^\top)` by Hutchinson; the
    stderr is that of the deflated part. Probes are applied in blocks of
    ``block_size`` columns.

    Parameters
    ----------
    A : CurvatureOperator, scipy LinearOperator, numpy.ndarray or torch.Tensor
        Square (symmetric for Hutch++) operator.
    method : {"hutchinson", "hutch++"}, default "hutchinson"
    num_matvecs : int, default 100
        Total products (at least 2 for Hutchinson's stderr, 3 for Hutch++).
    seed : int, optional
    probes : {"rademacher", "gaussian"}, default "rademacher"
    block_size : int, default 32
        Probes per batched product.

    Returns
    -------
    TraceEstimate

    Raises
    ------
    InvalidInputError
        Unknown method/probes, too few matvecs.
    NonFiniteError
        If a product is NaN or inf.

    Examples
    --------
    >>> import numpy as np
    >>> from gn_theory.spectra import trace
    >>> t = trace(np.diag(np.arange(1.0, 101.0)), num_matvecs=60, seed=0)
    >>> t.estimate   # Rademacher probes are exact on diagonal matrices
    5050.0
    """
    op = as_operator(A)
    P = op.num_params
    _checks.check_choice("method", method, ("hutchinson", "hutch++"))
    _checks.check_choice("probes", probes, ("rademacher", "gaussian"))
    num_matvecs = _checks.check_positive_int(
        "num_matvecs", num_matvecs, minimum=3 if method == "hutch++" else 2
    )
    block_size = _checks.check_positive_int("block_size", block_size)
    gen, seed = _generator(seed)
    before = op.matvecs
    dt, dev = op.torch_dtype, op.device

    def quad_samples(n: int, deflate: torch.Tensor | None) -> np.ndarray:
        out = []
        done = 0
        while done < n:
            nb = min(block_size, n - done)
            Z = _krylov.random_rows(nb, P, gen, dev, dt, probes)
            if deflate is not None:
                Z = Z - (Z @ deflate.T) @ deflate
            AZ = _krylov.apply_rows(op, Z, f"trace probes {done + 1}-{done + nb}")
            if deflate is not None:
                AZ = AZ - (AZ @ deflate.T) @ deflate
            out.append((Z * AZ).sum(dim=1).double().cpu().numpy())
            done += nb
        return np.concatenate(out)

    if method == "hutchinson":
        s = quad_samples(num_matvecs, None)
        est = float(s.mean())
        se = float(s.std(ddof=1) / math.sqrt(s.size))
    else:
        n_s = max(1, num_matvecs // 3)
        n_g = max(1, num_matvecs - 2 * n_s)
        S = _krylov.random_rows(n_s, P, gen, dev, dt, probes)
        AS = torch.cat(
            [_krylov.apply_rows(op, S[i : i + block_size], "hutch++ sketch")
             for i in range(0, n_s, block_size)]
        )
        Qm, _ = torch.linalg.qr(AS.T)
        Qr = Qm.T.contiguous()  # (n_s, P)
        AQ = torch.cat(
            [_krylov.apply_rows(op, Qr[i : i + block_size], "hutch++ range")
             for i in range(0, Qr.shape[0], block_size)]
        )
        t_low = float((Qr * AQ).sum())
        s = quad_samples(n_g, Qr)
        est = t_low + float(s.mean())
        se = float(s.std(ddof=1) / math.sqrt(s.size)) if s.size > 1 else float("nan")
    return TraceEstimate(
        estimate=est,
        bse=se,
        num_matvecs=op.matvecs - before,
        method=method,
        samples=s,
        seed=seed,
        settings={**_operator_metadata(op), "probes": probes},
    )


# =============================================================================== outliers
def outliers(
    spectrum: Any,
    *,
    method: Literal["gap", "edge"] = "gap",
    edge: float | None = None,
    max_outliers: int = 50,
    min_ratio: float = 2.0,
    side: Literal["positive", "negative"] = "positive",
) -> Outliers:
    r"""Separate outliers from the bulk.

    Rules (THEORY 9):

    * ``"gap"`` -- sort the candidates on ``side`` by decreasing magnitude
      :math:`|\lambda_1|\ge|\lambda_2|\ge\dots` (the largest
      ``max_outliers + 1`` of them), take the largest ratio
      :math:`|\lambda_j|/|\lambda_{j+1}|` (the largest gap in log spacing);
      the count is that j, provided the ratio is at least ``min_ratio``,
      else 0. For C-class problems pass at least ``3C`` eigenvalues (top-k
      from :func:`lanczos` or all from :func:`eigh`) and look at both the
      count and ``count - 1`` (the C versus C-1 question).
    * ``"edge"`` -- every eigenvalue beyond a bulk edge (e.g. the
      Marchenko-Pastur :math:`\lambda_+` of a fit) is an outlier.

    For a :class:`SpectralDensity` the candidates are the per-rank medians
    over probes of the Ritz values (the j-th largest node of every probe):
    outliers converge in every probe, bulk nodes do not agree.

    Parameters
    ----------
    spectrum : Spectrum, SpectralDensity or array_like
        Eigenvalues (any order) or an SLQ density.
    method : {"gap", "edge"}, default "gap"
    edge : float, optional
        Bulk edge (required for ``"edge"``), on the same side (a negative
        number for ``side="negative"``).
    max_outliers : int, default 50
        Candidates examined by ``"gap"``: the largest ``max_outliers + 1``
        magnitudes. Deep in the bulk (near zero) consecutive ratios are
        large and meaningless, so the search must stay near the top; 50
        covers ``3C`` for up to 16 classes.
    min_ratio : float, default 2.0
        Smallest gap ratio that counts as a separation.
    side : {"positive", "negative"}, default "positive"
        Which end; negative outliers are found among the negative values.

    Returns
    -------
    Outliers

    Raises
    ------
    InvalidInputError
        Unknown method or side, ``"edge"`` without ``edge``, no candidates,
        ``min_ratio <= 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from gn_theory.spectra import outliers
    >>> ev = np.r_[np.linspace(0.0, 1.0, 100), 9.0, 10.0, 12.0]
    >>> o = outliers(ev)
    >>> o.count, o.values.tolist()
    (3, [12.0, 10.0, 9.0])
    >>> outliers(ev, method="edge", edge=9.5).count
    2
    """
    _checks.check_choice("method", method, ("gap", "edge"))
    _checks.check_choice("side", side, ("positive", "negative"))
    if not (isinstance(min_ratio, (int, float)) and min_ratio > 1):
        raise InvalidInputError(f"min_ratio must be a number > 1; got {min_ratio!r}")
    sign = 1.0 if side == "positive" else -1.0
    if isinstance(spectrum, SpectralDensity):
        srt = np.sort(spectrum.nodes * sign, axis=1)[:, ::-1]  # per probe, descending
        # ignore zero-weight padding by using each probe's valid nodes only
        cand = np.median(srt, axis=0)
    else:
        ev = np.asarray(getattr(spectrum, "eigenvalues", spectrum), float).ravel()
        cand = np.sort(ev * sign)[::-1]
    if method == "edge":
        if edge is None:
            raise InvalidInputError('method="edge" needs the bulk edge: pass edge=...')
        e = float(edge) * sign
        vals = cand[cand > e]
        rest = cand[cand <= e]
        return Outliers(
            count=int(vals.size),
            values=np.sort(vals * sign)[::-1],
            threshold=float(edge),
            method="edge",
            side=side,
            gap_ratios=np.zeros(0),
            bulk_edge=float(rest[0] * sign) if rest.size else float("nan"),
        )
    pos = cand[cand > 0]
    max_outliers = _checks.check_positive_int("max_outliers", max_outliers)
    pos = pos[: max_outliers + 1]
    if pos.size == 0:
        raise InvalidInputError(f"no {side} eigenvalues to separate outliers from")
    if pos.size == 1:
        return Outliers(0, np.zeros(0), float("nan"), "gap", side, np.zeros(0),
                        float(pos[0] * sign))
    ratios = pos[:-1] / pos[1:]
    j = int(np.argmax(ratios))
    count = j + 1 if ratios[j] >= min_ratio else 0
    thr = float(math.sqrt(pos[j] * pos[j + 1]) * sign) if count else float("nan")
    return Outliers(
        count=count,
        values=np.sort(pos[:count] * sign)[::-1],
        threshold=thr,
        method="gap",
        side=side,
        gap_ratios=ratios,
        bulk_edge=float(pos[count] * sign),
    )
