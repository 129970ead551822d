"""Fort & Ganguli (2019), properties 1 and Fig. 1: C directions of high curvature, logit-gradient
clustering, weak logit curvature (FG-1, FG-5, FG-6).

Real MNIST, a 2-hidden-layer ReLU MLP trained by SGD; at three training states (10 %, 50 % and
100 % of the budget) the Frobenius norms of G and R = H - G, and at the end the top 3C + 1
eigenvalues of H (``gt.lanczos``) and the Fort & Ganguli measurements of ``gt.fort_ganguli``
(cosines of per-sample logit gradients grad_theta z_k(x_i), grouped by (logit, class)).

Criteria (fixed from claims.md before the run):

- FG-1 "exactly C directions of high positive curvature" (expected: C or C - 1 outliers): the
  package's rule (``gt.outliers``) on the top 3C + 1 eigenvalues of H at the end counts C or
  C - 1.
- FG-5 "logit gradients cluster (by logit k, modulated by class)" (expected: within-block mean
  cosine >> across-block, blocks sorted by (k, y)): the mean cosine within a block (same logit,
  same class) is >= 0.2 and >= 3 x the largest mean of the other three groups (same logit /
  other class, other logit / same class, other logit / other class; 0 if they are negative).
- FG-6 "weak logit curvature: H-term << G-term" (expected: ||R||_F/||G||_F small after early
  training): ||R||_F / ||G||_F < 0.1 at 50 % and at 100 % of the budget.

Sizes (``SIZES``): ``tiny`` is the test suite's (seconds; too small to judge the claim);
``quick`` 1,000 digits at 7x7, width 16
(P = 1,242), 1,500 SGD steps (bs 50, lr 0.05, momentum 0.9), 64 samples for the cosines;
``full`` 5,000 digits at 14x14, width 24 (P = 5,578), 5,000 steps, 256 samples.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: python validation/<script>.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

import gn_theory as gt
from validation import _common as C

NAME = "fortganguli2019_local_geometry"
CLAIMS = ("FG-1", "FG-5", "FG-6")
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"num_samples": 100, "image_size": 7, "width": 4, "steps": 50, "samples": 16},
    "quick": {"num_samples": 1000, "image_size": 7, "width": 16, "steps": 1500, "samples": 64},
    "full": {"num_samples": 5000, "image_size": 14, "width": 24, "steps": 5000, "samples": 256},
}
TRAIN = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "batch_size": 50}


def run(size: str = "quick", *, out: str | Path, seed: int = 0, device: str = "cpu") -> dict:
    cfg = SIZES[size]
    ds = C.mnist(cfg["num_samples"], image_size=cfg["image_size"], seed=seed, device=device)
    K = ds.num_classes
    model = C.mlp(ds, cfg["width"], seed=seed, device=device)
    T = cfg["steps"]
    states, done = [], 0
    for t in (T // 10, T // 2, T):
        log = C.fit(model, ds, steps=t - done, seed=seed + t, **TRAIN)
        done = t
        n = C.frobenius_norms(model, ds.train, seed=seed)
        states.append({"step": t, "loss": float(log.loss[-1]), "accuracy": float(log.accuracy[-1]),
                       "R_over_G": n["R"] / n["G"], "norms": n})
    H = gt.hessian_operator(model, ds.train, dtype=torch.float64)
    G = gt.ggn_operator(model, ds.train, dtype=torch.float64)
    top = gt.lanczos(H, 3 * K + 1, seed=seed).eigenvalues
    count = C.outlier_count(top, K)
    cs = gt.class_structure(model, ds.train, dtype=torch.float64)
    fg = gt.fort_ganguli(model, ds.train, H, G, cs, seed=seed, max_samples=cfg["samples"])
    st = fg.cosine_stats
    within = st["same_logit_same_class"]
    others = {k: v for k, v in st.items() if k != "same_logit_same_class"}
    pass5 = within >= 0.2 and within >= 3 * max(max(others.values()), 0.0)

    fig, axes = C.new_figure(ncols=3, size=(14.5, 4.2))
    axes[0].semilogy(np.arange(1, top.size + 1), top, "o", ms=3)
    axes[0].axvline(K + 0.5, color="0.6", ls=":")
    axes[0].set_xlabel("rank (descending); dotted: C")
    axes[0].set_ylabel("eigenvalue of H")
    axes[0].set_title(f"FG-1: gap rule counts {count}")
    grid = np.asarray(fg.cosine_groups).reshape(K * K, K * K)  # rows (k, y), columns (k', y')
    im = axes[1].imshow(grid, cmap="RdBu_r", vmin=-1, vmax=1)
    axes[1].set_title("mean cosine of logit gradients,\nsorted by (logit k, class y)", fontsize=9)
    axes[1].set_xlabel("(k', y')")
    axes[1].set_ylabel("(k, y)")
    fig.colorbar(im, ax=axes[1], shrink=0.8)
    axes[2].plot([s["step"] for s in states], [s["R_over_G"] for s in states], "o-")
    axes[2].axhline(0.1, color="0.6", ls=":")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("training step")
    axes[2].set_ylabel(r"$\|R\|_F / \|G\|_F$")
    axes[2].set_title("FG-6: weak logit curvature")

    setting = (f"MNIST {cfg['num_samples']} at {cfg['image_size']}x{cfg['image_size']}, width "
               f"{cfg['width']} (P = {H.num_params}), SGD bs 50 lr 0.05 momentum 0.9, {T} steps;"
               f" final train accuracy {C.fmt(states[-1]['accuracy'])}")
    pass1 = count in (K, K - 1)
    row1 = C.claim_row(
        "FG-1", measured=f"gap-rule outliers of H: {count} (C = {K}); top {C.fmt(top[:K + 2])}",
        criterion="gt.outliers on the top 3C + 1 of H counts C or C - 1", passed=pass1,
        figure=f"{NAME}.png", setting=setting, values={"count": count, "top_H": top},
        evidence="" if pass1 else (
            f"consecutive ratios of the top 2C: {C.fmt(top[:2 * K][:-1] / top[1:2 * K])}: "
            "the top of H decays without a gap of 2 (see P19-1, on the same kind of net)."))
    row5 = C.claim_row(
        "FG-5", measured=", ".join(f"{k} {C.fmt(v)}" for k, v in st.items())
        + f" ({fg.num_cosine_samples} samples)",
        criterion="same-logit/same-class mean cosine >= 0.2 and >= 3 x the largest of the "
                  "other three group means (0 if negative)", passed=pass5,
        figure=f"{NAME}.png", setting=setting, values={"cosine_stats": st},
        evidence="" if pass5 else (
            f"within-block {C.fmt(within)} vs others {C.fmt(list(others.values()))}: the "
            f"gradients do cluster by logit (same logit {C.fmt(within)} and "
            f"{C.fmt(st['same_logit_diff_class'])}, other logits near 0), but the (k, y) blocks "
            f"are only {C.fmt(within / max(max(others.values()), 1e-300))} x the same-logit, "
            "other-class mean, short of the 3 x fixed for '>>'."))
    r = [s["R_over_G"] for s in states]
    pass6 = r[1] < 0.1 and r[2] < 0.1
    row6 = C.claim_row(
        "FG-6", measured=f"||R||_F/||G||_F at steps {[s['step'] for s in states]}: {C.fmt(r)}",
        criterion="||R||_F / ||G||_F < 0.1 at 50 % and at 100 % of the budget", passed=pass6,
        figure=f"{NAME}.png", setting=setting, values={"states": states},
        evidence="" if pass6 else (
            f"ratios {C.fmt(r)} at train losses {C.fmt([s['loss'] for s in states])}."))
    numbers = {"script": NAME, "size": size, "config": cfg, "states": states,
               "fort_ganguli": {"cosine_stats": st, "subspace_overlaps": fg.subspace_overlaps},
               "claims": [row1, row5, row6]}
    C.write_outputs(NAME, out, numbers, {NAME: fig})
    return numbers


def main(argv: list[str] | None = None) -> int:
    return C.script_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
