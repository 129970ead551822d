"""Matrix-free H, G, R against dense float64 references (torch.func)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.sparse.linalg import LinearOperator

import gn_theory as gt
from cases import CASES
from helpers import compare_matmat
from references import dense_ggn, dense_hessian, rel_err

TOL = 1e-10


@pytest.fixture(scope="module")
def dense_refs():
    """Dense H and G for every case, computed once."""
    out = {}
    for c in CASES:
        model, (X, y) = c.build()
        out[c.name] = (dense_hessian(model, X, y, c.loss), dense_ggn(model, X, y, c.loss))
    return out


def test_hessian_matches_torch_func(case, dense_refs):
    model, data = case.build()
    op = gt.hessian_operator(model, data, case.loss)
    assert isinstance(op, gt.operators.HessianOperator) and op.kind == "hessian"
    H = op.to_dense()
    H_ref, _ = dense_refs[case.name]
    compare_matmat(op, H_ref, rtol=TOL)
    assert rel_err(H, H_ref) < TOL
    assert rel_err(H, H.T) < TOL


def test_ggn_matches_explicit_jthj(case, dense_refs):
    model, data = case.build()
    op = gt.ggn_operator(model, data, case.loss)
    assert isinstance(op, gt.operators.GGNOperator) and op.kind == "ggn"
    G = op.to_dense()
    _, G_ref = dense_refs[case.name]
    compare_matmat(op, G_ref, rtol=TOL)
    assert rel_err(G, G_ref) < TOL
    assert rel_err(G, G.T) < TOL


def test_residual_is_h_minus_g(case, dense_refs):
    model, data = case.build()
    op = gt.residual_operator(model, data, case.loss)
    assert isinstance(op, gt.operators.ResidualOperator) and op.kind == "residual"
    R = op.to_dense()
    H_ref, G_ref = dense_refs[case.name]
    scale = max(1.0, float(H_ref.norm() / (H_ref - G_ref).norm()))
    compare_matmat(op, H_ref - G_ref, rtol=TOL * scale)
    assert rel_err(R, H_ref - G_ref) < TOL * scale


@pytest.mark.parametrize("name", [c.name for c in CASES if c.loss in ("cross_entropy", "mse")])
def test_ggn_psd(name, dense_refs):
    _, G = dense_refs[name]
    evals = torch.linalg.eigvalsh(G)
    assert float(evals.min()) > -1e-12 * float(evals.max())


def test_ggn_rank_bound_cross_entropy():
    # P > N (C - 1): the bound is attained, and is <= N (C - 1)
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    N, C = 7, 3
    X, y = torch.randn(N, 5, dtype=torch.float64), torch.arange(N) % C
    G = gt.ggn_operator(model, (X, y)).to_dense()
    evals = torch.linalg.eigvalsh(G)
    rank = int((evals > 1e-10 * evals.max()).sum())
    assert G.shape[0] > N * (C - 1)
    assert rank <= N * (C - 1)
    assert rank == N * (C - 1)  # generic network: bound is attained


def test_linear_mse_closed_form():
    X = torch.randn(25, 4, dtype=torch.float64)
    model = torch.nn.Linear(4, 2, bias=False).double()
    Y = torch.randn(25, 2, dtype=torch.float64)
    op = gt.hessian_operator(model, (X, Y), "mse")
    H = op.to_dense()
    # weight (2, 4) flattened row-major: H = I_2 kron (X^T X / N)
    closed = torch.kron(torch.eye(2, dtype=torch.float64), X.T @ X / 25)
    compare_matmat(op, closed, rtol=TOL)
    compare_matmat(gt.ggn_operator(model, (X, Y), "mse"), closed, rtol=TOL)
    assert rel_err(H, closed) < TOL


@pytest.mark.parametrize("kind", ["hessian", "ggn", "residual"])
def test_uneven_batches_and_dataloader_equal_full_batch(kind):
    c = CASES[0]
    model, (X, y) = c.build()
    factory = getattr(gt, f"{kind}_operator")
    full = factory(model, (X, y)).to_dense()
    uneven = [(X[:2], y[:2]), (X[2:9], y[2:9]), (X[9:], y[9:])]
    compare_matmat(factory(model, uneven), full, rtol=TOL)
    assert rel_err(factory(model, uneven).to_dense(), full) < TOL
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=5)
    compare_matmat(factory(model, loader), full, rtol=TOL)
    assert rel_err(factory(model, loader).to_dense(), full) < TOL


@pytest.mark.parametrize("kind", ["hessian", "ggn", "residual"])
def test_torch_and_numpy_products_agree(kind, dense_refs):
    c = CASES[1]
    model, data = c.build()
    op = getattr(gt, f"{kind}_operator")(model, data)
    assert isinstance(op, LinearOperator)
    H_ref, G_ref = dense_refs[c.name]
    ref = {"hessian": H_ref, "ggn": G_ref, "residual": H_ref - G_ref}[kind]
    compare_matmat(op, ref, rtol=1e-9)  # every path: torch/numpy/scipy, vector/matrix
    P = op.num_params
    V = torch.randn(P, 3, dtype=torch.float64)
    before = op.matvecs
    t_block = op @ V
    assert op.matvecs - before == 3
    assert op.num_matvecs == op.matvecs
    t_vec = op @ V[:, 0]
    n_vec = op.matvec(V[:, 0].numpy())
    n_block = op.matmat(V.numpy())
    n_at = op @ V.numpy()
    assert t_vec.shape == (P,) and t_block.shape == (P, 3)
    np.testing.assert_allclose(n_vec, t_vec.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(n_block, t_block.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(n_at, t_block.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(t_block[:, 0].numpy(), t_vec.numpy(), rtol=1e-10, atol=1e-13)


def test_params_subset_is_sub_block():
    c = CASES[0]
    model, (X, y) = c.build()
    names = [n for n, _ in model.named_parameters()]
    subset = [names[2], names[0]]  # order given does not matter: the model's order is kept
    H_full = gt.hessian_operator(model, (X, y)).to_dense()
    H_sub_op = gt.hessian_operator(model, (X, y), params=subset)
    assert H_sub_op.param_names == [names[0], names[2]]
    sl = gt.hessian_operator(model, (X, y)).layout.slices()
    idx = torch.cat([torch.arange(sl[n].start, sl[n].stop) for n in H_sub_op.param_names])
    compare_matmat(H_sub_op, H_full[idx][:, idx], rtol=TOL)
    assert rel_err(H_sub_op.to_dense(), H_full[idx][:, idx]) < TOL
    # tensors select the same parameters
    params = dict(model.named_parameters())
    H_t = gt.hessian_operator(model, (X, y), params=[params[names[0]], params[names[2]]])
    compare_matmat(H_t, H_sub_op.to_dense(), rtol=TOL)
    assert rel_err(H_t.to_dense(), H_sub_op.to_dense()) < TOL


def test_layout_unflatten_roundtrip():
    model, data = CASES[0].build()
    op = gt.ggn_operator(model, data)
    v = torch.arange(op.num_params, dtype=torch.float64)
    parts = op.unflatten(v)
    assert list(parts) == op.param_names
    for name, p in model.named_parameters():
        assert parts[name].shape == p.shape
    assert torch.equal(op.layout.flatten(parts), v)


def test_float32_model_in_float64():
    model, data = CASES[1].build()
    model32 = model.float()
    X, y = data
    op = gt.hessian_operator(model32, (X.float(), y), dtype=torch.float64)
    assert op.torch_dtype == torch.float64 and op.dtype == np.float64
    ref = dense_hessian(model32.double(), X, y)
    compare_matmat(op, ref, rtol=1e-6)
    assert rel_err(op.to_dense(), ref) < 1e-6  # parameters were rounded to float32 once


def test_model_is_not_modified():
    model, data = CASES[0].build()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    op = gt.hessian_operator(model, data)
    op @ torch.randn(op.num_params, dtype=torch.float64)
    assert model.training
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) and p.grad is None


def test_operator_arithmetic_in_torch(dense_refs):
    model, data = CASES[1].build()
    H = gt.hessian_operator(model, data)
    G = gt.ggn_operator(model, data)
    R = gt.residual_operator(model, data)
    combo = H - G
    assert isinstance(combo, gt.CurvatureOperator)
    H_ref, G_ref = dense_refs[CASES[1].name]
    compare_matmat(combo, H_ref - G_ref, rtol=1e-9)
    compare_matmat(2.0 * G, 2 * G_ref, rtol=1e-10)
    compare_matmat(-G + H, H_ref - G_ref, rtol=1e-9)
    compare_matmat(G + R, H_ref, rtol=1e-10)
    V = torch.randn(H.num_params, 2, dtype=torch.float64)
    assert rel_err(combo @ V, R @ V) < 1e-12
    assert rel_err((2.0 * G) @ V, 2 * (G @ V)) < 1e-14
    assert rel_err((-G + H) @ V, R @ V) < 1e-12


def test_to_dense_memory_budget():
    model, data = CASES[0].build()
    op = gt.hessian_operator(model, data)
    with pytest.raises(gt.MemoryBudgetError, match=r"needs .*B.*budget"):
        op.to_dense(max_bytes=100)
    with pytest.raises(MemoryError):
        op.to_dense(max_bytes=100)


def test_gradient_and_loss_value():
    model, (X, y) = CASES[0].build()
    op = gt.hessian_operator(model, [(X[:5], y[:5]), (X[5:], y[5:])])
    loss = torch.nn.functional.cross_entropy(model(X), y)
    g = torch.autograd.grad(loss, list(model.parameters()))
    assert rel_err(op.gradient(), torch.cat([t.reshape(-1) for t in g])) < 1e-12
    assert abs(op.loss_value() - float(loss.detach())) < 1e-12


def test_dense_operator_and_as_operator():
    A = np.diag([3.0, 1.0, 2.0])
    op = gt.operators.as_operator(A)
    assert isinstance(op, gt.DenseOperator) and op.torch_dtype == torch.float64
    compare_matmat(op, A, rtol=1e-15)
    np.testing.assert_allclose(op.matvec(np.ones(3)), [3.0, 1.0, 2.0])
    lin = LinearOperator((3, 3), matvec=lambda x: A @ x, dtype=np.float64)
    wrapped = gt.operators.as_operator(lin)
    compare_matmat(wrapped, A, rtol=1e-15)
    assert torch.allclose(wrapped @ torch.ones(3, dtype=torch.float64), torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64))
    assert gt.operators.as_operator(op) is op
    with pytest.raises(gt.InvalidInputError):
        gt.operators.as_operator("not an operator")
