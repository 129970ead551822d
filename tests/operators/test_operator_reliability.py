"""The models, modes, losses and layers users bring (issue 13, items 11-20), and operator misuse.

Each "right answer" is a dense float64 reference computed independently of the operators'
kernels: plain autograd double backward for Hessians (``torch.func.hessian`` is wrong on
LayerNorm models in torch 2.13) and explicit ``J^T H_out J`` for Gauss-Newton matrices.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import gn_theory as gt
from helpers import allclose_report, compare_matmat
from references import (
    dense_ggn,
    dense_ggn_autograd,
    dense_hessian,
    dense_hessian_autograd,
    flat_model,
)

KINDS = ["hessian", "ggn", "residual"]
F64 = torch.float64


def factory(kind):
    return getattr(gt, f"{kind}_operator")


def vec(op, k=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (op.num_params,) if k is None else (op.num_params, k)
    return torch.randn(*shape, generator=g, dtype=op.torch_dtype)


def references(model, X, loss_sum, *, names=None, N=None):
    """Dense (H, G, R) of ``(1/N) loss_sum(model(X))`` by plain autograd, float64."""
    f, theta, _ = flat_model(model, names)
    N = X.shape[0] if N is None else N
    H = dense_hessian_autograd(lambda t: loss_sum(f(t, X)) / N, theta)
    G = dense_ggn_autograd(lambda t: f(t, X), loss_sum, theta, N)
    return H, G, H - G


def check_all(model, data, loss, refs, *, rtol=1e-10, params=None, **kw):
    for kind, ref in zip(KINDS, refs):
        op = factory(kind)(model, data, loss, params=params, **kw)
        scale = max(1.0, float(refs[0].norm() / max(float(ref.norm()), 1e-300)))
        compare_matmat(op, ref, rtol=rtol * scale)
        allclose_report(op.to_dense(), ref, rtol=rtol * scale, atol=1e-13, what=f"{kind} to_dense")


def tanh_mlp(d=3, h=8, c=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, c)).double()


def bn_mlp(seed=0, **bn):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, **bn), nn.Tanh(), nn.Linear(4, 2)).double()


def cls_data(n=12, d=3, c=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=F64), torch.randint(0, c, (n,), generator=g)


# ============================================================================= item 11: a snapshot
def test_operator_is_a_snapshot_of_all_parameters_buffers_and_modes():
    model = bn_mlp()
    X, y = cls_data()
    model.train()
    model(X)  # non-trivial running statistics
    model.eval()
    ops = {
        "all": gt.hessian_operator(model, (X, y)),
        "last layer": gt.hessian_operator(model, (X, y), params=["3.weight"]),
        "G": gt.ggn_operator(model, (X, y)),
    }
    before = {k: (op @ vec(op), op @ vec(op, 3), op.fingerprint) for k, op in ops.items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    for _ in range(5):  # more training: parameters, running statistics and modes all change
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        opt.step()
    for k, op in ops.items():  # the model is left in training mode
        v1, vk, fp = before[k]
        assert torch.equal(op @ vec(op), v1), k
        assert torch.equal(op @ vec(op, 3), vk), k
        assert op.fingerprint == fp
    model.eval()
    fresh = gt.hessian_operator(model, (X, y), params=["3.weight"])
    assert float((fresh @ vec(fresh) - before["last layer"][0]).norm()) > 1e-3


def test_operator_never_writes_to_the_users_tensors():
    model = bn_mlp().eval()
    X, y = cls_data()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for kind in KINDS:
        op = factory(kind)(model, (X, y))
        op @ vec(op)
        op @ vec(op, 2)
        op.to_dense()
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert all(p.grad is None for p in model.parameters())


# ============================================================================= item 12: modes, buffer writes
class CountingForward(nn.Module):
    """A forward that updates a buffer in place."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2).double()
        self.register_buffer("seen", torch.zeros((), dtype=F64))

    def forward(self, x):
        self.seen += x.shape[0]
        return self.lin(x)


@pytest.mark.parametrize("kind", KINDS)
def test_forward_writing_a_buffer_is_refused_and_the_users_buffer_is_untouched(kind):
    model = CountingForward().eval()
    X, y = cls_data()
    with pytest.raises(gt.InvalidInputError, match=r"writes to its buffer 'seen' in place"):
        factory(kind)(model, (X, y))
    assert float(model.seen) == 0.0


