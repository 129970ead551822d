r"""Spectral densities with the top eigenpairs deflated: exact outliers, SLQ on the rest.

The spectrum of a trained classifier's Hessian or Gauss-Newton matrix is a few
outliers far above a bulk crowded near zero. Plain stochastic Lanczos
quadrature (:func:`~gn_theory.spectra.slq`) spends its steps on them: the
outliers set the Lanczos range, every probe re-discovers them, and it weighs
each with a random weight :math:`(v^\top u_i)^2` instead of :math:`1/P`, an
error of order :math:`\lambda_i/P` in the Wasserstein distance per outlier
that more steps do not remove. :func:`spectral_density` computes the top k
eigenpairs once (:func:`~gn_theory.spectra.lanczos`, or a :class:`Spectrum`
the caller already has), runs SLQ on the deflated operator

.. math:: A_\perp = (I - QQ^\top)\,A\,(I - QQ^\top)

with probes in the complement of :math:`Q`, and adds the k eigenvalues with
their exact weight :math:`1/P` to every probe's quadrature (Papyan,
arXiv:2008.11865; Bhattacharjee, Jiang, Musco, Musco, SODA 2025, prove an
error :math:`\epsilon\,\sigma_{k+1}` instead of :math:`\epsilon\,\|A\|` for
this construction). The Ritz values of the deflated operator that converge
within a probe's steps (the next outliers) are eigenvalues too: they also get
the exact weight 1/P (``exact_converged``, no product). The result is an
ordinary :class:`SpectralDensity`: one
quadrature per probe (``nodes``, ``weights``), the deflated eigenvalues
included, so the MP fit, the BGN transform and the plots read it unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal

from .. import _checks, _memory, distributed
from ..exceptions import InvalidInputError, ShapeError
from ..operators import CurvatureOperator
from ..results import fingerprint
from ..results.spectra import SpectralDensity, Spectrum
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
from .lanczos import lanczos

__all__ = [
    "spectral_density",
    "deflated_operator",
    "smallest_eigenvalues",
    "DeflatedOperator",
    "DEFAULT_DEFLATE",
    "DEFAULT_DENSITY_PROBES",
    "DEFAULT_DENSITY_STEPS",
]

#: Eigenpairs deflated by default (the C outliers of a 10-class problem).
DEFAULT_DEFLATE = 10
#: Probes of the deflated SLQ by default (chosen from the accuracy-time curves of
#: benchmarks/bench_spectra.py, docs/performance.md).
DEFAULT_DENSITY_PROBES = 2
#: Lanczos steps per probe of the deflated SLQ by default (same curves).
DEFAULT_DENSITY_STEPS = 80


class DeflatedOperator(CurvatureOperator):
    r""":math:`(I - QQ^\top) A (I - QQ^\top) + s\,QQ^\top` for orthonormal columns Q (P, k).

    Built by :func:`deflated_operator`. Its spectrum is A's with the
    eigenvalues of the deflated pairs replaced by the shift s (k copies). A
    product is one product with A (counted there too) plus :math:`6kP` flops
    per column for the projections, in A's precision.

    Parameters
    ----------
    op : CurvatureOperator
        The operator A.
    basis : torch.Tensor
        Q, shape (P, k), orthonormal columns.
    shift : float, default 0.0
        Eigenvalue s given to span(Q).

    Notes
    -----
    Its :attr:`fingerprint` (what a checkpoint of a run on it is tied to) is A's
    with ``"operator"`` replaced by a hash of A's key, Q and s, so a Lanczos
    checkpoint on it is refused for another deflated basis or shift; ``metadata``
    keeps A's fingerprint (the provenance of the results).
    """

    kind = "deflated"

    def __init__(self, op: CurvatureOperator, basis: torch.Tensor, shift: float = 0.0) -> None:
        super().__init__(op.num_params, op.device, op.torch_dtype)
        self.op = op
        self.basis = basis.to(device=op.device, dtype=op.torch_dtype)
        self.shift = float(shift)
        self.layout = op.layout
        self.metadata = {
            **op.metadata, "kind": self.kind, "deflated_kind": op.kind,
            "num_deflated": int(basis.shape[1]), "shift": self.shift,
        }
        self._fingerprint: dict[str, Any] | None = None

    @property
    def fingerprint(self) -> dict[str, Any] | None:
        """A's fingerprint tied to Q and s (``None`` if A has no key); computed once."""
        if self._fingerprint is None:
            base = distributed.operator_key(self.op)
            if base is None:
                return None
            deflation = fingerprint(self.basis.detach().cpu().numpy(), self.shift)
            self._fingerprint = {
                **(self.op.fingerprint or {}), "deflated_operator": base,
                "deflation": deflation, "operator": fingerprint("deflated", base, deflation),
            }
        return dict(self._fingerprint)

    def _matmat_torch(self, V: torch.Tensor) -> torch.Tensor:
        Q = self.basis
        C = Q.T @ V
        W = self.op._apply(V - Q @ C)
        W = W - Q @ (Q.T @ W)
        if self.shift:
            W = W + Q @ (self.shift * C)
        return W


