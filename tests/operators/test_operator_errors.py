"""Every bad input to the operators raises a clear, early, typed error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gn_theory as gt
from cases import CASES


@pytest.fixture
def tiny():
    model, data = CASES[0].build()
    return model, data


def test_targets_out_of_range(tiny):
    model, (X, y) = tiny
    bad = y.clone()
    bad[3] = 7
    with pytest.raises(gt.DataError, match=r"batch 1: targets must lie in \[0, 3\).*\[0, 7\]"):
        gt.hessian_operator(model, [(X[:2], y[:2]), (X[2:], bad[2:])])
    with pytest.raises(ValueError):
        gt.ggn_operator(model, (X, -torch.ones_like(y)))


def test_targets_wrong_dtype_and_shape(tiny):
    model, (X, y) = tiny
    with pytest.raises(gt.DTypeError, match="integer class targets"):
        gt.hessian_operator(model, (X, y.double()))
    with pytest.raises(TypeError):
        gt.hessian_operator(model, (X, y.double()))
    with pytest.raises(gt.ShapeError, match=r"targets of shape \(13,\)"):
        gt.hessian_operator(model, (X, y.unsqueeze(1)))
    with pytest.raises(gt.DataError, match="13 samples but targets hold 12"):
        gt.hessian_operator(model, (X, y[:12]))
    with pytest.raises(gt.ShapeError, match="outputs' shape"):
        gt.hessian_operator(model, (X, torch.zeros(13, 2, dtype=torch.float64)), "mse")
    with pytest.raises(gt.DTypeError, match="floating-point targets"):
        gt.hessian_operator(model, (X, torch.zeros(13, 3, dtype=torch.long)), "mse")


def test_empty_data(tiny):
    model, (X, y) = tiny
    with pytest.raises(gt.DataError, match="empty"):
        gt.hessian_operator(model, [])
    with pytest.raises(gt.DataError, match="empty"):
        gt.hessian_operator(model, (X[:0], y[:0]))


def test_bad_data_containers(tiny):
    model, (X, y) = tiny
    with pytest.raises(gt.DataError, match="one-shot iterator"):
        gt.hessian_operator(model, ((X, y) for _ in range(2)))
    with pytest.raises(gt.DataError, match="targets are missing"):
        gt.hessian_operator(model, X)
    with pytest.raises(gt.DataError, match="batch 0 must be an"):
        gt.hessian_operator(model, [(X, y, y)])
    with pytest.raises(gt.DataError):
        gt.hessian_operator(model, 3)


def test_no_trainable_parameters(tiny):
    model, data = tiny
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(gt.ParameterSelectionError, match="no trainable parameters"):
        gt.hessian_operator(model, data)


def test_unknown_and_frozen_parameter_names(tiny):
    model, data = tiny
    with pytest.raises(gt.ParameterSelectionError, match="unknown parameter name '0.wieght'"):
        gt.hessian_operator(model, data, params=["0.wieght"])
    model[0].bias.requires_grad_(False)
    with pytest.raises(gt.ParameterSelectionError, match="frozen"):
        gt.hessian_operator(model, data, params=["0.bias"])
    with pytest.raises(gt.ParameterSelectionError, match="not a parameter"):
        gt.hessian_operator(model, data, params=[torch.zeros(3)])
    with pytest.raises(gt.ParameterSelectionError, match="selects no parameters"):
        gt.hessian_operator(model, data, params=[])


def test_non_finite_outputs_and_loss(tiny):
    model, (X, y) = tiny
    Xbad = X.clone()
    Xbad[8, 0] = float("nan")
    with pytest.raises(gt.NonFiniteError, match="batch 1: the model outputs"):
        gt.hessian_operator(model, [(X[:5], y[:5]), (Xbad[5:], y[5:])])
    with pytest.raises(FloatingPointError):
        gt.ggn_operator(model, (Xbad, y))

    def inf_loss(out, t):
        return (out.sum() * float("inf"))

    with pytest.raises(gt.NonFiniteError, match="batch 0: the loss"):
        gt.hessian_operator(model, (X, y.double().unsqueeze(1).repeat(1, 3)), inf_loss)


def test_bad_vectors(tiny):
    model, data = tiny
    op = gt.hessian_operator(model, data)
    P = op.num_params
    with pytest.raises(gt.ShapeError, match=rf"expected v of shape \({P},\) or \({P}, k\); got \({P - 1},\)"):
        op @ torch.zeros(P - 1, dtype=torch.float64)
    with pytest.raises(gt.ShapeError):
        op @ torch.zeros(P, 2, 2, dtype=torch.float64)
    with pytest.raises(gt.DTypeError, match="torch.float64"):
        op @ torch.zeros(P, dtype=torch.float32)
    with pytest.raises(ValueError, match="mismatch"):  # scipy's own check on numpy input
        op.matvec(np.zeros(P + 1))


def test_mismatched_devices(tiny):
    model, data = tiny
    op = gt.hessian_operator(model, data)
    v = torch.zeros(op.num_params, dtype=torch.float64, device="meta")
    with pytest.raises(gt.DeviceMismatchError, match="is on meta but the operator computes on cpu"):
        op @ v
    G = gt.ggn_operator(model, data)
    G.device = torch.device("meta")  # pretend it lives elsewhere
    with pytest.raises(gt.DeviceMismatchError):
        op + G


def test_model_in_training_mode_with_dropout():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 2))
    data = (torch.randn(6, 3), torch.randint(0, 2, (6,)))
    with pytest.raises(gt.InvalidInputError, match=r"model.eval\(\)"):
        gt.hessian_operator(model, data)
    model.eval()
    assert gt.hessian_operator(model, data).num_params == 26


def test_unknown_loss_and_bad_callable(tiny):
    model, data = tiny
    with pytest.raises(gt.InvalidInputError, match="loss must be"):
        gt.hessian_operator(model, data, "hinge")
    with pytest.raises(gt.InvalidInputError, match="scalar tensor"):
        gt.hessian_operator(model, data, lambda out, t: out.sum(dim=1))
    with pytest.raises(gt.InvalidInputError, match="torch.nn.Module"):
        gt.hessian_operator(lambda x: x, data)


def test_bad_chunk_and_block_sizes(tiny):
    model, data = tiny
    with pytest.raises(gt.InvalidInputError):
        gt.hessian_operator(model, data, chunk_size=0)
    op = gt.hessian_operator(model, data, chunk_size=2)
    V = torch.randn(op.num_params, 5, dtype=torch.float64)
    full = gt.hessian_operator(model, data) @ V
    assert torch.allclose(op @ V, full, rtol=1e-12, atol=1e-14)
    with pytest.raises(gt.InvalidInputError):
        op.to_dense(block_size=0)


def test_non_floating_dtype(tiny):
    model, data = tiny
    with pytest.raises(gt.DTypeError, match="floating torch dtype"):
        gt.hessian_operator(model, data, dtype=torch.int64)
    with pytest.raises(TypeError):
        gt.DenseOperator(np.eye(2), dtype=torch.int32)


def test_abstract_bases_cannot_be_built(tiny):
    model, data = tiny
    with pytest.raises(TypeError, match="abstract"):
        gt.operators.ModelCurvatureOperator(model, data)
    with pytest.raises(TypeError, match="abstract"):
        gt.CurvatureOperator(3, "cpu", torch.float64)


def test_dense_operator_refuses_complex():
    with pytest.raises(gt.DTypeError, match="complex"):
        gt.DenseOperator(np.array([[2, 1j], [-1j, 2]]))
    with pytest.raises(gt.DTypeError, match="embedding"):
        gt.as_operator(torch.eye(3, dtype=torch.complex128))
