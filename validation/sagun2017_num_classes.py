"""Sagun et al. (2017), summary: the number of outliers tracks the number of classes (S17-3, S17-4).

Synthetic Gaussian mixtures (``load_dataset("gaussian_mixture")``: k class means of norm
``separation`` on a sphere, unit within-class noise) in d dimensions, one fixed 2-hidden-layer
ReLU MLP architecture, softmax cross-entropy, SGD; the exact float64 Hessian at the end, outliers
counted by the package's rule (``gt.outliers``, largest log gap among the top 3k + 1).

Criteria (fixed from claims.md before the run):

- S17-3 "number of outliers tracks the number of classes" (expected: gap after ~k, sometimes
  k - 1, eigenvalues): for every k in {2, 3, 5, 10} the rule counts k or k - 1 outliers.
- S17-4 "data made less separable: only the outliers respond" (expected: outliers grow as
  separation drops): at fixed k = 5, as the separation drops through {6, 4, 3, 2}, the mean of
  the top-k eigenvalues increases at every step, and its growth factor (least / most separable)
  is at least twice the growth factor of the bulk mean (the mean of the other P - k
  eigenvalues).

Sizes (``SIZES``): ``tiny`` is the test suite's (seconds; too small to judge the claim);
``quick`` d = 20, width 16
(P = 642 to 778), N = 500, 1,500 SGD steps (bs 50, lr 0.1): the four class counts of the check;
``full`` d = 50, width 32 (P ~ 3,000), N = 2,000, 4,000 steps.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: python validation/<script>.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from gn_theory.plots import plot_outlier_counts
from validation import _common as C

NAME = "sagun2017_num_classes"
CLAIMS = ("S17-3", "S17-4")
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"num_features": 5, "width": 8, "num_samples": 100, "steps": 150, "ks": [2, 3],
             "separations": [4.0, 2.0], "k_sep": 3},
    "quick": {"num_features": 20, "width": 16, "num_samples": 500, "steps": 1500,
              "ks": [2, 3, 5, 10], "separations": [6.0, 4.0, 3.0, 2.0], "k_sep": 5},
    "full": {"num_features": 50, "width": 32, "num_samples": 2000, "steps": 4000,
             "ks": [2, 3, 5, 10], "separations": [6.0, 4.0, 3.0, 2.0], "k_sep": 5},
}
TRAIN = {"optimizer": "sgd", "lr": 0.1, "batch_size": 50}
SEP = 4.0


def _measure(cfg: dict, k: int, sep: float, seed: int, device: str) -> dict[str, Any]:
    ds = C.mixture(cfg["num_samples"], num_classes=k, num_features=cfg["num_features"],
                   separation=sep, seed=seed, device=device)
    model = C.mlp(ds, cfg["width"], seed=seed, device=device)
    # first stop when the loss reaches 0.1 (an earlier state, kept as evidence), then go on
    log0 = C.fit(model, ds, steps=cfg["steps"], seed=seed, stop_loss=0.1, log_every=10, **TRAIN)
    ev0 = C.dense_eigenvalues(model, ds.train)
    rest = cfg["steps"] - log0.num_steps
    log = C.fit(model, ds, steps=rest, seed=seed + 1, **TRAIN) if rest > 0 else log0
    ev = C.dense_eigenvalues(model, ds.train)
    return {"k": k, "separation": sep, "num_params": int(ev.size),
            "early_step": log0.num_steps, "early_loss": float(log0.loss[-1]),
            "early_outliers": C.outlier_count(ev0, k), "early_top": ev0[: 3 * k + 1],
            "final_loss": float(log.loss[-1]), "final_accuracy": float(log.accuracy[-1]),
            "outliers": C.outlier_count(ev, k), "top": ev[: 3 * k + 1],
            "top_k_mean": float(ev[:k].mean()), "bulk_mean": float(ev[k:].mean()),
            "eigenvalues": ev}


def run(size: str = "quick", *, out: str | Path, seed: int = 0, device: str = "cpu") -> dict:
    cfg = SIZES[size]
    by_k = [_measure(cfg, k, SEP, seed, device) for k in cfg["ks"]]
    by_sep = [_measure(cfg, cfg["k_sep"], s, seed, device) for s in cfg["separations"]]
    counts = [r["outliers"] for r in by_k]
    pass3 = all(c in (r["k"], r["k"] - 1) for c, r in zip(counts, by_k))
    tops = [r["top_k_mean"] for r in by_sep]
    bulks = [r["bulk_mean"] for r in by_sep]
    mono = all(b > a for a, b in zip(tops, tops[1:]))
    g_top, g_bulk = tops[-1] / tops[0], bulks[-1] / bulks[0]
    pass4 = mono and g_top >= 2 * g_bulk

    fig, axes = C.new_figure(ncols=3, size=(14.0, 4.0))
    plot_outlier_counts({"H (gap rule)": counts}, cfg["ks"], ax=axes[0])
    axes[0].set_title("outliers vs classes (Sagun 2017)")
    for j, r in enumerate(by_k):
        axes[1].plot(np.arange(1, 3 * r["k"] + 2), r["top"], ".-", color=f"C{j}",
                     label=f"k = {r['k']}")
        axes[1].axvline(r["k"] + 0.5, color=f"C{j}", ls=":", lw=0.8)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("rank (descending); dotted: rank k")
    axes[1].set_ylabel("Hessian eigenvalue")
    axes[1].legend(fontsize=8)
    axes[2].plot(cfg["separations"], tops, "o-", label=f"mean of top k = {cfg['k_sep']}")
    axes[2].plot(cfg["separations"], bulks, "s-", label="mean of the rest (bulk)")
    axes[2].set_yscale("log")
    axes[2].invert_xaxis()
    axes[2].set_xlabel("separation of the class means (decreasing)")
    axes[2].set_ylabel("eigenvalue")
    axes[2].set_title("less separable data (S17-4)")
    axes[2].legend(fontsize=8)

    setting = (f"mixture d = {cfg['num_features']}, N = {cfg['num_samples']}, width "
               f"{cfg['width']}, SGD bs 50 lr 0.1, {cfg['steps']} steps")
    ev3 = ""
    if not pass3:
        ev3 = (f"counts {counts} for k = {cfg['ks']}; gap ratios at ranks k-1, k, k+1: "
               + "; ".join(f"k={r['k']}: {C.fmt(r['top'][max(r['k'] - 2, 0):r['k'] + 1] / r['top'][max(r['k'] - 1, 1):r['k'] + 2])}"
                           for r in by_k)
               + f"; final losses {C.fmt([r['final_loss'] for r in by_k])}. At the earlier "
               f"state where the loss first reached 0.1 (steps "
               f"{[r['early_step'] for r in by_k]}, losses "
               f"{C.fmt([r['early_loss'] for r in by_k])}) the rule counts "
               f"{[r['early_outliers'] for r in by_k]}: the count depends on how far training "
               "has gone.")
    row3 = C.claim_row(
        "S17-3", measured=f"outliers {counts} for k = {cfg['ks']} (separation {SEP})",
        criterion="gt.outliers counts k or k - 1 for every k", passed=pass3,
        figure=f"{NAME}.png", evidence=ev3, setting=setting,
        values={"ks": cfg["ks"], "counts": counts,
                "top": [r["top"] for r in by_k],
                "early_counts": [r["early_outliers"] for r in by_k],
                "early_loss": [r["early_loss"] for r in by_k],
                "final_accuracy": [r["final_accuracy"] for r in by_k]})
    ev4 = ""
    if not pass4:
        ev4 = (f"top-k means {C.fmt(tops)} (monotone: {mono}); growth factor {C.fmt(g_top)} vs "
               f"bulk {C.fmt(g_bulk)}; final losses {C.fmt([r['final_loss'] for r in by_sep])}: "
               "the bulk moves with the loss too.")
    row4 = C.claim_row(
        "S17-4", measured=f"k = {cfg['k_sep']}, separation {cfg['separations']}: top-k mean "
                          f"{C.fmt(tops)}, bulk mean {C.fmt(bulks)}",
        criterion="top-k mean rises at every separation step, and its growth factor >= 2 x "
                  "the bulk mean's", passed=pass4, figure=f"{NAME}.png", evidence=ev4,
        setting=setting,
        values={"separations": cfg["separations"], "top_k_mean": tops, "bulk_mean": bulks,
                "growth_top": g_top, "growth_bulk": g_bulk})
    for r in by_k + by_sep:
        r.pop("eigenvalues")
    numbers = {"script": NAME, "size": size, "config": cfg, "by_k": by_k, "by_separation": by_sep,
               "claims": [row3, row4]}
    C.write_outputs(NAME, out, numbers, {NAME: fig})
    return numbers


def main(argv: list[str] | None = None) -> int:
    return C.script_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
