"""within_class_operator, part_operator and identity_error: operators vs dense references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gn_theory import InvalidInputError, ShapeError, ggn_operator
from gn_theory.decomposition import (
    ClassStructure,
    LowRankOperator,
    WithinClassOperator,
    class_structure,
    identity_error,
    part_operator,
    within_class_operator,
)
from gn_theory.operators import CurvatureOperator
from gn_theory.spectra import lanczos

from cases import CLASSIFIER_CASES, RELU_C4_UNBALANCED, TANH_C3_UNBALANCED
from helpers import compare_matmat
from references import DenseClassStructure, rel_err

TOL = 1e-10


@pytest.fixture(scope="module", params=CLASSIFIER_CASES, ids=[c.name for c in CLASSIFIER_CASES])
def problem(request):
    model, (X, y) = request.param.build()
    dense = DenseClassStructure(model, X, y)
    cs = class_structure(model, (X, y))
    G = ggn_operator(model, (X, y))
    return model, X, y, dense, cs, G


@pytest.mark.parametrize("part", ["G_cm", "G_0", "G_1", "G_2"])
def test_part_operators_are_the_dense_parts(problem, part):
    _, _, _, dense, cs, _ = problem
    op = part_operator(cs, part)
    assert isinstance(op, LowRankOperator) and isinstance(op, CurvatureOperator)
    assert op.part == part and op.settings["part"] == part
    assert op.settings["rank_bound"] == cs.factor(part).shape[0]
    assert rel_err(op.to_dense(), dense.part(part)) < TOL
    compare_matmat(op, dense.part(part), rtol=TOL)


def test_within_operator_is_dense_G_minus_class_means(problem):
    _, _, _, dense, cs, G = problem
    W = within_class_operator(G, cs)
    assert isinstance(W, WithinClassOperator)
    assert W.settings["kind"] == "ggn_within" and W.layout is G.layout
    Wd = W.to_dense()
    assert rel_err(Wd, dense.G_w) < TOL
    assert rel_err(Wd, dense.G - dense.G_cm) < TOL
    assert rel_err(Wd + part_operator(cs, "G_cm").to_dense(), dense.G) < TOL
    compare_matmat(W, dense.G_w, rtol=TOL)


def test_identity_error(problem):
    _, _, _, _, cs, G = problem
    err = identity_error(G, cs, num_probes=3, seed=1)
    assert set(err) == {"G = G_cm + G_w", "G_cm = G_0 + G_1 + G_2"}
    assert max(err.values()) < 1e-12


def test_within_operator_counts_products_and_runs_the_spectra_tools():
    model, data = TANH_C3_UNBALANCED.build()
    cs = class_structure(model, data)
    G = ggn_operator(model, data)
    W = within_class_operator(G, cs)
    before = G.num_matvecs
    W @ torch.zeros(cs.num_params, 2, dtype=torch.float64)
    assert W.num_matvecs == 2 and G.num_matvecs == before + 2
    dense = DenseClassStructure(model, *data).G_w.numpy()
    top = lanczos(W, 2, seed=0, tol=1e-10).eigenvalues  # descending
    np.testing.assert_allclose(top, np.sort(np.linalg.eigvalsh(dense))[::-1][:2], rtol=1e-8)


def test_part_operator_on_device_and_dtype_of_G():
    model, data = TANH_C3_UNBALANCED.build()
    cs = class_structure(model, data)
    op = part_operator(cs, "G_1", dtype=torch.float32)
    assert op.torch_dtype == torch.float32 and op.factor.dtype == torch.float64
    G32 = ggn_operator(model, data, dtype=torch.float32)
    W = within_class_operator(G32, cs)
    assert W.torch_dtype == torch.float32 and W.class_mean_part.torch_dtype == torch.float32


def test_loaded_structure_gives_the_same_operators(tmp_path):
    model, data = RELU_C4_UNBALANCED.build()
    cs = class_structure(model, data)
    back = ClassStructure.load(cs.save(tmp_path / "cs"))
    G = ggn_operator(model, data)
    V = torch.randn(cs.num_params, 3, dtype=torch.float64)
    torch.testing.assert_close(within_class_operator(G, back) @ V, within_class_operator(G, cs) @ V,
                               rtol=0, atol=0)
    assert identity_error(G, back) == identity_error(G, cs)


def test_bad_inputs():
    model, data = TANH_C3_UNBALANCED.build()
    cs = class_structure(model, data)
    G = ggn_operator(model, data)
    with pytest.raises(InvalidInputError, match="CurvatureOperator"):
        within_class_operator(np.eye(cs.num_params), cs)
    with pytest.raises(InvalidInputError, match="ClassStructure"):
        within_class_operator(G, {"K": cs.K})
    with pytest.raises(InvalidInputError, match="ClassStructure"):
        part_operator(None, "G_1")
    with pytest.raises(InvalidInputError, match="part"):
        part_operator(cs, "G_w")
    other = ggn_operator(model, data, params=["2.weight", "2.bias"])
    with pytest.raises(ShapeError, match="dimension"):
        within_class_operator(other, cs)
    with pytest.raises(InvalidInputError, match="num_probes"):
        identity_error(G, cs, num_probes=0)


def test_a_G_of_another_model_state_is_refused():
    model, data = TANH_C3_UNBALANCED.build()
    cs = class_structure(model, data)
    with torch.no_grad():
        model[0].weight.add_(0.1)  # trained further after the structure was measured
    with pytest.raises(InvalidInputError, match="model parameters"):
        within_class_operator(ggn_operator(model, data), cs)
    X, y = data
    with torch.no_grad():
        model[0].weight.sub_(0.1)
    with pytest.raises(InvalidInputError, match="data"):
        within_class_operator(ggn_operator(model, (X + 1.0, y)), cs)