def _orthonormal_basis(spectrum: Spectrum, P: int) -> torch.Tensor:
    """Validated eigenvectors of ``spectrum`` as orthonormal columns (float64, CPU)."""
    vec = spectrum.eigenvectors
    if vec is None:
        raise InvalidInputError(
            "the Spectrum has no eigenvectors; compute it with "
            "lanczos(..., return_eigenvectors=True)"
        )
    vec = np.asarray(vec, dtype=np.float64)
    k = np.size(spectrum.eigenvalues)
    if vec.ndim != 2 or vec.shape != (P, k):
        raise ShapeError(
            f"the Spectrum's eigenvectors must have shape (P, k) = ({P}, {k}); got {vec.shape}"
        )
    if k >= P:
        raise InvalidInputError(
            f"{k} eigenpairs leave no complement in P = {P}; use eigh for the whole spectrum"
        )
    if not np.all(np.isfinite(vec)):
        raise InvalidInputError("the Spectrum's eigenvectors hold NaN or inf")
    # the Ritz vectors are orthonormal to round-off already; QR keeps their span exactly
    Q, _ = torch.linalg.qr(torch.as_tensor(vec))
    return Q


def deflated_operator(A: Any, spectrum: Spectrum, *, shift: float = 0.0) -> DeflatedOperator:
    r"""The operator with computed eigenpairs deflated: :math:`(I-QQ^\top)A(I-QQ^\top) + sQQ^\top`.

    Q holds the eigenvectors of ``spectrum`` (made orthonormal). If they are
    exact, the result has A's eigenvalues with those of ``spectrum`` replaced
    by ``shift``: its range is the rest of the spectrum, which is what makes
    Lanczos on it converge faster (for the smallest eigenvalues of a Hessian
    whose top outliers set the range, deflate the top and pass the smallest
    deflated eigenvalue as ``shift``, so that the k copies of the shift lie
    above every wanted value and inside the remaining range).

    Parameters
    ----------
    A : CurvatureOperator, scipy LinearOperator, numpy.ndarray or torch.Tensor
        Symmetric operator.
    spectrum : Spectrum
        Eigenpairs of A with eigenvectors, e.g. ``lanczos(A, k)``.
    shift : float, default 0.0
        Eigenvalue given to the deflated span.

    Returns
    -------
    DeflatedOperator
        A :class:`~gn_theory.operators.CurvatureOperator`; its products also
        count on ``A``.

    Raises
    ------
    InvalidInputError
        ``spectrum`` is not a Spectrum, has no eigenvectors, holds NaN or
        inf, or as many pairs as P; a non-finite ``shift``.
    ShapeError
        Eigenvectors not of shape (P, k).

    Examples
    --------
    >>> import numpy as np
    >>> from gn_theory.spectra import deflated_operator, eigh, lanczos
    >>> A = np.diag([10.0, 5.0, 3.0, 2.0, 1.0])
    >>> top = lanczos(A, 2, seed=0)
    >>> eigh(deflated_operator(A, top, shift=3.0).to_dense()).eigenvalues.round(8).tolist()
    [3.0, 3.0, 3.0, 2.0, 1.0]
    """
    op = spectral_operator(A)
    if not isinstance(spectrum, Spectrum):
        raise InvalidInputError(
            f"spectrum must be a Spectrum with eigenvectors (from lanczos or eigh); got "
            f"{type(spectrum).__name__}"
        )
    if isinstance(shift, bool) or not isinstance(shift, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"shift must be a real number; got {shift!r}")
    if not np.isfinite(shift):
        raise InvalidInputError(f"shift must be finite; got {shift}")
    return DeflatedOperator(op, _orthonormal_basis(spectrum, op.num_params), float(shift))


