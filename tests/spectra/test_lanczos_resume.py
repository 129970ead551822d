"""Resumable Lanczos (issue 16): a run killed mid-way and resumed equals an uninterrupted one.

A thick-restart run checkpoints its state at restarts; one run is killed with SIGKILL in
a subprocess, others are interrupted after a given number of products (an operator that
raises), and each resumed run must equal the uninterrupted checkpointed run bit for bit
in float64: eigenvalues, eigenvectors, residuals, flags, products, restarts. Foreign
(another matrix, seed or setting) and truncated checkpoints are refused.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from scipy.sparse.linalg import aslinearoperator

import gn_theory as gt
from gn_theory.exceptions import InvalidInputError, ResultFileError
from helpers import Interrupted, InterruptingOperator, kill_after_first_checkpoint


def _matrix() -> np.ndarray:
    a = np.random.default_rng(4).standard_normal((300, 300))
    return (a + a.T) / 2


def _few_distinct() -> np.ndarray:
    """Eight distinct eigenvalues, 15 copies each: breakdowns, locking and restarts."""
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((120, 120)))
    A = (Q * np.repeat(np.arange(1.0, 9.0), 15)) @ Q.T
    return (A + A.T) / 2


def _assert_same(a, b) -> None:
    assert np.array_equal(a.eigenvalues, b.eigenvalues)
    assert (a.eigenvectors is None) == (b.eigenvectors is None)
    if a.eigenvectors is not None:
        assert np.array_equal(a.eigenvectors, b.eigenvectors)
    assert np.array_equal(a.residual_norms, b.residual_norms)
    assert np.array_equal(a.converged, b.converged)
    assert a.num_matvecs == b.num_matvecs and a.seed == b.seed
    for key in ("restarts", "iterations", "breakdowns", "norm_estimate", "asymmetry"):
        assert a.settings[key] == b.settings[key], key


_WORKER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import gn_theory as gt
    from gn_theory.operators import DenseOperator

    class Slow(DenseOperator):
        def _matmat_torch(self, V):
            time.sleep(0.05)
            return super()._matmat_torch(V)

    a = np.random.default_rng(4).standard_normal((300, 300))
    gt.lanczos(Slow((a + a.T) / 2), 4, seed=3, basis_size=12, checkpoint=sys.argv[1])
    """
)


def _restarts_saved(path) -> int:
    try:
        with np.load(path, allow_pickle=False) as z:
            return -1 if int(z["done"]) else int(z["restarts"])
    except Exception:  # not written yet (atomic rename: never half a file)
        return 0


def test_lanczos_killed_and_resumed_equals_uninterrupted(tmp_path):
    A = _matrix()
    plain = gt.lanczos(A, 4, seed=3, basis_size=12)
    ref = gt.lanczos(A, 4, seed=3, basis_size=12, checkpoint=tmp_path / "ref.npz")
    assert ref.settings["restarts"] > 3
    assert np.array_equal(plain.eigenvalues, ref.eigenvalues)  # checkpointing changes nothing
    assert np.array_equal(plain.eigenvectors, ref.eigenvectors)
    path = tmp_path / "run.npz"
    done = kill_after_first_checkpoint(["-c", _WORKER, str(path)], lambda: _restarts_saved(path))
    assert 1 <= done < ref.settings["restarts"], f"not interrupted midway ({done} restarts saved)"
    back = gt.lanczos(A, 4, seed=None, basis_size=12, checkpoint=path, resume=True)
    _assert_same(back, ref)
    again = gt.lanczos(A, 4, seed=None, basis_size=12, checkpoint=path, resume=True)
    _assert_same(again, ref)  # the finished checkpoint: returned as it is


@pytest.mark.parametrize(
    "make, kw",
    [
        (_matrix, {"k": 4, "basis_size": 12, "restarts_per_checkpoint": 3}),
        (_matrix, {"k": 4, "which": "both", "basis_size": 14, "block_size": 2}),
        (_few_distinct, {"k": 10, "basis_size": 16}),  # breakdowns: the basis grows
    ],
)
def test_lanczos_interrupted_anywhere_resumes_bit_for_bit(tmp_path, make, kw):
    A = make()
    ref = gt.lanczos(A, seed=1, checkpoint=tmp_path / "ref.npz", **kw)
    assert ref.settings["restarts"] >= 3
    if make is _few_distinct:
        assert ref.settings["breakdowns"] >= 1
    resumed = 0
    for stop in range(5, ref.num_matvecs, max(7, ref.num_matvecs // 8)):
        path = tmp_path / f"stop{stop}.npz"
        with pytest.raises(Interrupted):
            gt.lanczos(InterruptingOperator(A, stop), seed=1, checkpoint=path, **kw)
        resumed += path.exists()
        _assert_same(gt.lanczos(A, seed=1, checkpoint=path, resume=True, **kw), ref)
    assert resumed >= 2


def test_lanczos_foreign_and_truncated_checkpoints_are_refused(tmp_path):
    A = _matrix()
    kw = {"seed": 3, "basis_size": 12}
    path = tmp_path / "ck.npz"
    with pytest.raises(Interrupted):
        gt.lanczos(InterruptingOperator(A, 40), 4, checkpoint=path, **kw)
    with pytest.raises(ResultFileError, match="operator"):
        gt.lanczos(2 * A, 4, checkpoint=path, resume=True, **kw)
    with pytest.raises(ResultFileError, match="seed"):
        gt.lanczos(A, 4, checkpoint=path, resume=True, **{**kw, "seed": 4})
    with pytest.raises(ResultFileError, match="basis_size"):
        gt.lanczos(A, 4, checkpoint=path, resume=True, **{**kw, "basis_size": 14})
    with pytest.raises(ResultFileError, match="'k'|k:"):
        gt.lanczos(A, 5, checkpoint=path, resume=True, **kw)
    with pytest.raises(ResultFileError, match="which"):
        gt.lanczos(A, 4, "smallest", checkpoint=path, resume=True, **kw)
    with pytest.raises(ResultFileError, match="estimator"):
        gt.slq(A, num_probes=2, num_steps=5, seed=3, checkpoint=path, resume=True)
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ResultFileError, match="truncated or corrupt"):
        gt.lanczos(A, 4, checkpoint=cut, resume=True, **kw)
    # without resume the checkpoint is overwritten, never read
    fresh = gt.lanczos(A, 4, checkpoint=cut, **kw)
    assert np.array_equal(fresh.eigenvalues, gt.lanczos(A, 4, **kw).eigenvalues)
    with pytest.raises(InvalidInputError, match="fingerprint"):
        gt.lanczos(aslinearoperator(A), 4, checkpoint=tmp_path / "x.npz", resume=True, **kw)
    with pytest.raises(InvalidInputError, match="restarts_per_checkpoint"):
        gt.lanczos(A, 4, checkpoint=tmp_path / "x.npz", restarts_per_checkpoint=0, **kw)
