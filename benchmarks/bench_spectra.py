"""Benchmark gn_theory.spectra against PyHessian, curvlinops and hessian-eigenthings.

One process, the same full-batch Hessian of the mean cross-entropy for every tool:

* **top-10** Hessian eigenvalues to ``--accuracy`` (1e-6) relative error against a tight float64
  reference on the big model: each tool on a ladder of its own stopping parameter; the cheapest
  setting reaching the accuracy is timed again, interleaved, ``--repeats`` times (median), with
  its peak memory.
* **density accuracy-time curves** on two models small enough for ``eigh`` (the mixture MLP,
  P = 1,930, and the real-MNIST problem of the validation suite, P = 5,578): every tool on a
  ladder of probes x steps, six seeds each; Wasserstein-1 distance of the quadrature measure
  to the exact spectrum divided by the spectral range (``w1_rel``), the same distance on a
  symmetric log scale (``log_w1``, decades: ``sign(x) log10(1 + |x| / eps)``, eps = 1e-6 max|x|:
  how well the bulk near zero is resolved on Papyan's log-|lambda| axis), seconds and products.
* **density time and memory on the big model** at the peers' 10 probes x 80 steps and at
  gn_theory's ``spectral_density`` defaults (interleaved repeats, median; peak memory).
* **real-MNIST targets**: the smallest eigenvalues of H (plain Lanczos as the pipeline runs it,
  and on H with the top-3C eigenpairs deflated), and the density of the within-class part G_w
  (``slq`` 10 x 128 as the pipeline runs it, against ``spectral_density``), float64 as the
  pipeline, against ``eigh``.
* a trace estimate at the same number of products on the small model.

Writes ``benchmarks/results/bench_spectra.json`` (every figure) and
``benchmarks/results/bench_spectra.png`` (the accuracy-time curves and Papyan's log-scale
density side by side).

Peak memory is the growth of the process's peak resident set during one call (``VmHWM`` after
resetting it through ``/proc/self/clear_refs``; Linux only, else not reported).

Notes on the peers (all on current torch 2.x):

* PyHessian 0.1's ``density()`` calls ``torch.eig``, removed in torch 2; this script patches
  ``torch.eig`` with an ``eigh``-based stand-in for the symmetric tridiagonal (the only use).
  PyHessian's ``hessian`` runs ``loss.backward(create_graph=True)`` on the model and calls
  ``model.eval()``: it gets its own copy of the model.
* hessian-eigenthings averages batch losses with equal weights (uneven batches would be
  mis-weighted) and PyHessian takes one batch: every tool gets the whole data set as one batch.
* curvlinops has no SLQ with reorthogonalisation; its density is ``fast_lanczos`` (Papyan's
  algorithm without reorthogonalisation), one call per probe, timed without the ``eigsh`` range
  estimate ``lanczos_approximate_spectrum`` adds.

Usage::

    python benchmarks/bench_spectra.py --quick --threads 2   # big model P = 85,002
    python benchmarks/bench_spectra.py --threads 2           # big model P = 204,810
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.stats import wasserstein_distance

import gn_theory as gt
from gn_theory import spectra
from gn_theory.data import gaussian_mixture, load_dataset
from gn_theory.models import build_model, mlp, train
from gn_theory.results import SpectralDensity
from gn_theory.training import train as train_model

RESULTS = Path(__file__).resolve().parent / "results"
PEER_LADDER = [(1, 40), (2, 40), (2, 80), (5, 80), (10, 80), (10, 128)]
OURS_LADDER = [(1, 40), (2, 40), (1, 80), (2, 80), (4, 80), (2, 128), (4, 128)]
REFERENCE = (10, 80)  # the peers' setting of the issue
SEEDS = tuple(range(6))


# ------------------------------------------------------------------------------------- machine
def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def memory_mode() -> bool:
    """Serve every allocation of 64 KiB or more by mmap and return it on free (glibc).

    Otherwise freed heap memory stays resident and a later call's growth is hidden: the
    memory pass would depend on the order of the tools.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, 65536)) and bool(libc.mallopt(-1, 131072))  # mmap, trim
    except (OSError, AttributeError):
        return False


def _trim() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure(fn, *a, **kw):
    """(result, seconds, peak memory growth in bytes or None) of one call."""
    gc.collect()
    _trim()
    ok = _reset_peak()
    base = _status_kib("VmRSS")
    t = time.perf_counter()
    out = fn(*a, **kw)
    dt = time.perf_counter() - t
    peak = _status_kib("VmHWM")
    mem = None if not ok or base is None or peak is None else max(0, peak - base) * 1024
    return out, dt, mem