def _deflation_pairs(
    op: CurvatureOperator, deflate: Any, *, tol: float, seed: int, check_symmetric: bool,
    dtype: torch.dtype | None, progress: bool, max_memory: int | str | None = None,
    checkpoint: Path | None = None, resume: bool = False,
) -> tuple[Spectrum | None, str]:
    """The Spectrum to deflate (computed or given) and where it came from."""
    P = op.num_params
    if isinstance(deflate, Spectrum):
        return deflate, "given"
    if isinstance(deflate, bool) or not isinstance(deflate, (int, np.integer)):
        raise InvalidInputError(
            f"deflate must be a number of eigenpairs (int >= 0) or a Spectrum with "
            f"eigenvectors; got {type(deflate).__name__}"
        )
    k = _checks.check_nonneg_int("deflate", deflate)
    if k == 0:
        return None, "none"
    if k >= P:
        raise InvalidInputError(
            f"deflate = {k} must be below the dimension P = {P} (use eigh for the whole spectrum)"
        )
    spec = lanczos(
        op, k, "largest", tol=tol, seed=seed, return_eigenvectors=True, dtype=dtype,
        check_symmetric=check_symmetric, progress=progress, max_memory=max_memory,
        checkpoint=checkpoint, resume=resume,
    )
    return spec, "lanczos"


def _sibling(checkpoint: str | Path, tag: str) -> Path:
    """``<stem>.<tag>.npz`` beside ``checkpoint`` (``<stem>.npz``): a sub-run's checkpoint."""
    path = Path(checkpoint)
    stem = path.name[:-4] if path.name.endswith(".npz") else path.name
    return path.with_name(f"{stem}.{tag}.npz")


def _resume_seed(seed: int | None, resume: bool, *paths: Path | None) -> int | None:
    """``seed``, or with ``resume`` and ``seed=None`` the first seed recorded in ``paths``."""
    if not resume or seed is not None:
        return seed
    for path in paths:
        if path is not None:
            found = distributed.checkpoint_seed(path)
            if found is not None:
                return found
    return None


def _exact_converged(
    alpha: np.ndarray, beta: np.ndarray, lengths: np.ndarray, weights: np.ndarray,
    *, dim: int, tol_abs: float, max_copies_weight: float = 12.0, min_weight: float = 1e-6,
) -> tuple[np.ndarray, list[int]]:
    """Give converged top Ritz values of each probe the weight of one eigenvalue, 1/dim.

    ``weights`` (L, m) are the Gauss weights of the rows (descending nodes, as
    :func:`_krylov.gauss_quadrature` returns them). In row l, the contiguous run of its
    largest Ritz values whose residual :math:`|\beta_m s_{m,i}|` is at most ``tol_abs`` are
    eigenvalues of the operator: their random weights :math:`(v^\top u_i)^2` are replaced by
    the exact 1/dim and the row's other weights rescaled to keep the row's mass. A value
    whose weight exceeds ``max_copies_weight / dim`` (several copies, an atom) or is below
    ``min_weight / dim`` (a rounding-level ghost), and every row stopped early (an invariant
    subspace: copies unknown), end the run.
    """
    L, m = weights.shape
    out = weights.copy()
    counts = []
    for i in range(L):
        n = int(lengths[i])
        if n < m or n < 2:
            counts.append(0)
            continue
        _, S = eigh_tridiagonal(alpha[i, :n], beta[i, : n - 1])
        res = np.abs(beta[i, n - 1] * S[-1, ::-1])  # descending, as the nodes
        w = out[i, :n]
        c = 0
        # stop at the first value that is not converged, carries several copies' weight, or
        # carries almost none (a rounding-level ghost of a value already found)
        while (c < n - 1 and res[c] <= tol_abs
               and min_weight <= w[c] * dim <= max_copies_weight):
            c += 1
        rest = float(w[c:].sum())
        if c == 0 or rest <= 0.0:
            counts.append(0)
            continue
        w[c:] *= (1.0 - c / dim) / rest
        w[:c] = 1.0 / dim
        counts.append(c)
    return out, counts


