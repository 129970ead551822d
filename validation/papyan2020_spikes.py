"""Papyan (JMLR 2020), "Traces of class/cross-class structure pervade deep learning spectra": spikes (P20-1).

Real MNIST, a 2-hidden-layer ReLU MLP trained by SGD; at the end two spectra that carry the
class structure: the second moment of the penultimate features (1/N sum_i phi_i phi_i^T, exact,
numpy) and the Gauss-Newton matrix G (top 3C + 1 by ``gt.lanczos``): G is the second moment of
the per-sample, per-logit gradients delta_{i,c'} (docs/theory.md 2.1). Papyan 2020 also studies the
second moment of the per-sample loss gradients (the empirical Fisher); gn_theory has no operator
for it (a gap, see the report), so G stands for the gradient spectrum here.

Criterion (fixed from claims.md before the run): P20-1 "class/cross-class structure produces
spikes (outliers) and bumps" (expected: ~C spikes; bumps hard to see at small P): the package's
outlier rule (``gt.outliers``) counts C or C - 1 spikes in the feature spectrum and in the
spectrum of G. Bumps are not judged (claims.md: hard to see at this size).

Sizes (``SIZES``): ``tiny`` is the test suite's (seconds; too small to judge the claim);
``quick`` 1,000 digits at 7x7, width 64
(64 features, P = 8,010), 1,500 SGD steps (bs 50, lr 0.05, momentum 0.9); ``full`` 5,000 digits
at 14x14, width 128 (P ~ 43,000), 5,000 steps.
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

NAME = "papyan2020_spikes"
CLAIMS = ("P20-1",)
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"num_samples": 200, "image_size": 7, "width": 16, "steps": 100},
    "quick": {"num_samples": 1000, "image_size": 7, "width": 64, "steps": 1500},
    "full": {"num_samples": 5000, "image_size": 14, "width": 128, "steps": 5000},
}
TRAIN = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "batch_size": 50}


def run(size: str = "quick", *, out: str | Path, seed: int = 0, device: str = "cpu") -> dict:
    cfg = SIZES[size]
    ds = C.mnist(cfg["num_samples"], image_size=cfg["image_size"], seed=seed, device=device)
    K = ds.num_classes
    model = C.mlp(ds, cfg["width"], seed=seed, device=device)
    log = C.fit(model, ds, steps=cfg["steps"], seed=seed, **TRAIN)
    phi = C.hidden_features(model, ds.train_inputs)[-1]
    feat = np.linalg.eigvalsh(phi.T @ phi / phi.shape[0])[::-1]
    G = gt.ggn_operator(model, ds.train, dtype=torch.float64)
    topG = gt.lanczos(G, 3 * K + 1, seed=seed).eigenvalues
    c_feat, c_G = C.outlier_count(feat, K), C.outlier_count(topG, K)
    passed = c_feat in (K, K - 1) and c_G in (K, K - 1)

    fig, (ax1, ax2) = C.new_figure(ncols=2, size=(10.5, 4.0))
    for ax, ev, name, c in ((ax1, feat, "penultimate-feature second moment", c_feat),
                            (ax2, topG, "G (second moment of logit gradients), top 3C+1", c_G)):
        ax.semilogy(np.arange(1, ev.size + 1), np.maximum(ev, 1e-300), "o", ms=3)
        ax.axvline(K + 0.5, color="0.6", ls=":", label="rank C")
        if c:
            ax.axvline(c + 0.5, color="C3", ls="--", label=f"gap rule: {c}")
        ax.set_xlabel("rank (descending)")
        ax.set_ylabel("eigenvalue")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=8)

    def ratios(ev: np.ndarray) -> list[float]:
        return (ev[: 2 * K][:-1] / ev[1: 2 * K]).tolist()

    evidence = "" if passed else (
        f"gap-rule counts: features {c_feat}, G {c_G}; consecutive ratios of the features' top "
        f"2C {C.fmt(ratios(feat))}, of G's {C.fmt(ratios(topG))}; final train accuracy "
        f"{C.fmt(log.accuracy[-1])}.")
    row = C.claim_row(
        "P20-1", measured=f"spikes (gap rule): features {c_feat}, G {c_G} (C = {K})",
        criterion="gt.outliers counts C or C - 1 in the feature second moment and in G",
        passed=passed, figure=f"{NAME}.png", evidence=evidence,
        values={"features_top": feat[: 2 * K], "G_top": topG, "count_features": c_feat,
                "count_G": c_G},
        setting=f"MNIST {cfg['num_samples']} at {cfg['image_size']}x{cfg['image_size']}, width "
                f"{cfg['width']} (P = {G.num_params}), SGD bs 50 lr 0.05 momentum 0.9, "
                f"{cfg['steps']} steps")
    numbers = {"script": NAME, "size": size, "config": cfg, "claims": [row],
               "final_accuracy": float(log.accuracy[-1])}
    C.write_outputs(NAME, out, numbers, {NAME: fig})
    return numbers


def main(argv: list[str] | None = None) -> int:
    return C.script_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
