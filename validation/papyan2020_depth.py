"""Papyan (JMLR 2020): class means separate from within-class variation with depth (P20-3).

Real MNIST, a deeper ReLU MLP (4 hidden layers) trained by SGD to ~100 % train accuracy; for the
input and every hidden layer's features, tr(Sigma_B) / tr(Sigma_W) (between-class over pooled
within-class covariance) and the mean pairwise cosine of the globally centred class means (a
simplex of C equal-norm means has -1/(C - 1)). The statistics are computed in
``validation/_common.py`` (gn_theory has no feature-statistics function; a gap, see the report).

Criterion (fixed from claims.md before the run): P20-3 "layers progressively separate
class-distinctive information from within-class variability and orthogonalise class means"
(expected: ratio rises with depth; cosines -> -1/(C-1)): the ratio increases from each hidden
layer to the next, and the mean cosine of the last hidden layer is closer to -1/(C - 1) than
that of the first hidden layer.

Sizes (``SIZES``): ``tiny`` is the test suite's (seconds; too small to judge the claim);
``quick`` 1,000 digits at 7x7,
width 64, depth 4, 2,000 SGD steps (bs 50, lr 0.05, momentum 0.9); ``full`` 5,000 digits at
14x14, width 128, depth 6, 6,000 steps; the claim is about depth, so the depth is the size that
matters.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: python validation/<script>.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from validation import _common as C

NAME = "papyan2020_depth"
CLAIMS = ("P20-3",)
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"num_samples": 200, "image_size": 7, "width": 16, "depth": 3, "steps": 100},
    "quick": {"num_samples": 1000, "image_size": 7, "width": 64, "depth": 4, "steps": 2000},
    "full": {"num_samples": 5000, "image_size": 14, "width": 128, "depth": 6, "steps": 6000},
}
TRAIN = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "batch_size": 50}


def run(size: str = "quick", *, out: str | Path, seed: int = 0, device: str = "cpu") -> dict:
    cfg = SIZES[size]
    ds = C.mnist(cfg["num_samples"], image_size=cfg["image_size"], seed=seed, device=device)
    K = ds.num_classes
    model = C.mlp(ds, cfg["width"], depth=cfg["depth"], seed=seed, device=device)
    log = C.fit(model, ds, steps=cfg["steps"], seed=seed, **TRAIN)
    y = ds.train_targets.cpu().numpy()
    stats = [C.class_separation(f, y) for f in C.hidden_features(model, ds.train_inputs)]
    ratios = [s["between_over_within"] for s in stats]
    cos = [s["mean_cosine"] for s in stats]
    target = -1.0 / (K - 1)
    hidden = ratios[1:]
    rises = all(b > a for a, b in zip(hidden, hidden[1:]))
    closer = abs(cos[-1] - target) < abs(cos[1] - target)
    passed = rises and closer

    fig, (ax1, ax2) = C.new_figure(ncols=2, size=(10.5, 4.0))
    layers = np.arange(len(stats))
    ax1.semilogy(layers, ratios, "o-")
    ax1.set_xlabel("layer (0 = input)")
    ax1.set_ylabel(r"tr $\Sigma_B$ / tr $\Sigma_W$")
    ax1.set_title("class separation by depth (Papyan 2020)")
    ax2.plot(layers, cos, "o-", label="mean cosine of centred class means")
    ax2.axhline(target, color="0.5", ls=":", label="-1/(C-1)")
    ax2.set_xlabel("layer (0 = input)")
    ax2.set_ylabel("cosine")
    ax2.legend(fontsize=8)
    row = C.claim_row(
        "P20-3", measured=f"tr S_B / tr S_W by layer (input first) {C.fmt(ratios)}; mean cosine "
                          f"{C.fmt(cos)} (simplex {C.fmt(target)})",
        criterion="ratio rises from each hidden layer to the next, and the last hidden layer's "
                  "mean cosine is closer to -1/(C-1) than the first hidden layer's",
        passed=passed, figure=f"{NAME}.png",
        values={"ratios": ratios, "cosines": cos, "simplex": target},
        evidence="" if passed else (
            ("" if rises else f"the ratio does not rise at every hidden layer ({C.fmt(hidden)}); ")
            + ("" if closer else f"the cosine moves {C.fmt(cos[1])} -> {C.fmt(cos[-1])}, not "
               f"towards {C.fmt(target)}; ") + f"final train accuracy {C.fmt(log.accuracy[-1])}."),
        setting=f"MNIST {cfg['num_samples']} at {cfg['image_size']}x{cfg['image_size']}, width "
                f"{cfg['width']}, depth {cfg['depth']}, SGD bs 50 lr 0.05 momentum 0.9, "
                f"{cfg['steps']} steps")
    numbers = {"script": NAME, "size": size, "config": cfg, "claims": [row], "layers": stats}
    C.write_outputs(NAME, out, numbers, {NAME: fig})
    return numbers


def main(argv: list[str] | None = None) -> int:
    return C.script_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
