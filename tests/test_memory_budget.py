"""Memory budgets (issue 16): every large allocation is refused before it is made, clearly.

Each wired call (the Krylov basis of lanczos, the SLQ bases, spectral_density's deflation
and SLQ bases, the dense export and eigh, the class sums of class_structure) must refuse a
request above a tiny budget with a MemoryBudgetError naming the bytes needed, the budget
and the option that avoids it, and run under a large one. The budget comes from
``max_memory=``, else ``GN_THEORY_MAX_MEMORY``, else the memory available.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse.linalg as sla
import torch

import gn_theory as gt
from gn_theory.decomposition import class_structure

ENV = "GN_THEORY_MAX_MEMORY"


@pytest.fixture(autouse=True)
def _no_env_budget(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)


@pytest.fixture(scope="module")
def problem():
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    model = model.double()
    x = torch.randn(30, 6, generator=g, dtype=torch.float64)
    y = torch.arange(30) % 3
    return model, (x, y)


A = np.diag(np.linspace(1.0, 2.0, 60))

#: name -> (call with a budget, a word of the fix the message must name)
CALLS = {
    "lanczos": (lambda p, b: gt.lanczos(A, 3, seed=0, max_memory=b), "basis_size"),
    "slq": (lambda p, b: gt.slq(A, num_probes=3, num_steps=10, seed=0, max_memory=b),
            "probes at once"),
    "spectral_density": (
        lambda p, b: gt.spectral_density(A, deflate=2, num_probes=2, num_steps=8, seed=0,
                                         max_memory=b), "num_probes"),
    "eigh": (lambda p, b: gt.eigh(A, max_memory=b), "lanczos"),
    "to_dense": (lambda p, b: gt.ggn_operator(p[0], p[1]).to_dense(max_memory=b),
                 "matrix-free"),
    "class_structure": (lambda p, b: class_structure(p[0], p[1], max_memory=b), "max_bytes"),
}


def _needed(message: str) -> int:
    m = re.search(r"needs .*? \(([\d,]+) bytes\)", message)
    assert m, message
    return int(m.group(1).replace(",", ""))


@pytest.mark.parametrize("name", list(CALLS))
def test_refused_below_the_budget_and_run_above(problem, name):
    call, fix = CALLS[name]
    with pytest.raises(gt.MemoryBudgetError) as info:
        call(problem, 100)
    msg = str(info.value)
    assert msg.startswith(name)
    assert "budget of 100.0 B" in msg and "max_memory=100" in msg
    assert fix in msg
    need = _needed(msg)
    assert need > 100
    assert call(problem, "1GiB") is not None
    assert call(problem, need) is not None  # exactly the bytes named is enough
    with pytest.raises(gt.MemoryBudgetError):
        call(problem, need - 1)


def test_units(problem):
    call, _ = CALLS["lanczos"]
    with pytest.raises(gt.MemoryBudgetError) as info:
        call(problem, 1)
    need = _needed(str(info.value))
    assert call(problem, f"{need / 1000} kB") is not None
    assert call(problem, f"{need / 1024}KiB") is not None
    with pytest.raises(gt.MemoryBudgetError):
        call(problem, f"{(need - 24) / 1024} KiB")
    with pytest.raises(gt.MemoryBudgetError):
        call(problem, f"{(need - 10) / 1000}kb")


def test_environment_variable(problem, monkeypatch):
    call, _ = CALLS["slq"]
    monkeypatch.setenv(ENV, "1KiB")
    with pytest.raises(gt.MemoryBudgetError, match=rf"budget of 1\.0 KiB \({ENV}=1KiB\)"):
        call(problem, None)
    assert call(problem, "1GiB") is not None  # the argument wins over the variable
    monkeypatch.setenv(ENV, "1GiB")
    assert call(problem, None) is not None


@pytest.mark.parametrize("bad", ["4 parsecs", "GiB", "-1", "0", "1e", True, float("nan"), [4]])
def test_bad_budget(problem, bad):
    with pytest.raises(gt.InvalidInputError, match="max_memory"):
        gt.lanczos(A, 3, seed=0, max_memory=bad)


def test_bad_environment_variable(problem, monkeypatch):
    monkeypatch.setenv(ENV, "lots")
    with pytest.raises(gt.InvalidInputError, match=rf"{ENV}: cannot read 'lots'"):
        gt.lanczos(A, 3, seed=0)


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="no /proc/meminfo")
def test_impossible_request_fails_on_the_available_memory():
    P = 10**12  # 22 basis vectors of 8 TB each: no machine has that
    op = sla.LinearOperator((P, P), matvec=lambda v: v, dtype=np.float64)
    with pytest.raises(gt.MemoryBudgetError, match=r"MemAvailable.*basis_size"):
        gt.lanczos(op, 3, seed=0)
    with pytest.raises(gt.MemoryBudgetError, match=r"TiB .*MemAvailable"):
        gt.slq(op, seed=0)


# ---------------------------------------------------------------------------- the CLI
TRAIN = [
    "--data", "gaussian_mixture", "--num-samples", "40", "--num-classes", "3",
    "--num-features", "4", "--model", "mlp", "--width", "4", "--depth", "1", "--epochs", "2",
    "--threads", "1", "--quiet",
]
MEASURE = ["--num-probes", "2", "--num-steps", "6", "--bottom-k", "0", "--top-k", "3",
           "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from gn_theory.cli import main

    run = tmp_path_factory.mktemp("memory") / "run"
    assert main(["train", "--out", str(run), *TRAIN]) == 0
    return run


@pytest.mark.parametrize("command", ["measure", "decompose"])
def test_cli_max_memory_refuses_clearly(trained, tmp_path, capsys, command):
    from gn_theory.cli import main

    out = tmp_path / "out"
    assert main([command, str(trained), "--out", str(out), "--max-memory", "1KiB", *MEASURE]) == 1
    err = capsys.readouterr().err
    assert "needs" in err and "budget of 1.0 KiB (--max-memory=1KiB)" in err
    assert not out.exists()


def test_cli_max_memory_large_and_bad(trained, tmp_path, capsys, monkeypatch):
    from gn_theory.cli import main

    monkeypatch.setenv(ENV, "1KiB")  # the flag wins over the variable
    out = tmp_path / "ok"
    assert main(["measure", str(trained), "--out", str(out), "--max-memory", "1GiB",
                 *MEASURE]) == 0
    assert 'max_memory = "1GiB"' in (out / "config.toml").read_text()
    assert main(["measure", str(trained), "--out", str(tmp_path / "bad"), "--max-memory",
                 "lots", *MEASURE]) == 2
    assert "cannot read 'lots' as a memory size" in capsys.readouterr().err


def test_lanczos_growth_after_a_breakdown_is_checked_too():
    """A low-rank matrix breaks down; the basis then doubles: that growth is budgeted as well."""
    rng = np.random.default_rng(0)
    U = np.linalg.qr(rng.standard_normal((400, 5)))[0]
    A = (U * np.array([5.0, 4.0, 3.0, 2.0, 1.0])) @ U.T
    start = (20 + 1 + 8) * 400 * 8  # the start basis and the 8 eigenvectors, float64
    grown = (41 + 8) * 400 * 8
    ok = gt.lanczos(A, 8, seed=0, basis_size=20, max_memory=grown)
    assert ok.settings["breakdowns"] >= 1
    with pytest.raises(gt.MemoryBudgetError, match="grown after a breakdown"):
        gt.lanczos(A, 8, seed=0, basis_size=20, max_memory=start)
