"""Data-parallel runs over torch.distributed (2 gloo processes, uneven shards) equal one process.

The two ranks run ``dist_worker.py`` (this folder) as separate processes joined through a
file store; the single-process reference runs here on the same 23 samples batched
differently. Every product with H, G and R, the gradient and loss, the top-k Lanczos
eigenvalues, SLQ nodes and weights, the trace estimate and the class-structure Gram
eigenvalues must agree to 1e-10, and both ranks must hold bit-identical results.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import gn_theory as gt
from gn_theory import distributed

HERE = Path(__file__).resolve().parent
WORKER = HERE / "dist_worker.py"

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is not available",
)


def _load_worker():
    spec = importlib.util.spec_from_file_location("gn_dist_worker", WORKER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(r), "2", str(out / "store"), str(out)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for r in range(2)
    ]
    worker = _load_worker()
    model, x, y = worker.make_problem()
    single = worker.measure(model, [(x[:5], y[:5]), (x[5:], y[5:])])
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=240)[0])
        except subprocess.TimeoutExpired:  # pragma: no cover - a hang is a failure
            for q in procs:
                q.kill()
            pytest.fail("the data-parallel workers did not finish in 240 s")
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log
    return single, dict(np.load(out / "parallel.npz")), dict(np.load(out / "rank1.npz"))


QUANTITIES = [
    "N", "Hv", "Gv", "Rv", "grad", "loss", "top_k", "slq_nodes", "slq_weights",
    "trace", "trace_samples", "gram_cm", "counts",
    # measure_outlier_inputs and fort_ganguli (seeds broadcast; the cosine subsample is drawn
    # by position over the contiguous shards in rank order, the single-process subsample)
    "oi_observed", "oi_within_nodes", "oi_within_weights", "oi_trace", "fg_eigenvalues",
    "fg_confinement_full", "fg_overlaps", "fg_cosine_groups", "fg_cosine_stats",
]


@pytest.mark.parametrize("name", QUANTITIES)
def test_parallel_equals_single_process(runs, name):
    single, parallel, _ = runs
    a, b = np.asarray(single[name], dtype=np.float64), np.asarray(parallel[name], dtype=np.float64)
    assert a.shape == b.shape
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-10 * max(1.0, float(np.abs(a).max())))


def test_sample_count_and_data_fingerprint_are_global(runs):
    single, parallel, _ = runs
    assert int(parallel["N"]) == 23
    assert str(parallel["fingerprint_data"]) == str(single["fingerprint_data"])
    assert parallel["counts"].tolist() == [8, 8, 7]


def test_ranks_hold_identical_results(runs):
    _, parallel, other = runs
    for name in parallel:
        if not name.startswith("refused"):
            assert np.array_equal(parallel[name], other[name]), name


def test_seed_none_is_rank_zeros_entropy(runs):
    _, parallel, other = runs
    assert int(parallel["free_seed"]) == int(other["free_seed"])
    assert int(parallel["fg_free_seed"]) == int(other["fg_free_seed"])


def test_fort_ganguli_batches_are_every_ranks(runs):
    single, parallel, other = runs
    assert single["fg_batches"].tolist() == [5, 18]
    assert parallel["fg_batches"].tolist() == other["fg_batches"].tolist() == [8, 7, 3, 3, 2]


def test_single_process_helpers_are_identities(tmp_path):
    assert not distributed.is_distributed()
    assert distributed.rank() == 0 and distributed.world_size() == 1
    assert distributed.is_main_process()
    t = torch.arange(3.0)
    assert distributed.all_reduce_sum(t) is t
    assert distributed.broadcast_seed(5) == 5
    assert isinstance(distributed.broadcast_seed(None), int)
    distributed.check_same({"a": 1}, "anything")
    assert distributed.any_rank(True) == [0] and distributed.any_rank(False) == []
    spec = gt.eigh(np.diag([3.0, 1.0, 2.0]))
    path = distributed.save_result(spec, tmp_path / "run_0.1")
    assert path == tmp_path / "run_0.1.json" and path.exists()


def test_unreplicated_model_and_empty_shard_refused_on_every_rank(runs):
    _, parallel, other = runs
    for res in (parallel, other):
        assert "differs between ranks (ranks [1]" in str(res["refused_params"])
        assert "the shards of ranks [1] hold no samples" in str(res["refused_empty"])


def test_a_bad_batch_on_one_rank_stops_every_rank(runs):
    _, parallel, other = runs
    assert "DataError" in str(parallel["refused_nan_shard"])
    assert "failed on rank(s) [1]" in str(parallel["refused_nan_shard"])
    assert str(other["refused_nan_shard"]).startswith("NonFiniteError")


def test_checkpointed_slq_resumes_on_every_rank(runs):
    single, parallel, other = runs
    for res in (parallel, other):
        assert int(res["resumed_seed"]) == 5
        assert np.array_equal(res["resumed_nodes"], res["ck_nodes"])
        assert int(res["resumed_matvecs"]) == 24  # 3 probes x 8 steps (symmetry check free)
    np.testing.assert_allclose(parallel["ck_nodes"], single["slq_nodes"], rtol=0, atol=1e-10 * 10)
