"""Private Krylov kernels for :mod:`gn_theory.spectra` (torch, on the operator's device).

Everything here trusts its input: the public estimators (``lanczos.py``,
``slq.py``, ``trace.py``, ``symmetry.py``) validate once and call these. Bases
are stored row-wise, ``Q[i]`` being the i-th basis vector (shape (m, P)), so
that a leading slice ``Q[:j]`` is contiguous. Products with the operator go
through :func:`apply_rows`, which hands the operator one (P, b) block per step
(a batched, vmapped product for model operators).

Only small projected matrices (m x m) and tridiagonals travel to the host.
Eigenvalues leave this module descending (largest first), eigenvectors and
quadrature weights matching.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal

from .. import distributed
from ..exceptions import NonFiniteError

__all__: list[str] = []


def apply_rows(op: Any, V: torch.Tensor, what: str) -> torch.Tensor:
    """Return ``(A @ V.T).T`` for a row block ``V`` (b, P), in ``V``'s dtype.

    Raises NonFiniteError naming ``what`` (e.g. the iteration) if the product
    holds NaN or inf.
    """
    X = V.T.to(op.torch_dtype).contiguous()
    W = op @ X
    if not bool(torch.isfinite(W).all()):
        n_bad = int((~torch.isfinite(W)).sum())
        raise NonFiniteError(
            f"{what}: the operator product returned {n_bad} non-finite value(s) (NaN or inf)"
        )
    return W.T.to(V.dtype)


def random_rows(
    num: int, P: int, gen: torch.Generator, device: torch.device, dtype: torch.dtype,
    kind: str = "gaussian",
) -> torch.Tensor:
    """``num`` random rows of length P drawn on the CPU (reproducible) and moved."""
    if kind == "rademacher":
        X = torch.randint(0, 2, (num, P), generator=gen, dtype=torch.int8).to(torch.float64)
        X = 2.0 * X - 1.0
    else:
        X = torch.randn(num, P, generator=gen, dtype=torch.float64)
    return X.to(device=device, dtype=dtype)


def orth_block(
    W: torch.Tensor,
    Q: torch.Tensor,
    max_new: int,
    gen: torch.Generator,
    scale: float,
    drop_tol: float = 0.0,
) -> tuple[torch.Tensor, np.ndarray, list[tuple[int, float]]]:
    """Orthonormalise the rows of ``W`` (already orthogonal to ``Q``) among themselves.

    Returns ``Qn`` (r, P) with orthonormal rows, orthogonal to ``Q``, ``B``
    (r, b) with ``W = B.T @ Qn + dropped`` and the list of dropped rows
    ``(i, norm)``. A row whose remainder (after removing ``Q`` and the new
    rows) has norm at most ``max(drop_tol, 1e3 eps max(scale, |W_i|))`` is
    numerically dependent (an invariant subspace, to that accuracy): the
    remainder is dropped and a random direction orthogonal to ``Q`` and the
    new rows, with coefficient 0, takes its place, as long as fewer than
    ``max_new`` rows were produced; ``r <= max_new``.
    """
    b, P = W.shape
    eps = torch.finfo(W.dtype).eps
    new: list[torch.Tensor] = []
    dropped: list[tuple[int, float]] = []
    B = np.zeros((max_new, b))
    for i in range(b):
        w = W[i].clone()
        coef = np.zeros(len(new))
        if new:
            N = torch.stack(new)
            for _ in range(2):
                c = N @ w
                w -= c @ N
                coef += c.double().cpu().numpy()
        nrm = float(torch.linalg.vector_norm(w))
        thresh = max(drop_tol, 1e3 * eps * max(scale, float(torch.linalg.vector_norm(W[i]))))
        if nrm > thresh and len(new) < max_new:
            B[: len(new), i] = coef
            B[len(new), i] = nrm
            new.append(w / nrm)
            continue
        B[: len(new), i] = coef
        if len(new) >= max_new:
            continue
        dropped.append((i, nrm))
        # dependent row: a random direction orthogonal to Q and to the new rows
        r = random_rows(1, P, gen, W.device, W.dtype)[0]
        for _ in range(2):
            if Q.shape[0]:
                r -= (Q @ r) @ Q
            if new:
                N = torch.stack(new)
                r -= (N @ r) @ N
        new.append(r / torch.linalg.vector_norm(r))
    Qn = torch.stack(new) if new else W[:0]
    return Qn, B[: len(new)], dropped


def project_out(Q: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Classical Gram-Schmidt twice: remove span(Q rows) from W rows; return the coefficients."""
    C = W @ Q.T  # (b, j)
    W -= C @ Q
    C2 = W @ Q.T
    W -= C2 @ Q
    return C + C2


