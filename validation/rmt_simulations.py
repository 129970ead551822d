"""The random-matrix formulas and fits of ``gn_theory.rmt`` against simulations with known truth.

Reproduces the numeric checks of docs/theory.md sections 4.5 and 8 (not a paper claim: the ground the
paper-reproducing scripts stand on):

- multiplicative BBP: spike theta = 2 (ell = 3), p = 800, n = 1600, averaged over 5 seeds, against
  ``bbp_outlier`` and ``bbp_overlap``;
- ``fit_marchenko_pastur`` on planted truth: p = 600, n = 1500, sigma^2 = 2.3 with spikes 9, 4, 0.3;
  and p = 1200, n = 400, sigma^2 = 0.8 (an atom at zero), by moments and by KS;
- coverage of the 95 % interval of the scale with ``bootstrap="wishart"`` over 40 seeds.

Pass criterion: outlier within 3 % and overlap within 0.05 of the limits; fitted parameters within
2 % of the truth; coverage at least 0.8.

Run: ``python validation/rmt_simulations.py`` (about 30 s on 2 cores; ``--quick``: smaller sizes
and fewer seeds, looser checks, a few seconds). Writes ``rmt_simulations.json`` to ``--out``.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
from _common import parser, save

from gn_theory.rmt import (
    bbp_outlier,
    bbp_overlap,
    fit_marchenko_pastur,
    sample_covariance_eigenvalues,
)


def main(argv=None) -> int:
    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    warnings.simplefilter("ignore")
    q = args.quick
    numbers: dict = {"quick": bool(q), "checks": {}}
    checks = numbers["checks"]

    p, n, seeds = (200, 400, 3) if q else (800, 1600, 5)
    runs = [sample_covariance_eigenvalues(p, n, spikes=[2.0], seed=s, return_vectors=True)
            for s in range(seeds)]
    top = float(np.mean([ev[0] for ev, _ in runs]))  # eigenvalues descending
    ov = float(np.mean([o[0] for _, o in runs]))
    pred, pred_ov = float(bbp_outlier(2.0, 0.5)), float(bbp_overlap(2.0, 0.5))
    checks["bbp_multiplicative"] = bool(abs(top / pred - 1) < (0.05 if q else 0.03)
                                        and abs(ov - pred_ov) < (0.1 if q else 0.05))
    numbers["bbp_multiplicative"] = {"p": p, "n": n, "seeds": seeds, "outlier": top,
                                     "predicted": pred, "overlap": ov, "predicted_overlap": pred_ov}
    print(f"multiplicative theta=2, p={p}, n={n}, {seeds} seeds: outlier {top:.4f} vs {pred:.4f}, "
          f"overlap {ov:.3f} vs {pred_ov:.3f}")

    rng = np.random.default_rng(args.seed)
    k = 4 if q else 1
    cases = [
        ("planted", (2.3, 0.4),
         sample_covariance_eigenvalues(600 // k, 1500 // k, scale=2.3, spikes=[9, 4, 0.3], seed=0)),
        ("atom", (0.8, 3.0),
         sample_covariance_eigenvalues(1200 // k, 400 // k, scale=0.8, seed=0)
         + 1e-9 * rng.standard_normal(1200 // k)),
    ]
    numbers["fits"] = []
    for name, truth, ev in cases:
        for method in ("moments", "ks"):
            fit = fit_marchenko_pastur(ev, method=method, num_bootstrap=0)
            err = float(np.abs(fit.params / np.array(truth) - 1).max())
            checks[f"fit_{name}_{method}"] = err < (0.05 if q else 0.02)
            numbers["fits"].append({"case": name, "method": method, "size": ev.size,
                                    "truth": truth, "params": fit.params.tolist(),
                                    "ks": fit.ks_statistic, "zero_count_ratio": fit.atom_ratio})
            print(f"{name} (p={ev.size}), {method}: (scale, ratio) = ({fit.scale:.4f}, "
                  f"{fit.ratio:.4f}) vs {truth}, KS {fit.ks_statistic:.4f}, zero-count ratio "
                  f"{fit.atom_ratio:.4f}")

    reps = 10 if q else 40
    cover = []
    for s in range(reps):
        ev = sample_covariance_eigenvalues(100, 250, scale=1.0, seed=100 + s)
        lo, hi = fit_marchenko_pastur(ev, bootstrap="wishart", num_bootstrap=30 if q else 100,
                                      seed=s).conf_int()[0]
        cover.append(bool(lo <= 1.0 <= hi))
    rate = float(np.mean(cover))
    checks["coverage"] = rate >= (0.6 if q else 0.8)
    numbers["coverage"] = {"seeds": reps, "rate": rate, "nominal": 0.95}
    print(f"95% interval of the scale (bootstrap='wishart', p=100, n=250), coverage over {reps} "
          f"seeds: {rate:.2f}")
    ok = all(checks.values())
    numbers["pass"] = ok
    save("rmt_simulations", args.out, numbers)
    for name, good in checks.items():
        print(f"  {name}: {'ok' if good else 'FAIL'}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