def test_submodule_in_training_mode_is_refused_and_statistics_untouched():
    model = bn_mlp()
    model.eval()
    model[1].train()  # a submodule left in training mode
    X, y = cls_data()
    mean = model[1].running_mean.clone()
    for kind in KINDS:
        with pytest.raises(gt.InvalidInputError, match=r"submodule '1' \(BatchNorm1d\) is in training mode"):
            factory(kind)(model, (X, y))
    assert torch.equal(model[1].running_mean, mean)
    assert model[1].training and not model.training  # modes are never flipped


def test_instance_norm_tracking_stats_in_training_mode_is_refused():
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.InstanceNorm1d(2, track_running_stats=True),
                          nn.Flatten(), nn.Linear(8, 2)).double()
    model.train()
    with pytest.raises(gt.InvalidInputError, match=r"'1' \(InstanceNorm1d\) is in training mode"):
        gt.ggn_operator(model, (torch.randn(4, 1, 6, dtype=F64), torch.tensor([0, 1, 0, 1])))


# ============================================================================= item 13: batch statistics
def test_batchnorm_without_running_stats_is_refused_on_several_batches():
    model = bn_mlp(track_running_stats=False).eval()
    X, y = cls_data()
    with pytest.raises(gt.InvalidInputError, match=r"track_running_stats=False.*batch"):
        gt.hessian_operator(model, [(X[:5], y[:5]), (X[5:], y[5:])])


def test_batchnorm_without_running_stats_on_one_batch_is_the_full_batch_operator():
    model = bn_mlp(track_running_stats=False).eval()
    X, y = cls_data()
    refs = references(model, X, lambda o: F.cross_entropy(o, y, reduction="sum"))
    # the output depends on the whole batch: G is the Gauss-Newton of the batch function
    check_all(model, (X, y), "cross_entropy", refs)


# ============================================================================= item 14: randomness
@pytest.mark.parametrize("seed", range(20))
def test_dropout_in_a_training_mode_submodule_is_refused_for_every_seed(seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Dropout(0.01), nn.Linear(6, 2)).double()
    model.eval()
    model[2].train()
    X, y = cls_data(4)
    with pytest.raises(gt.InvalidInputError, match=r"'2' \(Dropout\) is in training mode"):
        gt.ggn_operator(model, (X, y))


class FunctionalDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2).double()

    def forward(self, x):
        return self.lin(F.dropout(x, 0.001, training=True))


def test_randomness_in_forward_is_refused_deterministically():
    X, y = cls_data(4)
    model = FunctionalDropout().eval()
    rng = torch.get_rng_state()
    for _ in range(5):
        with pytest.raises(gt.InvalidInputError, match="draws random numbers"):
            gt.hessian_operator(model, (X, y))
    assert torch.equal(torch.get_rng_state(), rng)  # the user's random stream is left alone


def test_dropout_with_p_zero_in_training_mode_is_accepted():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Dropout(0.0), nn.Tanh(), nn.Linear(5, 2)).double().train()
    X, y = cls_data()
    compare_matmat(gt.hessian_operator(model, (X, y)), dense_hessian(model.eval(), X, y))


# ============================================================================= item 15: torch's losses
REG_LOSSES = {
    "nn.MSELoss": nn.MSELoss(),
    "F.mse_loss": F.mse_loss,
    "nn.HuberLoss": nn.HuberLoss(delta=0.5),
    "nn.SmoothL1Loss": nn.SmoothL1Loss(beta=0.5),
    "nn.L1Loss": nn.L1Loss(),
}


@pytest.mark.parametrize("name", list(REG_LOSSES))
def test_torch_regression_losses_as_callables(name):
    loss = REG_LOSSES[name]
    model = tanh_mlp(3, 8, 3)  # P = 59
    g = torch.Generator().manual_seed(1)
    X, Y = torch.randn(10, 3, generator=g, dtype=F64), torch.randn(10, 3, generator=g, dtype=F64)
    refs = references(model, X, lambda o: 10 * loss(o, Y))
    with warnings.catch_warnings():
        if name == "nn.L1Loss":  # G = 0 is right for L1, and announced
            warnings.simplefilter("ignore", gt.GnTheoryWarning)
        check_all(model, [(X[:4], Y[:4]), (X[4:], Y[4:])], loss, refs)


