"""Strong scaling of one GGN product on CPU: 1 process vs 2 gloo processes (issue 16).

``python benchmarks/distributed_scaling.py [--procs 1 2] [--repeats 5]``: an MLP (784-256-256-10,
P = 269,322, float32) on N = 4096 random samples; each rank reads N / world samples. Prints
the median time per product (including the all-reduce of P numbers) and the median time of
an all-reduce of P float32 numbers alone, per world size. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

N, D, H, C = 4096, 784, 256, 10


def worker(rank: int, world: int, store: str, repeats: int) -> None:
    torch.set_num_threads(1)
    import gn_theory as gt  # deferred: the parent process only launches workers

    if world > 1:
        torch.distributed.init_process_group(
            "gloo", init_method=f"file://{store}", rank=rank, world_size=world
        )
    torch.manual_seed(0)  # the same initial parameters on every rank (checked at the build)
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(D, H), torch.nn.Tanh(), torch.nn.Linear(H, H), torch.nn.Tanh(),
        torch.nn.Linear(H, C),
    )
    x, y = torch.randn(N, D, generator=g), torch.randint(0, C, (N,), generator=g)
    per = N // world
    lo = rank * per
    data = [(x[a : a + 512], y[a : a + 512]) for a in range(lo, lo + per, 512)]
    G = gt.ggn_operator(model, data)
    v = torch.randn(G.num_params, 1)
    G @ v  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        G @ v
        times.append(time.perf_counter() - t0)
    red = []
    if world > 1:
        buf = torch.randn(G.num_params)
        for _ in range(repeats):
            torch.distributed.barrier()
            t0 = time.perf_counter()
            torch.distributed.all_reduce(buf)
            red.append(time.perf_counter() - t0)
    if rank == 0:
        print(
            f"world={world} P={G.num_params} N={N} product_median_s={statistics.median(times):.4f} "
            f"allreduce_median_s={(statistics.median(red) if red else 0.0):.5f}",
            flush=True,
        )
    if world > 1:
        torch.distributed.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--worker", nargs=3, type=str)
    a = ap.parse_args()
    if a.worker:
        rank, world, store = a.worker
        worker(int(rank), int(world), store, a.repeats)
        return
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for world in a.procs:
        store = os.path.join(tempfile.mkdtemp(), "store")
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--repeats", str(a.repeats), "--worker", str(r),
                 str(world), store], env=env,
            )
            for r in range(world)
        ]
        for p in procs:
            p.wait()


if __name__ == "__main__":
    main()
