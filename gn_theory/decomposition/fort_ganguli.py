r"""Fort & Ganguli (2019) measurements on a model, its operators H and G, and a class structure.

:func:`fort_ganguli` takes everything it measures on explicitly: the model and
data (for gradients and per-sample logit Jacobians), the Hessian and GGN
operators (for their top eigenvectors) and a
:class:`~gn_theory.results.ClassStructure` (for the class-mean directions). It
returns a :class:`~gn_theory.results.FortGanguli` (data only).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.func import grad, jacrev, vmap

from .. import _checks, distributed
from .._autodiff import FunctionalModel, make_loss
from .._data import DataSource, reduce_sum
from .._format import fmt_bytes
from ..exceptions import InvalidInputError, NumericalWarning, ShapeError
from ..operators import CurvatureOperator
from ..results.structure import ClassStructure, FortGanguli
from ..spectra import lanczos

__all__ = ["fort_ganguli"]


def _subsample(
    data: DataSource, N: int, n: int, seed: int, local_n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` of the ``N`` samples drawn uniformly without replacement, in one pass over the data.

    The samples are drawn by position, in data order. In a data-parallel run the positions
    run over the ranks' shards in rank order (rank r's first sample follows the
    ``local_n`` of the ranks before it): each rank fills the rows it holds and one
    all-reduce completes them, so every rank has the same n samples, those one process
    draws from the shards concatenated (the data itself under contiguous shards).
    """
    gen = torch.Generator().manual_seed(int(seed))
    picked = torch.sort(torch.randperm(N, generator=gen)[:n]).values
    counts = torch.zeros(distributed.world_size(), dtype=torch.int64)
    counts[distributed.rank()] = int(local_n)
    start = int(reduce_sum(counts)[: distributed.rank()].sum())
    bx = by = None
    for _, x, y in data:
        if bx is None:
            bx = torch.zeros((n, *x.shape[1:]), dtype=x.dtype, device=x.device)
            by = torch.zeros(n, dtype=torch.int64, device=y.device)
        rows = torch.nonzero((picked >= start) & (picked < start + x.shape[0])).flatten()
        if rows.numel():
            local = (picked[rows] - start).to(x.device)
            bx[rows.to(x.device)] = x[local]
            by[rows.to(y.device)] = y[local.to(y.device)].to(torch.int64)
        start += x.shape[0]
    if bx is None or by is None:  # pragma: no cover - the data were validated non-empty
        raise InvalidInputError("fort_ganguli: no samples to subsample")
    return reduce_sum(bx), reduce_sum(by)


def _logit_cosines(
    f: FunctionalModel, data: DataSource, N: int, C: int, max_samples: int, seed: int,
    max_bytes: int, local_n: int,
) -> tuple[np.ndarray, dict[str, float], int]:
    """Mean cosines of per-sample logit gradients, grouped by (logit, class, logit, class)."""
    theta = f.theta
    P = theta.numel()
    item = theta.element_size()
    budget_n = max_bytes // max(C * P * item, 1)
    n = min(int(max_samples), N, max(2, budget_n))
    if n < min(max_samples, N):
        warnings.warn(
            f"logit-gradient cosines: {min(max_samples, N)} samples x C x P would "
            f"exceed {fmt_bytes(max_bytes)}; using {n} (budget allows {budget_n})",
            NumericalWarning,
            stacklevel=3,
        )
    x, y = _subsample(data, N, n, seed, local_n)
    J = vmap(jacrev(lambda t, xi: f(t, xi.unsqueeze(0)).squeeze(0)), in_dims=(None, 0))(theta, x)
    J = J.reshape(n * C, P).to(torch.float64)  # rows (i, k)
    J = J / torch.linalg.vector_norm(J, dim=1, keepdim=True).clamp_min(1e-300)
    cos = (J @ J.T).reshape(n, C, n, C).cpu().numpy()
    yy = y.cpu().numpy()
    not_same = ~np.eye(n, dtype=bool)
    groups = np.full((C, C, C, C), np.nan)
    sums = {k: [0.0, 0] for k in ("same_logit_same_class", "same_logit_diff_class",
                                  "diff_logit_same_class", "diff_logit_diff_class")}
    for a in range(C):
        ia = yy == a
        for b in range(C):
            ib = yy == b
            mask = np.outer(ia, ib) & not_same
            if not mask.any():
                continue
            sub = cos.transpose(1, 3, 0, 2)[:, :, mask]  # (C, C, pairs)
            groups[:, a, :, b] = sub.mean(-1)
            for k in range(C):
                for k2 in range(C):
                    key = ("same_logit" if k == k2 else "diff_logit") + (
                        "_same_class" if a == b else "_diff_class"
                    )
                    sums[key][0] += float(sub[k, k2].sum())
                    sums[key][1] += int(sub.shape[-1])
    stats = {k: (s / m if m else float("nan")) for k, (s, m) in sums.items()}
    return groups, stats, n


