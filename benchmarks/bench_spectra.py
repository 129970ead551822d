"""Benchmark gn_theory.spectra against PyHessian, curvlinops and hessian-eigenthings.

One process, one reference problem, the same full-batch operator for every tool:

* top-10 Hessian eigenvalues to ``--accuracy`` (1e-6) relative error against a tight float64
  reference: wall time and Hessian-vector products. Every tool is run on a ladder of its own
  stopping parameter (tolerance, or steps for solvers without one) and the cheapest setting that
  reaches the accuracy is timed again, interleaved with the others, ``--repeats`` times (median).
* an SLQ density with the same probes x steps: wall time on the big model, and accuracy
  (Wasserstein-1 distance of the quadrature measure to the exact spectrum) on a small model
  where ``eigh`` is possible.
* a trace estimate at the same number of products: mean |error| over seeds on the small model.

Notes on the peers (all on current torch 2.x):

* PyHessian 0.1's ``density()`` calls ``torch.eig``, removed in torch 2; this script patches
  ``torch.eig`` with an ``eigh``-based stand-in for the symmetric tridiagonal (the only use).
  PyHessian's ``hessian`` runs ``loss.backward(create_graph=True)`` on the model and calls
  ``model.eval()``: it gets its own copy of the model.
* hessian-eigenthings averages batch losses with equal weights (uneven batches would be
  mis-weighted) and PyHessian takes one batch: every tool gets the whole data set as one batch.

Usage::

    python benchmarks/bench_spectra.py              # ~5 min on 2 CPU cores
    python benchmarks/bench_spectra.py --quick      # smaller model, one repeat
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

import numpy as np
import torch

import gn_theory as gt
from gn_theory import spectra
from gn_theory.data import gaussian_mixture
from gn_theory.models import mlp, train


# ------------------------------------------------------------------------------------- problem
def build(sizes, n, seed=0):
    X, y = gaussian_mixture(n, sizes[0], sizes[-1], seed=seed, noise=2.0)
    model = mlp(sizes, seed=seed)
    train(model, (X, y), steps=150, lr=0.05, batch_size=128, seed=seed)
    model.eval()
    return model, X, y


def timed(fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t


# ------------------------------------------------------------------------------------- peers
def peers_available():
    out = {}
    for name in ("pyhessian", "curvlinops", "hessian_eigenthings"):
        try:
            __import__(name)
            out[name] = True
        except Exception as exc:  # noqa: BLE001 - report and skip
            print(f"# {name} unavailable: {exc}")
            out[name] = False
    return out


def patch_pyhessian():
    """torch.eig was removed in torch 2; PyHessian's density() only applies it to a
    symmetric tridiagonal, so an eigh-based stand-in with the old return layout is exact."""
    def eig(T, eigenvectors=False):
        w, V = torch.linalg.eigh(T)
        return torch.stack([w, torch.zeros_like(w)], 1), V

    torch.eig = eig


class Counter:
    def __init__(self):
        self.n = 0


def pyhessian_obj(model, X, y, counter):
    import sys

    import pyhessian  # noqa: F401

    ph = sys.modules["pyhessian.hessian"]  # the package re-exports the class under this name
    m = copy.deepcopy(model)
    h = ph.hessian(m, torch.nn.CrossEntropyLoss(), data=(X, y), cuda=False)
    orig = getattr(ph, "_uncounted_hvp", ph.hessian_vector_product)
    ph._uncounted_hvp = orig

    def counted(gradsH, params, v):
        counter.n += 1
        return orig(gradsH, params, v)

    ph.hessian_vector_product = counted
    return h


def curvlinops_op(model, X, y):
    from curvlinops import HessianLinearOperator

    params = [p for p in model.parameters() if p.requires_grad]
    return HessianLinearOperator(
        model, torch.nn.CrossEntropyLoss(reduction="mean"), params, [(X, y)],
        check_deterministic=False,
    )


def he_op(model, X, y):
    import hessian_eigenthings as he

    return he.HessianOperator(model, [(X, y)], he.supervised_loss(torch.nn.CrossEntropyLoss()))


class CountingHE:
    """Wrap a hessian-eigenthings operator to count products."""

    def __init__(self, op):
        self.op, self.n = op, 0

    def __getattr__(self, k):
        return getattr(self.op, k)

    def matvec(self, v):
        self.n += 1
        return self.op.matvec(v)

    __matmul__ = __call__ = matvec


# ------------------------------------------------------------------------------------- top-k
def rel_err(vals, ref):
    vals = np.sort(np.asarray(vals, float))[::-1][: ref.size]
    return float(np.max(np.abs(vals - ref) / np.abs(ref)))


def topk_runners(model, X, y, k, avail):
    """name -> (ladder, run(setting) -> (eigenvalues, matvecs))."""
    H = gt.hessian_operator(model, (X, y))
    out = {}

    def ours(tol):
        s = spectra.lanczos(H, k, tol=tol, seed=0, return_eigenvectors=False, warn=False)
        return s.eigenvalues, s.num_matvecs

    out["gn_theory"] = ([1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 1e-6], ours)
    if avail["curvlinops"]:
        from scipy.sparse.linalg import eigsh

        C = curvlinops_op(model, X, y).to_scipy()
        cnt = Counter()
        orig = C._matvec if hasattr(C, "_matvec") else None

        class Wrap(type(C)):
            pass

        from scipy.sparse.linalg import LinearOperator

        def mv(x):
            cnt.n += 1
            return C.matvec(x)

        def mm(Xm):
            cnt.n += Xm.shape[1]
            return C.matmat(Xm)

        L = LinearOperator(C.shape, matvec=mv, matmat=mm, dtype=C.dtype)
        del orig, Wrap

        def curv(tol):
            cnt.n = 0
            w = eigsh(L, k, which="LA", tol=tol, return_eigenvectors=False)
            return w, cnt.n

        out["curvlinops+eigsh"] = ([1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 1e-5, 1e-6], curv)
    if avail["hessian_eigenthings"]:
        import hessian_eigenthings as he

        op = CountingHE(he_op(model, X, y))

        def hel(steps):
            op.n = 0
            r = he.lanczos(op, k=k, max_iter=steps, which="LA", seed=0, reorthogonalize=True)
            return r.eigenvalues.detach().cpu().numpy(), op.n

        out["hessian-eigenthings"] = ([20, 25, 30, 35, 40, 50, 60, 80, 120], hel)
    if avail["pyhessian"]:
        cnt = Counter()
        h = pyhessian_obj(model, X, y, cnt)

        def pyh(tol):
            cnt.n = 0
            torch.manual_seed(0)
            w, _ = h.eigenvalues(maxIter=400, tol=tol, top_n=k)
            return np.array(w), cnt.n

        out["pyhessian"] = ([1e-6, 1e-8], pyh)
    return out


# ------------------------------------------------------------------------------------- slq
def slq_runners(model, X, y, probes, steps, avail):
    """name -> run() -> (nodes list, weights list) of every probe."""
    H = gt.hessian_operator(model, (X, y))
    out = {}

    def ours():
        d = spectra.slq(H, num_probes=probes, num_steps=steps, seed=0)
        return list(d.nodes), list(d.weights)

    out["gn_theory"] = ours
    if avail["hessian_eigenthings"]:
        import hessian_eigenthings as he

        op = he_op(model, X, y)

        def hes():
            r = he.spectral_density(op, num_runs=probes, lanczos_steps=steps, seed=0,
                                    num_grid_points=16)
            n = r.raw_eigenvalues.detach().cpu().numpy()
            w = r.raw_weights.detach().cpu().numpy()
            return [a[np.isfinite(a)] for a in n], [b[np.isfinite(a)] for a, b in zip(n, w)]

        out["hessian-eigenthings"] = hes
    if avail["pyhessian"]:
        patch_pyhessian()
        h = pyhessian_obj(model, X, y, Counter())

        def pyh():
            torch.manual_seed(0)
            n, w = h.density(iter=steps, n_v=probes)
            return [np.array(a) for a in n], [np.array(b) for b in w]

        out["pyhessian"] = pyh
    return out


def w1(nodes, weights, exact):
    from scipy.stats import wasserstein_distance

    x = np.concatenate(nodes)
    w = np.concatenate([np.asarray(b) / np.sum(b) for b in weights]) / len(weights)
    return wasserstein_distance(x, exact, w, None)


# ------------------------------------------------------------------------------------- trace
def trace_errors(model, X, y, exact_tr, nmv, seeds, avail):
    H = gt.hessian_operator(model, (X, y))
    errs = {}
    for method in ("hutchinson", "hutch++"):
        e = [abs(spectra.trace(H, method=method, num_matvecs=nmv, seed=s).estimate - exact_tr)
             for s in seeds]
        errs[f"gn_theory {method}"] = float(np.mean(e))
    if avail["hessian_eigenthings"]:
        import hessian_eigenthings as he

        op = he_op(model, X, y)
        for method in ("hutchinson", "hutch++"):
            e = [abs(he.trace(op, num_matvecs=nmv, method=method, seed=s).estimate - exact_tr)
                 for s in seeds]
            errs[f"hessian-eigenthings {method}"] = float(np.mean(e))
    if avail["pyhessian"]:
        h = pyhessian_obj(model, X, y, Counter())
        e = []
        for s in seeds:
            torch.manual_seed(s)
            e.append(abs(float(np.mean(h.trace(maxIter=nmv, tol=0.0))) - exact_tr))
        errs["pyhessian hutchinson"] = float(np.mean(e))
    if avail["curvlinops"]:
        from curvlinops import hutchpp_trace

        C = curvlinops_op(model, X, y)
        e = []
        for s in seeds:
            torch.manual_seed(s)
            e.append(abs(float(hutchpp_trace(C, nmv)) - exact_tr))
        errs["curvlinops hutch++"] = float(np.mean(e))
    return errs


# ------------------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--accuracy", type=float, default=1e-6)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--probes", type=int, default=10)
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--skip-topk", action="store_true", help="only the SLQ and trace parts")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    avail = peers_available()
    big = [64, 256, 256, 10] if args.quick else [100, 400, 400, 10]
    n_big = 1000 if args.quick else 2000
    repeats = 1 if args.quick else args.repeats
    model, X, y = build(big, n_big)
    P = sum(p.numel() for p in model.parameters())
    print(f"# reference problem: ReLU MLP {big}, P = {P}, N = {n_big}, 10 classes, float32, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")

    # per-product costs
    H = gt.hessian_operator(model, (X, y))
    f, loss = H.function, H.loss
    g = torch.func.grad(lambda t: loss.sum(f(t, X), y))
    g(f.theta)
    _, tg = timed(lambda: [g(f.theta) for _ in range(3)])
    tg /= 3
    v1, v10 = torch.randn(P, 1), torch.randn(P, 10)
    H @ v1
    _, t1 = timed(lambda: [H @ v1 for _ in range(3)])
    _, t10 = timed(lambda: H @ v10)
    print(f"# one gradient {tg * 1e3:.1f} ms; gn_theory HVP {t1 / 3 / tg:.2f} gradients single, "
          f"{t10 / 10 / tg:.2f} per vector in a block of 10")

    # float64 reference
    model64 = copy.deepcopy(model).double()
    H64 = gt.hessian_operator(model64, (X.double(), y))
    ref, tref = timed(spectra.lanczos, H64, args.k, tol=1e-10, seed=123,
                      return_eigenvectors=False, basis_size=60)
    ref_top = ref.eigenvalues.copy()  # descending
    print(f"# float64 reference: {ref.num_matvecs} products, {tref:.1f} s, converged "
          f"{ref.all_converged}; top-{args.k}: {np.array2string(ref_top, precision=4)}")

    # -- top-k: choose each tool's cheapest setting reaching the accuracy
    runners = {} if args.skip_topk else topk_runners(model, X, y, args.k, avail)
    chosen = {}
    for name, (ladder, run) in runners.items():
        for setting in ladder:
            (vals, mv), t = timed(run, setting)
            err = rel_err(vals, ref_top)
            print(f"#   {name:22s} setting {setting:<8g} products {mv:6d}  {t:7.2f} s  "
                  f"max rel err {err:.1e}")
            if err <= args.accuracy:
                chosen[name] = (setting, mv, err)
                break
        else:
            chosen[name] = (setting, mv, err)
    times = {name: [] for name in runners}
    if args.skip_topk:
        runners, chosen = {}, {}
    for _ in range(repeats):
        for name, (ladder, run) in runners.items():
            _, t = timed(run, chosen[name][0])
            times[name].append(t)
    print(f"\n## top-{args.k} Hessian eigenvalues to {args.accuracy:g} relative "
          f"(median of {repeats})")
    print("| tool | setting | HVPs | max rel err | time [s] | time ratio tool/gn_theory |"
          " HVP ratio |")
    print("|---|---|---|---|---|---|---|")
    base_t = statistics.median(times["gn_theory"]) if runners else 1.0
    base_mv = chosen["gn_theory"][1] if runners else 1
    for name in runners:
        s, mv, err = chosen[name]
        t = statistics.median(times[name])
        flag = "" if err <= args.accuracy else " (accuracy not reached)"
        print(f"| {name} | {s:g} | {mv} | {err:.1e}{flag} | {t:.2f} | {t / base_t:.1f} | "
              f"{mv / base_mv:.1f} |")

    # -- SLQ: time on the big model
    sl = slq_runners(model, X, y, args.probes, args.steps, avail)
    st = {name: [] for name in sl}
    for _ in range(repeats):
        for name, run in sl.items():
            _, t = timed(run)
            st[name].append(t)
    # -- SLQ accuracy and traces on a small model with an exact spectrum
    small = [16, 32, 32, 10]
    m_s, Xs, ys = build(small, 600, seed=1)
    Ps = sum(p.numel() for p in m_s.parameters())
    m_s64 = copy.deepcopy(m_s).double()
    exact = spectra.eigh(gt.hessian_operator(m_s64, (Xs.double(), ys))).eigenvalues
    steps_s = min(args.steps, Ps)
    sl_small = slq_runners(m_s, Xs, ys, args.probes, steps_s, avail)
    acc = {name: w1(*run(), exact) for name, run in sl_small.items()}
    print(f"\n## SLQ density, {args.probes} probes x {args.steps} steps (median of {repeats}); "
          f"W1 to the exact spectrum on a P = {Ps} model ({args.probes} x {steps_s}), "
          f"spectral range {exact.max() - exact.min():.3g}")
    print("| tool | time [s] | time ratio tool/gn_theory | W1 to exact (small model) |")
    print("|---|---|---|---|")
    b = statistics.median(st["gn_theory"])
    for name in sl:
        t = statistics.median(st[name])
        print(f"| {name} | {t:.2f} | {t / b:.1f} | {acc[name]:.2e} |")

    nmv = 60
    errs = trace_errors(m_s, Xs, ys, float(exact.sum()), nmv, range(5), avail)
    print(f"\n## trace at {nmv} HVPs, P = {Ps}, exact tr H = {exact.sum():.4g}: "
          "mean |error| over 5 seeds")
    print("| tool / method | mean abs error | ratio to gn_theory hutch++ |")
    print("|---|---|---|")
    for name, e in errs.items():
        print(f"| {name} | {e:.3g} | {e / errs['gn_theory hutch++']:.2f} |")


if __name__ == "__main__":
    main()
