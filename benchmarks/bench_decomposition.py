"""Benchmark gn_theory.decomposition: the C largest GGN eigenvalues by the class-mean Gram route.

One process, the reference problem of ``bench_spectra.py`` (a ReLU MLP on a 10-class Gaussian
mixture, briefly trained; float32 passes), C = 10:

* **Gram route**: ``class_structure(model, data)`` (GGN operator construction with its validation
  pass, the streaming pass for the C^2 class means, the Gram matrices) and the top C eigenvalues of
  the class-mean part G_cm from its C^2 x C^2 Gram matrix. These are the exact eigenvalues of G_cm,
  *not* of G: the script reports how far they are from the top C of G.
* **Lanczos on G**: gn_theory's ``spectra.lanczos`` on ``ggn_operator``; scipy ``eigsh`` on
  gn_theory's ``ggn_operator`` and on curvlinops' ``GGNLinearOperator`` (if installed), each at
  ``--tol`` (default 1e-6 relative residual), k = C.
* the three ways of batching the class-mean VJPs (``method="class_split" | "masked" | "loop"``).
* the cost of the streaming pass in full-data gradients, and its (in)dependence on the batch size.

Reference top-C of G: gn_theory Lanczos at tol 1e-9 with a float64 basis. Each timed item is run
``--repeats`` times, interleaved, median.

Usage::

    python benchmarks/bench_decomposition.py            # P = 204,810, N = 2000 (~5-10 min, 2 cores)
    python benchmarks/bench_decomposition.py --quick    # P = 85,002, N = 1000
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from torch.func import grad

import gn_theory as gt
from gn_theory import spectra
from gn_theory.data import batches, gaussian_mixture
from gn_theory.decomposition import class_structure
from gn_theory.models import mlp, train


def build(sizes, n, seed=0):
    """The reference problem of bench_spectra.py."""
    X, y = gaussian_mixture(n, sizes[0], sizes[-1], seed=seed, noise=2.0)
    model = mlp(sizes, seed=seed)
    train(model, (X, y), steps=150, lr=0.05, batch_size=128, seed=seed)
    model.eval()
    return model, X, y


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def load():
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:  # pragma: no cover
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--batch-size", type=int, default=None, help="batch size of the data (default one batch)")
    ap.add_argument("--loose-tol", type=float, default=1e-2,
                    help="tolerance of a second, loose Lanczos run (accuracy comparable to the "
                    "Gram route's deviation from G)")
    ap.add_argument("--no-curvlinops", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sizes, n = ([64, 256, 256, 10], 1000) if args.quick else ([100, 400, 400, 10], 2000)
    model, X, y = build(sizes, n)
    C = sizes[-1]
    data = (X, y) if args.batch_size is None else batches(X, y, args.batch_size)
    P = sum(p.numel() for p in model.parameters())
    print(f"# MLP {sizes}, P = {P}, N = {n}, C = {C}, float32, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; load before: {load()}")

    G = gt.ggn_operator(model, data)
    # reference: top C of G, tight
    ref = spectra.lanczos(G, C, tol=1e-9, seed=1, dtype=torch.float64, return_eigenvectors=False)
    ref_vals = ref.eigenvalues  # descending
    print(f"# reference top-{C} of G ({ref.num_matvecs} products, converged {ref.num_converged}/{C}): "
          + ", ".join(f"{v:.5g}" for v in ref_vals))

    def rel(vals, k=C):
        vals = np.sort(np.asarray(vals, float))[::-1][:k]
        return float(np.max(np.abs(vals - ref_vals[:k]) / np.abs(ref_vals[:k])))

    # ---------------------------------------------------------------- runners
    runners = {}

    def gram():
        cs = class_structure(model, data)
        return cs.eigenvalues("G_cm")[:C], cs

    runners["Gram route (class_structure + eig K)"] = gram

    def ours():
        op = gt.ggn_operator(model, data)
        s = spectra.lanczos(op, C, tol=args.tol, seed=0, return_eigenvectors=False, warn=False)
        return s.eigenvalues, s.num_matvecs

    runners["gn_theory lanczos on G"] = ours

    def ours_loose():
        op = gt.ggn_operator(model, data)
        s = spectra.lanczos(op, C, tol=args.loose_tol, seed=0, return_eigenvectors=False,
                            warn=False)
        return s.eigenvalues, s.num_matvecs

    runners[f"gn_theory lanczos on G, tol {args.loose_tol:g}"] = ours_loose

    from scipy.sparse.linalg import eigsh

    def ours_eigsh():
        op = gt.ggn_operator(model, data)
        w = eigsh(op, C, which="LA", tol=args.tol, return_eigenvectors=False)
        return w, op.matvecs

    runners["scipy eigsh on gn_theory ggn_operator"] = ours_eigsh

    if not args.no_curvlinops:
        try:
            from curvlinops import GGNLinearOperator

            def curv():
                params = [p for p in model.parameters() if p.requires_grad]
                batches_ = [data] if isinstance(data, tuple) else data
                op = GGNLinearOperator(model, torch.nn.CrossEntropyLoss(reduction="mean"), params,
                                       batches_, check_deterministic=False).to_scipy()
                w = eigsh(op, C, which="LA", tol=args.tol, return_eigenvectors=False)
                return w, None

            runners["scipy eigsh on curvlinops GGNLinearOperator"] = curv
        except ImportError as exc:
            print(f"# curvlinops unavailable: {exc}")

    times = {k: [] for k in runners}
    results = {}
    for r in range(args.repeats):
        for name, fn in runners.items():
            out, t = timed(fn)
            times[name].append(t)
            results[name] = out
        print(f"# repeat {r + 1}/{args.repeats} done; load {load()}")

    base = statistics.median(times["Gram route (class_structure + eig K)"])
    cs = results["Gram route (class_structure + eig K)"][1]
    print(f"\n## top-{C} GGN eigenvalues (median of {args.repeats}; tol {args.tol:g} for the iterative ones)")
    print(f"| method | products | max rel. dev. from top-{C} of G | same, top-{C - 1} | time [s] "
          "| time / Gram route |")
    print("|---|---|---|---|---|---|")
    for name in runners:
        vals, mv = results[name]
        if name.startswith("Gram"):
            mv_s = f"{cs.num_matvecs} VJPs"
        else:
            mv_s = "?" if mv is None else str(mv)
        t = statistics.median(times[name])
        print(f"| {name} | {mv_s} | {rel(vals):.2e} | {rel(vals, C - 1):.2e} | {t:.2f} "
              f"| {t / base:.1f} |")
    print("\nG_cm top C :", ", ".join(f"{v:.5g}" for v in cs.eigenvalues("G_cm")[:C]))
    print("G_1 (C)    :", ", ".join(f"{v:.5g}" for v in cs.eigenvalues("G_1")))
    print("G top C    :", ", ".join(f"{v:.5g}" for v in ref_vals))
    print(f"streaming pass alone: {cs.seconds:.2f} s; loss {cs.loss_value:.4f}")

    # ---------------------------------------------------------------- cost of the streaming pass
    def one_gradient():
        acc = None
        for _, x, yy in G.data:
            g = grad(lambda t: G.loss.sum(G.function(t, x), yy))(G.function.theta)
            acc = g if acc is None else acc + g
        return acc

    def gradient():  # median of 5 calls, after a warm-up call
        one_gradient()
        ts = [timed(one_gradient)[1] for _ in range(5)]
        return None, statistics.median(ts)

    print("\n## streaming pass: VJP batching methods and batch sizes (median of repeats)")
    configs = [("class_split", None), ("masked", None), ("loop", None)]
    configs += [("class_split", b) for b in (100, 500)]
    tg, ts = [], {c: [] for c in configs}
    for _ in range(args.repeats):
        tg.append(gradient()[1])
        for meth, b in configs:
            d = (X, y) if b is None else batches(X, y, b)
            ts[(meth, b)].append(class_structure(model, d, method=meth).seconds)
    g_t = statistics.median(tg)
    print(f"one full-data gradient (torch.func.grad): {g_t:.3f} s")
    print("| method | batch size | streaming pass [s] | in gradients | per class (C = %d) |" % C)
    print("|---|---|---|---|---|")
    for meth, b in configs:
        t = statistics.median(ts[(meth, b)])
        print(f"| {meth} | {b or n} | {t:.2f} | {t / g_t:.1f} | {t / g_t / C:.2f} |")
    print(f"\n# load after: {load()}")


if __name__ == "__main__":
    main()
