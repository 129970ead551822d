"""Stochastic Lanczos quadrature (SLQ): a spectral density from a few random probes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .. import _checks, _memory, distributed
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
    checkpoint: str | Path | None = None,
    probes_per_checkpoint: int = 1,
    resume: bool = False,
    max_memory: int | str | None = None,
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
    checkpoint : str or Path, optional
        A file (``.npz``) where the probes are checkpointed: they then run in groups
        of ``probes_per_checkpoint`` (the same probes as without a checkpoint, drawn
        up front from ``seed``), and after each group the tridiagonal coefficients
        so far are written atomically (by rank 0 in a data-parallel run). Without
        it all probes run as one batch.
    probes_per_checkpoint : int, default 1
        Probes per group (per checkpoint write).
    resume : bool, default False
        Continue from ``checkpoint`` if it exists (else start afresh): the result
        equals, bit for bit, an uninterrupted run with the same checkpointing.
        ``seed=None`` takes the checkpoint's seed. A checkpoint written for another
        operator (model, data, loss: the operator's fingerprint), other settings or
        seed, or a truncated one, is refused (:class:`~gn_theory.ResultFileError`).
    max_memory : int or str, optional
        Memory budget of the bases (``L * num_steps * P`` numbers for the L probes run
        at once, plus the ``num_probes`` probes), bytes or ``"4GiB"``; default the
        environment variable ``GN_THEORY_MAX_MEMORY``, else the memory available on
        the operator's device. Checked before allocating.

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
    ResultFileError
        ``resume`` with a foreign or corrupt checkpoint.
    MemoryBudgetError
        If the bases exceed ``max_memory`` (the message names the bytes and the fix).

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
    group = _checks.check_positive_int("probes_per_checkpoint", probes_per_checkpoint)
    key = None
    if checkpoint is not None:
        key = distributed.checkpoint_key(op, "slq", resume)
        if resume and seed is None:  # take the checkpoint's seed (if there is one)
            seed = distributed.checkpoint_seed(checkpoint)
    gen, seed = generator(seed)
    before = op.num_matvecs
    measured: list[float] = []
    probe: Any = None
    probe_rows = None
    if check_symmetric and P > 1:
        rtol = symmetry_rtol(op)
        # the probe against one more random vector (one product) when the first batch has one
        if num_probes == 1 or (checkpoint is not None and group == 1):
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

    at_once = num_probes if checkpoint is None else min(group, num_probes)
    _memory.check_memory(
        (at_once * ((m if reorthogonalize else 0) + 4) + num_probes) * P * bdtype.itemsize,
        f"slq: the Lanczos bases of {at_once} probe(s) run at once ({m} steps, P = {P:,}, "
        f"{dtype_name(bdtype)}) and the {num_probes} probes",
        fix="fewer probes at once (checkpoint=... with a small probes_per_checkpoint), fewer "
        "num_steps" + (", dtype=torch.float32" if bdtype.itemsize > 4 else "")
        + ", or reorthogonalize=False",
        max_memory=max_memory, device=op.device,
    )
    V0 = _krylov.random_rows(num_probes, P, gen, op.device, bdtype, probes)
    bar = progress_bar(progress, num_probes * m, "slq")
    try:
        if checkpoint is None:
            alpha, beta, lengths = _krylov.batched_lanczos(
                op, V0, m, reorthogonalize=reorthogonalize, probe=probe, probe_rows=probe_rows,
                progress=None if bar is None else bar.update,
            )
            spent = op.num_matvecs - before
        else:
            meta = {
                "estimator": "slq", "operator": key, "num_params": P, "seed": seed,
                "num_probes": num_probes, "num_steps": m, "probes": probes,
                "reorthogonalize": bool(reorthogonalize), "basis_dtype": dtype_name(bdtype),
                "probes_per_checkpoint": group, "check_symmetric": bool(check_symmetric),
            }
            alpha, beta, lengths, spent = _krylov.checkpointed_probes(
                op, V0, m, reorthogonalize=reorthogonalize, checkpoint=Path(checkpoint),
                resume=resume, group=group, probe=probe, probe_rows=probe_rows,
                measured=measured, bar=bar, meta=meta,
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
        num_matvecs=spent,
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
            **({} if checkpoint is None else {"probes_per_checkpoint": group}),
        },
    )

