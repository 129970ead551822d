"""The random-matrix formulas and fits of ``gn_theory.rmt`` against simulations with known truth (RMT-1).

Reproduces the numeric checks of THEORY.md sections 4.5 and 8 (not a paper claim: the ground the
paper-reproducing scripts stand on):

- multiplicative BBP: spike theta = 2 (ell = 3), p = 800, n = 1600, averaged over 5 seeds, against
  ``bbp_outlier`` and ``bbp_overlap``;
- ``fit_marchenko_pastur`` on planted truth: p = 600, n = 1500, sigma^2 = 2.3 with spikes 9, 4, 0.3;
  and p = 1200, n = 400, sigma^2 = 0.8 (an atom at zero), by moments and by KS;
- coverage of the 95 % interval of the scale with ``bootstrap="wishart"`` over 40 seeds.

Criterion (fixed before the run, claims.md RMT-1): outlier within 3 % and overlap within 0.05 of
the limits; fitted parameters within 2 % of the truth; coverage at least 0.8.

Sizes: ``quick`` the sizes above (about 30 s on 2 cores); ``full`` 100 coverage seeds;
``tiny`` (the test suite): p = 200, n = 400, 3 seeds, the fits at a quarter of the size, 10
coverage seeds, with looser limits (5 %, 0.1, 5 %, 0.6) that such sizes can meet. Writes
``rmt_simulations.json`` to ``--out``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python validation/<script>.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from gn_theory.rmt import (
    bbp_outlier,
    bbp_overlap,
    fit_marchenko_pastur,
    sample_covariance_eigenvalues,
)
from validation import _common as C

NAME = "rmt_simulations"
CLAIMS = ("RMT-1",)
SIZES = {
    "tiny": {"p": 200, "n": 400, "seeds": 3, "fit_divisor": 4, "reps": 10, "boot": 30,
             "tol_outlier": 0.05, "tol_overlap": 0.1, "tol_fit": 0.05, "coverage": 0.6},
    "quick": {"p": 800, "n": 1600, "seeds": 5, "fit_divisor": 1, "reps": 40, "boot": 100,
              "tol_outlier": 0.03, "tol_overlap": 0.05, "tol_fit": 0.02, "coverage": 0.8},
    "full": {"p": 800, "n": 1600, "seeds": 5, "fit_divisor": 1, "reps": 100, "boot": 100,
             "tol_outlier": 0.03, "tol_overlap": 0.05, "tol_fit": 0.02, "coverage": 0.8},
}


def run(size: str = "quick", *, out: str | Path, seed: int = 0, device: str = "cpu") -> dict:
    cfg = SIZES[size]
    warnings.simplefilter("ignore")
    numbers: dict = {"script": NAME, "size": size, "quick": size != "full", "checks": {}}
    checks = numbers["checks"]

    p, n, seeds = cfg["p"], cfg["n"], cfg["seeds"]
    runs = [sample_covariance_eigenvalues(p, n, spikes=[2.0], seed=s, return_vectors=True)
            for s in range(seeds)]
    top = float(np.mean([ev[0] for ev, _ in runs]))  # eigenvalues descending
    ov = float(np.mean([o[0] for _, o in runs]))
    pred, pred_ov = float(bbp_outlier(2.0, 0.5)), float(bbp_overlap(2.0, 0.5))
    checks["bbp_multiplicative"] = bool(abs(top / pred - 1) < cfg["tol_outlier"]
                                        and abs(ov - pred_ov) < cfg["tol_overlap"])
    numbers["bbp_multiplicative"] = {"p": p, "n": n, "seeds": seeds, "outlier": top,
                                     "predicted": pred, "overlap": ov, "predicted_overlap": pred_ov}
    print(f"multiplicative theta=2, p={p}, n={n}, {seeds} seeds: outlier {top:.4f} vs {pred:.4f}, "
          f"overlap {ov:.3f} vs {pred_ov:.3f}")

    rng = np.random.default_rng(seed)
    k = cfg["fit_divisor"]
    cases = [
        ("planted", (2.3, 0.4),
         sample_covariance_eigenvalues(600 // k, 1500 // k, scale=2.3, spikes=[9, 4, 0.3], seed=0)),
        ("atom", (0.8, 3.0),
         sample_covariance_eigenvalues(1200 // k, 400 // k, scale=0.8, seed=0)
         + 1e-9 * rng.standard_normal(1200 // k)),
    ]
    numbers["fits"] = []
    worst_fit = 0.0
    for name, truth, ev in cases:
        for method in ("moments", "ks"):
            fit = fit_marchenko_pastur(ev, method=method, num_bootstrap=0)
            err = float(np.abs(fit.params / np.array(truth) - 1).max())
            worst_fit = max(worst_fit, err)
            checks[f"fit_{name}_{method}"] = err < cfg["tol_fit"]
            numbers["fits"].append({"case": name, "method": method, "size": ev.size,
                                    "truth": truth, "params": fit.params.tolist(),
                                    "ks": fit.ks_statistic, "zero_count_ratio": fit.atom_ratio})
            print(f"{name} (p={ev.size}), {method}: (scale, ratio) = ({fit.scale:.4f}, "
                  f"{fit.ratio:.4f}) vs {truth}, KS {fit.ks_statistic:.4f}, zero-count ratio "
                  f"{fit.atom_ratio:.4f}")

    cover = []
    for s in range(cfg["reps"]):
        ev = sample_covariance_eigenvalues(100, 250, scale=1.0, seed=100 + s)
        lo, hi = fit_marchenko_pastur(ev, bootstrap="wishart", num_bootstrap=cfg["boot"],
                                      seed=s).conf_int()[0]
        cover.append(bool(lo <= 1.0 <= hi))
    rate = float(np.mean(cover))
    checks["coverage"] = rate >= cfg["coverage"]
    numbers["coverage"] = {"seeds": cfg["reps"], "rate": rate, "nominal": 0.95}
    print(f"95% interval of the scale (bootstrap='wishart', p=100, n=250), coverage over "
          f"{cfg['reps']} seeds: {rate:.2f}")
    ok = all(checks.values())
    numbers["pass"] = ok

    fig, (ax1, ax2) = C.new_figure(ncols=2, size=(10.0, 3.8))
    ev0 = runs[0][0]
    ax1.hist(ev0, bins=60, color="C0")
    ax1.axvline(pred, color="C3", ls="--", label=f"BBP outlier {pred:.3f}")
    ax1.set_xlabel("eigenvalue")
    ax1.set_ylabel("count")
    ax1.set_title(f"spiked covariance p = {p}, n = {n}")
    ax1.legend(fontsize=8)
    names = [f"{f['case']}/{f['method']}" for f in numbers["fits"]]
    errs = [float(np.abs(np.array(f["params"]) / np.array(f["truth"]) - 1).max())
            for f in numbers["fits"]]
    ax2.bar(names, errs, color="C1")
    ax2.axhline(cfg["tol_fit"], color="0.4", ls=":", label="limit")
    ax2.set_ylabel("largest relative error of (scale, ratio)")
    ax2.set_title(f"MP fits; interval coverage {rate:.2f}")
    ax2.tick_params(axis="x", labelsize=7)
    ax2.legend(fontsize=8)
    failed = [k for k, v in checks.items() if not v]
    row = C.claim_row(
        "RMT-1", measured=f"BBP outlier {C.fmt(top)} vs {C.fmt(pred)}, overlap {C.fmt(ov)} vs "
                          f"{C.fmt(pred_ov)}; worst fit error {C.fmt(worst_fit)}; coverage "
                          f"{C.fmt(rate)}",
        criterion=f"outlier within {cfg['tol_outlier']:.0%}, overlap within "
                  f"{cfg['tol_overlap']}, fitted parameters within {cfg['tol_fit']:.0%}, "
                  f"coverage >= {cfg['coverage']}", passed=ok, figure=f"{NAME}.png",
        values={"checks": checks},
        evidence="" if ok else f"failed checks: {failed}",
        setting=f"p = {p}, n = {n}, {seeds} seeds; fits at 1/{k} of the planted sizes; "
                f"{cfg['reps']} coverage seeds")
    numbers["claims"] = [row]
    C.write_outputs(NAME, out, numbers, {NAME: fig})
    for name, good in checks.items():
        print(f"  {name}: {'ok' if good else 'FAIL'}")
    return numbers


def main(argv: list[str] | None = None) -> int:
    return C.script_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