def test_reductions_sum_and_none_are_read_from_torch_loss_modules():
    model = tanh_mlp(3, 5, 2)
    g = torch.Generator().manual_seed(2)
    X, Y = torch.randn(9, 3, generator=g, dtype=F64), torch.randn(9, 2, generator=g, dtype=F64)
    data = [(X[:4], Y[:4]), (X[4:], Y[4:])]
    for kind in KINDS:
        mean = factory(kind)(model, data, nn.MSELoss()).to_dense()
        total = factory(kind)(model, data, nn.MSELoss(reduction="sum")).to_dense()
        each = factory(kind)(model, data, nn.MSELoss(reduction="none")).to_dense()
        allclose_report(total, 2 * mean, rtol=1e-12, what=f"{kind} sum")  # per sample: sum over 2 outputs
        allclose_report(each, total, rtol=1e-12, what=f"{kind} none")


def test_class_weights_with_mean_reduction_are_refused():
    model = tanh_mlp(3, 5, 2)
    X, y = cls_data()
    with pytest.raises(gt.InvalidInputError, match="weight"):
        gt.ggn_operator(model, (X, y), nn.CrossEntropyLoss(weight=torch.tensor([1.0, 3.0], dtype=F64)))
    with pytest.raises(gt.DataError, match="ignore_index"):
        gt.ggn_operator(model, (X, torch.where(y == 1, -100, y)), nn.CrossEntropyLoss())


def test_cross_entropy_module_equals_the_builtin_loss():
    model = tanh_mlp(3, 5, 3)
    X, y = cls_data(c=3)
    for kind in KINDS:
        allclose_report(factory(kind)(model, (X, y), nn.CrossEntropyLoss()).to_dense(),
                        factory(kind)(model, (X, y)).to_dense(), rtol=1e-12, what=kind)


@pytest.mark.parametrize("loss", [F.nll_loss, nn.NLLLoss()], ids=["F.nll_loss", "nn.NLLLoss"])
def test_nll_loss_on_log_probabilities_gives_the_cross_entropy_ggn(loss):
    torch.manual_seed(0)
    logits = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    model = nn.Sequential(*logits, nn.LogSoftmax(dim=1))
    X, y = cls_data(c=3)
    G_ce = dense_ggn(logits, X, y)  # the Gauss-Newton of softmax cross-entropy on the logits
    H = dense_hessian_autograd(lambda t: F.nll_loss(flat_model(model)[0](t, X), y), flat_model(model)[1])
    for kind, ref in zip(KINDS, (H, G_ce, H - G_ce)):
        op = factory(kind)(model, [(X[:5], y[:5]), (X[5:], y[5:])], loss)
        compare_matmat(op, ref, rtol=1e-10)
        assert "log-probabilities" in op.metadata["loss_note"]


def test_nll_loss_on_scores_that_are_not_log_probabilities_warns_that_g_is_zero():
    model = tanh_mlp(3, 5, 3)
    X, y = cls_data(c=3)
    with pytest.warns(gt.GnTheoryWarning, match="linear in the model outputs"):
        G = gt.ggn_operator(model, (X, y), F.nll_loss)
    assert float(G.to_dense().abs().max()) == 0.0


# ============================================================================= item 16: zero second derivatives
def test_block_products_with_identically_zero_second_derivatives():
    model = tanh_mlp(3, 5, 2)
    X, y = cls_data()
    R = gt.residual_operator(model, (X, y), params=["2.weight", "2.bias"])  # f linear in them
    for V in (vec(R), vec(R, 3)):
        out = R @ V
        assert out.shape == V.shape and float(out.abs().max()) == 0.0
    assert float(R.to_dense().abs().max()) == 0.0
    Y = torch.randn(12, 2, dtype=F64)
    with pytest.warns(gt.GnTheoryWarning, match="linear"):
        G = gt.ggn_operator(model, (X, Y), nn.L1Loss())  # zero output Hessian
    assert float((G @ vec(G, 4)).abs().max()) == 0.0


