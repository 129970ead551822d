"""Resumable SLQ and trace: a run killed with SIGKILL and resumed equals an uninterrupted one.

The run in ``resume_worker.py`` checkpoints after every probe group; the test kills it
once the checkpoint holds part of the work, resumes here (with ``seed=None``: the
checkpoint's seed) and compares with an uninterrupted checkpointed run, bit for bit in
float64. Foreign (another matrix, settings or seed) and truncated checkpoints are refused.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse.linalg import aslinearoperator

import gn_theory as gt
from gn_theory.exceptions import InvalidInputError, ResultFileError
from helpers import kill_after_first_checkpoint

HERE = Path(__file__).resolve().parent
WORKER = HERE / "resume_worker.py"


def _worker():
    spec = importlib.util.spec_from_file_location("gn_resume_worker", WORKER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _done(path: Path, key: str) -> int:
    try:
        with np.load(path, allow_pickle=False) as z:
            return int(z[key].shape[0])
    except Exception:  # not written yet (atomic rename: never half a file)
        return 0


def _kill_midway(which: str, path: Path, key: str, total: int) -> int:
    done = kill_after_first_checkpoint([str(WORKER), which, str(path)], lambda: _done(path, key))
    assert 1 <= done < total, f"the run was not interrupted midway ({done} of {total})"
    return done


def test_slq_killed_and_resumed_equals_uninterrupted(tmp_path):
    w = _worker()
    A = w.matrix()
    ref = gt.slq(A, checkpoint=tmp_path / "ref.npz", **w.SLQ)
    plain = gt.slq(A, **{k: v for k, v in w.SLQ.items() if k != "probes_per_checkpoint"})
    np.testing.assert_allclose(ref.nodes, plain.nodes, rtol=0, atol=1e-12)  # same probes
    path = tmp_path / "slq.npz"
    _kill_midway("slq", path, "alpha", w.SLQ["num_probes"])
    settings = {k: v for k, v in w.SLQ.items() if k != "seed"}
    back = gt.slq(A, checkpoint=path, resume=True, seed=None, **settings)
    assert back.seed == ref.seed
    assert np.array_equal(back.nodes, ref.nodes) and np.array_equal(back.weights, ref.weights)
    assert back.num_matvecs == ref.num_matvecs
    assert back.settings["asymmetry"] == ref.settings["asymmetry"]


def test_trace_killed_and_resumed_equals_uninterrupted(tmp_path):
    w = _worker()
    A = w.matrix()
    ref = gt.trace(A, checkpoint=tmp_path / "ref.npz", **w.TRACE)
    plain = gt.trace(A, **w.TRACE)
    assert np.array_equal(ref.samples, plain.samples)
    path = tmp_path / "trace.npz"
    _kill_midway("trace", path, "samples", w.TRACE["num_matvecs"])
    back = gt.trace(A, checkpoint=path, resume=True, **w.TRACE)
    assert np.array_equal(back.samples, ref.samples)
    assert back.estimate == ref.estimate and back.bse == ref.bse
    assert back.num_matvecs == ref.num_matvecs


def test_foreign_and_truncated_checkpoints_are_refused(tmp_path):
    w = _worker()
    A = w.matrix()
    path = tmp_path / "ck.npz"
    gt.slq(A, checkpoint=path, **w.SLQ)
    other = dict(w.SLQ)
    with pytest.raises(ResultFileError, match="operator"):
        gt.slq(2 * A, checkpoint=path, resume=True, **other)
    with pytest.raises(ResultFileError, match="seed"):
        gt.slq(A, checkpoint=path, resume=True, **{**other, "seed": 22})
    with pytest.raises(ResultFileError, match="num_steps"):
        gt.slq(A, checkpoint=path, resume=True, **{**other, "num_steps": 11})
    with pytest.raises(ResultFileError, match="estimator"):
        gt.trace(A, checkpoint=path, resume=True, **{**w.TRACE, "seed": 21})
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ResultFileError, match="truncated or corrupt"):
        gt.slq(A, checkpoint=cut, resume=True, **other)
    fresh = gt.slq(A, checkpoint=tmp_path / "none.npz", resume=True, **other)  # nothing yet
    assert np.array_equal(fresh.nodes, gt.slq(A, checkpoint=tmp_path / "x.npz", **other).nodes)


def test_resume_needs_a_fingerprint(tmp_path):
    A = aslinearoperator(np.eye(4))
    with pytest.raises(InvalidInputError, match="fingerprint"):
        gt.slq(A, num_probes=2, num_steps=2, checkpoint=tmp_path / "c.npz", resume=True)
    with pytest.raises(InvalidInputError, match="fingerprint"):  # hutch++ resumes too (issue 16)
        gt.trace(A, method="hutch++", checkpoint=tmp_path / "c.npz", resume=True)
