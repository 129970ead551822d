"""One rank of the data-parallel check (run by test_distributed.py; not a test module).

``python dist_worker.py RANK WORLD INIT_FILE OUT_DIR``: joins a gloo group, builds the
operators on this rank's uneven shard, computes every measured quantity and, on rank
0, saves them to ``OUT_DIR/parallel.npz``. With WORLD = 0 it runs one process on all
the data and saves ``OUT_DIR/single.npz``.
"""

from __future__ import annotations

import copy
import sys

import numpy as np
import torch

import gn_theory as gt
from gn_theory import distributed
from gn_theory.decomposition import fort_ganguli, measure_outlier_inputs

#: The full data: 23 samples, 3 classes. Rank 0 reads batches of 8 and 7 (15 samples),
#: rank 1 batches of 3, 3 and 2 (8 samples): uneven shards, uneven batches.
N, D, C = 23, 4, 3
SHARDS = {0: [(0, 8), (8, 15)], 1: [(15, 18), (18, 21), (21, 23)]}


def make_problem() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    model = torch.nn.Sequential(
        torch.nn.Linear(D, 5), torch.nn.Tanh(), torch.nn.Linear(5, C)
    ).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    x = torch.randn(N, D, generator=g, dtype=torch.float64)
    y = torch.arange(N) % C
    return model, x, y


def measure(model: torch.nn.Module, data: list) -> dict[str, np.ndarray]:
    H = gt.hessian_operator(model, data)
    G = gt.ggn_operator(model, data)
    R = gt.residual_operator(model, data)
    V = torch.randn(H.num_params, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = {
        "N": np.array(G.num_samples),
        "Hv": (H @ V).numpy(),
        "Gv": (G @ V).numpy(),
        "Rv": (R @ V).numpy(),
        "grad": H.gradient().numpy(),
        "loss": np.array(H.loss_value()),
    }
    top = gt.lanczos(H, 3, seed=11)
    out["top_k"] = top.eigenvalues
    # seed=None: rank 0's entropy is broadcast, so ranks agree; recorded for the replay
    free = gt.lanczos(G, 2, seed=None, return_eigenvectors=False)
    out["free_seed"] = np.array(free.seed)
    out["free_top"] = free.eigenvalues
    d = gt.slq(H, num_probes=3, num_steps=8, seed=5)
    out["slq_nodes"], out["slq_weights"] = d.nodes, d.weights
    t = gt.trace(G, num_matvecs=12, seed=9)
    out["trace"] = np.array([t.estimate, t.bse])
    out["trace_samples"] = t.samples
    cs = gt.class_structure(model, data)
    out["gram_cm"] = cs.eigenvalues("G_cm")
    out["counts"] = np.asarray(cs.class_counts)
    out["fingerprint_data"] = np.array(G.fingerprint["data"])
    # the decomposition's seeded steps: rank 0's seed on every rank (broadcast)
    oi = measure_outlier_inputs(G, cs, k=3, num_probes=2, num_steps=6, seed=13)
    out["oi_observed"] = oi.observed.eigenvalues
    out["oi_within_nodes"] = oi.within_density.nodes
    out["oi_within_weights"] = oi.within_density.weights
    out["oi_trace"] = np.array(oi.trace.estimate)
    fg = fort_ganguli(model, data, H, G, cs, ks=[1, 3], seed=17, max_samples=10)
    out["fg_eigenvalues"] = np.concatenate([fg.eigenvalues_H, fg.eigenvalues_G])
    out["fg_confinement_full"] = np.concatenate([fg.confinement_full_H, fg.confinement_full_G])
    out["fg_overlaps"] = np.array([fg.subspace_overlaps[k] for k in sorted(fg.subspace_overlaps)])
    out["fg_cosine_groups"] = np.nan_to_num(fg.cosine_groups, nan=-9.0)
    out["fg_cosine_stats"] = np.array([fg.cosine_stats[k] for k in sorted(fg.cosine_stats)])
    out["fg_batches"] = np.asarray(fg.batch_sizes)
    free = fort_ganguli(model, data, H, G, cs, ks=[1], seed=None, max_samples=6)
    out["fg_free_seed"] = np.array(free.settings["seed"])
    out["fg_free_cosines"] = np.nan_to_num(free.cosine_groups, nan=-9.0)
    return out


def refusals(model: torch.nn.Module, data: list, rank: int) -> dict[str, np.ndarray]:
    """Builds refused on every rank together: other parameters on rank 1, an empty shard."""
    out = {}
    other = copy.deepcopy(model)
    if rank == 1:
        with torch.no_grad():
            other[0].bias.add_(1.0)
    for name, m, d in [("refused_params", other, data), ("refused_empty", model, data if rank == 0 else [])]:
        try:
            gt.ggn_operator(m, d)
            out[name] = np.array("")
        except gt.DataError as exc:
            out[name] = np.array(str(exc))
    # a non-finite input in rank 1's shard only: every rank stops at the data check (rank 1
    # with its own error, rank 0 naming rank 1) instead of rank 0 waiting in a collective
    bad = [(x.clone(), y) for x, y in data]
    if rank == 1:
        bad[0][0][0, 0] = float("nan")
    try:
        gt.ggn_operator(model, bad)
        out["refused_nan_shard"] = np.array("")
    except gt.GnTheoryError as exc:
        out["refused_nan_shard"] = np.array(f"{type(exc).__name__}: {exc}")
    return out


def resumed(model: torch.nn.Module, data: list, path: str) -> dict[str, np.ndarray]:
    """SLQ checkpointed in groups of 2 probes, then resumed (seed from the checkpoint)."""
    H = gt.hessian_operator(model, data)
    first = gt.slq(H, num_probes=3, num_steps=8, seed=5, checkpoint=path, probes_per_checkpoint=2)
    again = gt.slq(
        H, num_probes=3, num_steps=8, seed=None, checkpoint=path, probes_per_checkpoint=2,
        resume=True,
    )
    return {
        "ck_nodes": first.nodes, "resumed_nodes": again.nodes,
        "resumed_seed": np.array(again.seed), "resumed_matvecs": np.array(again.num_matvecs),
    }


def main() -> None:
    rank, world, init, out_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    torch.set_num_threads(1)
    model, x, y = make_problem()
    if world == 0:
        data = [(x[a:b], y[a:b]) for a, b in [(0, 5), (5, 23)]]
        np.savez(f"{out_dir}/single.npz", **measure(model, data))
        return
    torch.distributed.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    try:
        assert distributed.is_distributed() and distributed.world_size() == world
        data = [(x[a:b], y[a:b]) for a, b in SHARDS[rank]]
        res = measure(model, data)
        res.update(refusals(model, data, rank))
        # rank 1's checkpoint path does not exist: only rank 0 writes and reads checkpoints
        res.update(resumed(model, data, f"{out_dir}/ck.npz" if rank == 0 else f"{out_dir}/no/ck.npz"))
        if distributed.is_main_process():
            np.savez(f"{out_dir}/parallel.npz", **res)
        else:
            np.savez(f"{out_dir}/rank{rank}.npz", **res)
        distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