# ============================================================================= item 17: Embedding(padding_idx)
class Bag(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        torch.manual_seed(3)
        self.emb = nn.Embedding(6, 3, **kw)
        self.out = nn.Linear(3, 2)

    def forward(self, t):
        return self.out(torch.tanh(self.emb(t)).mean(1))


def token_data():
    g = torch.Generator().manual_seed(4)
    T = torch.randint(0, 6, (8, 5), generator=g)
    T[:, 0] = 0  # every sequence has padding
    return T, torch.randint(0, 2, (8,), generator=g)


def test_embedding_padding_row_is_held_fixed_consistently():
    model = Bag(padding_idx=0).double()
    with torch.no_grad():
        model.emb.weight[0] = torch.tensor([0.3, -0.5, 0.8])  # a non-zero padding row
    T, y = token_data()
    plain = Bag().double()
    plain.load_state_dict(model.state_dict())
    H, G = dense_hessian_autograd(
        lambda t: F.cross_entropy(flat_model(plain)[0](t, T), y), flat_model(plain)[1]
    ), dense_ggn(plain, T, y)
    keep = torch.ones(H.shape[0], dtype=F64)
    keep[:3] = 0  # emb.weight[0]: torch's backward never moves it
    M = torch.diag(keep)
    for kind, ref in zip(KINDS, (M @ H @ M, M @ G @ M, M @ (H - G) @ M)):
        op = factory(kind)(model, (T, y))
        compare_matmat(op, ref, rtol=1e-10)
        D = op.to_dense()
        allclose_report(D, D.T, rtol=1e-12, what=f"{kind} symmetric")


# ============================================================================= item 18: layers
class Attention(nn.Module):
    def __init__(self, need_weights):
        super().__init__()
        torch.manual_seed(5)
        self.inp = nn.Linear(4, 8)
        self.mha = nn.MultiheadAttention(8, 2, batch_first=True)
        self.out = nn.Linear(8, 3)
        self.need_weights = need_weights

    def forward(self, x):
        h = self.inp(x)
        a, _ = self.mha(h, h, h, need_weights=self.need_weights)
        return self.out(a.mean(1))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(6)
        self.inp = nn.Linear(4, 8)
        self.enc = nn.TransformerEncoderLayer(8, 2, 12, dropout=0.1, batch_first=True)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        return self.out(self.enc(self.inp(x)).mean(1))


class SDPA(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(7)
        self.qkv = nn.Linear(4, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        b, t, _ = x.shape
        h = self.qkv(x).view(b, t, 2, 4).transpose(1, 2)
        a = F.scaled_dot_product_attention(h, h, h, is_causal=True)
        return self.out(a.transpose(1, 2).reshape(b, t, 8).mean(1))


@pytest.mark.parametrize("make", [lambda: Attention(False), lambda: Attention(True), Encoder, SDPA],
                         ids=["mha_no_weights", "mha_weights", "transformer_layer", "sdpa"])
def test_attention_layers_give_exact_curvature(make):
    model = make().double().eval()
    g = torch.Generator().manual_seed(8)
    X, y = torch.randn(5, 4, 4, generator=g, dtype=F64), torch.randint(0, 3, (5,), generator=g)
    with sdpa_kernel(SDPBackend.MATH):  # the reference: exact attention, plain autograd
        refs = references(model, X, lambda o: F.cross_entropy(o, y, reduction="sum"))
    fast = torch.backends.mha.get_fastpath_enabled()
    check_all(model, [(X[:2], y[:2]), (X[2:], y[2:])], "cross_entropy", refs, rtol=1e-9)
    assert torch.backends.mha.get_fastpath_enabled() == fast  # global settings restored


def test_sparse_embedding_equals_the_dense_one():
    model = Bag(sparse=True).double()
    dense = Bag().double()
    T, y = token_data()
    for kind in KINDS:
        allclose_report(factory(kind)(model, (T, y)).to_dense(), factory(kind)(dense, (T, y)).to_dense(),
                        rtol=1e-13, what=kind)
    assert model.emb.sparse  # the user's module is unchanged


def test_embedding_max_norm_is_refused_at_construction():
    T, y = token_data()
    model = Bag(max_norm=0.5).double()
    weight = model.emb.weight.detach().clone()
    with pytest.raises(gt.InvalidInputError, match=r"'emb' \(Embedding\) has max_norm"):
        gt.hessian_operator(model, (T, y))
    assert torch.equal(model.emb.weight, weight)


class SquareNoJvp(torch.autograd.Function):
    @staticmethod
    def forward(x):
        return x * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class SquareOldStyle(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class WithFunction(nn.Module):
    def __init__(self, fn):
        super().__init__()
        torch.manual_seed(9)
        self.a, self.b, self.fn = nn.Linear(3, 4), nn.Linear(4, 2), fn

    def forward(self, x):
        return self.b(self.fn.apply(self.a(x)))


@pytest.mark.parametrize("fn", [SquareNoJvp, SquareOldStyle], ids=["no_jvp", "old_style"])
def test_custom_autograd_functions(fn):
    model = WithFunction(fn).double()
    X, y = cls_data()
    refs = references(model, X, lambda o: F.cross_entropy(o, y, reduction="sum"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gt.GnTheoryWarning)  # the slower autograd path is announced
        check_all(model, (X, y), "cross_entropy", refs)


def test_custom_function_fallback_is_announced():
    X, y = cls_data()
    with pytest.warns(gt.GnTheoryWarning, match="autograd"):
        op = gt.ggn_operator(WithFunction(SquareNoJvp).double(), (X, y))
    assert op.metadata["kernel"] == "autograd"


class Checkpointed(nn.Module):
    def __init__(self, reentrant):
        super().__init__()
        torch.manual_seed(10)
        self.a, self.b, self.reentrant = nn.Linear(3, 4), nn.Linear(4, 2), reentrant

    def forward(self, x):
        h = torch.utils.checkpoint.checkpoint(lambda z: torch.tanh(self.a(z)), x,
                                              use_reentrant=self.reentrant)
        return self.b(h)


@pytest.mark.filterwarnings("ignore:None of the inputs have requires_grad")
def test_activation_checkpointing():
    X, y = cls_data()
    with pytest.raises(gt.InvalidInputError, match=r"checkpoint.*use_reentrant=False"):
        gt.hessian_operator(Checkpointed(True).double(), (X, y))
    model = Checkpointed(False).double()
    plain = nn.Sequential(model.a, nn.Tanh(), model.b)
    refs = (dense_hessian(plain, X, y), dense_ggn(plain, X, y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gt.GnTheoryWarning)
        for kind, ref in zip(KINDS, (refs[0], refs[1], refs[0] - refs[1])):
            compare_matmat(factory(kind)(model, (X, y)), ref, rtol=1e-10)


# ============================================================================= item 19: sequence outputs
class TokenClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(11)
        self.a, self.b = nn.Linear(3, 5), nn.Linear(5, 4)

    def forward(self, x):  # (N, T, 3) -> (N, T, 4)
        return self.b(torch.tanh(self.a(x)))


def test_sequence_cross_entropy_is_the_mean_over_tokens():
    model = TokenClassifier().double()
    g = torch.Generator().manual_seed(12)
    X, y = torch.randn(6, 5, 3, generator=g, dtype=F64), torch.randint(0, 4, (6, 5), generator=g)

    def per_sample_mean_over_tokens(o):
        return F.cross_entropy(o.reshape(-1, 4), y.reshape(-1), reduction="sum") / 5

    refs = references(model, X, per_sample_mean_over_tokens)
    check_all(model, [(X[:2], y[:2]), (X[2:], y[2:])], "cross_entropy", refs)
    op = gt.ggn_operator(model, (X, y))
    assert op.num_samples == 6 and "mean over" in op.metadata["loss_note"]


def test_sequences_of_different_lengths_weigh_each_sequence_equally():
    model = TokenClassifier().double()
    g = torch.Generator().manual_seed(13)
    X1, y1 = torch.randn(2, 5, 3, generator=g, dtype=F64), torch.randint(0, 4, (2, 5), generator=g)
    X2, y2 = torch.randn(3, 2, 3, generator=g, dtype=F64), torch.randint(0, 4, (3, 2), generator=g)
    f, theta, _ = flat_model(model)

    def L(t):
        a = F.cross_entropy(f(t, X1).reshape(-1, 4), y1.reshape(-1), reduction="sum") / 5
        b = F.cross_entropy(f(t, X2).reshape(-1, 4), y2.reshape(-1), reduction="sum") / 2
        return (a + b) / 5

    compare_matmat(gt.hessian_operator(model, [(X1, y1), (X2, y2)]), dense_hessian_autograd(L, theta))


def test_sequence_target_shape_errors_give_the_recipe():
    model = TokenClassifier().double()
    X = torch.randn(6, 5, 3, dtype=F64)
    with pytest.raises(gt.ShapeError, match=r"\(6, 5\).*reshape"):
        gt.ggn_operator(model, (X, torch.zeros(6, dtype=torch.long)))


# ============================================================================= item 20: tied weights
class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(14)
        self.enc = nn.Linear(3, 3, bias=False)
        self.dec = nn.Linear(3, 3)
        self.dec.weight = self.enc.weight

    def forward(self, x):
        return self.dec(torch.tanh(self.enc(x)))


def test_tied_weights_are_selected_by_either_name():
    model = Tied().double()
    X, y = cls_data(c=3)
    by_first = gt.hessian_operator(model, (X, y), params=["enc.weight"])
    by_second = gt.hessian_operator(model, (X, y), params=["dec.weight"])
    assert by_first.param_names == by_second.param_names == ["enc.weight"]
    assert by_first.fingerprint == by_second.fingerprint
    ref = dense_hessian(model, X, y, names=["enc.weight"])
    compare_matmat(by_second, ref)
    both = gt.hessian_operator(model, (X, y), params=["dec.weight", "enc.weight", "dec.bias"])
    assert both.param_names == ["enc.weight", "dec.bias"]


# ============================================================================= operator misuse
@pytest.fixture(scope="module")
def H():
    model = tanh_mlp(3, 4, 2)
    return gt.hessian_operator(model, cls_data())


@pytest.mark.parametrize("other", ["a", b"a", 1j, True, None, {"a": 1}], ids=repr)
def test_multiplying_by_a_non_number_is_a_clear_type_error(H, other):
    with pytest.raises(gt.DTypeError, match="multiply"):
        H * other
    with pytest.raises(gt.DTypeError, match="multiply"):
        other * H


def test_scalar_and_tensor_products(H):
    D = H.to_dense()
    allclose_report((2.5 * H).to_dense(), 2.5 * D, rtol=1e-14)
    allclose_report((H * np.float32(2.0)).to_dense(), 2 * D, rtol=1e-14)
    v = vec(H)
    allclose_report(H * v, D @ v, rtol=1e-12)


def test_adding_matrices_gives_the_sum(H):
    D = H.to_dense()
    A = np.random.default_rng(0).standard_normal(H.shape)
    A = A + A.T
    for combo, ref in ((H + A, D.numpy() + A), (A + H, A + D.numpy()), (H - A, D.numpy() - A),
                       (A - H, A - D.numpy()), (H + torch.as_tensor(A), D.numpy() + A)):
        assert isinstance(combo, gt.CurvatureOperator)
        allclose_report(combo.to_dense(), ref, rtol=1e-13)
    with pytest.raises(gt.ShapeError, match=r"\(3, 3\)"):
        H + np.eye(3)
    with pytest.raises(gt.DTypeError, match="scalar"):
        H + 3


def test_matvec_and_matmat_with_wrong_shapes_are_shape_errors(H):
    P = H.num_params
    with pytest.raises(gt.ShapeError, match=rf"dimension mismatch.*\({P + 1}, 2\)"):
        H.matmat(np.zeros((P + 1, 2)))
    with pytest.raises(gt.ShapeError, match="2-d"):
        H.matmat(np.zeros(P))
    with pytest.raises(gt.ShapeError, match="dimension mismatch"):
        H.matvec(np.zeros(P + 1))
    with pytest.raises(gt.ShapeError, match="dimension mismatch"):
        H @ np.zeros((P + 1, 2))
    with pytest.raises(gt.ShapeError, match="dimension mismatch"):
        H * [1.0]  # scipy's A * x is A @ x for array-likes
    with pytest.raises(ValueError):
        H.rmatvec(np.zeros(P - 1))


# ============================================================================= models that cannot be copied
class HoldsALock(nn.Module):
    """deepcopy fails (a lock cannot be copied): the operator calls the live module."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(15)
        self.lin, self.out = nn.Linear(3, 4), nn.Linear(4, 2)
        self.drop = nn.Dropout(0.5)
        self.lock = threading.Lock()

    def forward(self, x):
        return self.out(self.drop(torch.tanh(self.lin(x))))


def test_a_model_that_cannot_be_copied_is_called_live_and_mode_changes_are_refused():
    model = HoldsALock().double().eval()
    X, y = cls_data()
    H = gt.hessian_operator(model, (X, y))
    compare_matmat(H, dense_hessian(model, X, y))
    before = H @ vec(H)
    with torch.no_grad():
        model.lin.weight.add_(1.0)  # parameters are still a snapshot
    assert torch.equal(H @ vec(H), before)
    model.train()
    with pytest.raises(gt.InvalidInputError, match="modes changed after the operator was built"):
        H @ vec(H)


class FixedBatch(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(16)
        self.lin = nn.Linear(3, 2)

    def forward(self, x):
        return self.lin(x.view(12, 3))  # a batch size written into the forward


def test_a_model_with_a_fixed_batch_size_is_tried_on_its_whole_first_batch():
    model = FixedBatch().double()
    X, y = cls_data()
    refs = references(model, X, lambda o: F.cross_entropy(o, y, reduction="sum"))
    check_all(model, (X, y), "cross_entropy", refs)
