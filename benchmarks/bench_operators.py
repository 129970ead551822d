"""Cost of matrix-free H, G and R products, in units of one gradient.

Builds a ReLU MLP (default 784-256-128-10, P = 235,146) on generated data
(N(0, 1) inputs, labels from a random linear teacher), trains it a few SGD
steps so it is not at initialisation, and times, interleaved and repeated
(median), on the same batches:

* one full-data gradient by plain autograd (``torch.autograd.grad`` of the
  mean loss, batch by batch) -- the unit;
* one full-data ``H v``, ``G v``, ``R v`` through the public operators, for a
  single vector and for a block of ``--block`` vectors (cost per vector);
* with ``--baselines``, the previous single-vector paths (``jvp(grad)`` for
  H, separate vjp + jvp for G, ``H v - G v`` for R) on the same data.

Ratios, not absolute times, are the result: they are measured within one
process, so they drift far less than absolute times on a shared machine. The
load average is printed before and after; on an oversubscribed machine, the
many small kernels of every pass are slowed the most, which inflates the
gradient and favours blocks.

Usage::

    python benchmarks/bench_operators.py                       # CPU, defaults
    python benchmarks/bench_operators.py --batch-size 500      # 4 batches
    python benchmarks/bench_operators.py --device cuda --samples 20000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch.func import grad, jvp, vjp

import gn_theory as gt


def build(args: argparse.Namespace, device: torch.device) -> tuple[torch.nn.Module, list]:
    """The reference MLP and its data, as a list of (inputs, targets) batches."""
    torch.manual_seed(args.seed)
    sizes = [args.inputs, *args.hidden, args.classes]
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(device)
    X = torch.randn(args.samples, args.inputs, device=device)
    teacher = torch.randn(args.inputs, args.classes, device=device)
    y = (X @ teacher).argmax(dim=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(args.train_steps):
        idx = torch.randint(0, args.samples, (256,), device=device)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
        opt.step()
    bs = args.batch_size or args.samples
    batches = [(X[i : i + bs], y[i : i + bs]) for i in range(0, args.samples, bs)]
    return model, batches


def main(argv: list[str] | None = None) -> int:  # noqa: D103
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=0, help="0: one batch of all samples")
    p.add_argument("--inputs", type=int, default=784)
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 128])
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--block", type=int, default=10, help="vectors per block")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--train-steps", type=int, default=20)
    p.add_argument("--baselines", action="store_true", help="also time the previous paths")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"

    model, batches = build(args, device)
    params = [q for q in model.parameters() if q.requires_grad]
    N = args.samples
    H = gt.hessian_operator(model, batches, "cross_entropy")
    G = gt.ggn_operator(model, batches, "cross_entropy")
    R = gt.residual_operator(model, batches, "cross_entropy")
    P = H.num_params
    gen = torch.Generator(device=device).manual_seed(1)
    v = torch.randn(P, device=device, generator=gen)
    Vb = torch.randn(P, args.block, device=device, generator=gen)

    def gradient() -> object:
        acc = None
        for x, y in batches:
            loss = torch.nn.functional.cross_entropy(model(x), y, reduction="sum") / N
            g = torch.autograd.grad(loss, params)
            acc = g if acc is None else [a + b for a, b in zip(acc, g)]
        return acc

    cases: dict[str, tuple[Callable[[], object], int]] = {
        "gradient (autograd)": (gradient, 1),
        "H v": (lambda: H @ v, 1),
        "G v": (lambda: G @ v, 1),
        "R v": (lambda: R @ v, 1),
        f"H V, block of {args.block}": (lambda: H @ Vb, args.block),
        f"G V, block of {args.block}": (lambda: G @ Vb, args.block),
        f"R V, block of {args.block}": (lambda: R @ Vb, args.block),
    }
    if args.baselines:
        f, loss = H.function, H.loss
        data = [(x, y) for _, x, y in H.data]

        def old_h() -> object:
            return sum(
                jvp(grad(lambda t, x=x, y=y: loss.sum(f(t, x), y)), (f.theta,), (v,))[1]
                for x, y in data
            )

        def old_g() -> object:
            acc = 0
            for x, y in data:
                out, vjp_fn = vjp(lambda t, x=x: f(t, x), f.theta)
                jv = jvp(lambda t, x=x: f(t, x), (f.theta,), (v,))[1]
                acc = acc + vjp_fn(loss.output_hvp(out.detach(), y, jv))[0]
            return acc

        cases["H v, old: jvp(grad)"] = (old_h, 1)
        cases["G v, old: vjp + jvp"] = (old_g, 1)
        cases["R v, old: H v - G v"] = (lambda: [old_h(), old_g()], 1)

    # consistency: a block's first column equals the single-vector product
    check = {}
    for name, op in (("H", H), ("G", G), ("R", R)):
        single = op @ Vb[:, 0]
        block = (op @ Vb)[:, 0]
        check[name] = float((single - block).norm() / block.norm())

    def timed(fn: Callable[[], object]) -> float:
        if cuda:
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    for fn, _ in cases.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.repeats):
        for name, (fn, _) in cases.items():
            times[name].append(timed(fn))
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    unit = statistics.median(times["gradient (autograd)"])
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"python {sys.version.split()[0]}")
    print(f"MLP {args.inputs}-{'-'.join(map(str, args.hidden))}-{args.classes} ReLU, P={P:,}, "
          f"N={N}, batches of {args.batch_size or N}, float32, {args.repeats} repeats (median), "
          f"load average {load0:.2f} before, {load1:.2f} after")
    print("block column vs single product, rel. diff: "
          + ", ".join(f"{k} {e:.1e}" for k, e in check.items()))
    print()
    print("| product | median time (ms) | gradients per vector |")
    print("|---|---:|---:|")
    for name, (_, k) in cases.items():
        m = statistics.median(times[name])
        print(f"| {name} | {m * 1e3:.1f} | {m / unit / k:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