def select(theta: np.ndarray, n: int, which: str) -> np.ndarray:
    """Indices (into ascending ``theta``) of the ``n`` wanted Ritz values, ascending.

    ``np.linalg.eigh`` returns ``theta`` ascending; the caller reverses the
    final selection so that results are descending.
    """
    n = min(n, theta.size)
    if which == "largest":
        idx = np.arange(theta.size - n, theta.size)
    elif which == "smallest":
        idx = np.arange(n)
    else:
        n_top = (n + 1) // 2
        idx = np.concatenate([np.arange(n - n_top), np.arange(theta.size - n_top, theta.size)])
    return np.unique(idx)


def _split(n: int, which: str) -> tuple[int, int]:
    """How many of ``n`` wanted values are the largest and how many the smallest."""
    if which == "largest":
        return n, 0
    if which == "smallest":
        return 0, n
    top = (n + 1) // 2
    return top, n - top


def _outside(theta: np.ndarray, vals: np.ndarray, n_top: int, n_bot: int) -> np.ndarray:
    """How far each of ``theta`` falls short of the wanted ``vals`` (ascending); <= 0: inside."""
    score = np.full(theta.shape, np.inf)
    if n_top:
        score = np.minimum(score, vals[-n_top] - theta)
    if n_bot:
        score = np.minimum(score, theta - vals[n_bot - 1])
    return score


