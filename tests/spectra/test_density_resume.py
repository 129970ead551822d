"""Resumable deflated densities and smallest eigenvalues (issue 16).

``spectral_density(..., checkpoint=path)`` checkpoints the deflation's Lanczos run to
``<stem>.deflation.npz`` and the deflated SLQ after each probe group to ``path``;
``smallest_eigenvalues`` checkpoints its top run to ``<stem>.top.npz`` and its search to
``path``. Runs interrupted anywhere (an operator that raises after a given number of
products: inside the deflation, right after it, between probe groups) or killed with
SIGKILL in a subprocess, then resumed, must equal the uninterrupted checkpointed run bit
for bit in float64. Foreign (another matrix, seed, setting or deflated basis) and
truncated checkpoints are refused.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from scipy.sparse.linalg import aslinearoperator

import gn_theory as gt
from gn_theory.exceptions import InvalidInputError, ResultFileError
from gn_theory.operators import DenseOperator
from gn_theory.results import Spectrum
from helpers import Interrupted, InterruptingOperator, kill_after_first_checkpoint

#: deflate 4 of a GOE-like matrix: its Lanczos takes 77 products and 7 thick restarts
KW = {"deflate": 4, "num_probes": 4, "num_steps": 15, "seed": 1}


def _matrix() -> np.ndarray:
    a = np.random.default_rng(4).standard_normal((300, 300))
    return (a + a.T) / 2


def _assert_same(a, b) -> None:
    assert np.array_equal(a.nodes, b.nodes) and np.array_equal(a.weights, b.weights)
    assert np.array_equal(a.bounds, b.bounds)
    for name in ("deflated_eigenvalues", "bulk_bounds"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None) and (x is None or np.array_equal(x, y)), name
    assert a.num_matvecs == b.num_matvecs and a.seed == b.seed
    for key in ("deflation_num_matvecs", "deflation_max_residual", "lengths", "converged_ritz",
                "asymmetry", "deflation_source"):
        assert a.settings.get(key) == b.settings.get(key), key


def _state(path) -> tuple[str, int]:
    """(the deflation's state, probes saved) of an interrupted run's checkpoints."""
    defl = path.with_name(path.name[:-4] + ".deflation.npz")
    if not defl.exists():
        where = "none"
    else:
        with np.load(defl) as z:
            where = "done" if int(z["done"]) else "restart"
    if not path.exists():
        return where, 0
    with np.load(path) as z:
        return where, int(z["alpha"].shape[0])


def test_density_interrupted_anywhere_resumes_bit_for_bit(tmp_path):
    A = _matrix()
    plain = gt.spectral_density(A, **KW)
    ref = gt.spectral_density(A, checkpoint=tmp_path / "ref.npz", **KW)
    assert (tmp_path / "ref.deflation.npz").is_file()  # the deflation's own checkpoint
    # the same probes and deflation as without a checkpoint (one probe group at a time)
    np.testing.assert_allclose(ref.nodes, plain.nodes, rtol=0, atol=1e-12)
    assert np.array_equal(ref.deflated_eigenvalues, plain.deflated_eigenvalues)
    assert ref.num_matvecs == plain.num_matvecs == 77 + 4 * 15
    states = set()
    # in the deflation before its first restart and after some, at its end, between groups
    for stop in (5, 40, 70, 78, 77 + 15 + 4, 77 + 30 + 9, 77 + 45 + 14):
        path = tmp_path / f"stop{stop}.npz"
        with pytest.raises(Interrupted):
            gt.spectral_density(InterruptingOperator(A, stop), checkpoint=path, **KW)
        states.add(_state(path))
        saved = path.exists() or path.with_name(path.name[:-4] + ".deflation.npz").exists()
        # seed=None takes the checkpoints' seed (there is none before the first restart)
        back = gt.spectral_density(A, checkpoint=path, resume=True,
                                   **{**KW, "seed": None if saved else KW["seed"]})
        _assert_same(back, ref)
    assert states == {("none", 0), ("restart", 0), ("done", 0), ("done", 1), ("done", 2),
                      ("done", 3)}
    # a finished run resumes without a product
    counted = DenseOperator(A)
    again = gt.spectral_density(counted, checkpoint=tmp_path / "ref.npz", resume=True, **KW)
    _assert_same(again, ref)
    assert counted.num_matvecs == 0


def test_density_of_a_given_spectrum_resumes_in_groups(tmp_path):
    A = _matrix()
    top = gt.lanczos(A, 4, seed=2)
    kw = {**KW, "deflate": top, "num_probes": 5, "probes_per_checkpoint": 2}
    ref = gt.spectral_density(A, checkpoint=tmp_path / "ref.npz", **kw)
    assert not (tmp_path / "ref.deflation.npz").exists()  # nothing computed to deflate
    assert ref.settings["asymmetry"] is not None  # checked on the first group (free: 2 probes)
    assert ref.num_matvecs == 5 * 15
    saved = set()
    for stop in (10, 35, 70):  # in the first, second and third group
        path = tmp_path / f"stop{stop}.npz"
        with pytest.raises(Interrupted):
            gt.spectral_density(InterruptingOperator(A, stop), checkpoint=path, **kw)
        saved.add(_state(path)[1])
        _assert_same(gt.spectral_density(A, checkpoint=path, resume=True, **kw), ref)
    assert saved == {0, 2, 4}


_WORKER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import gn_theory as gt
    from gn_theory.operators import DenseOperator

    class Slow(DenseOperator):
        n = 0

        def _matmat_torch(self, V):  # the SLQ's products slowed (the deflation takes 77)
            self.n += V.shape[1]
            if self.n > 77:
                time.sleep(0.05)
            return super()._matmat_torch(V)

    a = np.random.default_rng(4).standard_normal((300, 300))
    gt.spectral_density(Slow((a + a.T) / 2), deflate=4, num_probes=4, num_steps=15, seed=1,
                        checkpoint=sys.argv[1])
    """
)


