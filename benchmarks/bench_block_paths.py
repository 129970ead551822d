"""Per-vector cost of Hessian-vector products by four autodiff paths, in units of one gradient.

On the spectra benchmark's quick problem (ReLU MLP [64, 256, 256, 10], P = 85,002, N = 1,000,
float32), with plain ``torch.func`` (not gn_theory's operators), so the paths are compared on
equal terms:

- ``jvp(grad)`` single vector (forward-over-reverse);
- ``vmap(jvp(grad))`` over a block of 10 vectors;
- ``vmap`` of the pullback of ``vjp(grad)`` over a block of 10 (reverse-over-reverse; gn_theory's
  block path), with the primal recorded once;
- ``linearize(grad)`` single vector and vmapped over a block (after a one-off trace).

Run: ``python benchmarks/bench_block_paths.py [--threads 2]``.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.func import functional_call, grad, jvp, linearize, vjp, vmap

from bench_spectra import build


def timed(fn, repeats: int = 5) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--block", type=int, default=10)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, X, y = build([64, 256, 256, 10], 1000)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p):
        return torch.nn.functional.cross_entropy(functional_call(model, p, (X,)), y)

    g = grad(loss)
    k = args.block
    V = {n: torch.randn(k, *p.shape) for n, p in params.items()}
    v1 = {n: x[0] for n, x in V.items()}
    tg = timed(lambda: g(params))

    def rev_rev_block():
        _, pullback = vjp(g, params)
        return vmap(pullback)(V)

    rows = [
        ("jvp(grad), single", timed(lambda: jvp(g, (params,), (v1,))), 1),
        (f"vmap(jvp(grad)), block of {k}",
         timed(lambda: vmap(lambda v: jvp(g, (params,), (v,))[1])(V)), k),
        (f"vmap(vjp(grad) pullback), block of {k} (gn_theory)", timed(rev_rev_block), k),
    ]
    t0 = time.perf_counter()
    _, lin = linearize(g, params)
    setup = time.perf_counter() - t0
    rows += [
        ("linearize(grad), single", timed(lambda: lin(v1)), 1),
        (f"vmap(linearize(grad)), block of {k}", timed(lambda: vmap(lin)(V)), k),
    ]
    P = sum(p.numel() for p in params.values())
    print(f"# P = {P}, one gradient {tg * 1e3:.1f} ms, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; linearize trace {setup:.2f} s")
    print("| path | gradients per vector |")
    print("|---|---|")
    for name, t, n in rows:
        print(f"| {name} | {t / n / tg:.2f} |")


if __name__ == "__main__":
    main()
