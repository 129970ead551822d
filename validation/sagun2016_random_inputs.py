"""Sagun, Bottou & LeCun (2016), Fig. 2: MNIST against random inputs with the same labels (S16-2).

The same net as Fig. 1 (2 hidden ReLU layers, softmax cross-entropy) on real MNIST digits and on
Gaussian noise of the same overall mean and standard deviation with the same labels
(``load_dataset(..., random_inputs=True)``, the paper's control); the exact float64 Hessian at a
random initialisation (no training) and after training (SGD until the training accuracy stops
rising or the budget ends), the same initialisation for both inputs.

Criterion (fixed from claims.md before the run): S16-2 "data changes the spectrum: random-input
spectra differ from MNIST ones, at init and at the end" (expected: top eigenvalues / outlier
structure differ markedly; bulk at 0 similar). At init AND at the end: the top eigenvalues
differ markedly -- lambda_1(MNIST) / lambda_1(random) >= 2 or <= 1/2, or the package's outlier
rule (``gt.outliers``) counts a different number of outliers -- and the near-zero fractions
(|lambda| < 1e-3 lambda_max) agree within 0.1.

Sizes (``SIZES``): ``tiny`` is the test suite's (seconds; too small to judge the claim);
``quick`` 500 digits (50 per class) at 7x7,
width 16 (P = 1,242), 3,000 SGD steps (batch 50, lr 0.1, momentum 0.9): enough for the random
labels to be partly memorised, so the end state is a trained one for both inputs; ``full``
2,000 digits at 14x14, width 16 (P = 3,594), 8,000 steps.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: python validation/<script>.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from validation import _common as C

NAME = "sagun2016_random_inputs"
CLAIMS = ("S16-2",)
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"num_samples": 100, "image_size": 7, "width": 4, "steps": 50},
    "quick": {"num_samples": 500, "image_size": 7, "width": 16, "steps": 3000},
    "full": {"num_samples": 2000, "image_size": 14, "width": 16, "steps": 8000},
}
TRAIN = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "batch_size": 50}


def run(size: str = "quick", *, out: str | Path, seed: int = 0, device: str = "cpu") -> dict:
    cfg = SIZES[size]
    data = {
        "MNIST": C.mnist(cfg["num_samples"], image_size=cfg["image_size"], seed=seed,
                         device=device),
        "random inputs": C.mnist(cfg["num_samples"], image_size=cfg["image_size"], seed=seed,
                                 random_inputs=True, device=device),
    }
    K = 10
    res: dict[str, dict[str, Any]] = {}
    spectra: dict[tuple[str, str], np.ndarray] = {}
    for name, ds in data.items():
        model = C.mlp(ds, cfg["width"], seed=seed, device=device)  # the same init for both
        ev0 = C.dense_eigenvalues(model, ds.train)
        log = C.fit(model, ds, steps=cfg["steps"], seed=seed, **TRAIN)
        ev1 = C.dense_eigenvalues(model, ds.train)
        spectra[(name, "init")], spectra[(name, "end")] = ev0, ev1
        res[name] = {
            "final_loss": float(log.loss[-1]), "final_accuracy": float(log.accuracy[-1]),
            "num_params": C.num_parameters(model),
            **{f"{when}_{k}": v for when, ev in (("init", ev0), ("end", ev1)) for k, v in {
                "top": ev[:K + 2], "lambda_1": float(ev[0]),
                "outliers": C.outlier_count(ev, K),
                "near_zero_fraction": C.near_zero_fraction(ev),
                "min_eigenvalue": float(ev[-1])}.items()},
        }
    m, r = res["MNIST"], res["random inputs"]
    verdicts = {}
    for when in ("init", "end"):
        ratio = m[f"{when}_lambda_1"] / r[f"{when}_lambda_1"]
        differ = ratio >= 2 or ratio <= 0.5 or m[f"{when}_outliers"] != r[f"{when}_outliers"]
        gap = abs(m[f"{when}_near_zero_fraction"] - r[f"{when}_near_zero_fraction"])
        verdicts[when] = {"lambda_1_ratio": ratio, "top_differ": bool(differ),
                          "near_zero_gap": gap, "bulk_similar": bool(gap <= 0.1)}
    passed = all(v["top_differ"] and v["bulk_similar"] for v in verdicts.values())

    fig, axes = C.new_figure(ncols=2, size=(10.5, 4.0))
    for ax, when in zip(axes, ("init", "end")):
        for name in data:
            ev = spectra[(name, when)]
            ax.plot(np.arange(1, ev.size + 1), ev, ".", ms=3, label=name)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1e-5)
        ax.set_xlabel("rank (descending)")
        ax.set_ylabel("Hessian eigenvalue")
        ax.set_title(f"{'at initialisation' if when == 'init' else 'after training'} "
                     "(Sagun 2016 Fig. 2)")
        ax.legend(fontsize=8)

    measured = "; ".join(
        f"{when}: lambda_1 MNIST/random = {C.fmt(v['lambda_1_ratio'])}, outliers "
        f"{m[f'{when}_outliers']} vs {r[f'{when}_outliers']}, near-zero "
        f"{C.fmt(m[f'{when}_near_zero_fraction'])} vs {C.fmt(r[f'{when}_near_zero_fraction'])}"
        for when, v in verdicts.items())
    evidence = ""
    if not passed:
        bad = [f"{when}: " + ", ".join(
            (["top eigenvalues within a factor 2 and equal outlier counts"] if not v["top_differ"]
             else []) + ([f"near-zero fractions differ by {C.fmt(v['near_zero_gap'])}"]
                         if not v["bulk_similar"] else []))
            for when, v in verdicts.items() if not (v["top_differ"] and v["bulk_similar"])]
        const = data["MNIST"].settings["standardize"]["num_constant_features"]
        P = m["num_params"]
        evidence = ("; ".join(bad) + f". MNIST has {const} pixels constant over the training "
                    f"set (blank borders), whose {const * cfg['width']} first-layer weights "
                    f"({C.fmt(const * cfg['width'] / P)} of P) have exactly zero curvature: part "
                    "of MNIST's extra near-zero mass at init; "
                    f"final train accuracy MNIST {C.fmt(m['final_accuracy'])}, random "
                    f"{C.fmt(r['final_accuracy'])}, so the end states are also trained to "
                    "different degrees.")
    row = C.claim_row(
        "S16-2", measured=measured,
        criterion="at init and at the end: lambda_1(MNIST)/lambda_1(random) >= 2 or <= 1/2 or "
                  "different gt.outliers counts; and near-zero fractions within 0.1",
        passed=passed, values={"results": res, "verdicts": verdicts}, figure=f"{NAME}.png",
        evidence=evidence,
        setting=f"{cfg['num_samples']} samples at {cfg['image_size']}x{cfg['image_size']}, "
                f"width {cfg['width']}, SGD bs 50 lr 0.1 momentum 0.9, {cfg['steps']} steps")
    numbers = {"script": NAME, "size": size, "config": cfg, "train": TRAIN, "results": res,
               "verdicts": verdicts, "claims": [row]}
    C.write_outputs(NAME, out, numbers, {NAME: fig})
    return numbers


def main(argv: list[str] | None = None) -> int:
    return C.script_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
