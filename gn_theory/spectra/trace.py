"""Stochastic trace estimates: Hutchinson and Hutch++ (Meyer et al. 2021)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .. import _checks, distributed
from ..results.spectra import TraceEstimate
from . import _krylov
from ._common import compute_settings, generator, operator_settings, spectral_operator

__all__ = ["trace"]


def trace(
    A: Any,
    *,
    method: Literal["hutchinson", "hutch++"] = "hutchinson",
    num_matvecs: int = 100,
    seed: int | None = None,
    probes: Literal["rademacher", "gaussian"] = "rademacher",
    block_size: int = 32,
    checkpoint: str | Path | None = None,
    resume: bool = False,
) -> TraceEstimate:
    r"""Stochastic trace estimate with a standard error (docs/theory.md 3.4).

    ``"hutchinson"``: :math:`\operatorname{tr}A\approx\frac1m\sum_i z_i^\top Az_i`
    over ``m = num_matvecs`` probes; ``bse`` = sample standard deviation
    / :math:`\sqrt m`. ``"hutch++"`` (Meyer et al. 2021): a third of the
    products sketch :math:`Q=\mathrm{orth}(AS)`, a third give
    :math:`\operatorname{tr}(Q^\top AQ)` exactly, the rest estimate the trace
    of the deflated :math:`(I-QQ^\top)A(I-QQ^\top)` by Hutchinson; the
    ``bse`` is that of the deflated part. Probes are applied in blocks of
    ``block_size`` columns.

    Parameters
    ----------
    A : CurvatureOperator, scipy LinearOperator, numpy.ndarray or torch.Tensor
        Square (symmetric for Hutch++) operator.
    method : {"hutchinson", "hutch++"}, default "hutchinson"
    num_matvecs : int, default 100
        Total products: at least 2 for Hutchinson's ``bse``, at least 4 for
        Hutch++ (one sketch and one range product, and two Hutchinson probes
        of the remainder, the fewest that give a standard error).
    seed : int, optional
    probes : {"rademacher", "gaussian"}, default "rademacher"
    block_size : int, default 32
        Probes per batched product.
    checkpoint : str or Path, optional
        A file (``.npz``) where the samples are written atomically after each
        block of probes (by rank 0 in a data-parallel run). For Hutch++ also
        after the sketch and range products: the orthonormal sketch basis Q
        (``num_matvecs // 3`` vectors of length P) and its exact trace part are
        kept in the checkpoint, then the samples of each block of the deflated
        Hutchinson part.
    resume : bool, default False
        Continue from ``checkpoint`` if it exists: the blocks it holds are not
        multiplied again (their probes, and the Hutch++ sketch, are drawn again
        to advance the generator), so the result equals an uninterrupted run
        bit for bit. ``seed=None`` takes
        the checkpoint's seed. A checkpoint of another operator (its fingerprint),
        other settings or seed, or a truncated one, is refused
        (:class:`~gn_theory.ResultFileError`).

    Returns
    -------
    TraceEstimate

    Raises
    ------
    InvalidInputError
        Unknown method/probes, too few matvecs, ``resume`` on an operator
        without a fingerprint.
    ResultFileError
        ``resume`` with a foreign or corrupt checkpoint.
    NonFiniteError
        If a product is NaN or inf.
    DTypeError
        Complex input, or a half-precision operator that is not a dense
        matrix (a float16 or bfloat16 matrix is computed in float32).

    Examples
    --------
    >>> import numpy as np
    >>> from gn_theory.spectra import trace
    >>> t = trace(np.diag(np.arange(1.0, 101.0)), num_matvecs=60, seed=0)
    >>> t.estimate   # Rademacher probes are exact on diagonal matrices
    5050.0
    """
    op = spectral_operator(A)
    P = op.num_params
    _checks.check_choice("method", method, ("hutchinson", "hutch++"))
    _checks.check_choice("probes", probes, ("rademacher", "gaussian"))
    num_matvecs = _checks.check_positive_int(
        "num_matvecs", num_matvecs, minimum=4 if method == "hutch++" else 2
    )
    block_size = _checks.check_positive_int("block_size", block_size)
    if checkpoint is not None and resume and seed is None:
        seed = distributed.checkpoint_seed(checkpoint)
    gen, seed = generator(seed)
    before = op.num_matvecs
    dt, dev = op.torch_dtype, op.device

    meta: dict[str, Any] = {}
    saved: dict[str, np.ndarray] | None = None
    if checkpoint is not None:
        key = distributed.checkpoint_key(op, "trace", resume)
        meta = {
            "estimator": "trace", "operator": key, "num_params": P, "seed": seed,
            "method": method, "num_matvecs": num_matvecs, "probes": probes,
            "block_size": block_size, "dtype": str(dt),
        }
        saved = distributed.load_checkpoint(checkpoint, meta) if resume else None
    spent_before = 0 if saved is None else int(saved["num_matvecs"])

    sketch: dict[str, np.ndarray] = {}  # hutch++: Q and its trace part, in every write

    def quad_samples(n: int, deflate: torch.Tensor | None) -> np.ndarray:
        out = [] if saved is None else [saved["samples"]]
        have = 0 if saved is None else int(saved["samples"].size)
        done = 0
        while done < n:
            nb = min(block_size, n - done)
            Z = _krylov.random_rows(nb, P, gen, dev, dt, probes)
            if done < have:  # a block of the checkpoint: drawn again only to advance gen
                done += nb
                continue
            if deflate is not None:
                Z = Z - (Z @ deflate.T) @ deflate
            AZ = _krylov.apply_rows(op, Z, f"trace probes {done + 1}-{done + nb}")
            if deflate is not None:
                AZ = AZ - (AZ @ deflate.T) @ deflate
            out.append((Z * AZ).sum(dim=1).double().cpu().numpy())
            done += nb
            if checkpoint is not None:
                distributed.save_checkpoint(checkpoint, {
                    "samples": np.concatenate(out),
                    "num_matvecs": np.array(spent_before + op.num_matvecs - before),
                    **sketch,
                }, meta)
        return np.concatenate(out) if out else np.zeros(0)

    if method == "hutchinson":
        s = quad_samples(num_matvecs, None)
        est = float(s.mean())
        se = float(s.std(ddof=1) / math.sqrt(s.size))
    else:
        n_s = max(1, num_matvecs // 3)
        n_g = num_matvecs - 2 * n_s  # >= 2 for num_matvecs >= 4: a standard error
        S = _krylov.random_rows(n_s, P, gen, dev, dt, probes)
        if saved is not None and "sketch_Q" in saved:  # the sketch phase is in the checkpoint
            Qr = torch.as_tensor(saved["sketch_Q"], device=dev).to(dt)
            t_low = float(saved["sketch_trace"])
        else:
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
        if checkpoint is not None:
            sketch.update(sketch_Q=Qr.cpu().numpy(), sketch_trace=np.array(t_low))
            if saved is None or "sketch_Q" not in saved:
                saved = None  # a checkpoint without the sketch holds no samples either
                spent_before = 0
                distributed.save_checkpoint(checkpoint, {
                    "samples": np.zeros(0), "num_matvecs": np.array(op.num_matvecs - before),
                    **sketch,
                }, meta)
        s = quad_samples(n_g, Qr)
        est = t_low + float(s.mean())
        se = float(s.std(ddof=1) / math.sqrt(s.size)) if s.size > 1 else float("nan")
    return TraceEstimate(
        estimate=est,
        bse=se,
        num_matvecs=spent_before + op.num_matvecs - before,
        method=method,
        samples=s,
        seed=seed,
        settings={
            **operator_settings(op), **compute_settings(A, op),
            "probes": probes, "block_size": block_size,
        },
    )
