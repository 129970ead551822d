r"""The Gram route: class means of the GGN's delta vectors in one streaming pass, and their Grams.

:func:`class_structure` measures a :class:`~gn_theory.results.ClassStructure`
(see :mod:`gn_theory.decomposition` for the definitions); :func:`identity_error`
checks the two identities :math:`G = G_{\rm cm} + G_{\rm w}` and
:math:`G_{\rm cm} = G_0 + G_1 + G_2` against products with the GGN operator.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .. import _checks, _memory, distributed
from .._format import fmt_bytes
from ..exceptions import (
    DataError,
    InvalidInputError,
    MemoryBudgetError,
    NumericalWarning,
)
from ..operators import CurvatureOperator, ggn_operator
from ..operators.lowrank import within_class_operator
from ..results.structure import ClassStructure
from ._stream import stream_class_means

__all__ = ["class_structure", "identity_error", "CLASS_MEANS_MEMORY_BUDGET", "Method"]

#: Default budget (bytes) for the C^2 x P float64 class means (and one working copy).
CLASS_MEANS_MEMORY_BUDGET: int = 2 * 2**30

#: How the VJPs of the streaming pass are batched.
Method = Literal["class_split", "masked", "loop"]


def _gram_maps(C: int) -> dict[str, np.ndarray]:
    r"""Linear maps T with A_part = T A_cm (rows), so K_part = T K T^T (docs/theory.md 2.3-2.4).

    Rows of A_cm are :math:`\sqrt{\pi_c}\delta_{c,c'}` at ``c * C + c'``; every part
    combines rows of one class c only, so the weights pass through.
    """
    T0 = np.zeros((C, C * C))
    T1 = np.zeros((C, C * C))
    T2 = np.zeros((C * (C - 1), C * C))
    r = 0
    for c in range(C):
        T0[c, c * C + c] = 1.0
        others = [c * C + d for d in range(C) if d != c]
        T1[c, others] = 1.0 / math.sqrt(C - 1)  # sqrt(C-1) * mean over C-1 logits
        for d in range(C):
            if d == c:
                continue
            T2[r, others] = -1.0 / (C - 1)
            T2[r, c * C + d] += 1.0
            r += 1
    return {"G_0": T0, "G_1": T1, "G_2": T2}



def class_structure(
    model: torch.nn.Module,
    data: Any,
    loss: str = "cross_entropy",
    *,
    params: Any = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    empty_classes: Literal["error", "zero"] = "error",
    method: Method = "class_split",
    chunk_size: int | None = None,
    buffer_rows: int = 1024,
    max_bytes: int | None = None,
    checkpoint: str | Path | None = None,
    batches_per_checkpoint: int = 10,
    resume: bool = False,
    max_memory: int | str | None = None,
) -> ClassStructure:
    r"""Class means of the GGN's :math:`\delta` vectors and the exact spectra of its low-rank parts.

    For C-class softmax cross-entropy, computes (docs/theory.md section 2) the
    :math:`C^2` class means :math:`\delta_{c,c'} = \frac1{n_c}\sum_{i:y_i=c}
    \sqrt{p_{i,c'}}\,J_i^\top(e_{c'} - p_i)` (true class c, logit c'), the C
    class-level means :math:`\delta_c = \frac1{C-1}\sum_{c'\ne c}\delta_{c,c'}`,
    the class priors :math:`\pi_c = n_c/N`, and the Gram matrices of
    :math:`G_{\rm cm} = \sum_c\pi_c\sum_{c'}\delta_{c,c'}\delta_{c,c'}^\top`
    and of its parts :math:`G_0, G_1, G_2` (module docstring), whose nonzero
    eigenvalues are exactly those of the parts. Weights: the softmax
    probabilities :math:`p_{i,c'}` (inside :math:`\delta`) and the class
    priors :math:`\pi_c`; centring: within each true class for
    :math:`G_{\rm w}`, around :math:`\delta_c` for :math:`\nu_{c,c'}`.

    Parameters
    ----------
    model : torch.nn.Module
        Classifier returning (B, C) logits; not modified (see :func:`~gn_theory.ggn_operator`).
    data : (Tensor, Tensor) or iterable of (Tensor, Tensor)
        Inputs and integer targets in [0, C); one batch or a re-iterable of
        batches (uneven batches are fine: sums are divided by the true counts).
    loss : {"cross_entropy"}, default "cross_entropy"
        Only softmax cross-entropy has this class structure.
    params : iterable of str or Tensor, optional
        Restrict to these parameters (as for the operators).
    device : str or torch.device, optional
        Where to compute (default the model's).
    dtype : torch.dtype, optional
        Precision of the forward/backward passes (default the model's); the
        means are accumulated and the Grams built in float64 whatever it is.
    empty_classes : {"error", "zero"}, default "error"
        A class with no samples: raise a :class:`~gn_theory.DataError`, or
        ("zero") give it prior 0 and zero means, so it contributes nothing to
        any part (its Gram rows are zero and its eigenvalues are dropped).
    method : {"class_split", "masked", "loop"}, default "class_split"
        How the VJPs are batched. ``"class_split"``: per batch and per class
        c present, one forward on the rows of class c and one ``vmap`` of the
        pullback over the C cotangents :math:`\sqrt{p_{:,c'}}(e_{c'} - p)`
        (c' = 0..C-1); ``"masked"``: one forward per batch and one ``vmap``
        over the (classes present) x C cotangents masked to each class;
        ``"loop"``: like ``class_split`` with one ``autograd.grad`` per
        cotangent. All give the same numbers; see Notes for costs.
    chunk_size : int, optional
        Cotangents per vmapped pass (default all at once); lower it to save memory.
    buffer_rows : int, default 1024
        ``"class_split"`` and ``"loop"``: the samples of one class are gathered
        across the data's batches until there are ``buffer_rows`` of them (or
        the data end), and their C VJPs are run then. This makes the cost
        independent of how the data are batched; the extra memory is at most
        C x ``buffer_rows`` inputs, plus C x ``buffer_rows`` x (widths) for the
        vmapped backward pass.
    max_bytes : int, optional
        Memory budget for the C^2 P float64 means, default
        :data:`CLASS_MEANS_MEMORY_BUDGET` (2 GiB; counted twice for a working
        copy). Above it the C^2 means, ``K``, ``K2`` and :math:`G_{\rm cm}` /
        :math:`G_2` / :math:`G_{\rm w}` are skipped with a
        :class:`~gn_theory.NumericalWarning` and a note in ``skipped``; only
        :math:`\delta_{c,c}` and :math:`\delta_c` (2CP numbers, 2 VJPs per
        class per batch) and :math:`G_0, G_1` remain.
    checkpoint : str or Path, optional
        A file (``.npz``) where the streaming pass is checkpointed: the batches are
        taken in rounds of ``batches_per_checkpoint`` (per process), the gathered
        rows of every class are flushed at the end of each round, and the class
        sums so far, the per-class counts, the summed loss, the VJP count and the
        number of rounds done are written atomically (by rank 0 in a data-parallel
        run, after reducing the round's sums). A write holds the C^2 P (or 2CP)
        float64 sums, and needs one more copy of them in memory while it is written.
    batches_per_checkpoint : int, default 10
        Batches per round (per checkpoint write).
    resume : bool, default False
        Continue from ``checkpoint`` if it exists (else start afresh): the
        batches of the rounds it holds are read again but not computed, and the
        result equals an uninterrupted run with the same checkpointing bit for
        bit (the flushes at round ends may change the last bits against a run
        without a checkpoint). A checkpoint of another model, data or parameter
        selection (the GGN operator's fingerprint), other settings or another
        number of processes, or a truncated one, is refused
        (:class:`~gn_theory.ResultFileError`).
    max_memory : int or str, optional
        The memory the class sums may take on the operator's device (bytes or
        ``"4GiB"``; the C^2 P or 2 C P float64 numbers that ``max_bytes`` chose,
        with a working copy): default the environment variable
        ``GN_THEORY_MAX_MEMORY``, else the memory available there. Unlike
        ``max_bytes`` (which chooses what is computed) it never changes the
        result: above it the call fails before the streaming pass.

    Returns
    -------
    ClassStructure
        Data only (numpy): it keeps no model or operator, and saves and loads
        without torch. Products with G take the GGN operator explicitly:
        :func:`within_class_operator`, :func:`identity_error`,
        :func:`fort_ganguli`, :func:`measure_outlier_inputs`.

    Raises
    ------
    InvalidInputError
        ``loss`` other than ``"cross_entropy"``, a model with one output
        (C = 1), bad options.
    DataError
        Targets outside [0, C), empty data, or (``empty_classes="error"``) a
        class with no samples.
    NonFiniteError
        Non-finite logits, loss or probabilities (the batch is named).
    MemoryBudgetError
        If even the 2CP fallback exceeds ``max_bytes``, or the chosen means exceed
        ``max_memory``.
    ResultFileError
        ``resume`` with a foreign or corrupt checkpoint.

    Notes
    -----
    Cost: one forward pass over the data to validate it (shared with the GGN
    operator's construction) and one streaming pass computing the means (and
    the loss). With ``"class_split"`` the streaming pass costs one forward
    per sample and C vector-Jacobian products per sample, run as one
    vmapped pullback of C cotangents per class per buffer of rows: the work
    of C full-data backward passes, whatever the batch size, and no
    per-sample Jacobian is formed. ``"masked"`` does (classes present) x C
    backward passes over each whole batch (up to C^2 full-data passes).
    Measured figures: ``docs/performance.md`` ("Class structure"). Memory:
    C^2 P float64 numbers for the means, C^2 x B x C for the cotangents.
    The Grams cost :math:`C^4 P` flops (:math:`C^2 P` for each of the C^2 rows).

    References
    ----------
    Papyan (2019), arXiv:1901.08244, section 2 and its code
    (github.com/deep-lab/DeepnetHessian); Papyan (2020), arXiv:2008.11865.

    Examples
    --------
    >>> import torch
    >>> from gn_theory.decomposition import class_structure
    >>> from gn_theory.data import gaussian_mixture
    >>> from gn_theory.models import mlp
    >>> X, y = gaussian_mixture(60, 5, 3, seed=0, dtype=torch.float64)
    >>> model = mlp([5, 8, 3], seed=0).double()
    >>> cs = class_structure(model, (X, y))
    >>> cs.class_means.shape, cs.class_level_means.shape
    ((3, 3, 75), (3, 75))
    >>> cs.eigenvalues("G_1").shape
    (3,)
    >>> cs.identity_error()["G_cm = G_0 + G_1 + G_2"] < 1e-12
    True
    >>> from gn_theory import ggn_operator
    >>> from gn_theory.decomposition import identity_error
    >>> max(identity_error(ggn_operator(model, (X, y)), cs).values()) < 1e-12
    True
    """
    if loss != "cross_entropy":
        raise InvalidInputError(
            "class_structure needs softmax cross-entropy (loss='cross_entropy'): the class/"
            f"cross-class decomposition of G is defined through its delta vectors; got {loss!r}"
        )
    _checks.check_choice("empty_classes", empty_classes, ("error", "zero"))
    _checks.check_choice("method", method, ("class_split", "masked", "loop"))
    if chunk_size is not None:
        chunk_size = _checks.check_positive_int("chunk_size", chunk_size)
    buffer_rows = _checks.check_positive_int("buffer_rows", buffer_rows)
    per = _checks.check_positive_int("batches_per_checkpoint", batches_per_checkpoint)
    budget = CLASS_MEANS_MEMORY_BUDGET if max_bytes is None else int(max_bytes)

    G = ggn_operator(model, data, loss, params=params, device=device, dtype=dtype)
    C, N, P = G.num_outputs, G.num_samples, G.num_params
    if C < 2:
        raise InvalidInputError(
            f"class_structure needs C >= 2 classes; the model has {C} output (use a 2-logit "
            "softmax for binary problems)"
        )
    skipped: list[str] = []
    full_bytes = 2 * C * C * P * 8
    full = full_bytes <= budget
    if not full:
        if 2 * 2 * C * P * 8 > budget:
            raise MemoryBudgetError(
                f"even the 2 C P = {2 * C * P} float64 class-level means need "
                f"{fmt_bytes(4 * C * P * 8)} with a working copy, more than the budget "
                f"{fmt_bytes(budget)}; pass max_bytes=..."
            )
        msg = (
            f"the C^2 P = {C * C * P} float64 class means delta_{{c,c'}} would need "
            f"{fmt_bytes(full_bytes)} (with a working copy) > budget {fmt_bytes(budget)}: "
            "computed only delta_{c,c} and the class-level means delta_c (G_0, G_1); skipped "
            "class_means, K, K2, G_cm, G_2 and within_class_operator(). Raise max_bytes to get them"
        )
        skipped.append(msg)
        warnings.warn(msg, NumericalWarning, stacklevel=2)
    _memory.check_memory(
        full_bytes if full else 4 * C * P * 8,
        f"class_structure: the {C * C if full else 2 * C} x {P:,} float64 class sums (with a "
        "working copy)",
        fix=(f"max_bytes below {full_bytes} (only the 2 C P class-level means: G_0, G_1) or "
             if full else "") + "fewer parameters (params=...)",
        max_memory=max_memory, device=G.device,
    )

    stream: dict[str, Any] = {}
    if checkpoint is not None:
        key = distributed.operator_key(G)
        if resume and key is None:  # pragma: no cover - model operators carry a fingerprint
            raise InvalidInputError("class_structure: resume=True needs the data's fingerprint")
        meta = {
            "estimator": "class_structure", "operator": key, "num_params": int(P),
            "num_classes": int(C), "num_samples": int(N), "method": method, "full": bool(full),
            "chunk_size": chunk_size, "buffer_rows": buffer_rows,
            "batches_per_checkpoint": per, "dtype": str(G.torch_dtype),
            "world_size": distributed.world_size(),
        }
        stream = {
            "batches_per_checkpoint": per,
            "state": distributed.load_checkpoint(checkpoint, meta) if resume else None,
            "save": lambda arrays: distributed.save_checkpoint(checkpoint, arrays, meta),
        }
    start = time.perf_counter()
    S, counts_t, loss_sum, nvjp = stream_class_means(
        G, C, full, method, chunk_size, buffer_rows, **stream
    )
    seconds = time.perf_counter() - start
    counts = counts_t.cpu().numpy().astype(np.int64)
    if int(counts.sum()) != N:  # pragma: no cover - DataSource yields what it validated
        raise DataError(f"counted {int(counts.sum())} samples by class but the data hold {N}")
    empty = np.flatnonzero(counts == 0)
    if empty.size and empty_classes == "error":
        raise DataError(
            f"classes {empty.tolist()} have no samples (counts {counts.tolist()}); their class "
            "means are undefined. Pass empty_classes='zero' to give them prior 0 and zero "
            "means, or evaluate on data covering every class"
        )

    denom = torch.as_tensor(np.maximum(counts, 1), dtype=torch.float64, device=S.device)
    means = S.div_(denom[:, None, None])  # in place: S is not needed any more
    priors = counts / N
    sw = np.sqrt(priors)
    if full:
        idx = torch.arange(C, device=S.device)
        diag = means[idx, idx]
        level = (means.sum(1) - diag) / (C - 1)
        M = means.reshape(C * C, P)
        wk = np.repeat(sw, C)
        # the one P-sized product: K = diag(w) (M M^T) diag(w); the parts' Grams follow exactly
        K = (M @ M.T).cpu().numpy() * np.outer(wk, wk)
        K = 0.5 * (K + K.T)
        maps = _gram_maps(C)
        K0, K1, K2 = (maps[p] @ K @ maps[p].T for p in ("G_0", "G_1", "G_2"))
    else:
        diag, level = means[:, 0], means[:, 1]
        K = K2 = None
        A01 = torch.cat([diag, level])  # (2C, P)
        B = (A01 @ A01.T).cpu().numpy()
        K0 = B[:C, :C] * np.outer(sw, sw)
        K1 = (C - 1) * B[C:, C:] * np.outer(sw, sw)

    result = ClassStructure(
        class_means=means.cpu().numpy() if full else None,  # no copy on the CPU
        class_level_means=level.cpu().numpy(),
        self_class_means=diag.cpu().numpy(),
        priors=priors.astype(np.float64),
        class_counts=counts,
        num_classes=int(C),
        num_samples=int(N),
        num_params=int(P),
        K=K,
        K0=K0,
        K1=K1,
        K2=K2,
        loss_value=float(loss_sum) / N,
        num_matvecs=int(nvjp),
        seconds=float(seconds),
        skipped=skipped,
        settings={
            **G.settings,
            "method": method,
            "buffer_rows": buffer_rows,
            "empty_classes": empty_classes,
            "accumulation_dtype": "float64",
            "chunk_size": chunk_size,
            "max_bytes": budget,
            **({} if checkpoint is None else {"batches_per_checkpoint": per}),
        },
    )
    return result


def identity_error(
    G: CurvatureOperator, structure: ClassStructure, *, num_probes: int = 4, seed: int = 0
) -> dict[str, float]:
    r"""Relative errors of the two identities on random Gaussian probes V (P, k).

    * ``"G = G_cm + G_w"``: :math:`\|(G_{\rm cm} + G_{\rm w})V - GV\|_F / \|GV\|_F`.
      With :math:`G_{\rm w}` applied as :math:`G - G_{\rm cm}`
      (:func:`within_class_operator`) this checks the operator plumbing and
      round-off, not the algebra; the tests check the algebra against dense
      matrices.
    * ``"G_cm = G_0 + G_1 + G_2"``: :math:`\|(G_0+G_1+G_2)V - G_{\rm cm}V\|_F /
      \|G_{\rm cm}V\|_F`, the hierarchy of docs/theory.md section 2.3
      (:meth:`ClassStructure.identity_error`, no product with G).

    Parameters
    ----------
    G : CurvatureOperator
        The GGN operator of the model and data ``structure`` was measured on.
    structure : ClassStructure
        Measured or loaded.
    num_probes : int, default 4
        Columns of V.
    seed : int, default 0
        Seed of the probes (drawn on the CPU).

    Returns
    -------
    dict of str to float
        The two relative errors (two products with G per probe).

    Raises
    ------
    InvalidInputError
        Bad ``num_probes`` or ``seed``, not an operator / class structure, or
        the C^2 means were skipped.
    ShapeError
        G and the structure have different dimensions.
    """
    k = _checks.check_positive_int("num_probes", num_probes)
    seed = _checks.check_seed(seed)
    W = within_class_operator(G, structure)
    gen = torch.Generator().manual_seed(seed)
    V = torch.randn(structure.num_params, k, generator=gen, dtype=torch.float64)
    V = V.to(device=G.device, dtype=G.torch_dtype)
    GV = G @ V
    cmV = W.class_mean_part @ V
    wV = W @ V
    err = float(torch.linalg.norm(cmV + wV - GV) / max(float(torch.linalg.norm(GV)), 1e-300))
    return {"G = G_cm + G_w": err, **structure.identity_error(num_probes=k, seed=seed)}