class _Basis:
    """The Lanczos basis ``Q`` (rows), its projection ``T = Q A Q^T`` and the dropped residuals.

    Rows ``[0, nl)`` span an invariant subspace found at breakdowns (locked),
    rows ``[nl, jj)`` the current sequence. Dropped residuals (rows of a
    product that were numerically dependent, couplings to discarded rows)
    are kept as norms ``nu`` and coefficient rows ``G`` over the basis, so
    that the residual of a Ritz vector ``Q^T s`` is bounded by
    ``|B s_last| + sum_d nu_d |G_d s| + h |s|`` (``h``: drops folded into one
    per-row bound once they pile up).
    """

    def __init__(self, rows: int, P: int, dtype: torch.dtype, device: torch.device) -> None:
        self.Q = torch.empty(rows, P, dtype=dtype, device=device)
        self.T = np.zeros((rows, rows))
        self.G = np.zeros((0, rows))
        self.nu = np.zeros(0)
        # folded drops: the bound h @ |s| (valid through rotations as h @ |M|)
        self.h = np.zeros(rows)

    def grow(self, rows: int) -> None:
        """Enlarge the capacity to ``rows`` basis vectors (contents kept)."""
        old = self.Q.shape[0]
        if rows <= old:
            return
        Q = torch.empty(rows, self.Q.shape[1], dtype=self.Q.dtype, device=self.Q.device)
        Q[:old] = self.Q
        self.Q = Q
        T = np.zeros((rows, rows))
        T[:old, :old] = self.T
        self.T = T
        G = np.zeros((self.G.shape[0], rows))
        G[:, :old] = self.G
        self.G = G
        self.h = np.r_[self.h, np.zeros(rows - old)]

    def add_drops(self, dropped: list[tuple[int, float]], first: int) -> None:
        """Record the dropped remainders of the products of rows ``first + i``."""
        if not dropped:
            return
        rows = self.T.shape[0]
        g = np.zeros((len(dropped), rows))
        g[np.arange(len(dropped)), [first + i for i, _ in dropped]] = 1.0
        self.G = np.vstack([self.G, g])
        self.nu = np.r_[self.nu, [nrm for _, nrm in dropped]]
        if self.nu.size > 2 * rows:
            # many drops (restarts after breakdowns): fold them into the looser per-row bound
            self.h = self.h + self.nu @ np.abs(self.G)
            self.G = np.zeros((0, rows))
            self.nu = np.zeros(0)

    def drop_bound(self, S: np.ndarray, jj: int) -> np.ndarray:
        """The dropped residuals' bound for the Ritz vectors ``Q[:jj]^T S`` (columns)."""
        out = self.h[:jj] @ np.abs(S)
        if self.nu.size:
            out = out + self.nu @ np.abs(self.G[:, :jj] @ S)
        return out

    def rotate(
        self, lo: int, hi: int, jj: int, S: np.ndarray, theta: np.ndarray
    ) -> int:
        """Replace rows ``[lo, hi)`` by the Ritz vectors ``S`` (values ``theta``); return new jj.

        Rows ``[hi, jj)`` move down behind the new ones; ``T`` and ``G`` follow
        exactly (``T`` of the new block is ``diag(theta)``).
        """
        kk = S.shape[1]
        tail = jj - hi
        new_jj = lo + kk + tail
        # couplings of the other rows to the discarded directions become residuals
        lost = None
        others = np.r_[np.arange(lo), np.arange(hi, jj)]
        if kk < hi - lo and others.size:
            U_, _, _ = np.linalg.svd(np.eye(hi - lo) - S @ S.T)
            discarded = U_[:, : hi - lo - kk]  # orthonormal complement of span(S)
            lost = discarded.T @ self.T[lo:hi, others]  # (discarded, others)
        Qb = torch.as_tensor(S.T, dtype=self.Q.dtype, device=self.Q.device) @ self.Q[lo:hi]
        if tail:
            self.Q[lo + kk : new_jj] = self.Q[hi:jj].clone()
        self.Q[lo : lo + kk] = Qb
        M = np.zeros((jj, new_jj))
        M[:lo, :lo] = np.eye(lo)
        M[lo:hi, lo : lo + kk] = S
        M[hi:jj, lo + kk :] = np.eye(tail)
        Tn = M.T @ self.T[:jj, :jj] @ M
        Tn[lo : lo + kk, lo : lo + kk] = np.diag(theta)
        self.T[:] = 0.0
        self.T[:new_jj, :new_jj] = Tn
        if self.nu.size:
            Gn = self.G[:, :jj] @ M
            self.G = np.zeros_like(self.G)
            self.G[:, :new_jj] = Gn
        hn = self.h[:jj] @ np.abs(M)
        self.h[:] = 0.0
        self.h[:new_jj] = hn
        if lost is not None and lost.size and float(np.abs(lost).max()) > 0:
            # rows [0, lo) keep their place, rows [hi, jj) now start at lo + kk
            norms = np.linalg.norm(lost, axis=0)
            idx = np.r_[np.arange(lo), np.arange(lo + kk, new_jj)]
            self.add_drops([(int(i), float(v)) for i, v in zip(idx, norms) if v > 0], 0)
        return new_jj


