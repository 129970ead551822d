"""Resumable outlier inputs (issue 16): measure_outlier_inputs(..., checkpoint_dir=) interrupted.

The Lanczos runs of G and G_w and the deflated density of G_w checkpoint into the folder;
a run interrupted in each of them (a GGN operator whose products raise after a given
number of columns) and resumed with a fresh operator gives the arrays of the uninterrupted
checkpointed run, bit for bit in float64. Another structure, seed or setting is refused.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gn_theory import InvalidInputError, ggn_operator
from gn_theory.decomposition import class_structure, measure_outlier_inputs
from gn_theory.exceptions import ResultFileError

from cases import RELU_C4_UNBALANCED

KW = {"num_probes": 3, "num_steps": 12, "seed": 0}


class _Interrupted(Exception):
    pass


def _ggn(model, data, budget: int | None = None):
    """The GGN operator; with ``budget``, its products raise after that many columns."""
    G = ggn_operator(model, data)
    if budget is not None:
        inner, left = G._matmat_torch, [budget]

        def matmat(V):
            left[0] -= V.shape[1]
            if left[0] < 0:
                raise _Interrupted
            return inner(V)

        G._matmat_torch = matmat
    return G


def _assert_same(a, b) -> None:
    for name in ("observed", "within_spectrum"):
        x, y = getattr(a, name), getattr(b, name)
        assert np.array_equal(x.eigenvalues, y.eigenvalues), name
        assert np.array_equal(x.residual_norms, y.residual_norms), name
        assert (x.eigenvectors is None) == (y.eigenvectors is None)
        assert x.eigenvectors is None or np.array_equal(x.eigenvectors, y.eigenvectors)
        assert x.num_matvecs == y.num_matvecs, name
    da, db = a.within_density, b.within_density
    assert np.array_equal(da.nodes, db.nodes) and np.array_equal(da.weights, db.weights)
    assert da.num_matvecs == db.num_matvecs
    assert da.settings["asymmetry"] == db.settings["asymmetry"]
    assert np.array_equal(a.ritz.values, b.ritz.values)
    assert np.array_equal(a.ritz.vectors, b.ritz.vectors)
    assert a.trace.estimate == b.trace.estimate
    assert np.array_equal(a.trace.samples, b.trace.samples)
    assert a.num_matvecs == b.num_matvecs


@pytest.fixture(scope="module")
def problem():
    model, data = RELU_C4_UNBALANCED.build()
    return model, data, class_structure(model, data)


def test_outlier_inputs_interrupted_anywhere_resume_to_the_same_arrays(problem, tmp_path):
    model, data, cs = problem
    plain = measure_outlier_inputs(_ggn(model, data), cs, **KW)
    ref = measure_outlier_inputs(_ggn(model, data), cs, checkpoint_dir=tmp_path / "ref", **KW)
    assert sorted(p.name for p in (tmp_path / "ref").iterdir()) == [
        "outlier_inputs.npz", "outlier_inputs_G_top.npz", "outlier_inputs_Gw_density.npz",
        "outlier_inputs_Gw_top.npz"]
    # checkpointing changes the Lanczos runs in nothing; the density is run a probe at a time
    assert np.array_equal(ref.observed.eigenvalues, plain.observed.eigenvalues)
    assert np.array_equal(ref.within_spectrum.eigenvectors, plain.within_spectrum.eigenvectors)
    np.testing.assert_allclose(ref.within_density.nodes, plain.within_density.nodes,
                               rtol=0, atol=1e-12)
    o, w = ref.observed.num_matvecs, ref.within_spectrum.num_matvecs
    d = ref.within_density.num_matvecs
    stops = {"G_top": o // 2, "Gw_top": o + w // 2, "Gw_density": o + w + d // 2,
             "ritz": o + w + d}
    for where, stop in stops.items():
        folder = tmp_path / where
        with pytest.raises(_Interrupted):
            measure_outlier_inputs(_ggn(model, data, stop), cs, checkpoint_dir=folder, **KW)
        saved = {p.name for p in folder.iterdir()}
        assert "outlier_inputs.npz" in saved
        if where != "G_top":  # the runs before the interrupted one are finished
            assert "outlier_inputs_G_top.npz" in saved
        if where in ("Gw_density", "ritz"):
            assert "outlier_inputs_Gw_density.npz" in saved
        fresh = _ggn(model, data)
        back = measure_outlier_inputs(fresh, cs, checkpoint_dir=folder, resume=True, **KW)
        _assert_same(back, ref)
        if where == "ritz":  # only the Ritz step (r products) was left to do
            assert fresh.num_matvecs == ref.ritz.num_matvecs


def test_outlier_inputs_foreign_checkpoints_are_refused(problem, tmp_path):
    model, data, cs = problem
    folder = tmp_path / "ck"
    with pytest.raises(_Interrupted):
        measure_outlier_inputs(_ggn(model, data, 10), cs, checkpoint_dir=folder, **KW)
    G = _ggn(model, data)
    with pytest.raises(ResultFileError, match="seed"):
        measure_outlier_inputs(G, cs, checkpoint_dir=folder, resume=True, **{**KW, "seed": 1})
    with pytest.raises(ResultFileError, match="num_probes"):
        measure_outlier_inputs(G, cs, checkpoint_dir=folder, resume=True,
                               **{**KW, "num_probes": 4})
    # a structure of the same G with other numbers (G_w's operator key is G's)
    other = dataclasses.replace(cs, K=cs.K * (1.0 + 1e-15) + 1e-300)
    assert not np.array_equal(other.K, cs.K)
    with pytest.raises(ResultFileError, match="structure"):
        measure_outlier_inputs(G, other, checkpoint_dir=folder, resume=True, **KW)
    with pytest.raises(InvalidInputError, match="checkpoint_dir"):
        measure_outlier_inputs(G, cs, resume=True, **KW)
