r"""The streaming class-mean pass: sums of :math:`\delta_{i,c'}` by true class, in one read of the data.

Private module of :mod:`gn_theory.decomposition`. For C-class softmax
cross-entropy, :math:`\delta_{i,c'} = \sqrt{p_{i,c'}}\,J_i^\top(e_{c'} - p_i)`
is the pullback (VJP) of the cotangent :math:`\sqrt{p_{i,c'}}(e_{c'} - p_i)`
through the logits, so the class sums are C vmapped VJPs per class subset; no
per-sample Jacobian is formed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.func import vjp, vmap

from .. import distributed
from .._data import reduce_sum
from ..exceptions import NonFiniteError

__all__: list[str] = []


def cotangents(p: torch.Tensor) -> torch.Tensor:
    r"""``W[c'] = sqrt(p[:, c']) (e_{c'} - p)`` for every logit c': shape (C, B, C)."""
    C = p.shape[1]
    eye = torch.eye(C, dtype=p.dtype, device=p.device)
    return p.sqrt().T[:, :, None] * (eye[:, None, :] - p[None, :, :])


def _check_probs(p: torch.Tensor, where: str) -> None:
    if not bool(torch.isfinite(p).all()):
        raise NonFiniteError(f"{where}: the softmax probabilities are not finite")


def stream_class_means(
    G: Any, C: int, full: bool, method: str, chunk_size: int | None, buffer_rows: int,
    *,
    batches_per_checkpoint: int | None = None,
    state: dict[str, np.ndarray] | None = None,
    save: Callable[[dict[str, np.ndarray]], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Sums over samples of delta_{i,c'} by true class: (C, C, P), or (C, 2, P) [diag, level].

    Parameters
    ----------
    G : ModelCurvatureOperator
        The GGN operator: its functional model, loss and data are read.
    C : int
        Number of classes (logits).
    full : bool
        All C^2 sums, or (memory guard) only delta_{c,c} and the class-level delta_c.
    method : {"class_split", "masked", "loop"}
        How the VJPs are batched (see :func:`gn_theory.decomposition.class_structure`).
    chunk_size : int or None
        Cotangents per vmapped pass.
    buffer_rows : int
        Rows of one class gathered across batches before their VJPs run.
    batches_per_checkpoint : int, optional
        Checkpointed pass: the batches are taken in rounds of this many (per
        rank); after each round the gathered rows are flushed, the partial sums
        reduced across processes into running totals, and ``save(state)`` is
        called with the totals, the counts, the loss, the VJP count, the rounds
        done and whether the pass is complete. ``state`` (such a dict) skips the
        batches of its rounds (they are read, not computed): the sums are then
        bit for bit those of the run that saved it.
    state, save
        See ``batches_per_checkpoint``.

    Returns
    -------
    tuple
        The sums (float64), the class counts (int64), the summed loss (float64,
        from the same forward passes) and the number of VJPs, all reduced across
        processes except the VJP count.
    """
    f, theta, loss = G.function, G.function.theta, G.loss
    P = theta.numel()
    rows_out = C if full else 2
    S = torch.zeros(C, rows_out, P, dtype=torch.float64, device=theta.device)
    counts = torch.zeros(C, dtype=torch.int64, device=theta.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=theta.device)
    nvjp = 0

    def reduce_cot(W: torch.Tensor, c: int) -> torch.Tensor:
        # the fallback needs only delta_{c,c} and delta_c: both linear in the cotangent
        if full:
            return W
        level = (W.sum(0) - W[c]) / (C - 1)
        return torch.stack([W[c], level])

    def probs(out: torch.Tensor, yc: torch.Tensor, where: str) -> torch.Tensor:
        nonlocal loss_sum
        out = out.detach()
        p = torch.softmax(out, dim=-1)
        _check_probs(p, where)
        loss_sum += loss.sum(out, yc).to(torch.float64)
        return p

    # class_split / loop: rows of one class are gathered across the data's batches (at most
    # buffer_rows per class) so that the cost does not depend on how the user batched the data
    pending: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in range(C)]
    pending_rows = [0] * C
    last_index = 0

    def flush(c: int, index: int) -> None:
        nonlocal nvjp
        where = f"class {c}, samples gathered from batches up to {index}"
        xc = torch.cat([a for a, _ in pending[c]])
        yc = torch.cat([b for _, b in pending[c]])
        pending[c].clear()
        pending_rows[c] = 0
        if method == "loop":
            with torch.enable_grad():
                t = theta.detach().requires_grad_(True)
                out = f(t, xc)
                W = reduce_cot(cotangents(probs(out, yc, where)), c)
                for j in range(W.shape[0]):
                    (g,) = torch.autograd.grad(out, t, W[j], retain_graph=j < W.shape[0] - 1)
                    S[c, j] += g
        else:  # class_split: one forward per class subset, vmap over the cotangents
            out, vjp_fn = vjp(lambda t: f(t, xc), theta)
            W = reduce_cot(cotangents(probs(out, yc, where)), c)
            S[c] += vmap(vjp_fn, chunk_size=chunk_size)(W)[0]
        nvjp += W.shape[0]

    def take(index: int, x: torch.Tensor, y: torch.Tensor) -> None:
        nonlocal nvjp, last_index
        last_index = index
        if method == "masked":
            out, vjp_fn = vjp(lambda t: f(t, x), theta)
            p = probs(out, y, f"batch {index}")
            W = cotangents(p)  # (C', B, C)
            present = torch.unique(y).tolist()
            cots = []
            for c in present:
                mask = (y == c).to(p.dtype)[None, :, None]
                cots.append(reduce_cot(W, c) * mask)
                counts[c] += int((y == c).sum())
            T = torch.cat(cots)  # (len(present) * rows_out, B, C)
            g = vmap(vjp_fn, chunk_size=chunk_size)(T)[0]
            nvjp += T.shape[0]
            for j, c in enumerate(present):
                S[c] += g[j * rows_out : (j + 1) * rows_out]
            return
        for c in torch.unique(y).tolist():
            sel = y == c
            counts[c] += int(sel.sum())
            pending[c].append((x[sel], y[sel]))
            pending_rows[c] += int(sel.sum())
            if pending_rows[c] >= buffer_rows:
                flush(c, index)

    if batches_per_checkpoint is None:
        for index, x, y in G.data:
            take(index, x, y)
        for c in range(C):
            if pending_rows[c]:
                flush(c, last_index)
        return reduce_sum(S), reduce_sum(counts), reduce_sum(loss_sum), nvjp

    # checkpointed: rounds of batches_per_checkpoint batches per rank; the running totals are
    # reduced after each round (identical on every rank) and saved. In one process the
    # totals are the sums themselves (no second C^2 P copy).
    dist = distributed.is_distributed()
    tot_S = torch.zeros_like(S) if dist else S
    tot_counts = torch.zeros_like(counts) if dist else counts
    tot_loss = torch.zeros_like(loss_sum) if dist else loss_sum
    rounds = 0
    if state is not None:
        tot_S.copy_(torch.as_tensor(state["sums"], device=S.device))
        tot_counts.copy_(torch.as_tensor(state["counts"], device=S.device))
        tot_loss.copy_(torch.as_tensor(state["loss_sum"], device=S.device))
        nvjp, rounds = int(state["num_vjps"]), int(state["rounds"])
        if bool(state["complete"]):
            return tot_S, tot_counts, tot_loss, nvjp
    batches = iter(G.data)
    exhausted = False
    for _ in range(rounds * batches_per_checkpoint):  # read again, not computed
        if next(batches, None) is None:
            exhausted = True
            break
    while True:
        for _ in range(batches_per_checkpoint if not exhausted else 0):
            item = next(batches, None)
            if item is None:
                exhausted = True
                break
            take(*item)
        for c in range(C):
            if pending_rows[c]:
                flush(c, last_index)
        if dist:
            tot_S += reduce_sum(S)
            tot_counts += reduce_sum(counts)
            tot_loss += reduce_sum(loss_sum)
            S.zero_()
            counts.zero_()
            loss_sum.zero_()
        rounds += 1
        complete = not distributed.any_rank(not exhausted)
        if save is not None:
            save({
                "sums": tot_S.cpu().numpy(), "counts": tot_counts.cpu().numpy(),
                "loss_sum": tot_loss.cpu().numpy(), "num_vjps": np.array(nvjp),
                "rounds": np.array(rounds), "complete": np.array(complete),
            })
        if complete:
            return tot_S, tot_counts, tot_loss, nvjp


#: Default memory for the per-sample delta vectors of one chunk (bytes).
DELTA_NORMS_CHUNK_BYTES = 2**27


def stream_delta_norms(
    G: Any, C: int, max_bytes: int = DELTA_NORMS_CHUNK_BYTES
) -> tuple[torch.Tensor, int]:
    r"""Exact :math:`\sum_{i:y_i=c}\sum_{c'}\|\delta_{i,c'}\|^2` per true class c, in one data pass.

    ``tr G = (1/N) sum_i sum_c' ||delta_{i,c'}||^2`` (docs/theory.md section 3.4). The
    class-mean pass cannot give it (it sums the deltas before any norm is taken), so
    the per-sample vectors are formed here, a chunk of samples at a time: per sample
    one forward and C vector-Jacobian products (``vmap`` over the samples of a
    ``vmap`` over the C cotangents), so the work is that of C per-sample-gradient
    passes and the memory ``chunk x C x P`` numbers, with the chunk chosen to fit
    ``max_bytes``.

    Parameters
    ----------
    G : ModelCurvatureOperator
        The GGN operator: its functional model and data are read.
    C : int
        Number of classes (logits).
    max_bytes : int
        Memory for one chunk of per-sample deltas.

    Returns
    -------
    tuple
        The sums per class (float64, shape (C,)) and the number of VJPs (N C).
    """
    f, theta = G.function, G.function.theta
    P = theta.numel()
    per = max(1, int(max_bytes // (8 * C * P)))
    sums = torch.zeros(C, dtype=torch.float64, device=theta.device)
    nvjp = 0

    def sample_norm(x_i: torch.Tensor, W_i: torch.Tensor) -> torch.Tensor:
        _, pull = vjp(lambda t: f(t, x_i[None])[0], theta)
        g = vmap(pull)(W_i)[0]  # (C, P): delta_{i,c'} for every logit c'
        return (g.to(torch.float64) ** 2).sum()

    for index, x, y in G.data:
        with torch.no_grad():
            p = torch.softmax(f(theta, x).detach(), dim=-1)
        _check_probs(p, f"batch {index}")
        W = cotangents(p).permute(1, 0, 2).contiguous()  # (B, C', C)
        for s in range(0, x.shape[0], per):
            norms = vmap(sample_norm)(x[s : s + per], W[s : s + per])
            sums.index_add_(0, y[s : s + per].to(sums.device), norms)
            nvjp += int(norms.shape[0]) * C
    return reduce_sum(sums), nvjp