def timed(fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t


def mib(x):
    return "n/a" if x is None else f"{x / 2**20:.1f}"


# ------------------------------------------------------------------------------------- problems
def build_mixture(sizes, n, seed=0):
    X, y = gaussian_mixture(n, sizes[0], sizes[-1], seed=seed, noise=2.0)
    model = mlp(sizes, seed=seed)
    train(model, (X, y), steps=150, lr=0.05, batch_size=128, seed=seed)
    model.eval()
    return model, X, y


def build_mnist():
    """The real-MNIST problem of the validation suite (P = 5,578)."""
    ds = load_dataset("mnist", num_samples=1000, image_size=14, standardize=True, seed=0)
    net = build_model("mlp", input_shape=ds.input_shape, num_classes=10, width=24, depth=2,
                      seed=0)
    train_model(net, ds, optimizer="sgd", lr=0.05, momentum=0.9, batch_size=64, epochs=50,
                seed=0)
    net.eval()
    X, y = ds.train
    return net, X, y


def exact_hessian_spectrum(model, X, y):
    m64 = copy.deepcopy(model).double()
    return spectra.eigh(gt.hessian_operator(m64, (X.double(), y))).eigenvalues


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
        from scipy.sparse.linalg import LinearOperator, eigsh

        C = curvlinops_op(model, X, y).to_scipy()
        cnt = Counter()

        def mv(x):
            cnt.n += 1
            return C.matvec(x)

        def mm(Xm):
            cnt.n += Xm.shape[1]
            return C.matmat(Xm)

        L = LinearOperator(C.shape, matvec=mv, matmat=mm, dtype=C.dtype)

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


def run_topk(model, X, y, args, avail):
    model64 = copy.deepcopy(model).double()
    H64 = gt.hessian_operator(model64, (X.double(), y))
    ref, tref = timed(spectra.lanczos, H64, args.k, tol=1e-10, seed=123,
                      return_eigenvectors=False, basis_size=60)
    ref_top = ref.eigenvalues.copy()  # descending
    print(f"# float64 reference: {ref.num_matvecs} products, {tref:.1f} s, converged "
          f"{ref.all_converged}; top-{args.k}: {np.array2string(ref_top, precision=4)}")
    runners = topk_runners(model, X, y, args.k, avail)
    ladder_log, chosen = {}, {}
    for name, (ladder, run) in runners.items():
        ladder_log[name] = []
        for setting in ladder:
            (vals, mv), t = timed(run, setting)
            err = rel_err(vals, ref_top)
            ladder_log[name].append({"setting": setting, "products": mv, "seconds": t,
                                     "max_rel_err": err})
            print(f"#   {name:22s} setting {setting:<8g} products {mv:6d}  {t:7.2f} s  "
                  f"max rel err {err:.1e}")
            if err <= args.accuracy:
                chosen[name] = (setting, mv, err)
                break
        else:
            chosen[name] = (setting, mv, err)
    times = {name: [] for name in runners}
    for _ in range(args.repeats):
        for name, (_, run) in runners.items():
            _, t = timed(run, chosen[name][0])
            times[name].append(t)
    print(f"\n## top-{args.k} Hessian eigenvalues to {args.accuracy:g} relative "
          f"(median of {args.repeats})")
    print("| tool | setting | HVPs | max rel err | time [s] | time ratio tool/gn_theory |"
          " HVP ratio |")
    print("|---|---|---|---|---|---|---|")
    base_t = statistics.median(times["gn_theory"])
    base_mv = chosen["gn_theory"][1]
    rows = {}
    for name in runners:
        s, mv, err = chosen[name]
        t = statistics.median(times[name])
        flag = "" if err <= args.accuracy else " (accuracy not reached)"
        print(f"| {name} | {s:g} | {mv} | {err:.1e}{flag} | {t:.2f} | {t / base_t:.1f} | "
              f"{mv / base_mv:.1f} |")
        rows[name] = {"setting": s, "products": mv, "max_rel_err": err, "seconds": t,
                      "seconds_all": times[name], "time_ratio": t / base_t,
                      "product_ratio": mv / base_mv, "reached": err <= args.accuracy}
    return {"reference": {"eigenvalues": ref_top.tolist(), "products": ref.num_matvecs},
            "accuracy": args.accuracy, "ladders": ladder_log, "chosen": rows}


def _max_mem(values):
    vals = [v for v in values if v is not None]
    return max(vals) if vals else None


# ------------------------------------------------------------------------------------- density
def density_runners(model, X, y, avail):
    """name -> (ladder, run(num_probes, num_steps, seed) -> (nodes rows, weights rows, products))."""
    H = gt.hessian_operator(model, (X, y))
    out = {}

    def ours_deflated(nv, m, seed):
        d = spectra.spectral_density(H, deflate=10, num_probes=nv, num_steps=m, seed=seed)
        return list(d.nodes), list(d.weights), d.num_matvecs

    def ours_plain(nv, m, seed):
        d = spectra.slq(H, num_probes=nv, num_steps=m, seed=seed)
        return list(d.nodes), list(d.weights), d.num_matvecs

    out["gn_theory spectral_density"] = (OURS_LADDER, ours_deflated)
    out["gn_theory slq"] = (PEER_LADDER, ours_plain)
    if avail["hessian_eigenthings"]:
        import hessian_eigenthings as he

        op = he_op(model, X, y)

        def hes(nv, m, seed):
            r = he.spectral_density(op, num_runs=nv, lanczos_steps=m, seed=seed,
                                    num_grid_points=16)
            n = r.raw_eigenvalues.detach().cpu().numpy()
            w = r.raw_weights.detach().cpu().numpy()
            return ([a[np.isfinite(a)] for a in n], [b[np.isfinite(a)] for a, b in zip(n, w)],
                    nv * m)

        out["hessian-eigenthings"] = (PEER_LADDER, hes)
    if avail["pyhessian"]:
        patch_pyhessian()
        h = pyhessian_obj(model, X, y, Counter())

        def pyh(nv, m, seed):
            torch.manual_seed(seed)
            n, w = h.density(iter=m, n_v=nv)
            return [np.array(a) for a in n], [np.array(b) for b in w], nv * m

        out["pyhessian"] = (PEER_LADDER, pyh)
    if avail["curvlinops"]:
        from curvlinops.papyan2020traces.spectrum import fast_lanczos

        C = curvlinops_op(model, X, y)

        def curv(nv, m, seed):
            torch.manual_seed(seed)
            nodes, weights = [], []
            for _ in range(nv):
                ev, V = fast_lanczos(C, m)
                nodes.append(ev.detach().cpu().numpy())
                weights.append((V[0, :] ** 2).detach().cpu().numpy())
            return nodes, weights, nv * m

        out["curvlinops (no reorth.)"] = (PEER_LADDER, curv)
    return out


def _measure_of(nodes, weights):
    x = np.concatenate([np.asarray(a, float) for a in nodes])
    w = np.concatenate([np.asarray(b, float) / np.sum(b) for b in weights]) / len(weights)
    return x, w


def symlog(x, eps):
    return np.sign(x) * np.log10(1.0 + np.abs(x) / eps)


def accuracy(nodes, weights, exact):
    x, w = _measure_of(nodes, weights)
    span = float(exact.max() - exact.min())
    eps = 1e-6 * float(np.abs(exact).max())
    return (float(wasserstein_distance(x, exact, w)) / span,
            float(wasserstein_distance(symlog(x, eps), symlog(exact, eps), w)))


def as_density(nodes, weights, P, m):
    """Peers' rows (ragged) as a SpectralDensity (zero-weight padding), for the same plots."""
    n = max(len(a) for a in nodes)
    X = np.zeros((len(nodes), n))
    W = np.zeros((len(nodes), n))
    for i, (a, b) in enumerate(zip(nodes, weights)):
        order = np.argsort(-np.asarray(a, float))
        a = np.asarray(a, float)[order]
        b = np.asarray(b, float)[order] / np.sum(b)
        X[i, : a.size], W[i, : a.size] = a, b
        X[i, a.size:] = a[-1]
    return SpectralDensity(nodes=X, weights=W, num_params=P, num_steps=m, num_probes=len(nodes),
                           bounds=np.array([X.min(), X.max()]))


def density_curves(name, model, X, y, exact, avail):
    """Every tool's ladder on a model with an exact spectrum."""
    runners = density_runners(model, X, y, avail)
    curves = {}
    for tool, (ladder, run) in runners.items():
        curves[tool] = []
        for nv, m in ladder:
            rows = []
            for seed in SEEDS:
                (nodes, weights, mv), t = timed(run, nv, m, seed)
                w1, lw1 = accuracy(nodes, weights, exact)
                rows.append((w1, lw1, t, mv))
            a = np.array(rows)
            point = {"num_probes": nv, "num_steps": m, "products": float(a[:, 3].mean()),
                     "seconds": float(np.median(a[:, 2])), "w1_rel": float(a[:, 0].mean()),
                     "w1_rel_max": float(a[:, 0].max()), "log_w1": float(a[:, 1].mean()),
                     "w1_rel_seeds": a[:, 0].tolist(), "log_w1_seeds": a[:, 1].tolist()}
            curves[tool].append(point)
            print(f"#   [{name}] {tool:28s} {nv:2d} x {m:3d}  products {point['products']:6.0f}  "
                  f"{point['seconds']:6.2f} s  W1/range {point['w1_rel']:.2e} "
                  f"(max {point['w1_rel_max']:.2e})  log-W1 {point['log_w1']:.3f}")
    peers = [t for t in curves if not t.startswith("gn_theory")]
    ref_pts = {t: next(p for p in curves[t] if (p["num_probes"], p["num_steps"]) == REFERENCE)
               for t in curves if t != "gn_theory spectral_density"}
    target = min(ref_pts[t]["w1_rel"] for t in (peers or ref_pts))
    target_log = min(ref_pts[t]["log_w1"] for t in (peers or ref_pts))
    needed = {}
    for tool, pts in curves.items():
        ok = [p for p in pts if p["w1_rel"] <= target]
        both = [p for p in ok if p["log_w1"] <= target_log]
        pick = min(ok, key=lambda p: p["seconds"]) if ok else None
        pick2 = min(both, key=lambda p: p["seconds"]) if both else None
        needed[tool] = {"w1": pick, "w1_and_log": pick2}
    print(f"\n## density accuracy-time curve, {name} (P = {exact.size}), target W1/range "
          f"{target:.2e} and log-W1 {target_log:.3f} (the best peer at 10 x 80)")
    print("| tool | cheapest setting reaching the W1 target | products | time [s] | W1/range |"
          " log-W1 | same, W1 and log-W1 | products | time [s] |")
    print("|---|---|---|---|---|---|---|---|---|")
    for tool, nd in needed.items():
        p, q = nd["w1"], nd["w1_and_log"]
        a = ("not reached | - | - | - | -" if p is None else
             f"{p['num_probes']} x {p['num_steps']} | {p['products']:.0f} | {p['seconds']:.2f} | "
             f"{p['w1_rel']:.2e} | {p['log_w1']:.3f}")
        b = ("not reached | - | -" if q is None else
             f"{q['num_probes']} x {q['num_steps']} | {q['products']:.0f} | {q['seconds']:.2f}")
        print(f"| {tool} | {a} | {b} |")
    return {"num_params": int(exact.size), "spectral_range": float(exact.max() - exact.min()),
            "target_w1_rel": target, "target_log_w1": target_log, "curves": curves,
            "needed": needed}


def density_big(model, X, y, args, avail):
    """Time, products and peak memory on the big model: peers at 10 x 80, gn_theory's settings."""
    runners = density_runners(model, X, y, avail)
    H = gt.hessian_operator(model, (X, y))
    top = spectra.lanczos(H, 10, seed=0)  # the outliers a user already has
    d_nv, d_m = spectra.DEFAULT_DENSITY_PROBES, spectra.DEFAULT_DENSITY_STEPS

    def given(nv, m, seed):
        d = spectra.spectral_density(H, deflate=top, num_probes=nv, num_steps=m, seed=seed)
        return list(d.nodes), list(d.weights), d.num_matvecs

    jobs = {
        f"gn_theory spectral_density (defaults: 10, {d_nv} x {d_m})":
            (runners["gn_theory spectral_density"][1], d_nv, d_m),
        "gn_theory spectral_density (10, 2 x 128)": (runners["gn_theory spectral_density"][1], 2,
                                                     128),
        f"gn_theory spectral_density, top-10 given ({d_nv} x {d_m})": (given, d_nv, d_m),
        "gn_theory slq (10 x 80)": (runners["gn_theory slq"][1], *REFERENCE),
    }
    for tool, (_, run) in runners.items():
        if not tool.startswith("gn_theory"):
            jobs[f"{tool} (10 x 80)"] = (run, *REFERENCE)
    times = {j: [] for j in jobs}
    products = {}
    for _ in range(args.repeats):
        for j, (run, nv, m) in jobs.items():
            (_, _, mv), t = timed(run, nv, m, 0)
            times[j].append(t)
            products[j] = mv
    peers = [j for j in jobs if not j.startswith("gn_theory")]
    best_peer = min(peers, key=lambda j: statistics.median(times[j])) if peers else None
    base = statistics.median(times[best_peer]) if best_peer else 1.0
    print(f"\n## density on the big model (median of {args.repeats}); ratio to the best peer "
          f"({best_peer})")
    print("| tool (setting) | products | time [s] | time / best peer |")
    print("|---|---|---|---|")
    rows = {}
    for j in jobs:
        t = statistics.median(times[j])
        print(f"| {j} | {products[j]} | {t:.2f} | {t / base:.2f} |")
        rows[j] = {"products": products[j], "seconds": t, "seconds_all": times[j],
                   "ratio_to_best_peer": t / base}
    return {"best_peer": best_peer, "jobs": rows, "top10_products": top.num_matvecs}


def memory_pass(model, X, y, topk_chosen, avail):
    """Peak memory growth of one top-10 (each tool's chosen setting) and one density run."""
    on = memory_mode()
    P = sum(p.numel() for p in model.parameters())
    rows = {"top10": {}, "density": {}}
    runners = topk_runners(model, X, y, 10, avail)
    for name, (ladder, run) in runners.items():
        setting = topk_chosen.get(name, {}).get("setting", ladder[-1])
        (_, mv), t, mem = measure(run, setting)
        rows["top10"][name] = {"setting": setting, "products": mv, "seconds": t,
                               "peak_memory_bytes": mem}
    d_nv, d_m = spectra.DEFAULT_DENSITY_PROBES, spectra.DEFAULT_DENSITY_STEPS
    dr = density_runners(model, X, y, avail)
    jobs = {f"gn_theory spectral_density (10, {d_nv} x {d_m})":
            (dr["gn_theory spectral_density"][1], d_nv, d_m),
            "gn_theory slq (10 x 80)": (dr["gn_theory slq"][1], *REFERENCE)}
    for tool, (_, run) in dr.items():
        if not tool.startswith("gn_theory"):
            jobs[f"{tool} (10 x 80)"] = (run, *REFERENCE)
    for j, (run, nv, m) in jobs.items():
        (_, _, mv), t, mem = measure(run, nv, m, 0)
        rows["density"][j] = {"products": mv, "seconds": t, "peak_memory_bytes": mem}
    print(f"\n## peak memory (growth of the peak resident set during one call), P = {P}; "
          f"one vector is {P * 4 / 2**20:.2f} MiB in float32" + ("" if on else
                                                                 " (mallopt unavailable)"))
    print("| job | tool (setting) | products | peak memory [MiB] | in vectors of P |")
    print("|---|---|---|---|---|")
    for part, jobs_ in rows.items():
        for j, r in jobs_.items():
            mem = r["peak_memory_bytes"]
            vec = "n/a" if mem is None else f"{mem / (4 * P):.0f}"
            label = j if part == "density" else f"{j} ({r['setting']:g})"
            print(f"| {part} | {label} | {r['products']} | {mib(mem)} | {vec} |")
    return {"num_params": P, "mallopt": on, **rows}


# ------------------------------------------------------------------------------------- MNIST targets
def mnist_targets(net, X, y, exact_H, args):
    """Smallest eigenvalues of H and the G_w density on the real-MNIST problem, float64."""
    data = (X, y)
    H = gt.hessian_operator(net, data, dtype=torch.float64)
    out = {}
    want = exact_H[-3:]  # descending: the 3 smallest, most negative last

    def small_err(s):
        return float(np.max(np.abs(np.asarray(s.eigenvalues) - want) / np.abs(want)))

    top10, t10 = timed(spectra.lanczos, H, 10, seed=0, return_eigenvectors=False)
    top30, t30 = timed(spectra.lanczos, H, 30, seed=0)  # the pipeline's top 3C, vectors kept
    top10v, t10v = timed(spectra.lanczos, H, 10, seed=0)
    out["top10"] = {"seconds": t10, "products": top10.num_matvecs}
    out["top30"] = {"seconds": t30, "products": top30.num_matvecs}
    rows = {}
    runs = {
        "plain, as the pipeline (tol 1e-6, max 400 products)":
            lambda: spectra.lanczos(H, 3, "smallest", seed=0, tol=1e-6, max_matvecs=400,
                                    return_eigenvectors=False, warn=False),
        "plain, to convergence (tol 1e-6)":
            lambda: spectra.lanczos(H, 3, "smallest", seed=0, tol=1e-6, max_matvecs=4000,
                                    return_eigenvectors=False, warn=False),
        "plain, to convergence, basis 100":
            lambda: spectra.lanczos(H, 3, "smallest", seed=0, tol=1e-6, max_matvecs=4000,
                                    basis_size=100, return_eigenvectors=False, warn=False),
    }
    for name, top, basis in (
        ("top-30 deflated (reused from the pipeline's top 3C)", top30, None),
        ("top-30 deflated (reused), basis 60", top30, 60),
        ("top-10 deflated (computed with vectors)", top10v, None),
    ):
        lam = top.eigenvalues
        Dop = spectra.deflated_operator(H, top, shift=float(lam.min()))
        tol = 1e-6 * float(lam.max()) / float(lam.min())  # the same absolute residual
        runs[name] = (lambda Dop=Dop, tol=tol, basis=basis: spectra.lanczos(
            Dop, 3, "smallest", seed=0, tol=tol, max_matvecs=4000, basis_size=basis,
            return_eigenvectors=False, warn=False))
    extra = {"top-10 deflated (computed with vectors)": t10v}
    print(f"\n## real MNIST (P = {H.num_params}): smallest 3 eigenvalues of H "
          f"(exact {np.array2string(want, precision=5)}); top-10 {t10:.2f} s, "
          f"{top10.num_matvecs} products")
    print("| method | products | converged | max rel err | time [s] | time / top-10 |")
    print("|---|---|---|---|---|---|")
    for name, fn in runs.items():
        s, t = timed(fn)
        t_all = t + extra.get(name, 0.0)
        mv = s.num_matvecs + (top10v.num_matvecs if name in extra else 0)
        rows[name] = {"products": mv, "converged": int(s.num_converged), "max_rel_err": small_err(s),
                      "seconds": t_all, "ratio_to_top10": t_all / t10,
                      "eigenvalues": np.asarray(s.eigenvalues).tolist()}
        print(f"| {name} | {mv} | {s.num_converged}/3 | {small_err(s):.1e} | {t_all:.2f} | "
              f"{t_all / t10:.1f} |")
    out["smallest"] = rows

    # G_w: the within-class part of G
    G = gt.ggn_operator(net, data, dtype=torch.float64)
    cs = gt.class_structure(net, data, dtype=torch.float64)
    W = gt.within_class_operator(G, cs)
    (exact_W, t_dense) = timed(lambda: spectra.eigh(W.to_dense()).eigenvalues)
    print(f"# G_w exact spectrum by eigh: {t_dense:.1f} s")
    # measure_outlier_inputs computes the top C^2 of G_w (tol 1e-6, vectors kept) anyway
    k_w = int(cs.eigenvalues("G_cm").size)
    within, t_within = timed(spectra.lanczos, W, k_w, seed=0, tol=1e-6, warn=False)
    out["G_w_top"] = {"k": k_w, "products": within.num_matvecs, "seconds": t_within}
    jobs = {
        "slq 10 x 128 (as the pipeline)": lambda s: spectra.slq(W, num_probes=10,
                                                                 num_steps=128, seed=s),
        "spectral_density 10, 2 x 128": lambda s: spectra.spectral_density(
            W, deflate=10, num_probes=2, num_steps=128, seed=s),
        f"spectral_density defaults (10, {spectra.DEFAULT_DENSITY_PROBES} x "
        f"{spectra.DEFAULT_DENSITY_STEPS})": lambda s: spectra.spectral_density(W, seed=s),
        "spectral_density 30, 1 x 128": lambda s: spectra.spectral_density(
            W, deflate=30, num_probes=1, num_steps=128, seed=s),
        f"spectral_density, the pipeline's top-{k_w} of G_w reused, 1 x 128":
            lambda s: spectra.spectral_density(W, deflate=within, num_probes=1, num_steps=128,
                                               seed=s),
        f"spectral_density, the pipeline's top-{k_w} of G_w reused, 2 x 80":
            lambda s: spectra.spectral_density(W, deflate=within, num_probes=2, num_steps=80,
                                               seed=s),
        f"spectral_density, the pipeline's top-{k_w} of G_w reused, 2 x 128":
            lambda s: spectra.spectral_density(W, deflate=within, num_probes=2, num_steps=128,
                                               seed=s),
    }
    gw = {}
    for name, fn in jobs.items():
        pts = []
        for s in SEEDS:
            d, t = timed(fn, s)
            w1, lw1 = accuracy(list(d.nodes), list(d.weights), exact_W)
            pts.append((w1, lw1, t, d.num_matvecs))
        a = np.array(pts)
        gw[name] = {"products": float(a[:, 3].mean()), "seconds": float(np.median(a[:, 2])),
                    "w1_rel": float(a[:, 0].mean()), "w1_rel_max": float(a[:, 0].max()),
                    "log_w1": float(a[:, 1].mean())}
    base = gw["slq 10 x 128 (as the pipeline)"]["seconds"]
    print(f"\n## real MNIST: density of G_w (float64), {len(SEEDS)} seeds")
    print("| method | products | time [s] | time / pipeline's | W1/range | log-W1 |")
    print("|---|---|---|---|---|---|")
    for name, r in gw.items():
        r["ratio_to_pipeline"] = r["seconds"] / base
        print(f"| {name} | {r['products']:.0f} | {r['seconds']:.2f} | {r['seconds'] / base:.2f} | "
              f"{r['w1_rel']:.2e} | {r['log_w1']:.3f} |")
    out["G_w_density"] = gw
    return out


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


# ------------------------------------------------------------------------------------- figure
def figure(result, papyan, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = result["density_curves"]
    names = list(curves)
    fig, axes = plt.subplots(2, len(names) + 1, figsize=(5.2 * (len(names) + 1), 8.4))
    styles = {}
    for j, name in enumerate(names):
        for row, key, label in ((0, "w1_rel", "W1 / spectral range"),
                                (1, "log_w1", "W1 on the log-|lambda| scale [decades]")):
            ax = axes[row, j]
            for i, (tool, pts) in enumerate(curves[name]["curves"].items()):
                st = styles.setdefault(tool, dict(marker="os^vDx"[i % 6], color=f"C{i}"))
                ax.plot([p["seconds"] for p in pts], [p[key] for p in pts], label=tool,
                        linewidth=1.4, markersize=5, **st)
            tgt = curves[name]["target_w1_rel" if row == 0 else "target_log_w1"]
            ax.axhline(tgt, color="0.5", linestyle=":", linewidth=1.0,
                       label="best peer at 10 x 80")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("seconds (median of the seeds)")
            ax.set_ylabel(label)
            ax.set_title(f"{name} (P = {curves[name]['num_params']:,})")
            if row == 0 and j == 0:
                ax.legend(fontsize=7)
    # Papyan's figure: log10 |lambda| densities, positive side, side by side
    ax = axes[0, -1]
    exact, dens = papyan["exact"], papyan["densities"]
    pos = exact[exact > 0]
    top = np.log10(np.abs(exact).max())
    u = np.linspace(top - 6.5, top + 0.3, 600)
    edges = np.linspace(u[0], u[-1], 70)
    h, _ = np.histogram(np.log10(pos), edges)
    hist = h / (exact.size * np.diff(edges))
    ax.stairs(hist, edges, fill=True, alpha=0.3, color="0.4", label="exact (eigh), histogram")
    peak = float(hist.max())
    for i, (label, d) in enumerate(dens.items()):
        p, _ = d.log_density(u)
        peak = max(peak, float(p.max()))
        ax.plot(u, p, linewidth=1.5, color=f"C{i}", label=label)
    ax.set_yscale("log")
    ax.set_ylim(1e-4, 3 * peak)
    ax.set_xlabel("log10 lambda (lambda > 0)")
    ax.set_ylabel("fraction of eigenvalues per decade")
    ax.set_title(f"Papyan's log-scale density, {papyan['name']}")
    ax.legend(fontsize=7)
    ax = axes[1, -1]
    big = result.get("density_big", {}).get("jobs", {})
    if big:
        labels = list(big)
        ax.barh(range(len(labels)), [big[k]["seconds"] for k in labels], color="C0")
        ax.set_yticks(range(len(labels)), [k.replace(" (", "\n(") for k in labels], fontsize=6)
        ax.set_xlabel("seconds (median)")
        ax.set_title(f"density on the big model (P = {result['problem']['num_params']:,})")
        ax.invert_yaxis()
    else:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------- main
def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return x


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="big model P = 85,002 (else 204,810)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--accuracy", type=float, default=1e-6)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--skip-topk", action="store_true")
    ap.add_argument("--skip-big-density", action="store_true")
    ap.add_argument("--skip-mnist", action="store_true")
    ap.add_argument("--memory-model", choices=("full", "big", "none"), default="full",
                    help="model of the memory pass: the full one (P = 204,810), the big one of "
                         "this run, or none")
    ap.add_argument("--big-only", action="store_true",
                    help="only the big model's top-k and density timings, written to "
                         "bench_spectra_big.json")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--smoke", action="store_true",
                    help="a tiny big model, short ladders, one seed: checks the script runs")
    args = ap.parse_args(argv)
    global PEER_LADDER, OURS_LADDER, SEEDS
    if args.smoke:
        PEER_LADDER, OURS_LADDER, SEEDS = [(2, 20), (10, 80)], [(2, 20), (2, 40)], (0,)
        args.repeats = 1
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    args.out.mkdir(parents=True, exist_ok=True)
    avail = peers_available()
    versions = {"torch": torch.__version__, "gn_theory": gt.__version__,
                "python": platform.python_version()}
    for mod, dist in (("pyhessian", "pyhessian"), ("curvlinops", "curvlinops-for-pytorch"),
                      ("hessian_eigenthings", "hessian-eigenthings")):
        if avail[mod]:
            from importlib.metadata import version

            versions[mod] = version(dist)
    result = {"command": "python benchmarks/bench_spectra.py " + " ".join(argv or sys.argv[1:]),
              "threads": torch.get_num_threads(), "versions": versions,
              "load_average_start": load_average(), "machine": platform.platform()}
    t_start = time.perf_counter()
    big = [64, 256, 256, 10] if args.quick else [100, 400, 400, 10]
    n_big = 1000 if args.quick else 2000
    if args.smoke:
        big, n_big = [16, 64, 64, 10], 300
    model, X, y = build_mixture(big, n_big)
    P = sum(p.numel() for p in model.parameters())
    result["problem"] = {"sizes": big, "num_samples": n_big, "num_params": P}
    print(f"# big model: ReLU MLP {big}, P = {P}, N = {n_big}, 10 classes, float32, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}; load average "
          f"{result['load_average_start']}")

    H = gt.hessian_operator(model, (X, y))
    f, loss = H.function, H.loss
    g = torch.func.grad(lambda t: loss.sum(f(t, X), y))
    g(f.theta)
    _, tg = timed(lambda: [g(f.theta) for _ in range(3)])
    tg /= 3
    v1, v2, v10 = torch.randn(P, 1), torch.randn(P, 2), torch.randn(P, 10)
    H @ v1
    _, t1 = timed(lambda: [H @ v1 for _ in range(3)])
    _, t2 = timed(lambda: [H @ v2 for _ in range(2)])
    _, t10 = timed(lambda: H @ v10)
    result["product_costs"] = {"gradient_seconds": tg, "hvp_single_gradients": t1 / 3 / tg,
                               "hvp_block2_per_vector_gradients": t2 / 4 / tg,
                               "hvp_block10_per_vector_gradients": t10 / 10 / tg}
    print(f"# one gradient {tg * 1e3:.1f} ms; gn_theory HVP {t1 / 3 / tg:.2f} gradients single, "
          f"{t2 / 4 / tg:.2f} per vector in a block of 2, {t10 / 10 / tg:.2f} in a block of 10")

    if not args.skip_topk:
        result["topk"] = run_topk(model, X, y, args, avail)
        reached = [r["products"] for r in result["topk"]["chosen"].values() if r["reached"]]
        if reached:
            # the floor: the fewest products any Krylov method here needed, at the cheapest
            # product measured (a single gn_theory HVP; blocks are cheaper per vector but
            # need more products, docs/performance.md)
            floor = min(reached) * t1 / 3
            result["topk"]["floor"] = {"products": min(reached), "seconds": floor}
            print(f"# floor: {min(reached)} products x one HVP ({t1 / 3 * 1e3:.1f} ms) = "
                  f"{floor:.2f} s; " + ", ".join(
                      f"{n} {r['seconds'] / floor:.1f}x" for n, r in
                      result["topk"]["chosen"].items()))
    if not args.skip_big_density:
        result["density_big"] = density_big(model, X, y, args, avail)
    if args.big_only:  # a rerun of the big model's timings alone (e.g. on a quiet machine)
        result["load_average_end"] = load_average()
        result["wall_seconds"] = time.perf_counter() - t_start
        js = args.out / "bench_spectra_big.json"
        js.write_text(json.dumps(_jsonable(result), indent=1))
        print(f"\n# wrote {js}; load average {result['load_average_start']} -> "
              f"{result['load_average_end']}; {result['wall_seconds']:.0f} s")
        return

    # accuracy-time curves on models with an exact spectrum
    m_s, Xs, ys = build_mixture([16, 32, 32, 10], 600, seed=1)
    exact_s = exact_hessian_spectrum(m_s, Xs, ys)
    result["density_curves"] = {"mixture MLP": density_curves("mixture MLP", m_s, Xs, ys,
                                                              exact_s, avail)}
    papyan = None
    if not args.skip_mnist:
        net, Xm, ym = build_mnist()
        exact_m, t_exact = timed(exact_hessian_spectrum, net, Xm, ym)
        print(f"# real MNIST: exact Hessian spectrum by eigh in {t_exact:.1f} s")
        result["density_curves"]["real MNIST"] = density_curves("real MNIST", net, Xm, ym,
                                                                exact_m, avail)
        runners = density_runners(net, Xm, ym, avail)
        Pm = exact_m.size
        dens = {}
        for tool, label, (nv, m) in (
            ("hessian-eigenthings", "hessian-eigenthings, 10 x 80", REFERENCE),
            ("gn_theory slq", "gn_theory slq, 10 x 128 (its default)", (10, 128)),
            ("gn_theory spectral_density",
             f"gn_theory spectral_density defaults (10, {spectra.DEFAULT_DENSITY_PROBES} x "
             f"{spectra.DEFAULT_DENSITY_STEPS})",
             (spectra.DEFAULT_DENSITY_PROBES, spectra.DEFAULT_DENSITY_STEPS)),
        ):
            if tool in runners:
                nodes, weights, _ = runners[tool][1](nv, m, 0)
                dens[label] = as_density(nodes, weights, Pm, m)
        papyan = {"name": "real MNIST H", "exact": exact_m, "densities": dens}
        result["mnist_targets"] = mnist_targets(net, Xm, ym, exact_m, args)
    else:
        dens = {}
        runners = density_runners(m_s, Xs, ys, avail)
        for tool, (nv, m) in (("gn_theory slq", REFERENCE), ("gn_theory spectral_density",
                                                             (2, 80))):
            nodes, weights, _ = runners[tool][1](nv, m, 0)
            dens[f"{tool} {nv} x {m}"] = as_density(nodes, weights, exact_s.size, m)
        papyan = {"name": "mixture MLP H", "exact": exact_s, "densities": dens}

    nmv = 60
    errs = trace_errors(m_s, Xs, ys, float(exact_s.sum()), nmv, range(5), avail)
    result["trace"] = {"products": nmv, "exact": float(exact_s.sum()), "mean_abs_error": errs}
    print(f"\n## trace at {nmv} HVPs, P = {exact_s.size}, exact tr H = {exact_s.sum():.4g}: "
          "mean |error| over 5 seeds")
    print("| tool / method | mean abs error | ratio to gn_theory hutch++ |")
    print("|---|---|---|")
    for name, e in errs.items():
        print(f"| {name} | {e:.3g} | {e / errs['gn_theory hutch++']:.2f} |")

    if args.memory_model != "none":  # last: it changes how malloc returns memory
        if args.memory_model == "full" and not args.smoke and big != [100, 400, 400, 10]:
            model, X, y = build_mixture([100, 400, 400, 10], 2000)
        result["memory"] = memory_pass(model, X, y, result.get("topk", {}).get("chosen", {}),
                                       avail)

    result["load_average_end"] = load_average()
    result["wall_seconds"] = time.perf_counter() - t_start
    js = args.out / "bench_spectra.json"
    js.write_text(json.dumps(_jsonable(result), indent=1))
    png = args.out / "bench_spectra.png"
    figure(result, papyan, png)
    print(f"\n# wrote {js} and {png}; load average {result['load_average_start']} -> "
          f"{result['load_average_end']}; {result['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