def block_lanczos(
    op: Any,
    k: int,
    which: str,
    *,
    block_size: int,
    basis_size: int,
    tol: float,
    max_matvecs: int,
    gen: torch.Generator,
    dtype: torch.dtype,
    want_vectors: bool,
    min_dim: int = 0,
    probe: Callable[..., None] | None = None,
    probe_rows: torch.Tensor | None = None,
    progress: Callable[[int], None] | None = None,
    state: dict[str, np.ndarray] | None = None,
    save: Callable[[dict[str, np.ndarray]], None] | None = None,
    restarts_per_checkpoint: int = 1,
    before_grow: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Thick-restart block Lanczos for k extreme eigenpairs, multiplicities included.

    ``before_grow(rows)`` is called before the basis grows to ``rows`` vectors (once, after
    the first breakdown: the copy search keeps the invariant rows), e.g. a memory check.

    The basis Q (at most ``basis_size + block_size`` rows of length P) is kept
    orthonormal by full reorthogonalisation (CGS2). The projected matrix
    ``T = Q A Q^T`` is assembled from those coefficients, so after a thick
    restart (keep the best Ritz vectors, ``T`` diagonal) the arrowhead
    structure needs no special case. Residual norms of Ritz pairs come from
    the Krylov relation ``A Q^T = Q^T T + Qn^T B E^T``: ``||B S[last block]||``
    (plus the dropped remainders, see :class:`_Basis`).

    Multiplicities. A Krylov space from one start sees each distinct
    eigenvalue once. When it becomes invariant (every row of a product is
    dependent to ``tol * ||A||``: a *breakdown*), its Ritz values are exact
    and (almost surely) it has seen every distinct eigenvalue of the space it
    started in; its rows are locked and a fresh random start orthogonal to
    the basis begins a new sequence in the complement U. The spectrum of U
    lies in the distinct values D of the last sequence that broke down, so
    the wanted values are final once no value of D lies beyond them
    (``max D <= k-th largest`` for the top, ``min D >= k-th smallest`` for
    the bottom). Before any breakdown the rule is the residual test alone,
    once the basis holds ``min_dim`` vectors (so that an operator with fewer
    distinct eigenvalues breaks down first). A restart rotates the current
    sequence only; locked rows are compressed to the best ones when the
    sequence lacks room (a discarded value can never enter the answer).

    ``probe(Q0, AQ0, U, AU)``, if given, is called once with the first block,
    its product (before projection), and the extra ``probe_rows`` U (or
    None) multiplied in the same call (counted as products).
    The wanted eigenvalues are returned descending, vectors matching.

    Resumable state. ``save(state)``, if given, is called after every
    ``restarts_per_checkpoint``-th thick restart with the whole loop state as numpy
    arrays (the basis rows in use, ``T``, the dropped residuals, the counters, the
    generator's state), and once at the end with the output (``done = 1``,
    read back by :func:`_lanczos_output`). ``state`` (such a dict) continues from it: the run then
    takes exactly the steps, and gives exactly the numbers, of the run that saved it.
    """
    P = op.num_params
    dev = op.device
    b = min(block_size, P)
    m = min(max(basis_size, k + b), P)
    min_dim = min(min_dim, m, P)
    n_top, n_bot = _split(k, which)
    if state is not None and int(state["done"]):
        return _lanczos_output(state)
    basis = _Basis(m + b, P, dtype, dev)
    nl = 0  # rows [0, nl) are locked (invariant)
    d_max = d_min = None  # distinct values of the last sequence that broke down
    n_distinct = 0
    breakdowns = 0
    reached = False
    matvecs = 0
    anorm = 0.0
    it = 0
    restarts = 0
    exact = False
    copies_ok = False
    cap = m  # basis vectors held before a restart (doubled once a breakdown is met)
    if state is None:
        Q, T = basis.Q, basis.T
        X0 = random_rows(b, P, gen, dev, dtype)
        Qn, _, _ = orth_block(X0, Q[:0], b, gen, 1.0)
        r = Qn.shape[0]
        Q[:r] = Qn
        j, nb = 0, r
    else:  # continue from a saved restart (everything the loop reads)
        basis.grow(int(state["rows"]))
        rows = int(state["Q"].shape[0])
        basis.Q[:rows] = torch.as_tensor(state["Q"], device=dev).to(dtype)
        basis.T[:] = state["T"]
        basis.G, basis.nu, basis.h = state["G"].copy(), state["nu"].copy(), state["h"].copy()
        Q, T = basis.Q, basis.T
        j, nb, nl = int(state["j"]), int(state["nb"]), int(state["nl"])
        n_distinct, breakdowns = int(state["n_distinct"]), int(state["breakdowns"])
        matvecs, it, restarts = int(state["matvecs"]), int(state["it"]), int(state["restarts"])
        cap, reached, anorm = int(state["cap"]), bool(state["reached"]), float(state["anorm"])
        if bool(state["has_d"]):
            d_max, d_min = float(state["d_max"]), float(state["d_min"])
        gen.set_state(torch.as_tensor(state["gen_state"], dtype=torch.uint8))

    def copies_final(vals: np.ndarray, tol_a: float) -> bool:
        """Can no unexplored eigenvalue displace the wanted ``vals`` (ascending)?"""
        if d_max is None:
            return reached
        ok = True
        if n_top:
            ok &= d_max <= vals[-n_top] + tol_a
        if n_bot:
            ok &= d_min >= vals[n_bot - 1] - tol_a
        return bool(ok)

    while True:
        it += 1
        jj = j + nb
        if it == 1 and probe_rows is not None:
            # the symmetry probe's vectors ride along with the first block: one call
            Wx = apply_rows(op, torch.cat([Q[j:jj], probe_rows]), f"lanczos iteration {it}")
            W, AU = Wx[:nb].clone(), Wx[nb:]
            extra = probe_rows.shape[0]
        else:
            W = apply_rows(op, Q[j:jj], f"lanczos iteration {it}")
            AU, extra = None, 0
        matvecs += nb + extra
        if progress is not None:
            progress(nb + extra)
        if probe is not None and it == 1:
            probe(Q[j:jj], W, probe_rows, AU)
        C = project_out(Q[:jj], W)  # (nb, jj)
        Ch = C.double().cpu().numpy()
        if not np.all(np.isfinite(Ch)):
            raise NonFiniteError(f"lanczos iteration {it}: non-finite projection coefficients")
        T[j:jj, :jj] = Ch
        T[:jj, j:jj] = Ch.T
        T[j:jj, j:jj] = 0.5 * (Ch[:, j:jj] + Ch[:, j:jj].T)
        theta, S = np.linalg.eigh(T[:jj, :jj])
        anorm = max(anorm, float(np.abs(theta).max()), np.finfo(float).tiny)
        tol_a = tol * anorm
        if jj >= P:
            res = np.zeros(jj)
            exact = True
            Qnext, B = None, np.zeros((0, nb))
        else:
            Qnext, B, dropped = orth_block(W, Q[:jj], min(b, P - jj), gen, anorm, tol_a)
            basis.add_drops(dropped, j)
            res = np.linalg.norm(B @ S[j:jj, :], axis=0) if B.size else np.zeros(jj)
            res = res + basis.drop_bound(S, jj)
            if len(dropped) < nb and float(res.max()) <= tol_a:
                # every Ritz pair converged: the basis is invariant to the tolerance (a
                # cluster narrower than tol * ||A|| looks like one value); drop the
                # remainders and start a fresh sequence, as at an exact breakdown
                kept_rows = [i for i in range(nb) if i not in {d for d, _ in dropped}]
                basis.add_drops([(i, float(np.linalg.norm(B[:, i]))) for i in kept_rows], j)
                R = random_rows(Qnext.shape[0], P, gen, dev, dtype)
                project_out(Q[:jj], R)
                Qnext, _, _ = orth_block(R, Q[:jj], R.shape[0], gen, 1.0)
                dropped = [(i, 0.0) for i in range(nb)]
                res = basis.drop_bound(S, jj)
            if len(dropped) == nb:
                # breakdown: span(Q[:jj]) is invariant; lock it, a fresh sequence follows
                breakdowns += 1
                D = np.linalg.eigvalsh(T[nl:jj, nl:jj])
                d_max, d_min = float(D.max()), float(D.min())
                n_distinct = D.size
                nl = jj
                if cap == m and cap < P:
                    # the copy search keeps the invariant rows: room for one more sequence
                    cap = min(2 * m, P)
                    if before_grow is not None:
                        before_grow(cap + b)
                    basis.grow(cap + b)
                    Q, T = basis.Q, basis.T
        reached = reached or jj >= min_dim
        wanted = select(theta, k, which)
        conv = res <= tol_a
        complete = theta.size >= k and bool(conv[wanted].all())
        copies_ok = exact or (theta.size >= k and copies_final(theta[wanted], tol_a))
        if exact or (complete and copies_ok):
            break
        if Qnext is None or matvecs + Qnext.shape[0] > max_matvecs:
            break
        r = Qnext.shape[0]
        if jj + r > cap:
            # thick restart of the current sequence; compress the locked rows if it lacks room
            if nl > 0:
                th_l, S_l = np.linalg.eigh(T[:nl, :nl])
                # a locked value short of the current answer never enters it (the k-th
                # wanted value only moves outwards): discard such rows, the least useful
                # first, to give the sequence room to become invariant itself
                score = _outside(th_l, theta[wanted], n_top, n_bot)
                relevant = int((score <= tol_a).sum())
                want_room = min(cap - relevant, max(k + 2 * b, m // 2, n_distinct + 2 * b))
                if cap - nl < want_room:
                    keep_l = max(relevant, cap - want_room)
                    kept = np.sort(np.argsort(score, kind="stable")[:keep_l])
                    jj = basis.rotate(0, nl, jj, S_l[:, kept], th_l[kept])
                    nl = kept.size
            room = cap - nl
            half = (min(room, m) - k - b) // 2
            keep_a = min(jj - nl, max(0, min(room - b, k + max(b, half))))
            if jj > nl:
                th_a, S_a = np.linalg.eigh(T[nl:jj, nl:jj])
                kept = select(th_a, keep_a, which) if keep_a > 0 else np.zeros(0, dtype=int)
                jj = basis.rotate(nl, jj, jj, S_a[:, kept], th_a[kept])
            j = jj
            restarts += 1
            restarted = True
        else:
            j = jj
            restarted = False
        Q[j : j + r] = Qnext
        nb = r
        if save is not None and restarted and restarts % restarts_per_checkpoint == 0:
            save({
                "done": np.array(0), "Q": Q[: j + nb].cpu().numpy(), "rows": np.array(Q.shape[0]),
                "T": basis.T.copy(), "G": basis.G.copy(), "nu": basis.nu.copy(),
                "h": basis.h.copy(), "j": np.array(j), "nb": np.array(nb), "nl": np.array(nl),
                "n_distinct": np.array(n_distinct), "breakdowns": np.array(breakdowns),
                "matvecs": np.array(matvecs), "it": np.array(it), "restarts": np.array(restarts),
                "cap": np.array(cap), "reached": np.array(reached), "anorm": np.array(anorm),
                "has_d": np.array(d_max is not None),
                "d_max": np.array(np.nan if d_max is None else d_max),
                "d_min": np.array(np.nan if d_min is None else d_min),
                "gen_state": gen.get_state().numpy().copy(),
            })
    vals = theta[wanted]
    flags = conv[wanted] | exact
    if not copies_ok:
        # the copy search ran out of products: only values no missing copy can displace
        # are final (beyond every value of the last broken-down sequence, or the extremes)
        n_t, n_b = _split(vals.size, which)
        hi = d_max if d_max is not None else float(theta.max())
        lo = d_min if d_min is not None else float(theta.min())
        sure = np.zeros(vals.size, dtype=bool)
        if n_t:
            sure[vals.size - n_t :] = vals[vals.size - n_t :] >= hi - tol_a
        if n_b:
            sure[:n_b] = vals[:n_b] <= lo + tol_a
        flags = flags & sure
    wanted = wanted[::-1]  # descending, vectors matching
    flags = flags[::-1]
    vectors = None
    if want_vectors:
        Sw = torch.as_tensor(S[:, wanted].T, dtype=dtype, device=dev)
        vectors = (Sw @ Q[:jj]).T.to(torch.float64).cpu().numpy()
    out = {
        "eigenvalues": theta[wanted],
        "eigenvectors": vectors,
        "residual_norms": res[wanted],
        "converged": flags,
        "copies_confirmed": bool(copies_ok),
        "matvecs": matvecs,
        "iterations": it,
        "restarts": restarts,
        "breakdowns": breakdowns,
        "basis_size": m,
        "block_size": b,
        "norm_estimate": anorm,
    }
    if save is not None:  # the finished run: a resume returns it without a product
        save({
            "done": np.array(1),
            **{key: np.asarray(value) for key, value in out.items() if key != "eigenvectors"},
            "has_vectors": np.array(vectors is not None),
            "eigenvectors": np.zeros((0, 0)) if vectors is None else vectors,
        })
    return out


def _lanczos_output(state: dict[str, np.ndarray]) -> dict[str, Any]:
    """The output of :func:`block_lanczos` saved in a finished run's state."""
    out: dict[str, Any] = {
        key: state[key] for key in ("eigenvalues", "residual_norms", "converged")
    }
    out["eigenvectors"] = state["eigenvectors"] if bool(state["has_vectors"]) else None
    out["copies_confirmed"] = bool(state["copies_confirmed"])
    for key in ("matvecs", "iterations", "restarts", "breakdowns", "basis_size", "block_size"):
        out[key] = int(state[key])
    out["norm_estimate"] = float(state["norm_estimate"])
    return out


def batched_lanczos(
    op: Any,
    V0: torch.Tensor,
    num_steps: int,
    *,
    reorthogonalize: bool,
    probe: Callable[..., None] | None = None,
    probe_rows: torch.Tensor | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Lanczos recurrence per row of ``V0`` (L, P), products batched across rows.

    Returns ``alpha`` (L, m), ``beta`` (L, m) (``beta[:, i]`` couples steps i
    and i+1) and ``lengths`` (L,), the number of steps each recurrence ran
    before an invariant subspace stopped it. ``probe(V, AV)``, if given, is
    called once as ``probe(V, AV, U, AU)``: the normalised probes, their first
    product, and the extra ``probe_rows`` U (or None) multiplied in the same call.
    """
    L, P = V0.shape
    m = num_steps
    dtype = V0.dtype
    eps = torch.finfo(dtype).eps
    V = V0 / torch.linalg.vector_norm(V0, dim=1, keepdim=True)
    Qs = torch.empty(L, m, P, dtype=dtype, device=V0.device) if reorthogonalize else None
    alpha = np.zeros((L, m))
    beta = np.zeros((L, m))
    lengths = np.full(L, m)
    alive = np.ones(L, dtype=bool)
    V_prev = torch.zeros_like(V)
    beta_prev = torch.zeros(L, 1, dtype=dtype, device=V0.device)
    scale = 0.0
    for j in range(m):
        if Qs is not None:
            Qs[:, j] = V
        if j == 0 and probe_rows is not None:
            Wx = apply_rows(op, torch.cat([V, probe_rows]), f"slq step {j + 1}")
            W, AU = Wx[:L].clone(), Wx[L:]
        else:
            W = apply_rows(op, V, f"slq step {j + 1}")
            AU = None
        if progress is not None:
            progress(L if AU is None else L + AU.shape[0])
        if probe is not None and j == 0:
            probe(V, W, probe_rows, AU)
        W -= beta_prev * V_prev
        a = (W * V).sum(dim=1, keepdim=True)
        W -= a * V
        if Qs is not None:
            # Classical Gram-Schmidt, twice, per probe: W_l -= Q_l (Q_l^T W_l). A loop of BLAS
            # matrix-vector products; a batched torch.bmm with one column measured 4x slower
            # on the CPU (P = 85k, 10 probes, 40 basis vectors: 78 ms against 18 ms per pass).
            for row in range(L):
                Qj = Qs[row, : j + 1]  # (j+1, P)
                w = W[row]
                for _ in range(2):
                    w.addmv_(Qj.t(), torch.mv(Qj, w), alpha=-1.0)
        bnorm = torch.linalg.vector_norm(W, dim=1, keepdim=True)
        ah = a.squeeze(1).double().cpu().numpy()
        bh = bnorm.squeeze(1).double().cpu().numpy()
        if not (np.all(np.isfinite(ah)) and np.all(np.isfinite(bh))):
            raise NonFiniteError(f"slq step {j + 1}: non-finite Lanczos coefficients")
        alpha[alive, j] = ah[alive]
        scale = max(scale, float(np.abs(ah).max()), float(bh.max()))
        stop = alive & (bh <= 1e2 * eps * max(scale, np.finfo(float).tiny) * math.sqrt(j + 1))
        if j == m - 1:
            beta[alive, j] = bh[alive]
            break
        lengths[stop] = j + 1
        alive &= ~stop
        beta[alive, j] = bh[alive]
        if not alive.any():
            break
        mask = torch.as_tensor(alive, device=V0.device).unsqueeze(1)
        safe = torch.where(mask, bnorm, torch.ones_like(bnorm))
        V_prev = V
        V = torch.where(mask, W / safe, torch.zeros_like(W))
        beta_prev = torch.where(mask, bnorm, torch.zeros_like(bnorm))
    return alpha, beta, lengths


def gauss_quadrature(
    alpha: np.ndarray, beta: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ritz nodes (descending per probe) and Gauss weights, padded to (L, m).

    Padding (for recurrences stopped early) repeats the last, smallest node
    with weight 0. Also returns Papyan's per-probe range bounds
    ``theta_1 - |beta_m s_{m,1}|`` and ``theta_m + |beta_m s_{m,m}|``.
    """
    L, m = alpha.shape
    nodes = np.zeros((L, m))
    weights = np.zeros((L, m))
    lo = np.zeros(L)
    hi = np.zeros(L)
    for i in range(L):
        n = int(lengths[i])
        if n == 1:
            th, S = alpha[i, :1].copy(), np.ones((1, 1))
        else:
            th, S = eigh_tridiagonal(alpha[i, :n], beta[i, : n - 1])
        w = S[0] ** 2
        w = w / w.sum()
        bm = beta[i, n - 1] if n == m else 0.0
        lo[i] = th[0] - abs(bm * S[-1, 0])
        hi[i] = th[-1] + abs(bm * S[-1, -1])
        nodes[i, :n], weights[i, :n] = th[::-1], w[::-1]  # descending
        nodes[i, n:] = th[0]
    return nodes, weights, lo, hi


def checkpointed_probes(
    work: Any, V0: torch.Tensor, m: int, *, reorthogonalize: bool, checkpoint: Path,
    resume: bool, group: int, probe: Any, probe_rows: Any, measured: list[float], bar: Any,
    meta: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Batched Lanczos of the probes ``V0`` in groups of ``group``, ``checkpoint`` written after each.

    Used by :func:`~gn_theory.spectra.slq` and :func:`~gn_theory.spectra.spectral_density`;
    ``resume`` continues from the groups ``checkpoint`` holds (refused unless it matches
    ``meta``). The symmetry ``probe`` runs on the first group only.

    Returns alpha, beta, lengths and the products of every run that contributed.
    """
    saved = distributed.load_checkpoint(checkpoint, meta) if resume else None
    if saved is None:
        saved = {
            "alpha": np.zeros((0, m)), "beta": np.zeros((0, m)),
            "lengths": np.zeros(0, dtype=np.int64), "num_matvecs": np.array(0),
            "asymmetry": np.array([], dtype=np.float64),
        }
    measured.extend(saved["asymmetry"].tolist())
    alpha, beta, lengths = saved["alpha"], saved["beta"], saved["lengths"]
    spent = int(saved["num_matvecs"])
    if bar is not None:
        bar.update(int(alpha.shape[0]) * m)
    for start in range(int(alpha.shape[0]), V0.shape[0], group):
        mark = work.num_matvecs
        first = start == 0  # the symmetry check runs on the first group only
        a, b, n = batched_lanczos(
            work, V0[start : start + group], m, reorthogonalize=reorthogonalize,
            probe=probe if first else None, probe_rows=probe_rows if first else None,
            progress=None if bar is None else bar.update,
        )
        alpha, beta = np.concatenate([alpha, a]), np.concatenate([beta, b])
        lengths = np.concatenate([lengths, np.asarray(n, dtype=np.int64)])
        spent += work.num_matvecs - mark
        distributed.save_checkpoint(checkpoint, {
            "alpha": alpha, "beta": beta, "lengths": lengths, "num_matvecs": np.array(spent),
            "asymmetry": np.array(measured, dtype=np.float64),
        }, meta)
    return alpha, beta, lengths, spent