def _probes_saved(path) -> int:
    try:
        with np.load(path, allow_pickle=False) as z:
            return int(z["alpha"].shape[0])
    except Exception:  # not written yet (atomic rename: never half a file)
        return 0


def test_density_killed_and_resumed_equals_uninterrupted(tmp_path):
    A = _matrix()
    ref = gt.spectral_density(A, checkpoint=tmp_path / "ref.npz", **KW)
    path = tmp_path / "run.npz"
    done = kill_after_first_checkpoint(["-c", _WORKER, str(path)], lambda: _probes_saved(path))
    assert 1 <= done < KW["num_probes"], f"not interrupted midway ({done} probes saved)"
    settings = {k: v for k, v in KW.items() if k != "seed"}
    back = gt.spectral_density(A, checkpoint=path, resume=True, seed=None, **settings)
    _assert_same(back, ref)


def test_density_foreign_and_truncated_checkpoints_are_refused(tmp_path):
    A = _matrix()
    path = tmp_path / "ck.npz"
    with pytest.raises(Interrupted):
        gt.spectral_density(InterruptingOperator(A, 77 + 20), checkpoint=path, **KW)
    assert _state(path) == ("done", 1)
    with pytest.raises(ResultFileError, match="operator"):
        gt.spectral_density(2 * A, checkpoint=path, resume=True, **KW)
    with pytest.raises(ResultFileError, match="seed"):
        gt.spectral_density(A, checkpoint=path, resume=True, **{**KW, "seed": 2})
    with pytest.raises(ResultFileError, match="num_steps"):
        gt.spectral_density(A, checkpoint=path, resume=True, **{**KW, "num_steps": 16})
    with pytest.raises(ResultFileError, match="probes_per_checkpoint"):
        gt.spectral_density(A, checkpoint=path, resume=True, probes_per_checkpoint=2, **KW)
    with pytest.raises(ResultFileError, match="estimator"):
        gt.slq(A, num_probes=4, num_steps=15, seed=1, checkpoint=path, resume=True)
    # another deflated basis: the deflation's hash (the same span, one column's sign flipped)
    top = gt.lanczos(A, 4, seed=2)
    kw = {**KW, "deflate": top}
    given = tmp_path / "given.npz"
    gt.spectral_density(A, checkpoint=given, **kw)
    vec = top.eigenvectors.copy()
    vec[:, 0] *= -1.0
    flipped = Spectrum(eigenvalues=top.eigenvalues, eigenvectors=vec,
                       residual_norms=top.residual_norms, converged=top.converged,
                       num_matvecs=top.num_matvecs, which="largest", method="lanczos",
                       num_params=300, seed=2, settings=dict(top.settings))
    with pytest.raises(ResultFileError, match="deflation"):
        gt.spectral_density(A, checkpoint=given, resume=True, **{**KW, "deflate": flipped})
    # truncated: the SLQ checkpoint and the deflation's
    for name in ("ck.npz", "ck.deflation.npz"):
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) // 2])
        with pytest.raises(ResultFileError, match="truncated or corrupt"):
            gt.spectral_density(A, checkpoint=path, resume=True, **KW)
        (tmp_path / name).write_bytes(data)
    # without resume the checkpoints are overwritten, never read
    fresh = gt.spectral_density(A, checkpoint=path, **{**KW, "num_steps": 16})
    assert np.array_equal(fresh.nodes, gt.spectral_density(
        A, checkpoint=tmp_path / "other.npz", **{**KW, "num_steps": 16}).nodes)
    with pytest.raises(InvalidInputError, match="fingerprint"):
        gt.spectral_density(aslinearoperator(A), checkpoint=tmp_path / "x.npz", resume=True,
                            **KW)
    with pytest.raises(InvalidInputError, match="probes_per_checkpoint"):
        gt.spectral_density(A, checkpoint=tmp_path / "x.npz", probes_per_checkpoint=0, **KW)


