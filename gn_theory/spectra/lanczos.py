"""Extreme eigenpairs by thick-restart block Lanczos (Wu and Simon 2000), in torch."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .. import _checks, _memory, distributed
from ..exceptions import ConvergenceWarning, InvalidInputError
from ..operators import CurvatureOperator
from ..results.spectra import Spectrum
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

__all__ = ["lanczos"]

#: Before any invariant subspace is met, Lanczos stops only once its basis holds
#: ``k + MIN_EXTRA_DIRECTIONS`` vectors (at most basis_size): an operator with fewer
#: distinct eigenvalues than that breaks down first, and its copies are then found.
MIN_EXTRA_DIRECTIONS = 5


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
    check_symmetric: bool = True,
    progress: bool = False,
    warn: bool = True,
    checkpoint: str | Path | None = None,
    restarts_per_checkpoint: int = 1,
    resume: bool = False,
    max_memory: int | str | None = None,
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

    **Multiplicities.** A Krylov space grown from one vector sees each
    distinct eigenvalue once. When it becomes invariant (a *breakdown*: the
    new direction vanishes, or every Ritz pair of the basis has converged),
    its vectors are locked and the run continues from a fresh random vector
    orthogonal to them, so further copies are found; the wanted values are
    reported converged only once no eigenvalue of the unexplored complement
    can lie beyond them (its spectrum lies within the values of the last
    sequence that broke down). Before any breakdown the basis must hold
    ``k + 5`` vectors (at most ``basis_size``) before the run may stop, so an
    operator with that few distinct eigenvalues always breaks down first.
    So ``k`` eigenvalues come back **with multiplicity** (almost surely) for
    exactly low-rank operators of rank below about ``basis_size`` (the null
    space of ``G`` of a small batch, ``u u^T`` sums) and for spectra of few
    distinct values. A multiple eigenvalue inside a spectrum with more
    distinct values than that, or a cluster of eigenvalues closer than about
    ``1e-6 ||A||`` but not equal, converges before the space is invariant
    and single-vector Lanczos reports it once; use ``block_size`` at least
    the multiplicity (or :func:`eigh`). After a breakdown the basis may grow
    to ``2 basis_size`` vectors.

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
        Relative residual tolerance: a finite real number > 0 (numpy scalars
        accepted, ``True`` refused).
    max_matvecs : int, optional
        Budget of products (the symmetry probe included); default
        ``max(2000, 40 * basis_size)``. Must allow k Ritz values: at least
        ``ceil(k / b) * b`` products, plus one for the probe when ``b == 1``.
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
        operator's; float64 on a float32 operator is allowed). A float16 or
        bfloat16 dense matrix is computed in float32 (``settings`` records
        ``dtype`` and ``compute_dtype``); another half-precision operator is
        refused.
    check_symmetric : bool, default True
        Check symmetry on the first product: the start vector against a
        second random vector multiplied in the same call (one extra product;
        free for a block start, whose first two vectors are compared). A
        non-symmetric operator otherwise gives wrong values that merely fail
        to converge.
    progress : bool, default False
        Show a tqdm bar of products.
    warn : bool, default True
        Issue a :class:`ConvergenceWarning` if some pairs did not converge.
    checkpoint : str or Path, optional
        A file (``.npz``) where the restart state is written atomically (by rank 0
        in a data-parallel run) after every ``restarts_per_checkpoint``-th thick
        restart: the kept Ritz basis and the next block, the projected matrix, the
        dropped residuals, the counters and the generator's state; and once more
        when the run ends, with the result. It holds ``basis_size + block_size``
        vectors of length P (twice that after a breakdown).
    restarts_per_checkpoint : int, default 1
        Thick restarts per checkpoint write.
    resume : bool, default False
        Continue from ``checkpoint`` if it exists (else start afresh): the run
        takes the same steps as an uninterrupted one and gives the same
        eigenvalues, vectors, residuals and ``num_matvecs``, bit for bit; a
        finished checkpoint is returned without a product. ``seed=None`` takes
        the checkpoint's seed. A checkpoint written for another operator (model,
        data, loss: the operator's fingerprint), other settings or seed, or a
        truncated one, is refused (:class:`~gn_theory.ResultFileError`).
    max_memory : int or str, optional
        Memory budget of the basis (``basis_size + block_size`` vectors of length
        P, plus k for the eigenvectors), in bytes or as ``"4GiB"``; default the
        environment variable ``GN_THEORY_MAX_MEMORY``, else the memory available on
        the operator's device. Checked before allocating.

    Returns
    -------
    Spectrum
        ``eigenvalues`` **descending** (largest first; for ``"both"`` the
        ``ceil(k/2)`` largest come first, then the smallest), eigenvector
        columns matching, ``residual_norms`` (upper bounds of the true
        residuals), ``converged``, ``num_matvecs``; ``settings`` holds
        iterations, restarts, ``breakdowns`` (invariant subspaces met),
        ``copies_confirmed``, block and basis sizes, the norm estimate and the
        measured ``asymmetry`` (None without the check).

    Raises
    ------
    InvalidInputError
        ``k`` outside ``[1, P]``, unknown ``which``, bad sizes or tolerance,
        ``max_matvecs`` too small for k values, a bad seed.
    NotSymmetricError
        If ``check_symmetric`` and the probe fails (the asymmetry is named).
    NonFiniteError
        If a product is NaN or inf (the iteration is named).
    DTypeError
        Complex input, or a half-precision operator that is not a dense matrix.
    ResultFileError
        ``resume`` with a foreign or corrupt checkpoint.
    MemoryBudgetError
        If the basis exceeds ``max_memory`` (the message names the bytes and the fix).

    Warns
    -----
    ConvergenceWarning
        If ``max_matvecs`` ran out before every pair converged, or before the
        search for further copies after a breakdown could confirm them (the
        values a missing copy could displace are then ``converged=False``).

    Examples
    --------
    >>> import numpy as np
    >>> from gn_theory.spectra import lanczos
    >>> A = np.diag(np.arange(1.0, 201.0))
    >>> s = lanczos(A, 3, seed=0)
    >>> np.allclose(s.eigenvalues, [200, 199, 198], rtol=1e-10), s.all_converged
    (True, True)
    >>> lanczos(A, 2, "smallest", seed=0).eigenvalues.round(8).tolist()
    [2.0, 1.0]
    >>> u, w = np.eye(50)[0], np.eye(50)[1]
    >>> s = lanczos(5 * np.outer(u, u) - 3 * np.outer(w, w), 3, seed=0)  # copies of 0
    >>> (s.eigenvalues.round(8) + 0.0).tolist(), s.all_converged
    ([5.0, 0.0, 0.0], True)
    """
    op = spectral_operator(A)
    P = op.num_params
    _checks.check_choice("which", which, ("largest", "smallest", "both"))
    k = _checks.check_positive_int("k", k)
    if k > P:
        raise InvalidInputError(f"k must be at most the dimension P = {P}; got k = {k}")
    tol = _checks.check_real("tol", tol, low=0.0, low_open=True)
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
    check_symmetric = bool(check_symmetric)
    if max_matvecs is None:
        max_matvecs = max(2000, 40 * m)
    max_matvecs = _checks.check_positive_int("max_matvecs", max_matvecs)
    needed = -(-k // b) * b + (1 if check_symmetric and b == 1 and P > 1 else 0)
    if max_matvecs < needed:
        raise InvalidInputError(
            f"max_matvecs = {max_matvecs} cannot give k = {k} eigenpairs: Lanczos needs at "
            f"least {needed} products (one per eigenvalue"
            + (", plus one for the symmetry probe" if needed > -(-k // b) * b else "")
            + ")"
        )
    bdtype = basis_dtype(op, dtype)
    _memory.check_memory(
        (m + b + (k if return_eigenvectors else 0)) * P * bdtype.itemsize,
        f"lanczos: the Krylov basis ({m} + {b} vectors and {k if return_eigenvectors else 0} "
        f"eigenvectors of length P = {P:,}, {dtype_name(bdtype)})",
        fix=f"a smaller basis_size (restart length, now {m}; at least k + block_size), a "
        "smaller k" + (", dtype=torch.float32" if bdtype.itemsize > 4 else "")
        + ("" if op.device.type == "cpu" else ", or the operator on the host (device='cpu')"),
        max_memory=max_memory, device=op.device,
    )
    per = _checks.check_positive_int("restarts_per_checkpoint", restarts_per_checkpoint)
    key = None
    if checkpoint is not None:
        key = distributed.checkpoint_key(op, "lanczos", resume)
        if resume and seed is None:  # take the checkpoint's seed (if there is one)
            seed = distributed.checkpoint_seed(checkpoint)
    gen, seed = generator(seed)
    before = op.num_matvecs
    measured: list[float] = []
    probe: Any = None
    probe_rows = None
    if check_symmetric and P > 1:
        rtol = symmetry_rtol(op)
        if b == 1:  # the start vector against one more random vector: one product
            probe_gen = torch.Generator().manual_seed((seed + 1) % 2**63)
            probe_rows = _krylov.random_rows(1, P, probe_gen, op.device, bdtype)

        def check(Q0: torch.Tensor, AQ0: torch.Tensor, U: Any, AU: Any) -> None:
            if U is None:  # a block start: its first two vectors, free
                rel = asymmetry(Q0[0], AQ0[0], Q0[1], AQ0[1])
            else:
                rel = asymmetry(Q0[0], AQ0[0], U[0], AU[0])
            measured.append(rel)
            raise_if_asymmetric(rel, rtol, "lanczos")

        probe = check

    state = save = None
    spent = 0  # products of the run that wrote the checkpoint
    if checkpoint is not None:
        meta = {
            "estimator": "lanczos", "operator": key, "num_params": P, "seed": seed, "k": k,
            "which": which, "tol": tol, "max_matvecs": max_matvecs, "block_size": b,
            "basis_size": m, "basis_dtype": dtype_name(bdtype),
            "return_eigenvectors": bool(return_eigenvectors),
            "check_symmetric": check_symmetric, "restarts_per_checkpoint": per,
        }
        state = distributed.load_checkpoint(checkpoint, meta) if resume else None
        if state is not None:
            measured.extend(state["asymmetry"].tolist())
            spent = int(state["matvecs"])

        def save(arrays: dict[str, np.ndarray]) -> None:
            arrays["asymmetry"] = np.array(measured, dtype=np.float64)
            distributed.save_checkpoint(checkpoint, arrays, meta)

    bar = progress_bar(progress, max_matvecs, f"lanczos ({which} {k})")
    if bar is not None and spent:
        bar.update(spent)
    try:
        out = _krylov.block_lanczos(
            op, k, which, block_size=b, basis_size=m, tol=tol,
            max_matvecs=max_matvecs, gen=gen, dtype=bdtype,
            want_vectors=return_eigenvectors, min_dim=k + MIN_EXTRA_DIRECTIONS, probe=probe,
            probe_rows=probe_rows,
            progress=None if bar is None else bar.update,
            state=state, save=save, restarts_per_checkpoint=per,
            before_grow=lambda rows: _memory.check_memory(
                (rows + (k if return_eigenvectors else 0)) * P * bdtype.itemsize,
                f"lanczos: the Krylov basis grown after a breakdown ({rows} vectors of length "
                f"P = {P:,}, {dtype_name(bdtype)}, to search the invariant subspace for "
                "repeated eigenvalues)",
                fix="a smaller basis_size (the basis doubles once after a breakdown)"
                + (", dtype=torch.float32" if bdtype.itemsize > 4 else ""),
                max_memory=max_memory, device=op.device,
            ),
        )
    finally:
        if bar is not None:
            bar.close()
    spec = Spectrum(
        eigenvalues=np.asarray(out["eigenvalues"], float),
        eigenvectors=out["eigenvectors"],
        residual_norms=np.asarray(out["residual_norms"], float),
        converged=np.asarray(out["converged"], bool),
        num_matvecs=spent + op.num_matvecs - before,
        which=which,
        method="lanczos",
        num_params=P,
        seed=seed,
        settings={
            **operator_settings(op),
            **compute_settings(A, op),
            "tol": tol,
            "block_size": out["block_size"],
            "basis_size": out["basis_size"],
            "iterations": out["iterations"],
            "restarts": out["restarts"],
            "breakdowns": out["breakdowns"],
            "copies_confirmed": out["copies_confirmed"],
            "norm_estimate": out["norm_estimate"],
            "basis_dtype": dtype_name(bdtype),
            "max_matvecs": max_matvecs,
            "check_symmetric": check_symmetric,
            "asymmetry": measured[0] if measured else None,
            **({} if checkpoint is None else {"restarts_per_checkpoint": per}),
        },
    )
    if warn and not spec.all_converged:
        if out["copies_confirmed"]:
            why = (
                f"(largest residual {float(spec.residual_norms.max()):.3g}); raise max_matvecs "
                "or basis_size"
            )
        else:
            why = (
                f"before the search for further copies of the eigenvalues (after "
                f"{out['breakdowns']} invariant subspace(s)) could confirm them; raise "
                "max_matvecs"
            )
        warnings.warn(
            f"lanczos: {spec.num_converged} of {k} {which} eigenpairs converged to tol={tol:g} "
            f"within max_matvecs={max_matvecs} {why}",
            ConvergenceWarning,
            stacklevel=2,
        )
    return spec
