"""Sagun et al. (2017), summary: small- vs large-batch solutions and the line between them (S17-5, S17-6).

claims.md's CPU check: a 4-class Gaussian mixture, a 2-hidden-layer ReLU MLP, softmax
cross-entropy, SGD with batch size 16 (small batch, SB) against full batch (large batch, LB),
the same learning rate 0.1 and 4,000 steps, the same initialisation; the exact float64 Hessian of
each solution. Then the LB solution is continued with SB (S17-6): the training loss along that
path is recorded, and the loss on the straight segment between the LB solution and the
SB-continued one is evaluated at 21 points. Several seeds (each its own init).

Criteria (fixed from claims.md before the run):

- S17-5 "large-batch solutions have larger top eigenvalues" (expected: LB outliers larger): the
  seed-mean lambda_1 and the seed-mean of the top-4 mean are larger for LB than for SB.
- S17-6 "LB and SB points ... lie in one connected flat basin" (expected: no barrier on the
  straight line): for every seed the barrier (largest excess of the loss along the segment over
  the chord between its end values) is at most 10 % of the larger end-point loss.

Sizes (``SIZES``): ``tiny`` is the test suite's (seconds; too small to judge the claim);
``quick`` N = 512, d = 20, width 16
(P = 676), 4,000 steps (the check's budget) and 2,000 SB steps after LB, 3 seeds; ``full`` N =
2,048, d = 50, width 32, 10,000 steps, 5 seeds. The paper's architectures and batch sizes are
not in its text ([unconfirmed]); these are parameters.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: python validation/<script>.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from validation import _common as C

NAME = "sagun2017_batch_size"
CLAIMS = ("S17-5", "S17-6")
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"num_samples": 64, "num_features": 5, "width": 8, "steps": 100, "continue": 50,
             "seeds": 1},
    "quick": {"num_samples": 512, "num_features": 20, "width": 16, "steps": 4000,
              "continue": 2000, "seeds": 3},
    "full": {"num_samples": 2048, "num_features": 50, "width": 32, "steps": 10000,
             "continue": 5000, "seeds": 5},
}
K, LR, SB, SEP, POINTS = 4, 0.1, 16, 3.0, 21


def run(size: str = "quick", *, out: str | Path, seed: int = 0, device: str = "cpu") -> dict:
    cfg = SIZES[size]
    ds = C.mixture(cfg["num_samples"], num_classes=K, num_features=cfg["num_features"],
                   separation=SEP, seed=seed, device=device)
    runs = []
    for s in range(seed, seed + cfg["seeds"]):
        sb = C.mlp(ds, cfg["width"], seed=s, device=device)
        lb = C.mlp(ds, cfg["width"], seed=s, device=device)
        log_sb = C.fit(sb, ds, optimizer="sgd", lr=LR, batch_size=SB, steps=cfg["steps"], seed=s)
        log_lb = C.fit(lb, ds, optimizer="gd", lr=LR, steps=cfg["steps"], seed=s)
        ev_sb, ev_lb = C.dense_eigenvalues(sb, ds.train), C.dense_eigenvalues(lb, ds.train)
        theta_lb = C.params_vector(lb)
        path = C.fit(lb, ds, optimizer="sgd", lr=LR, batch_size=SB, steps=cfg["continue"],
                     seed=s + 100, log_every=max(cfg["continue"] // 50, 1))
        ev_cont = C.dense_eigenvalues(lb, ds.train)
        seg = C.segment_losses(lb, theta_lb, C.params_vector(lb), ds.train, POINTS)
        runs.append({
            "seed": s, "loss_SB": float(log_sb.loss[-1]), "loss_LB": float(log_lb.loss[-1]),
            "acc_SB": float(log_sb.accuracy[-1]), "acc_LB": float(log_lb.accuracy[-1]),
            "top_SB": ev_sb[:2 * K], "top_LB": ev_lb[:2 * K], "top_continued": ev_cont[:2 * K],
            "lambda_1_SB": float(ev_sb[0]), "lambda_1_LB": float(ev_lb[0]),
            "top4_SB": float(ev_sb[:K].mean()), "top4_LB": float(ev_lb[:K].mean()),
            "path_step": path.step, "path_loss": path.loss,
            "path_climb": float(path.loss.max() - path.loss[0]),
            "segment": seg, "barrier": C.barrier(seg),
            "barrier_limit": 0.1 * float(max(seg[0], seg[-1])),
        })
    l1 = {k: float(np.mean([r[f"lambda_1_{k}"] for r in runs])) for k in ("SB", "LB")}
    t4 = {k: float(np.mean([r[f"top4_{k}"] for r in runs])) for k in ("SB", "LB")}
    pass5 = l1["LB"] > l1["SB"] and t4["LB"] > t4["SB"]
    pass6 = all(r["barrier"] <= r["barrier_limit"] for r in runs)

    fig, axes = C.new_figure(ncols=3, size=(14.0, 4.0))
    for j, r in enumerate(runs):
        axes[0].plot(np.arange(1, 2 * K + 1), r["top_LB"], "o-", color=f"C{j}", ms=4,
                     label=f"LB seed {r['seed']}")
        axes[0].plot(np.arange(1, 2 * K + 1), r["top_SB"], "s--", color=f"C{j}", ms=4,
                     label=f"SB seed {r['seed']}")
        axes[1].plot(r["path_step"], r["path_loss"], color=f"C{j}")
        axes[2].plot(np.linspace(0, 1, POINTS), r["segment"], color=f"C{j}")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("rank (descending)")
    axes[0].set_ylabel("Hessian eigenvalue")
    axes[0].set_title(f"large (full) vs small ({SB}) batch")
    axes[0].legend(fontsize=6)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("SB steps after the LB solution")
    axes[1].set_ylabel("training loss")
    axes[1].set_title("LB solution continued with SB")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("segment: 0 = LB solution, 1 = SB-continued")
    axes[2].set_ylabel("training loss")
    axes[2].set_title("straight line between them (S17-6)")

    setting = (f"mixture C = {K}, d = {cfg['num_features']}, N = {cfg['num_samples']}, width "
               f"{cfg['width']}, lr {LR}, {cfg['steps']} steps, SB = {SB}, LB = full batch, "
               f"{cfg['seeds']} seed(s)")
    row5 = C.claim_row(
        "S17-5", measured=f"seed-mean lambda_1 LB {C.fmt(l1['LB'])} vs SB {C.fmt(l1['SB'])}; "
                          f"top-4 mean LB {C.fmt(t4['LB'])} vs SB {C.fmt(t4['SB'])}",
        criterion="seed-mean lambda_1 and seed-mean top-4 mean larger for LB than SB",
        passed=pass5, figure=f"{NAME}.png", setting=setting,
        values={"lambda_1": l1, "top4": t4,
                "per_seed": [{k: r[k] for k in ("seed", "lambda_1_SB", "lambda_1_LB", "loss_SB",
                                               "loss_LB")} for r in runs]},
        evidence="" if pass5 else (
            f"final losses LB {C.fmt([r['loss_LB'] for r in runs])}, SB "
            f"{C.fmt([r['loss_SB'] for r in runs])}: with the same step budget the two reach "
            "different losses, and the top eigenvalues may follow the loss."))
    row6 = C.claim_row(
        "S17-6", measured=f"barrier / larger end loss {C.fmt([r['barrier'] / (10 * r['barrier_limit']) for r in runs])}"
                          f"; SB path climb above L(LB) {C.fmt([r['path_climb'] for r in runs])}",
        criterion="barrier (max excess over the chord) <= 10 % of the larger end-point loss, "
                  "every seed", passed=pass6, figure=f"{NAME}.png", setting=setting,
        values={"barrier": [r["barrier"] for r in runs],
                "limit": [r["barrier_limit"] for r in runs],
                "path_climb": [r["path_climb"] for r in runs]},
        evidence="" if pass6 else (
            f"barriers {C.fmt([r['barrier'] for r in runs])} against limits "
            f"{C.fmt([r['barrier_limit'] for r in runs])}."))
    numbers = {"script": NAME, "size": size, "config": cfg, "runs": runs, "claims": [row5, row6]}
    C.write_outputs(NAME, out, numbers, {NAME: fig})
    return numbers


def main(argv: list[str] | None = None) -> int:
    return C.script_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