def _assert_same_spectrum(a, b) -> None:
    assert np.array_equal(a.eigenvalues, b.eigenvalues)
    assert np.array_equal(a.residual_norms, b.residual_norms)
    assert np.array_equal(a.converged, b.converged)
    assert a.num_matvecs == b.num_matvecs and a.seed == b.seed
    for key in ("restarts", "iterations", "deflated", "deflation_source", "search_tol"):
        assert a.settings[key] == b.settings[key], key


def test_smallest_eigenvalues_interrupted_and_resumed(tmp_path):
    A = _matrix()
    kw = {"top": 4, "seed": 0}
    plain = gt.smallest_eigenvalues(A, 2, **kw)
    ref = gt.smallest_eigenvalues(A, 2, checkpoint=tmp_path / "ref.npz", **kw)
    _assert_same_spectrum(ref, plain)  # checkpointing changes nothing
    assert (tmp_path / "ref.top.npz").is_file()
    assert ref.num_matvecs == 157  # 99 for the top, 58 for the search
    for stop in (30, 99, 120, 150):  # in the top, at its end, in the search
        path = tmp_path / f"stop{stop}.npz"
        with pytest.raises(Interrupted):
            gt.smallest_eigenvalues(InterruptingOperator(A, stop), 2, checkpoint=path, **kw)
        saved = path.exists() or path.with_name(path.name[:-4] + ".top.npz").exists()
        back = gt.smallest_eigenvalues(A, 2, checkpoint=path, resume=True, top=4,
                                       seed=None if saved else 0)
        _assert_same_spectrum(back, ref)
    # a given top: the search's checkpoint is tied to the deflated basis and the shift
    top = gt.lanczos(A, 4, seed=2)
    path = tmp_path / "given.npz"
    with pytest.raises(Interrupted):
        gt.smallest_eigenvalues(InterruptingOperator(A, 30), 2, top=top, seed=0, checkpoint=path)
    full = gt.smallest_eigenvalues(A, 2, top=top, seed=0, checkpoint=tmp_path / "full.npz")
    _assert_same_spectrum(
        gt.smallest_eigenvalues(A, 2, top=top, seed=0, checkpoint=path, resume=True), full)
    other = gt.lanczos(A, 4, seed=3)
    assert not np.array_equal(other.eigenvectors, top.eigenvectors)
    with pytest.raises(ResultFileError, match="operator"):
        gt.smallest_eigenvalues(A, 2, top=other, seed=0, checkpoint=path, resume=True)
    with pytest.raises(InvalidInputError, match="fingerprint"):
        gt.smallest_eigenvalues(aslinearoperator(A), 2, checkpoint=tmp_path / "x.npz",
                                resume=True, **kw)