def spectral_density(
    A: Any,
    *,
    deflate: int | Spectrum = DEFAULT_DEFLATE,
    num_probes: int = DEFAULT_DENSITY_PROBES,
    num_steps: int = DEFAULT_DENSITY_STEPS,
    seed: int | None = None,
    tol: float = 1e-6,
    probes: Literal["rademacher", "gaussian"] = "rademacher",
    dtype: torch.dtype | None = None,
    exact_converged: bool = True,
    check_symmetric: bool = True,
    progress: bool = False,
    max_memory: int | str | None = None,
    checkpoint: str | Path | None = None,
    probes_per_checkpoint: int = 1,
    resume: bool = False,
) -> SpectralDensity:
    r"""Spectral density: the top eigenpairs exactly, SLQ on the deflated rest.

    The k largest eigenpairs :math:`(\lambda_i, q_i)` come from
    :func:`lanczos` (to ``tol``), or from ``deflate`` if it is a
    :class:`Spectrum` with eigenvectors (e.g. the top-k already computed for
    the outliers: then no product is spent on them). Each probe (projected on
    the complement of :math:`Q = [q_1, \dots, q_k]`) runs ``num_steps``
    Lanczos steps with :math:`A_\perp = (I - QQ^\top) A (I - QQ^\top)`, all
    probes in one batched product per step, with full reorthogonalisation.
    Probe l's quadrature is the k eigenvalues with weight :math:`1/P` each
    and its Ritz values with their Gauss weights times :math:`(P - k)/P`, so
    every row of ``weights`` sums to 1 and
    :math:`\sum_k \tau_k g(\theta_k)` estimates :math:`\frac1P\operatorname{tr} g(A)`.

    Parameters
    ----------
    A : CurvatureOperator, scipy LinearOperator, numpy.ndarray or torch.Tensor
        Symmetric operator.
    deflate : int or Spectrum, default 10
        Number k of largest eigenpairs to deflate (0: plain SLQ, as
        :func:`slq`), or a :class:`Spectrum` holding them (any ``which``;
        its eigenvalues and eigenvector columns are used as they are).
    num_probes : int, default 2
        Probes of the deflated SLQ.
    num_steps : int, default 80
        Lanczos steps per probe (capped at P - k). The defaults (10, 2, 80)
        were chosen from the accuracy-time curves in docs/performance.md: on
        the benchmark's models they reach the Wasserstein-1 distance and the
        log-scale resolution near zero of plain SLQ with 10 probes x 80 steps
        with about a quarter of its products. ``num_steps=128`` (Papyan's M,
        :func:`slq`'s default) resolves the bulk near zero on a log scale as
        well as :func:`slq`'s 10 x 128 with about a quarter of its products.
    seed : int, optional
        Seed of the deflation Lanczos start and of the probes.
    tol : float, default 1e-6
        Relative residual tolerance of the deflated eigenpairs (:func:`lanczos`;
        their eigenvalue errors are about residual² / gap, far below it), and
        of the Ritz values ``exact_converged`` treats as eigenvalues.
    probes : {"rademacher", "gaussian"}, default "rademacher"
        Probe distribution (before projection and normalisation).
    dtype : torch.dtype, optional
        Basis precision (default the operator's).
    exact_converged : bool, default True
        In each probe, the largest Ritz values of the deflated operator whose
        residual :math:`|\beta_m s_{m,i}|` is at most ``tol`` times the norm
        estimate (a contiguous run from the top) are eigenvalues: they get the
        exact weight 1/P as well, instead of their random Gauss weights
        :math:`(v^\top u_i)^2`, and the probe's other weights are rescaled to
        keep its mass. This costs no product and removes the weight noise of
        the next outliers (the Krylov space finds them anyway). A Krylov space
        sees each distinct eigenvalue once: an eigenvalue repeated exactly
        beyond the k deflated ones would get the weight of one copy (its other
        copies' mass goes to the rest of the probe, an error of the size of
        the weight noise it replaces); values whose Gauss weight exceeds 12/P
        (an atom) or nearly none (a rounding-level ghost) end the run, and
        probes stopped by an invariant subspace are left alone.
        Deflate them explicitly (``deflate``; :func:`lanczos` confirms copies)
        or pass False to keep every Gauss weight.
    check_symmetric : bool, default True
        Check symmetry: inside :func:`lanczos` when it runs, else on the
        first SLQ step (free with two or more probes, one more product with
        one).
    progress : bool, default False
        Show tqdm bars.
    max_memory : int or str, optional
        Memory budget (bytes or ``"4GiB"``) of the deflation basis and the SLQ bases,
        ``(k + num_probes (num_steps + 4)) P`` numbers, and of the deflation's
        :func:`lanczos`; default the environment variable ``GN_THEORY_MAX_MEMORY``, else
        the memory available on the operator's device. Checked before allocating
        (:class:`~gn_theory.MemoryBudgetError`); with ``checkpoint`` only
        ``probes_per_checkpoint`` SLQ bases are held at once.
    checkpoint : str or Path, optional
        A file (``.npz``) where the run is checkpointed (atomically, by rank 0 in a
        data-parallel run). The deflation's :func:`lanczos` (``deflate`` a number)
        checkpoints to the sibling ``<stem>.deflation.npz`` through its own
        ``checkpoint=`` (after every thick restart, and with its result at the end);
        the deflated SLQ runs its probes in groups of ``probes_per_checkpoint`` (the
        same probes as without a checkpoint, drawn up front from ``seed``) and writes
        the tridiagonal coefficients so far to ``checkpoint`` after each group, as
        :func:`slq` does. The SLQ checkpoint records a hash of the deflated
        eigenvalues and eigenvectors. Without it all probes run as one batch.
    probes_per_checkpoint : int, default 1
        Probes per group (per checkpoint write).
    resume : bool, default False
        Continue from the checkpoints if they exist (else start afresh): the result
        equals, bit for bit, an uninterrupted run with the same checkpointing.
        ``seed=None`` takes the checkpoints' seed. A checkpoint written for another
        operator (model, data, loss: the operator's fingerprint), other settings,
        seed or deflated eigenpairs, or a truncated one, is refused
        (:class:`~gn_theory.ResultFileError`).

    Returns
    -------
    SpectralDensity
        ``nodes``/``weights`` of shape (num_probes, k + m), each row
        **descending**, the k deflated eigenvalues included with weight 1/P;
        ``deflated_eigenvalues`` (descending), ``bulk_bounds`` (the range of
        the deflated operator, which sets the default kernel width),
        ``num_matvecs`` (deflation included), ``settings`` (``method``,
        ``deflate``, ``deflation_source``, ``deflation_num_matvecs``,
        ``converged_ritz``: the Ritz values given weight 1/P per probe, ...).

    Raises
    ------
    InvalidInputError
        Bad counts, ``deflate`` not below P, a Spectrum without eigenvectors.
    NotSymmetricError
        If ``check_symmetric`` and the probe fails.
    NonFiniteError
        If a product is NaN or inf.
    ResultFileError
        ``resume`` with a foreign or corrupt checkpoint.
    MemoryBudgetError
        If the bases exceed ``max_memory`` (the message names the bytes and the fix).

    Examples
    --------
    >>> import numpy as np
    >>> from gn_theory.spectra import spectral_density
    >>> ev = np.r_[[50.0, 40.0, 30.0], np.linspace(0.0, 1.0, 297)]
    >>> d = spectral_density(np.diag(ev), deflate=3, num_probes=2, num_steps=20, seed=0)
    >>> d.deflated_eigenvalues.round(8).tolist(), d.nodes.shape
    ([50.0, 40.0, 30.0], (2, 23))
    >>> bool(np.allclose(d.weights.sum(axis=1), 1.0)), round(d.moment(1), 6), round(float(ev.mean()), 6)
    (True, 0.895, 0.895)
    """
    op = spectral_operator(A)
    P = op.num_params
    num_probes = _checks.check_positive_int("num_probes", num_probes)
    num_steps = _checks.check_positive_int("num_steps", num_steps)
    _checks.check_choice("probes", probes, ("rademacher", "gaussian"))
    tol = _checks.check_positive_float("tol", tol)
    check_symmetric = bool(check_symmetric)
    bdtype = basis_dtype(op, dtype)
    group = _checks.check_positive_int("probes_per_checkpoint", probes_per_checkpoint)
    key = defl_checkpoint = None
    if checkpoint is not None:
        key = distributed.checkpoint_key(op, "spectral_density", resume)
        if not isinstance(deflate, Spectrum):
            defl_checkpoint = _sibling(checkpoint, "deflation")
        seed = _resume_seed(seed, resume, Path(checkpoint), defl_checkpoint)
    gen, seed = generator(seed)
    before = op.num_matvecs
    kd = len(deflate.eigenvalues) if isinstance(deflate, Spectrum) else (
        min(max(int(deflate), 0), P - 1) if isinstance(deflate, (int, np.integer)) else 0)
    at_once = num_probes if checkpoint is None else min(group, num_probes)
    _memory.check_memory(
        (kd + num_probes + at_once * (min(num_steps, P - kd) + 3)) * P * bdtype.itemsize,
        f"spectral_density: the deflation basis ({kd} vectors) and the SLQ bases of "
        f"{at_once} probes" + ("" if at_once == num_probes else f" at once (of {num_probes})")
        + f" x {min(num_steps, P - kd)} steps (P = {P:,}, {dtype_name(bdtype)})",
        fix="fewer num_probes or num_steps, a smaller deflate"
        + (", dtype=torch.float32" if bdtype.itemsize > 4 else "")
        + ", fewer probes at once (checkpoint=... with a small probes_per_checkpoint)",
        max_memory=max_memory, device=op.device,
    )
    spec, source = _deflation_pairs(
        op, deflate, tol=tol, seed=seed, check_symmetric=check_symmetric, dtype=dtype,
        progress=progress, max_memory=max_memory, checkpoint=defl_checkpoint, resume=resume,
    )
    # the deflation's own count (a resumed lanczos reports the products of every run)
    defl_matvecs = int(spec.num_matvecs) if source == "lanczos" else op.num_matvecs - before
    measured: list[float] = []
    probe: Any = None
    probe_rows = None
    if check_symmetric and source != "lanczos" and P > 1:
        # lanczos checked symmetry when it ran; otherwise the first SLQ step does (free with
        # two or more probes in the first batch, else one more product with a random vector)
        rtol = symmetry_rtol(op)
        if at_once == 1:
            probe_gen = torch.Generator().manual_seed((seed + 1) % 2**63)
            probe_rows = _krylov.random_rows(1, P, probe_gen, op.device, bdtype)

        def probe(V: torch.Tensor, AV: torch.Tensor, U: Any, AU: Any) -> None:
            if U is None:
                rel = asymmetry(V[0], AV[0], V[1], AV[1])
            else:
                rel = asymmetry(V[0], AV[0], U[0], AU[0])
            measured.append(rel)
            raise_if_asymmetric(rel, rtol, "spectral_density")

    if spec is None:
        ev = np.zeros(0)
        Qt = torch.zeros(P, 0, dtype=bdtype, device=op.device)
        work: CurvatureOperator = op
    else:
        ev = np.asarray(spec.eigenvalues, float)
        Qt = _orthonormal_basis(spec, P).to(device=op.device, dtype=bdtype)
        work = DeflatedOperator(op, Qt)
    k = ev.size
    m = min(num_steps, P - k)
    V0 = _krylov.random_rows(num_probes, P, gen, op.device, bdtype, probes)
    if k:
        V0 = V0 - (V0 @ Qt) @ Qt.T
        V0 = V0 - (V0 @ Qt) @ Qt.T
    bar = progress_bar(progress, num_probes * m, "deflated slq" if k else "slq")
    try:
        if checkpoint is None:
            mark = op.num_matvecs
            alpha, beta, lengths = _krylov.batched_lanczos(
                work, V0, m, reorthogonalize=True, probe=probe, probe_rows=probe_rows,
                progress=None if bar is None else bar.update,
            )
            spent = op.num_matvecs - mark
        else:
            alpha, beta, lengths, spent = _krylov.checkpointed_probes(
                work, V0, m, reorthogonalize=True, checkpoint=Path(checkpoint), resume=resume,
                group=group,
                probe=probe, probe_rows=probe_rows, measured=measured, bar=bar, meta={
                    "estimator": "spectral_density", "operator": key, "num_params": P,
                    "seed": seed, "num_probes": num_probes, "num_steps": m,
                    "probes": probes, "basis_dtype": dtype_name(bdtype),
                    "probes_per_checkpoint": group, "check_symmetric": check_symmetric,
                    "deflate": int(k), "deflation_source": source,
                    "deflation": None if spec is None else fingerprint(
                        np.asarray(spec.eigenvalues, np.float64),
                        np.asarray(spec.eigenvectors, np.float64)),
                })
    finally:
        if bar is not None:
            bar.close()
    nodes_b, weights_b, lo, hi = _krylov.gauss_quadrature(alpha, beta, lengths)
    counts: list[int] = []
    if exact_converged:
        norm = max(float(np.abs(nodes_b).max()), float(np.abs(ev).max(initial=0.0)))
        weights_b, counts = _exact_converged(alpha, beta, lengths, weights_b, dim=P - k,
                                             tol_abs=tol * norm)
    bulk_share = (P - k) / P
    nodes = np.concatenate([np.broadcast_to(ev, (num_probes, k)), nodes_b], axis=1)
    weights = np.concatenate(
        [np.full((num_probes, k), 1.0 / P), weights_b * bulk_share], axis=1
    )
    order = np.argsort(-nodes, axis=1, kind="stable")
    nodes = np.take_along_axis(nodes, order, axis=1)
    weights = np.take_along_axis(weights, order, axis=1)
    bulk = np.array([lo.min(), hi.max()])
    bounds = bulk.copy() if k == 0 else np.array([min(bulk[0], ev.min()), max(bulk[1], ev.max())])
    settings: dict[str, Any] = {
        **operator_settings(op),
        **compute_settings(A, op),
        "method": "deflated_slq" if k else "slq",
        "deflate": int(k),
        "deflation_source": source,
        "deflation_num_matvecs": int(defl_matvecs),
        "probes": probes,
        "reorthogonalize": True,
        "basis_dtype": dtype_name(bdtype),
        "lengths": lengths.tolist(),
        "kernel": "gaussian, Papyan width on the deflated range (THEORY 3.2)",
        "exact_converged": bool(exact_converged),
        "converged_ritz": counts,
        "check_symmetric": check_symmetric,
        "asymmetry": (
            measured[0] if measured else (spec.settings.get("asymmetry") if source == "lanczos"
                                          else None)
        ),
        **({} if checkpoint is None else {"probes_per_checkpoint": group}),
    }
    if spec is not None:
        settings["deflation_tol"] = tol if source == "lanczos" else spec.settings.get("tol")
        settings["deflation_max_residual"] = float(np.max(spec.residual_norms, initial=0.0))
        settings["deflation_converged"] = int(spec.num_converged)
    return SpectralDensity(
        nodes=nodes,
        weights=weights,
        num_params=P,
        num_steps=m,
        num_probes=num_probes,
        bounds=bounds,
        num_matvecs=int(defl_matvecs + spent),
        seed=seed,
        settings=settings,
        deflated_eigenvalues=ev.copy() if k else None,
        bulk_bounds=bulk if k else None,
    )


