"""gn_theory.decomposition.class_structure against dense float64 references (tests/references.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gn_theory import (
    DataError,
    InvalidInputError,
    MemoryBudgetError,
    NonFiniteError,
    NumericalWarning,
    ggn_operator,
)
from gn_theory.data import batches, gaussian_mixture
from gn_theory.decomposition import (
    ClassStructure,
    class_structure,
    part_operator,
    within_class_operator,
)
from gn_theory.models import mlp, train
from gn_theory.results import ClassStructure as ResultsClassStructure
from gn_theory.spectra import eigh

from cases import CLASSIFIER_CASES, RELU_C4_UNBALANCED, TANH_C3_UNBALANCED
from references import DenseClassStructure, dense_ggn, rel_err

nn = torch.nn
TOL = 1e-10


def nonzero_eigs(M, rank):
    return np.sort(np.linalg.eigvalsh(M.numpy()))[::-1][:rank]


@pytest.fixture(scope="module", params=CLASSIFIER_CASES, ids=[c.name for c in CLASSIFIER_CASES])
def problem(request):
    model, (X, y) = request.param.build()
    dense = DenseClassStructure(model, X, y)
    cs = class_structure(model, (X, y))
    return model, X, y, dense, cs


# ----------------------------------------------------------------------------- exactness
def test_the_result_type_is_the_torch_free_one():
    assert ClassStructure is ResultsClassStructure


def test_dense_reference_is_the_ggn(problem):
    model, X, y, dense, _ = problem
    assert rel_err(dense.G, dense_ggn(model, X, y)) < TOL
    # the algebra of docs/theory.md 2.2-2.3 on the dense matrices
    assert rel_err(dense.G_cm + dense.G_w, dense.G) < TOL
    assert rel_err(dense.G_0 + dense.G_1 + dense.G_2, dense.G_cm) < TOL


def test_class_means_and_priors(problem):
    _, _, y, dense, cs = problem
    assert cs.class_means.shape == (dense.C, dense.C, dense.P)
    assert cs.class_level_means.shape == (dense.C, dense.P)
    np.testing.assert_allclose(cs.class_means, dense.means.numpy(), rtol=0, atol=1e-13)
    np.testing.assert_allclose(cs.class_level_means, dense.level.numpy(), rtol=0, atol=1e-13)
    np.testing.assert_allclose(cs.priors, dense.priors.numpy(), rtol=0, atol=0)
    assert cs.class_counts.tolist() == dense.counts.tolist()
    assert (cs.num_classes, cs.num_samples, cs.num_params) == (dense.C, dense.N, dense.P)
    np.testing.assert_allclose(
        cs.self_class_means, dense.means[range(dense.C), range(dense.C)].numpy(), atol=1e-13
    )


@pytest.mark.parametrize("part", ["G_cm", "G_0", "G_1", "G_2"])
def test_gram_eigenvalues_are_the_nonzero_eigenvalues_of_the_dense_part(problem, part):
    _, _, _, dense, cs = problem
    e = cs.eigenvalues(part)
    assert np.all(np.diff(e) <= 0) and np.all(e > 0)  # descending
    ref = nonzero_eigs(dense.part(part), e.size)
    scale = float(ref[0])
    np.testing.assert_allclose(e, ref, rtol=0, atol=1e-10 * scale)
    # and nothing nonzero was dropped: the next dense eigenvalue is round-off
    rest = np.sort(np.linalg.eigvalsh(dense.part(part).numpy()))[::-1][e.size :]
    assert rest.size == 0 or abs(rest).max() < 1e-10 * scale


def test_rank_bounds(problem):
    _, _, _, dense, cs = problem
    C = dense.C
    assert cs.eigenvalues("G_cm").size <= C * C
    assert cs.eigenvalues("G_0").size <= C
    assert cs.eigenvalues("G_1").size <= C
    assert cs.eigenvalues("G_2").size <= C * (C - 2)


@pytest.mark.parametrize("part", ["G_cm", "G_0", "G_1", "G_2"])
def test_eigenvectors_and_part_operators(problem, part):
    _, _, _, dense, cs = problem
    U = cs.eigenvectors(part)
    e = cs.eigenvalues(part)
    M = dense.part(part).numpy()
    scale = float(e[0])
    # u = A v / sqrt(lambda): orthonormal to ~eps * lambda_1 / lambda
    np.testing.assert_allclose(U.T @ U, np.eye(e.size), atol=1e-7)
    np.testing.assert_allclose(M @ U, U * e, atol=1e-10 * scale)
    np.testing.assert_allclose(cs.factor(part).T @ cs.factor(part), M, atol=1e-12 * scale)
    # the matrix-free operator of the part (more paths in test_within_class_operator.py)
    assert rel_err(part_operator(cs, part).to_dense(), dense.part(part)) < TOL


def test_gram_matrices_match_their_definition(problem):
    _, _, _, dense, cs = problem
    C = dense.C
    w = dense.priors.sqrt()
    A = (w[:, None, None] * dense.means).reshape(C * C, -1)
    np.testing.assert_allclose(cs.K, (A @ A.T).numpy(), atol=1e-13)
    A1 = (C - 1) ** 0.5 * w[:, None] * dense.level
    np.testing.assert_allclose(cs.K1, (A1 @ A1.T).numpy(), atol=1e-13)
    A0 = w[:, None] * dense.means[range(C), range(C)]
    np.testing.assert_allclose(cs.K0, (A0 @ A0.T).numpy(), atol=1e-13)
    A2 = torch.stack([w[c] * (dense.means[c, d] - dense.level[c])
                      for c in range(C) for d in range(C) if d != c])
    np.testing.assert_allclose(cs.K2, (A2 @ A2.T).numpy(), atol=1e-13)
    for part, K in (("G_0", cs.K0), ("G_1", cs.K1), ("G_2", cs.K2), ("G_cm", cs.K)):
        F = cs.factor(part)
        np.testing.assert_allclose(F @ F.T, K, atol=1e-13)


def test_hierarchy_identity_without_products_with_G(problem):
    err = problem[-1].identity_error(num_probes=3, seed=1)
    assert set(err) == {"G_cm = G_0 + G_1 + G_2"}
    assert max(err.values()) < 1e-12


def test_class_mean_basis_spans_the_class_means(problem):
    _, _, _, dense, cs = problem
    Q = cs.class_mean_basis()
    r = cs.eigenvalues("G_cm").size
    assert Q.shape == (dense.P, r)
    np.testing.assert_allclose(Q.T @ Q, np.eye(r), atol=1e-10)
    A = dense.means.reshape(dense.C * dense.C, -1).numpy().T  # (P, C^2)
    A = A[:, np.repeat(dense.priors.numpy(), dense.C) > 0]
    np.testing.assert_allclose(Q @ (Q.T @ A), A, atol=1e-10 * np.abs(A).max())
    # Q^T G_cm Q is diagonal with the descending eigenvalues
    T = Q.T @ dense.G_cm.numpy() @ Q
    np.testing.assert_allclose(T, np.diag(cs.eigenvalues("G_cm")), atol=1e-10 * T.max())


def test_predicted_outliers(problem):
    _, _, _, dense, cs = problem
    pred = cs.predicted_outliers()
    C = dense.C
    assert pred["num_outliers"] == C
    np.testing.assert_allclose(pred["outliers"], cs.eigenvalues("G_1"))
    np.testing.assert_allclose(pred["class_mean_top"], cs.eigenvalues("G_cm")[:C])
    assert pred["num_mini_outliers"] <= C * (C - 1)
    assert pred["count_alternatives"] == (C, C - 1)


# ----------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("method", ["class_split", "masked", "loop"])
def test_uneven_batches_equal_one_batch(method):
    model, (X, y) = RELU_C4_UNBALANCED.build()
    one = class_structure(model, (X, y))
    split = [(X[:5], y[:5]), (X[5:6], y[5:6]), (X[6:17], y[6:17]), (X[17:], y[17:])]
    many = class_structure(model, split, method=method)
    np.testing.assert_allclose(many.class_means, one.class_means, rtol=0, atol=1e-14)
    np.testing.assert_allclose(many.K, one.K, rtol=0, atol=1e-14)
    np.testing.assert_allclose(many.priors, one.priors)
    if method == "masked":  # C cotangents per class present in each batch
        assert many.num_matvecs == sum(len(torch.unique(b[1])) for b in split) * 4
    else:  # rows of a class gathered across batches: C VJPs per class
        assert many.num_matvecs == 4 * 4
    tiny = class_structure(model, split, method=method, buffer_rows=1)  # flush every batch
    np.testing.assert_allclose(tiny.class_means, one.class_means, rtol=0, atol=1e-14)
    np.testing.assert_allclose(tiny.loss_value, one.loss_value, rtol=1e-14)
    assert many.settings["method"] == method


def test_float32_model_accumulates_in_float64():
    model, (X, y) = TANH_C3_UNBALANCED.build()
    ref = class_structure(model, (X, y))
    cs32 = class_structure(model, (X.float(), y), dtype=torch.float32)
    assert cs32.class_means.dtype == np.float64 and cs32.K.dtype == np.float64
    np.testing.assert_allclose(cs32.class_means, ref.class_means, atol=1e-5)
    assert cs32.settings["accumulation_dtype"] == "float64"


def test_params_selection():
    model, (X, y) = TANH_C3_UNBALANCED.build()
    cs = class_structure(model, (X, y), params=["2.weight", "2.bias"])
    dense = DenseClassStructure(model, X, y)
    last = slice(dense.P - 21, dense.P)  # last layer: 6 * 3 + 3
    np.testing.assert_allclose(cs.class_means, dense.means[:, :, last].numpy(), atol=1e-13)


def test_settings_carry_the_operator_fingerprint():
    model, data = TANH_C3_UNBALANCED.build()
    cs = class_structure(model, data)
    G = ggn_operator(model, data)
    assert cs.settings["fingerprint"] == G.fingerprint
    assert cs.settings["loss"] == "cross_entropy" and cs.settings["num_params"] == cs.num_params


# ----------------------------------------------------------------------------- memory guard
def test_memory_guard_falls_back_to_class_level_means():
    model, (X, y) = RELU_C4_UNBALANCED.build()
    full = class_structure(model, (X, y))
    with pytest.warns(NumericalWarning, match="skipped"):
        small = class_structure(model, (X, y), max_bytes=16 * full.num_params * 8)
    assert small.class_means is None and small.K is None and small.K2 is None
    assert small.skipped and "class_means" in small.skipped[0]
    np.testing.assert_allclose(small.class_level_means, full.class_level_means, atol=1e-14)
    np.testing.assert_allclose(small.self_class_means, full.self_class_means, atol=1e-14)
    np.testing.assert_allclose(small.eigenvalues("G_1"), full.eigenvalues("G_1"), atol=1e-14)
    np.testing.assert_allclose(small.eigenvalues("G_0"), full.eigenvalues("G_0"), atol=1e-14)
    assert small.num_matvecs == 2 * sum(1 for _ in range(4))  # 2 cotangents per class present
    G = ggn_operator(model, (X, y))
    for call in (lambda: small.eigenvalues("G_cm"), lambda: within_class_operator(G, small),
                 lambda: small.eigenvalues("G_2"), lambda: small.identity_error(),
                 lambda: small.class_mean_basis()):
        with pytest.raises(InvalidInputError, match="skipped"):
            call()
    assert "skipped" in str(small.summary())
    assert small.predicted_outliers()["num_mini_outliers"] is None


def test_memory_guard_refuses_when_even_the_fallback_is_too_big():
    model, (X, y) = RELU_C4_UNBALANCED.build()
    with pytest.raises(MemoryBudgetError, match="max_bytes"):
        class_structure(model, (X, y), max_bytes=100)


# ----------------------------------------------------------------------------- empty class
def test_empty_class_is_an_error_by_default():
    model, (X, y) = RELU_C4_UNBALANCED.build()
    keep = y != 2
    with pytest.raises(DataError, match=r"classes \[2\] have no samples"):
        class_structure(model, (X[keep], y[keep]))


def test_empty_class_zero_treatment_keeps_the_identities():
    model, (X, y) = RELU_C4_UNBALANCED.build()
    keep = y != 2
    X, y = X[keep], y[keep]
    cs = class_structure(model, (X, y), empty_classes="zero")
    dense = DenseClassStructure(model, X, y)
    assert cs.priors[2] == 0 and cs.class_counts[2] == 0
    assert not cs.class_means[2].any()
    G = ggn_operator(model, (X, y))
    assert rel_err(within_class_operator(G, cs).to_dense() + part_operator(cs, "G_cm").to_dense(),
                   dense.G) < TOL
    assert rel_err(part_operator(cs, "G_cm").to_dense(), dense.G_cm) < TOL
    e = cs.eigenvalues("G_1")
    assert e.size == 3  # the empty class adds no eigenvalue
    np.testing.assert_allclose(e, nonzero_eigs(dense.G_1, 3), atol=1e-10 * e[0])
    assert "no samples" in str(cs.summary())


# ----------------------------------------------------------------------------- bad input
def test_bad_inputs():
    model, (X, y) = TANH_C3_UNBALANCED.build()
    with pytest.raises(InvalidInputError, match="cross_entropy"):
        class_structure(model, (X, torch.randn(X.shape[0], 3, dtype=torch.float64)), "mse")
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        class_structure(model, (X, torch.where(y == 2, 3, y)))
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        class_structure(model, (X, torch.where(y == 2, -1, y)))
    one = nn.Linear(4, 1).double()
    with pytest.raises(InvalidInputError, match="C >= 2"):
        class_structure(one, (X, torch.zeros_like(y)))
    with pytest.raises(InvalidInputError, match="method"):
        class_structure(model, (X, y), method="fast")
    with pytest.raises(InvalidInputError, match="empty_classes"):
        class_structure(model, (X, y), empty_classes="drop")
    with pytest.raises(InvalidInputError, match="buffer_rows"):
        class_structure(model, (X, y), buffer_rows=0)


def test_non_finite_probabilities():
    model, (X, y) = TANH_C3_UNBALANCED.build()
    bad = X.clone()
    bad[3, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="batch 0"):
        class_structure(model, (bad, y))
    huge = nn.Sequential(nn.Linear(4, 3)).double()
    with torch.no_grad():
        huge[0].weight.fill_(float("inf"))
    with pytest.raises(NonFiniteError):
        class_structure(huge, (X, y))


def test_unknown_part():
    cs = class_structure(*TANH_C3_UNBALANCED.build())
    with pytest.raises(InvalidInputError, match="part"):
        cs.eigenvalues("G_3")
    with pytest.raises(InvalidInputError, match="within_class_operator"):
        cs.eigenvalues("G_w")
    with pytest.raises(InvalidInputError, match="nonzero"):
        cs.eigenvectors("G_0", k=99)


# ----------------------------------------------------------------------------- results
def test_save_load_roundtrip(tmp_path):
    model, data = TANH_C3_UNBALANCED.build()
    cs = class_structure(model, data)
    cs.save(tmp_path / "cs")
    back = ClassStructure.load(tmp_path / "cs.npz")
    np.testing.assert_array_equal(back.class_means, cs.class_means)
    np.testing.assert_array_equal(back.K2, cs.K2)
    for p in ("G_cm", "G_0", "G_1", "G_2"):
        np.testing.assert_array_equal(back.eigenvalues(p), cs.eigenvalues(p))
    assert back.eigenvectors("G_1").shape == (cs.num_params, 3)
    assert back.summary().as_text() == cs.summary().as_text()
    # a loaded structure holds no model: the products with G take the operator explicitly
    assert not any(hasattr(back, a) for a in ("within_operator", "ggn_operator", "fort_ganguli"))
    assert back.identity_error() == cs.identity_error()
    G = ggn_operator(model, data)
    dense = DenseClassStructure(model, *data)
    assert rel_err(within_class_operator(G, back).to_dense(), dense.G_w) < TOL


def test_to_dict_overview_and_summary():
    cs = class_structure(*TANH_C3_UNBALANCED.build())
    d = cs.overview()
    json.dumps(d)
    assert d["num_classes"] == 3 and d["shapes"]["class_means"] == [3, 3, cs.num_params]
    assert len(d["eigenvalues"]["G_1"]) == 3
    full = cs.to_dict()  # the exact round trip of the Result base
    json.dumps(full)
    back = ClassStructure.from_dict(json.loads(json.dumps(full)))
    np.testing.assert_array_equal(back.class_means, cs.class_means)
    assert back.class_means.shape[0] == 3
    assert back.settings == cs.settings and back.skipped == cs.skipped
    s = cs.summary()
    assert "eig G_1" in s.as_text() and "<table>" in s.as_html()


# ----------------------------------------------------------------------------- Gaussian mixture
def test_trained_gaussian_mixture_top_eigenvalues_come_from_the_class_means():
    """C well-separated classes, briefly trained (loss ~0.2): the top C eigenvalues of G are
    those of G_cm within 10 % (measured 2-4 %), and never below them (G_w is PSD, Weyl)."""
    C = 4
    X, y = gaussian_mixture(400, 10, C, seed=1, separation=6.0, noise=0.5, dtype=torch.float64)
    model = mlp([10, 20, C], seed=1, activation="tanh").double()
    train(model, (X, y), steps=10, lr=0.2, seed=0)
    data = batches(X, y, 128)
    cs = class_structure(model, data)
    g = eigh(ggn_operator(model, data)).eigenvalues  # descending
    cm = cs.eigenvalues("G_cm")
    assert np.all(g[: cm.size] >= cm - 1e-12)
    np.testing.assert_allclose(cm[:C], g[:C], rtol=0.10)
