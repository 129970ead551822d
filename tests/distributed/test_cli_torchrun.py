"""`gn-theory measure` under torchrun (2 gloo processes) equals one process; rank 0 writes.

A tiny model is trained in this process; `measure` then runs once in this process and once
as ``torchrun --standalone --nproc_per_node 2 -m gn_theory measure`` on 61 samples (uneven
contiguous shards of 30 and 31). The eigenvalues, densities and the sample count must agree
to 1e-10 in float64, and one output directory (no temporary leftovers) must be written.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from gn_theory.analysis import Measurement
from gn_theory.cli import main

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is not available",
)

TRAIN = [
    "--data", "gaussian_mixture", "--num-samples", "61", "--num-classes", "3",
    "--num-features", "6", "--model", "mlp", "--width", "6", "--depth", "1", "--epochs", "5",
    "--batch-size", "32", "--lr", "0.1", "--threads", "1", "--quiet",
]
MEASURE = ["--num-probes", "2", "--num-steps", "12", "--bottom-k", "1", "--top-k", "4",
           "--threads", "1", "--seed", "3"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("torchrun")
    run = base / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "--out", str(run), *TRAIN]) == 0
        assert main(["measure", str(run), "--out", str(base / "one"), *MEASURE, "--quiet"]) == 0
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "gn_theory", "measure", str(run), "--out", str(base / "two"), *MEASURE]
    proc = subprocess.run(cmd, env=env, cwd=base, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return base, proc


def test_two_processes_equal_one(runs):
    base, _ = runs
    one = Measurement.load(base / "one" / "measurement")
    two = Measurement.load(base / "two" / "measurement")
    assert two.num_samples == one.num_samples == 61
    for name in ("H_top", "G_top", "R_top", "H_bottom"):
        a, b = getattr(one, name).eigenvalues, getattr(two, name).eigenvalues
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-10 * max(1.0, float(np.abs(a).max())))
    for name in ("H_density", "G_density"):
        a, b = getattr(one, name), getattr(two, name)
        np.testing.assert_allclose(b.nodes, a.nodes, rtol=0, atol=1e-10)
        np.testing.assert_allclose(b.weights, a.weights, rtol=0, atol=1e-10)
    assert two.settings["seed"] == one.settings["seed"] == 3
    np.testing.assert_allclose(two.loss_value, one.loss_value, rtol=1e-6)  # float32 forward
    assert two.accuracy == one.accuracy


def test_rank_zero_alone_writes_and_prints(runs):
    base, proc = runs
    assert sorted(p.name for p in (base / "two").iterdir()) == sorted(
        p.name for p in (base / "one").iterdir())
    assert sorted(p.name for p in base.iterdir()) == ["one", "run", "two"]  # no leftovers
    assert proc.stdout.count("Wrote ") == 1
    assert proc.stderr.count("measure -> ") == 1 and "(2 processes)" in proc.stderr
    assert "rank 0 reads samples [0, 30) of 61" in proc.stderr


@pytest.mark.parametrize("command", ["train", "run", "fit"])
def test_other_commands_refused_under_torchrun(command, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    argv = [command, "--out", str(tmp_path / "x")] if command != "fit" else [command, "x"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "does not run data-parallel" in err and "measure" in err
    assert not (tmp_path / "x").exists()
    monkeypatch.setenv("RANK", "1")  # the other ranks refuse silently
    assert main(argv) == 2
    assert capsys.readouterr().err == ""