def _top_vectors(op: CurvatureOperator, k: int, tol: float, seed: int) -> tuple[Any, Any, Any]:
    """Top-k eigenpairs by Lanczos, descending, as numpy."""
    spec = lanczos(op, k, "largest", tol=tol, seed=seed, return_eigenvectors=True)
    order = np.argsort(-np.asarray(spec.eigenvalues), kind="stable")
    U = np.asarray(spec.eigenvectors)[:, order]
    return np.asarray(spec.eigenvalues)[order], U, spec


def fort_ganguli(
    model: torch.nn.Module,
    data: Any,
    H: CurvatureOperator,
    G: CurvatureOperator,
    structure: ClassStructure,
    *,
    ks: Sequence[int] | None = None,
    tol: float = 1e-6,
    seed: int = 0,
    max_samples: int = 64,
    max_bytes: int = 2**30,
) -> FortGanguli:
    r"""Fort & Ganguli (2019) measurements: gradient confinement, eigenspace overlaps, cosines.

    * Gradient confinement (Gur-Ari et al. 2018; docs/theory.md section 6): the
      fraction :math:`f_k(g) = \|U_k^\top g\|^2/\|g\|^2` of the full-batch loss
      gradient, and of each mini-batch gradient (the data's own batches), in
      the top-k eigenspace of H and of G, for each k in ``ks``.
    * Overlaps :math:`U^\top V` between the top-C eigenvectors of H, of G and
      of :math:`G_{\rm cm}`, and subspace overlaps :math:`\|U^\top Q\|_F^2/C`
      (including Q = an orthonormal basis of span :math:`\{\delta_c\}`).
    * Cosine similarities of per-sample logit gradients
      :math:`\nabla_\theta z_k(x_i)` within vs between classes and logits, on
      a random subsample of ``max_samples`` inputs (per-sample Jacobians by
      ``vmap(jacrev)`` on the subsample only).

    Parameters
    ----------
    model : torch.nn.Module
        The classifier; the parameters G was built on are used, on G's device
        and dtype (the module is not modified).
    data : (Tensor, Tensor) or iterable of (Tensor, Tensor)
        The data H, G and ``structure`` were measured on; its batches are the
        mini-batches of the confinement.
    H : CurvatureOperator
        ``gn_theory.hessian_operator(model, data)`` (top eigenvectors).
    G : CurvatureOperator
        ``gn_theory.ggn_operator(model, data)`` (top eigenvectors; its parameter
        selection, device and dtype are used for the gradients).
    structure : ClassStructure
        From :func:`class_structure` on the same model and data (or loaded).
    ks : sequence of int, optional
        Subspace sizes; default ``{1, C-1, C, 2C}`` (capped at P).
    tol : float, default 1e-6
        Lanczos tolerance for the top eigenvectors of H and G.
    seed : int, default 0
        Seed of Lanczos and of the subsample (rank 0's in a data-parallel run:
        :func:`gn_theory.distributed.broadcast_seed`). There, the mini-batches of the
        confinement are every rank's batches in rank order, and the subsample is
        drawn by position over the shards in rank order (the single-process
        subsample under contiguous shards).
    max_samples : int, default 64
        Subsample size for the cosines (memory: samples x C x P numbers).
    max_bytes : int, default 1 GiB
        Budget for the per-sample Jacobians of the subsample; the subsample is
        shrunk (with a :class:`~gn_theory.NumericalWarning`) to fit.

    Returns
    -------
    FortGanguli
        Eigenvalues descending; ``num_matvecs`` counts the products with H and G.

    Raises
    ------
    InvalidInputError
        Not operators / a class structure, G not built from a model, bad ``ks``,
        ``seed`` or ``max_samples``.
    ShapeError
        H, G, the structure and the model's selected parameters disagree on P.

    References
    ----------
    Fort & Ganguli, arXiv:1910.05929; Gur-Ari, Roberts & Dyer, arXiv:1812.04754.
    """
    if not isinstance(structure, ClassStructure):
        raise InvalidInputError(
            f"structure must be a ClassStructure; got {type(structure).__name__}"
        )
    C, P = structure.num_classes, structure.num_params
    structure.check_operator(H, name="H")
    structure.check_operator(G, name="G")
    names = G.param_names
    if names is None:
        raise InvalidInputError(
            "G must be built from the model (gn_theory.ggn_operator(model, data)): its "
            "parameter selection is used for the gradients"
        )
    seed = distributed.broadcast_seed(seed)  # rank 0's in a data-parallel run
    max_samples = _checks.check_positive_int("max_samples", max_samples, minimum=2)
    if ks is None:
        ks = sorted({1, C - 1, C, 2 * C})
    ks = sorted({_checks.check_positive_int("ks", int(k)) for k in ks})
    ks = [k for k in ks if k <= P]
    if not ks:
        raise InvalidInputError(f"no k in ks fits the dimension P = {P}")
    kmax = min(max(max(ks), C), P)

    f = FunctionalModel(model, list(names), G.device, G.torch_dtype)
    if f.theta.numel() != P:  # pragma: no cover - the names come from G itself
        raise ShapeError(f"the model's selected parameters have {f.theta.numel()} entries; P = {P}")
    source = DataSource(data, G.device, G.torch_dtype)
    loss = make_loss("cross_entropy")
    theta = f.theta

    eH, UH, sH = _top_vectors(H, kmax, tol, seed)
    eG, UG, sG = _top_vectors(G, kmax, tol, seed)

    def frac(g: np.ndarray, U: np.ndarray) -> np.ndarray:
        n2 = float(g @ g)
        proj = (U.T @ g) ** 2
        return np.array([float(proj[:k].sum()) / n2 if n2 > 0 else float("nan") for k in ks])

    fb_H, fb_G, sizes = [], [], []
    g_sum = torch.zeros_like(theta)
    for _, x, y in source:
        gs = grad(lambda t: loss.sum(f(t, x), y))(theta)
        g_sum += gs
        gb = (gs / x.shape[0]).double().cpu().numpy()
        fb_H.append(frac(gb, UH))
        fb_G.append(frac(gb, UG))
        sizes.append(x.shape[0])
    local_n = sum(sizes)
    N = int(reduce_sum(torch.tensor(local_n)))
    g_full = (reduce_sum(g_sum) / N).double().cpu().numpy()
    if distributed.is_distributed():  # every rank's batches, in rank order, on every rank
        per_rank = distributed.all_gather_objects((fb_H, fb_G, sizes))
        fb_H = [row for r in per_rank for row in r[0]]
        fb_G = [row for r in per_rank for row in r[1]]
        sizes = [n for r in per_rank for n in r[2]]

    cm_part = "G_cm" if structure.class_means is not None else "G_1"
    Ucm = structure.eigenvectors(cm_part)[:, :C]
    Q, _ = np.linalg.qr(structure.class_level_means.T)
    UHc, UGc = UH[:, :C], UG[:, :C]

    def sub(U: np.ndarray, V: np.ndarray) -> float:
        return float(np.linalg.norm(U.T @ V) ** 2 / C)

    overlaps = {
        "H-G": sub(UHc, UGc),
        "H-G_cm": sub(UHc, Ucm),
        "G-G_cm": sub(UGc, Ucm),
        "H-span(delta_c)": sub(UHc, Q),
        "G-span(delta_c)": sub(UGc, Q),
    }
    groups, stats, ncos = _logit_cosines(f, source, N, C, max_samples, seed, max_bytes,
                                         local_n)
    return FortGanguli(
        ks=np.asarray(ks, dtype=np.int64),
        eigenvalues_H=eH,
        eigenvalues_G=eG,
        predicted_top=structure.eigenvalues(cm_part)[:C],
        predicted_level1=structure.eigenvalues("G_1"),
        confinement_full_H=frac(g_full, UH),
        confinement_full_G=frac(g_full, UG),
        confinement_batches_H=np.array(fb_H),
        confinement_batches_G=np.array(fb_G),
        batch_sizes=np.asarray(sizes, dtype=np.int64),
        overlap_H_G=UHc.T @ UGc,
        overlap_H_cm=UHc.T @ Ucm,
        overlap_G_cm=UGc.T @ Ucm,
        subspace_overlaps=overlaps,
        cosine_groups=groups,
        cosine_stats=stats,
        num_cosine_samples=int(ncos),
        num_classes=int(C),
        num_matvecs=int(sH.num_matvecs + sG.num_matvecs),
        settings={
            "tol": float(tol),
            "seed": seed,
            "ks": list(ks),
            "kmax": int(kmax),
            "max_samples": int(max_samples),
            "max_bytes": int(max_bytes),
            "lanczos_H": {"num_matvecs": int(sH.num_matvecs), "converged": int(sH.num_converged)},
            "lanczos_G": {"num_matvecs": int(sG.num_matvecs), "converged": int(sG.num_converged)},
        },
    )
