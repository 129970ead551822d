"""The main job's densities of H on the real-MNIST problem: plain SLQ against deflated settings.

The pipeline (``gn_theory.analysis.measure_model``) computes the top 3C = 30 eigenpairs of H
anyway; this measures what its density step costs and how accurate it is with them deflated
(``spectral_density(H, deflate=top30, ...)``) against the former plain ``slq`` 10 x 128, with
the exact spectrum from ``eigh``: W1 / spectral range and the log-scale W1 of
``bench_spectra.py`` (``accuracy``), mean over seeds, median time, float64 as the pipeline.

Usage::

    python benchmarks/bench_pipeline_density.py --threads 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_spectra as B  # noqa: E402  (the same problem and accuracy measures)

import gn_theory as gt  # noqa: E402
from gn_theory import spectra  # noqa: E402

SETTINGS = [(1, 128), (2, 80), (2, 128), (4, 128), (10, 128)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--out", type=Path, default=B.RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    load0 = B.load_average()
    net, X, y = B.build_mnist()
    H = gt.hessian_operator(net, (X, y), dtype=torch.float64)
    exact = np.linalg.eigvalsh(H.to_dense().numpy())[::-1]
    top, t_top = B.timed(spectra.lanczos, H, 30, seed=0)
    print(f"# real MNIST, P = {exact.size}; top 30 of H: {top.num_matvecs} products, {t_top:.2f} s; "
          f"lambda_1 = {exact[0]:.4g}, lambda_31 = {exact[30]:.4g}, lambda_min = {exact[-1]:.4g}; "
          f"load average {load0}")
    jobs = {"slq 10 x 128 (the former pipeline)":
            lambda s: spectra.slq(H, num_probes=10, num_steps=128, seed=s)}
    for nv, m in SETTINGS:
        jobs[f"spectral_density, top 30 deflated, {nv} x {m}"] = (
            lambda s, nv=nv, m=m: spectra.spectral_density(H, deflate=top, num_probes=nv,
                                                            num_steps=m, seed=s))
    rows = {}
    print("| method | products | time [s] | time / former | W1/range | log-W1 |")
    print("|---|---|---|---|---|---|")
    base = None
    for name, fn in jobs.items():
        pts = []
        for s in range(args.seeds):
            d, t = B.timed(fn, s)
            w1, lw = B.accuracy(list(d.nodes), list(d.weights), exact)
            pts.append((w1, lw, t, d.num_matvecs))
        a = np.array(pts)
        r = {"products": float(a[:, 3].mean()), "seconds": float(np.median(a[:, 2])),
             "w1_rel": float(a[:, 0].mean()), "log_w1": float(a[:, 1].mean())}
        base = base or r["seconds"]
        r["ratio_to_former"] = r["seconds"] / base
        rows[name] = r
        print(f"| {name} | {r['products']:.0f} | {r['seconds']:.2f} | {r['ratio_to_former']:.2f} | "
              f"{r['w1_rel']:.2e} | {r['log_w1']:.3f} |", flush=True)
    out = {"command": "python benchmarks/bench_pipeline_density.py " + " ".join(argv or sys.argv[1:]),
           "threads": torch.get_num_threads(), "load_average_start": load0,
           "load_average_end": B.load_average(), "num_params": int(exact.size),
           "top30": {"products": top.num_matvecs, "seconds": t_top},
           "lambda_1": float(exact[0]), "lambda_31": float(exact[30]),
           "lambda_min": float(exact[-1]), "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_pipeline_density.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
