"""measure_outlier_inputs: the products with G that outlier prediction needs, vs dense references."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gn_theory import InvalidInputError, NumericalWarning, ShapeError, ggn_operator
from gn_theory.decomposition import (
    OutlierInputs,
    class_structure,
    measure_outlier_inputs,
    within_class_operator,
)
from gn_theory.results import SpectralDensity, Spectrum
from gn_theory.rmt import RitzResult, subspace_ritz
from gn_theory.spectra import lanczos, spectral_density

from cases import RELU_C4_UNBALANCED, TANH_C3_UNBALANCED
from references import DenseClassStructure


@pytest.fixture(scope="module")
def measured():
    model, data = RELU_C4_UNBALANCED.build()
    cs = class_structure(model, data)
    G = ggn_operator(model, data)
    dense = DenseClassStructure(model, *data)
    before = G.num_matvecs
    inputs = measure_outlier_inputs(G, cs, num_probes=3, num_steps=dense.P, seed=0)
    return model, data, cs, G, dense, inputs, G.num_matvecs - before


def test_types_and_settings(measured):
    _, _, cs, _, dense, inputs, spent = measured
    assert isinstance(inputs, OutlierInputs)
    assert isinstance(inputs.observed, Spectrum) and isinstance(inputs.within_spectrum, Spectrum)
    assert isinstance(inputs.within_density, SpectralDensity)
    assert isinstance(inputs.ritz, RitzResult)
    r = cs.eigenvalues("G_cm").size
    assert inputs.settings["k"] == r and inputs.settings["num_vectors"] == min(r, dense.P - 1)
    assert inputs.settings["num_probes"] == 3 and inputs.settings["seed"] == 0
    assert inputs.settings["fingerprint"] == cs.settings["fingerprint"]
    assert inputs.settings["skipped"] == []
    assert inputs.num_matvecs == spent > 0  # every product with G is accounted for
    assert "top of G_w" in str(inputs.summary())


def test_observed_is_the_top_of_G(measured):
    _, _, cs, _, dense, inputs, _ = measured
    r = cs.eigenvalues("G_cm").size
    ref = np.sort(np.linalg.eigvalsh(dense.G.numpy()))[::-1][:r]
    np.testing.assert_allclose(inputs.observed.eigenvalues, ref, rtol=1e-6)
    assert inputs.observed.eigenvectors is None


def test_within_spectrum_is_the_top_of_G_w(measured):
    _, _, _, _, dense, inputs, _ = measured
    w, U = np.linalg.eigh(dense.G_w.numpy())
    w, U = w[::-1], U[:, ::-1]
    spec = inputs.within_spectrum
    n = spec.eigenvalues.size
    np.testing.assert_allclose(spec.eigenvalues, w[:n], rtol=1e-5)
    assert np.all(np.diff(spec.eigenvalues) <= 0)  # descending
    overlap = np.abs(np.sum(np.asarray(spec.eigenvectors)[:, :2] * U[:, :2], axis=0))
    np.testing.assert_allclose(overlap, 1.0, atol=1e-4)


def test_within_density_nodes_are_eigenvalues_of_G_w(measured):
    _, _, _, _, dense, inputs, _ = measured
    w = np.linalg.eigvalsh(dense.G_w.numpy())
    nodes = np.asarray(inputs.within_density.nodes)
    weights = np.asarray(inputs.within_density.weights)
    big = nodes[weights > 1e-8]  # with num_steps = P the quadrature is exact
    dist = np.min(np.abs(big[:, None] - w[None, :]), axis=1)
    assert dist.max() < 1e-8 * max(w.max(), 1.0)
    # its first moment is the trace of G_w over P, up to the probes' sampling error
    m1 = float(np.sum(weights * nodes) / weights.shape[0])
    assert abs(m1 - w.mean()) < 0.5 * w.mean()


def test_ritz_is_rayleigh_ritz_of_G_on_the_class_mean_span(measured):
    _, _, cs, _, dense, inputs, _ = measured
    Q = cs.class_mean_basis()
    T = Q.T @ dense.G.numpy() @ Q
    np.testing.assert_allclose(inputs.ritz.values, np.sort(np.linalg.eigvalsh(T))[::-1], rtol=1e-10)
    np.testing.assert_allclose(inputs.ritz.basis, Q, rtol=0, atol=0)


def test_the_same_measurements_as_calling_the_estimators_directly(measured):
    _, _, cs, G, _, inputs, _ = measured
    r = cs.eigenvalues("G_cm").size
    P = cs.num_params
    W = within_class_operator(G, cs)
    top = lanczos(G, r, which="largest", seed=0, return_eigenvectors=False)
    np.testing.assert_array_equal(inputs.observed.eigenvalues, top.eigenvalues)
    within = lanczos(W, min(r, P - 1), which="largest", seed=0, tol=1e-6, warn=False)
    np.testing.assert_array_equal(inputs.within_spectrum.eigenvalues, within.eigenvalues)
    # the density deflates the top of G_w it has just computed (exact, weight 1/P)
    dens = spectral_density(W, deflate=within, num_probes=3, num_steps=P, seed=0)
    np.testing.assert_array_equal(inputs.within_density.nodes, dens.nodes)
    np.testing.assert_array_equal(inputs.within_density.weights, dens.weights)
    np.testing.assert_array_equal(inputs.within_density.deflated_eigenvalues, within.eigenvalues)
    rr = subspace_ritz(G, cs.class_mean_basis(), orthonormalize=False)
    np.testing.assert_array_equal(inputs.ritz.values, rr.values)


def test_k_and_num_vectors():
    model, data = TANH_C3_UNBALANCED.build()
    cs = class_structure(model, data)
    inputs = measure_outlier_inputs(ggn_operator(model, data), cs, k=2, num_vectors=3,
                                    num_probes=2, num_steps=8)
    assert inputs.observed.eigenvalues.size == 2
    assert inputs.within_spectrum.eigenvalues.size == 3
    assert inputs.within_density.num_probes == 2


def test_memory_fallback_measures_only_the_top_of_G():
    model, data = TANH_C3_UNBALANCED.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumericalWarning)
        cs = class_structure(model, data, max_bytes=4 * 3 * 51 * 8)
    inputs = measure_outlier_inputs(ggn_operator(model, data), cs, num_probes=2, num_steps=8)
    assert inputs.observed.eigenvalues.size == 3  # C: the rank of G_1
    assert inputs.within_density is None and inputs.within_spectrum is None and inputs.ritz is None
    assert "memory guard" in inputs.settings["skipped"][0]
    assert "not measured" in str(inputs.summary())


def test_bad_inputs():
    model, data = TANH_C3_UNBALANCED.build()
    cs = class_structure(model, data)
    G = ggn_operator(model, data)
    with pytest.raises(InvalidInputError, match="ClassStructure"):
        measure_outlier_inputs(G, cs.overview())
    with pytest.raises(InvalidInputError, match="CurvatureOperator"):
        measure_outlier_inputs(np.eye(cs.num_params), cs)
    for kwargs, word in (({"k": 0}, "k"), ({"num_probes": 0}, "num_probes"),
                         ({"num_steps": 0}, "num_steps"), ({"num_vectors": 0}, "num_vectors"),
                         ({"seed": -1}, "seed"), ({"k": 10**6}, "exceeds")):
        with pytest.raises(InvalidInputError, match=word):
            measure_outlier_inputs(G, cs, **kwargs)
    with pytest.raises(ShapeError, match="dimension"):
        measure_outlier_inputs(ggn_operator(model, data, params=["2.bias"]), cs)