def smallest_eigenvalues(
    A: Any,
    k: int,
    *,
    top: int | Spectrum = DEFAULT_DEFLATE,
    tol: float = 1e-6,
    max_matvecs: int | None = None,
    seed: int | None = None,
    progress: bool = False,
    checkpoint: str | Path | None = None,
    resume: bool = False,
) -> Spectrum:
    r"""The k smallest eigenvalues, by Lanczos with the top eigenpairs deflated.

    The smallest eigenvalues of a trained network's Hessian (its negative
    side) lie in a bulk crowded near zero, a tiny distance apart next to the
    range :math:`\lambda_1 - \lambda_{\min}` that the top outliers set: plain
    Lanczos for them needs hundreds of products. Deflating the top eigenpairs
    (:func:`deflated_operator`, with their smallest eigenvalue as the shift so
    that the deflated span lies above every wanted value) shrinks the range to
    :math:`\lambda_{j+1} - \lambda_{\min}` and the number of products with it
    (docs/performance.md: 629 products for the 3 smallest of H on the real-MNIST
    problem without deflation, 184 with the top 30 deflated).

    Parameters
    ----------
    A : CurvatureOperator, scipy LinearOperator, numpy.ndarray or torch.Tensor
        Symmetric operator.
    k : int
        Number of smallest eigenvalues.
    top : int or Spectrum, default 10
        The top eigenpairs to deflate: a number (computed here by
        :func:`lanczos` with eigenvectors; 0 for none) or a :class:`Spectrum`
        with eigenvectors already computed (no product spent on them). Without
        eigenvectors, or if their smallest eigenvalue is not positive (the
        deflated span would not lie above the wanted values), no deflation.
    tol : float, default 1e-6
        Residual tolerance relative to the largest eigenvalue magnitude of
        ``A`` (as :func:`lanczos`'s ``tol`` on ``A`` itself): the deflated run
        uses the same absolute residual bound.
    max_matvecs : int, optional
        Product budget of the search (default ``max(400, 40 k)``); the
        deflation's own products come on top when ``top`` is a number.
    seed : int, optional
        Seed of the start blocks.
    progress : bool, default False
        Show tqdm bars.
    checkpoint : str or Path, optional
        A file (``.npz``) where the search's :func:`lanczos` checkpoints (its
        ``checkpoint=``: after every thick restart, and with its result at the
        end); the top's :func:`lanczos` (``top`` a number) checkpoints to the
        sibling ``<stem>.top.npz``. The search runs on the deflated operator, whose
        fingerprint includes the deflated basis and the shift.
    resume : bool, default False
        Continue both runs from their checkpoints if they exist: the same numbers,
        bit for bit, as an uninterrupted run with the same checkpointing;
        ``seed=None`` takes the checkpoints' seed. A checkpoint of another operator,
        other settings, seed or deflated eigenpairs, or a truncated one, is refused
        (:class:`~gn_theory.ResultFileError`).

    Returns
    -------
    Spectrum
        ``which="smallest"``, eigenvalues **descending** (most negative last),
        no eigenvectors; ``num_matvecs`` includes the deflation's products;
        ``converged`` flags against the absolute bound ``tol`` x max|eig A|;
        ``settings["deflated"]`` (pairs deflated), ``settings["deflation_source"]``
        and ``settings["tol_of_A"]``.

    Raises
    ------
    InvalidInputError
        Bad ``k``, ``top``, ``tol`` or ``max_matvecs``.
    ResultFileError
        ``resume`` with a foreign or corrupt checkpoint.

    Examples
    --------
    >>> import numpy as np
    >>> from gn_theory.spectra import smallest_eigenvalues
    >>> ev = np.r_[[100.0, 80.0, 60.0], np.linspace(-0.01, 0.5, 197)]
    >>> s = smallest_eigenvalues(np.diag(ev), 2, top=3, seed=0)
    >>> s.eigenvalues.round(6).tolist(), s.all_converged, s.settings["deflated"]
    ([-0.007398, -0.01], True, 3)
    """
    op = spectral_operator(A)
    P = op.num_params
    k = _checks.check_positive_int("k", k)
    if k >= P:
        raise InvalidInputError(f"k = {k} must be below the dimension P = {P}; use eigh")
    tol = _checks.check_positive_float("tol", tol)
    budget = max(400, 40 * k) if max_matvecs is None else _checks.check_positive_int(
        "max_matvecs", max_matvecs)
    top_checkpoint = None
    if checkpoint is not None:
        distributed.checkpoint_key(op, "smallest_eigenvalues", resume)
        if not isinstance(top, Spectrum):
            top_checkpoint = _sibling(checkpoint, "top")
        seed = _resume_seed(seed, resume, Path(checkpoint), top_checkpoint)
    _, seed = generator(seed)
    search = {} if checkpoint is None else {"checkpoint": checkpoint, "resume": resume}
    top_matvecs = 0
    if isinstance(top, Spectrum):
        spec, source = top, "given"
    else:
        if isinstance(top, bool) or not isinstance(top, (int, np.integer)):
            raise InvalidInputError(
                f"top must be a number of eigenpairs (int >= 0) or a Spectrum with "
                f"eigenvectors; got {type(top).__name__}")
        j = min(_checks.check_nonneg_int("top", top), P - k - 1)
        spec = (lanczos(op, j, "largest", tol=tol, seed=seed, return_eigenvectors=True,
                        progress=progress,
                        **({} if top_checkpoint is None else
                           {"checkpoint": top_checkpoint, "resume": resume}))
                if j > 0 else None)
        source = "lanczos" if j > 0 else "none"
        top_matvecs = 0 if spec is None else int(spec.num_matvecs)
    norm = float(np.abs(spec.eigenvalues).max()) if spec is not None and len(spec) else None
    usable = (spec is not None and spec.eigenvectors is not None and len(spec) > 0
              and float(np.min(spec.eigenvalues)) > 0.0 and len(spec) + k < P)
    if usable:
        shift = float(np.min(spec.eigenvalues))
        work: Any = deflated_operator(op, spec, shift=shift)
        # the same absolute residual as tol on A: lanczos measures against the largest Ritz
        # magnitude it sees, about the shift on the deflated operator
        run_tol = tol * norm / shift
        deflated = len(spec)
    else:
        work, run_tol, deflated = op, tol, 0
        if spec is not None:
            why = ("no eigenvectors" if spec.eigenvectors is None else
                   "its smallest eigenvalue is not positive" if len(spec) and
                   float(np.min(spec.eigenvalues)) <= 0.0 else "no complement left")
            source = f"{source}, not used: {why}"
    res = lanczos(work, k, "smallest", tol=run_tol, seed=seed, max_matvecs=budget,
                  return_eigenvectors=False, warn=False, progress=progress, **search)
    if deflated:
        scale = max(norm, float(np.abs(res.eigenvalues).max(initial=0.0)))
        converged = np.asarray(res.residual_norms) <= tol * scale
    else:
        converged = np.asarray(res.converged, bool).copy()
    settings = {**res.settings, "deflated": int(deflated), "deflation_source": source,
                "tol_of_A": tol, "search_tol": run_tol}
    return Spectrum(
        eigenvalues=np.asarray(res.eigenvalues, float).copy(),
        eigenvectors=None,
        residual_norms=np.asarray(res.residual_norms, float).copy(),
        converged=converged,
        num_matvecs=top_matvecs + int(res.num_matvecs),  # resumed runs' counts included
        which="smallest",
        method="lanczos",
        num_params=P,
        seed=seed,
        settings=settings,
    )
