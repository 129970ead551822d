"""Hostile inputs to the curvature operators, counted by outcome (issue 13, items 6-20 and errors).

Each case feeds the operators something a careless or unlucky user would (data that change
between passes, models in the wrong mode, torch's own losses and layers, misuse of the operator
objects) and is classified as

* ``right``      the call completed and the numbers match an independent dense float64
                 reference (plain autograd double backward, explicit J^T H J);
* ``clear``      a gn_theory exception (``GnTheoryError``) with its message;
* ``wrong``      the call completed but the numbers are wrong, or it completed where the only
                 honest outcome is a refusal (the operator is not well defined);
* ``bare``       any other exception: a raw torch / numpy / scipy traceback;
* ``hang``       still running after ``--timeout`` seconds (SIGALRM).

Run: ``python benchmarks/hostile_inputs_operators.py [--timeout 90] [--json out.json]``. It only
uses the public API with default options, so the same script measures an older gn_theory too
(``PYTHONPATH=/path/to/old/tree python benchmarks/hostile_inputs_operators.py``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.data import DataLoader, Dataset, IterableDataset, RandomSampler, TensorDataset

import gn_theory as gt

F64 = torch.float64
CASES: list[tuple[str, str, Callable[[], bool]]] = []


def case(group: str):
    def register(fn: Callable[[], bool]) -> Callable[[], bool]:
        CASES.append((group, fn.__name__, fn))
        return fn

    return register


# ----------------------------------------------------------------------------- references
def flat(model, names=None):
    names = names or [n for n, p in model.named_parameters() if p.requires_grad]
    named = dict(model.named_parameters())
    shapes = [named[n].shape for n in names]
    sizes = [named[n].numel() for n in names]
    theta = torch.cat([named[n].detach().reshape(-1) for n in names]).clone()
    fixed = {n: p.detach() for n, p in named.items() if n not in names}
    fixed.update({n: b.clone() for n, b in model.named_buffers()})

    def f(t, x):
        parts = torch.split(t, sizes)
        params = {n: p.view(s) for n, p, s in zip(names, parts, shapes)}
        return functional_call(model, {**params, **fixed}, (x,))

    return f, theta


def hess(scalar_of, theta):
    t = theta.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(scalar_of(t), t, create_graph=True)
    cols = []
    for j in range(t.numel()):
        e = torch.zeros_like(t)
        e[j] = 1
        (h,) = torch.autograd.grad(g, t, e, retain_graph=True, allow_unused=True)
        cols.append(torch.zeros_like(t) if h is None else h)
    return torch.stack(cols, 1).detach()


def ggn(outputs_of, loss_sum, theta, n):
    t = theta.detach().clone().requires_grad_(True)
    out = outputs_of(t)
    rows = []
    for i in range(out.numel()):
        (r,) = torch.autograd.grad(out.reshape(-1)[i], t, retain_graph=True, allow_unused=True)
        rows.append(torch.zeros_like(t) if r is None else r)
    J = torch.stack(rows)
    o = out.detach().reshape(-1)
    Hl = hess(lambda z: loss_sum(z.view_as(out)), o)
    return (J.T @ Hl @ J / n).detach()


def refs(model, X, loss_sum, names=None):
    f, theta = flat(model, names)
    n = X.shape[0]
    H = hess(lambda t: loss_sum(f(t, X)) / n, theta)
    G = ggn(lambda t: f(t, X), loss_sum, theta, n)
    return {"hessian": H, "ggn": G, "residual": H - G}


def close(a, b, rtol=1e-8):
    a = torch.as_tensor(a).detach().double().cpu()
    b = torch.as_tensor(b).detach().double().cpu()
    return a.shape == b.shape and bool(torch.isfinite(a).all()) and float(
        (a - b).abs().max()
    ) <= rtol * max(float(b.abs().max()), 1e-12)


def op(kind, *args, **kw):
    return getattr(gt, f"{kind}_operator")(*args, **kw)


def mlp(d=3, h=6, c=3, seed=0, act=nn.Tanh):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, h), act(), nn.Linear(h, c)).double()


def data(n=13, d=3, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=F64), torch.randint(0, c, (n,), generator=g)


def vec(P, k=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*((P,) if k is None else (P, k)), generator=g, dtype=F64)


def ce_sum(y):
    return lambda o: F.cross_entropy(o, y, reduction="sum")


# ============================================================================= data
def _batches(X, y, size=5):
    return [(X[i : i + size], y[i : i + size]) for i in range(0, X.shape[0], size)]


def _right_after_build(make_data, kinds=("hessian", "ggn")):
    """Products after the build equal the truth on the full data (else: wrong)."""
    model = mlp()
    X, y = data()
    truth = refs(model, X, ce_sum(y))
    for kind in kinds:
        A = op(kind, model, make_data(X, y))
        P = A.shape[0]
        for _ in range(3):
            if not close(A @ vec(P), truth[kind] @ vec(P)):
                return False
    return True


@case("data")
def shared_generator_wrapper():
    class W:
        def __init__(self, b):
            self.g = (x for x in b)

        def __iter__(self):
            return self.g

    return _right_after_build(lambda X, y: W(_batches(X, y)))


@case("data")
def fresh_wrapper_over_shared_generator():
    class W:
        def __init__(self, b):
            self.g = (x for x in b)

        def __iter__(self):
            return (x for x in self.g)

    return _right_after_build(lambda X, y: W(_batches(X, y)))


@case("data")
def dataloader_over_generator_dataset():
    class D(IterableDataset):
        def __init__(self, X, y):
            self.g = (s for s in zip(X, y))

        def __iter__(self):
            return self.g

    return _right_after_build(lambda X, y: DataLoader(D(X, y), batch_size=4))


@case("data")
def shuffle_without_drop_last():
    return _right_after_build(
        lambda X, y: DataLoader(TensorDataset(X, y), batch_size=4, shuffle=True)
    )


def _must_refuse(make_data, passes=4):
    """Data that differ between passes: completing is wrong (no single operator exists)."""
    model = mlp()
    X, y = data()
    for kind in ("hessian", "ggn"):
        A = op(kind, model, make_data(X, y))
        P = A.shape[0]
        outs = [A @ vec(P) for _ in range(passes)]
        if any(not torch.equal(o, outs[0]) for o in outs):
            return False
    return False


@case("data")
def shuffle_with_drop_last():
    return _must_refuse(lambda X, y: DataLoader(TensorDataset(X, y), batch_size=5, shuffle=True,
                                                drop_last=True))


@case("data")
def sampler_with_replacement():
    def make(X, y):
        ds = TensorDataset(X, y)
        return DataLoader(ds, batch_size=4, sampler=RandomSampler(ds, replacement=True))

    return _must_refuse(make)


@case("data")
def random_augmentation():
    class Aug(Dataset):
        def __init__(self, X, y):
            self.X, self.y = X, y

        def __len__(self):
            return len(self.X)

        def __getitem__(self, i):
            return self.X[i] + 0.05 * torch.randn_like(self.X[i]), self.y[i]

    return _must_refuse(lambda X, y: DataLoader(Aug(X, y), batch_size=5))


@case("data")
def data_appended_after_build():
    model = mlp()
    X, y = data()
    b = _batches(X, y)
    H = gt.hessian_operator(model, b)
    truth = refs(model, X, ce_sum(y))["hessian"]
    b.append((X[:4], y[:4]))
    out = H @ vec(H.shape[0])
    Xa, ya = torch.cat([X, X[:4]]), torch.cat([y, y[:4]])
    # right would be either the build's operator or the new data's; the stale N gives neither
    return close(out, truth @ vec(H.shape[0])) or close(
        out, refs(model, Xa, ce_sum(ya))["hessian"] @ vec(H.shape[0]))


@case("data")
def data_modified_in_place_after_build():
    model = mlp()
    X, y = data()
    X = X.clone()
    G = gt.ggn_operator(model, (X, y))
    truth = refs(model, X, ce_sum(y))["ggn"]
    X[0] += 1.0
    return close(G @ vec(G.shape[0]), truth @ vec(G.shape[0]))


@case("data")
def endless_iterable_dataset():
    class Endless(IterableDataset):
        def __iter__(self):
            while True:
                yield torch.randn(3, dtype=F64), torch.tensor(1)

    gt.hessian_operator(mlp(), DataLoader(Endless(), batch_size=4))
    return False


@case("data")
def inf_inputs_into_tanh():
    model = mlp()
    X, y = data()
    X[3, 0] = float("inf")
    H = gt.hessian_operator(model, (X, y))
    return bool(torch.isfinite(H @ vec(H.shape[0])).all())


@case("data")
def class_structure_inf_inputs():
    model = mlp()
    X, y = data()
    X[3, 0] = float("inf")
    cs = gt.class_structure(model, (X, y), dtype=F64)
    return bool(np.isfinite(np.asarray(cs.class_level_means)).all())


@case("data")
def class_structure_shuffle_drop_last():
    model = mlp()
    X, y = data(43)
    loader = DataLoader(TensorDataset(X, y), batch_size=8, shuffle=True, drop_last=True)
    errs = [max(gt.class_structure(model, loader, dtype=F64).identity_error().values())
            for _ in range(3)]
    return max(errs) < 1e-8


# ============================================================================= the model
def bn_mlp(**kw):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, **kw), nn.Tanh(), nn.Linear(4, 3)).double()


def _train(model, X, y, steps=5):
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        opt.step()


@case("model")
def trained_after_build_bn():
    model = bn_mlp()
    X, y = data()
    model.train()
    model(X)
    model.eval()
    H = gt.hessian_operator(model, (X, y))
    truth = refs(model, X, ce_sum(y))["hessian"]
    _train(model, X, y)
    model.eval()
    return close(H @ vec(H.shape[0]), truth @ vec(H.shape[0]))


@case("model")
def trained_after_build_unselected_params():
    model = bn_mlp().eval()
    X, y = data()
    H = gt.hessian_operator(model, (X, y), params=["3.weight"])
    truth = refs(model, X, ce_sum(y), names=["3.weight"])["hessian"]
    _train(model, X, y)
    model.eval()
    return close(H @ vec(H.shape[0]), truth @ vec(H.shape[0]))


@case("model")
def model_left_in_train_mode_after_build():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Dropout(0.5), nn.Linear(6, 3)).double().eval()
    X, y = data()
    H = gt.hessian_operator(model, (X, y))
    truth = refs(model, X, ce_sum(y))["hessian"]
    model.train()
    return close(H @ vec(H.shape[0]), truth @ vec(H.shape[0]))


@case("model")
def forward_updates_a_buffer():
    class Counting(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3).double()
            self.register_buffer("seen", torch.zeros((), dtype=F64))

        def forward(self, x):
            self.seen += 1
            return self.lin(x) * (1 + 0 * self.seen)

    model = Counting()
    X, y = data()
    H = gt.hessian_operator(model, (X, y))
    H @ vec(H.shape[0])
    return float(model.seen) == 0.0 and False  # a forward with side effects is not a function


@case("model")
def submodule_in_train_mode():
    model = bn_mlp()
    model.eval()
    model[1].train()
    X, y = data()
    mean = model[1].running_mean.clone()
    H = gt.hessian_operator(model, (X, y))
    H.to_dense()
    return torch.equal(model[1].running_mean, mean) and False  # batch statistics: refuse


@case("model")
def batchnorm_no_running_stats_uneven_batches():
    model = bn_mlp(track_running_stats=False).eval()
    X, y = data()
    H = gt.hessian_operator(model, [(X[:3], y[:3]), (X[3:], y[3:])])
    truth = refs(model, X, ce_sum(y))["hessian"]
    return close(H @ vec(H.shape[0]), truth @ vec(H.shape[0]))


@case("model")
def dropout_small_p_train_submodule_20_seeds():
    X, y = data(4)
    for seed in range(20):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Dropout(0.01), nn.Linear(6, 3)).double()
        model.eval()
        model[2].train()
        try:
            gt.ggn_operator(model, (X, y))
        except gt.GnTheoryError:
            continue
        return False
    raise gt.InvalidInputError("refused for all 20 seeds")


@case("model")
def functional_dropout_in_forward():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3).double()

        def forward(self, x):
            return self.lin(F.dropout(x, 0.01, training=True))

    gt.hessian_operator(M(), data())
    return False


# ============================================================================= losses
def _loss_case(loss, kinds=("ggn",), c=3):
    model = mlp(3, 8, c)  # P = 59
    g = torch.Generator().manual_seed(1)
    X, Y = torch.randn(10, 3, generator=g, dtype=F64), torch.randn(10, c, generator=g, dtype=F64)
    truth = refs(model, X, lambda o: 10 * loss(o, Y))
    for kind in kinds:
        A = op(kind, model, [(X[:4], Y[:4]), (X[4:], Y[4:])], loss)
        if not close(A.to_dense(), truth[kind]):
            return False
    return True


for _name, _loss in [("nn_MSELoss", nn.MSELoss()), ("F_mse_loss", F.mse_loss),
                     ("nn_HuberLoss", nn.HuberLoss()), ("nn_L1Loss", nn.L1Loss()),
                     ("nn_SmoothL1Loss", nn.SmoothL1Loss())]:
    def _make(loss=_loss):
        return lambda: _loss_case(loss)

    _fn = _make()
    _fn.__name__ = f"ggn_with_{_name}"
    case("loss")(_fn)


def _nll(loss):
    torch.manual_seed(0)
    logits = mlp(3, 6, 3)
    model = nn.Sequential(*logits, nn.LogSoftmax(dim=1))
    X, y = data()
    truth = refs(logits, X, ce_sum(y))["ggn"]
    return close(gt.ggn_operator(model, (X, y), loss).to_dense(), truth)


@case("loss")
def nll_loss_on_log_softmax():
    return _nll(F.nll_loss)


@case("loss")
def nn_NLLLoss_on_log_softmax():
    return _nll(nn.NLLLoss())


@case("loss")
def nll_loss_on_raw_scores_is_zero_G():
    model = mlp()
    X, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        G = gt.ggn_operator(model, (X, y), F.nll_loss)
    return float(G.to_dense().abs().max()) == 0.0


@case("loss")
def mse_module_reduction_sum():
    model = mlp(3, 5, 2)
    X, _ = data()
    Y = torch.randn(13, 2, dtype=F64)
    H = gt.hessian_operator(model, [(X[:5], Y[:5]), (X[5:], Y[5:])], nn.MSELoss(reduction="sum"))
    truth = refs(model, X, lambda o: ((o - Y) ** 2).sum())["hessian"]
    return close(H.to_dense(), truth)


@case("loss")
def ce_class_weights_mean_uneven_batches():
    model = mlp()
    X, y = data()
    w = torch.tensor([1.0, 2.0, 5.0], dtype=F64)
    H = gt.hessian_operator(model, [(X[:3], y[:3]), (X[3:], y[3:])], nn.CrossEntropyLoss(weight=w))
    H @ vec(H.shape[0])
    return False  # batch-dependent normalisation: no mean over samples exists


@case("loss")
def residual_last_layer_block():
    model = mlp()
    X, y = data()
    R = gt.residual_operator(model, (X, y), params=["2.weight", "2.bias"])
    return float((R @ vec(R.shape[0], 3)).abs().max()) == 0.0


# ============================================================================= layers
class Bag(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        torch.manual_seed(3)
        self.emb = nn.Embedding(6, 3, **kw)
        self.out = nn.Linear(3, 2)

    def forward(self, t):
        return self.out(torch.tanh(self.emb(t)).mean(1))


def tokens():
    g = torch.Generator().manual_seed(4)
    T = torch.randint(0, 6, (8, 5), generator=g)
    T[:, 0] = 0
    return T, torch.randint(0, 2, (8,), generator=g)


@case("layers")
def embedding_padding_idx():
    model = Bag(padding_idx=0).double()
    with torch.no_grad():
        model.emb.weight[0] = torch.tensor([0.3, -0.5, 0.8])
    plain = Bag().double()
    plain.load_state_dict(model.state_dict())
    T, y = tokens()
    m = torch.ones(model.emb.weight.numel() + 8, dtype=F64)
    m[:3] = 0
    M = torch.diag(m)
    truth = refs(plain, T, lambda o: F.cross_entropy(o, y, reduction="sum"))
    for kind in ("hessian", "ggn", "residual"):
        D = op(kind, model, (T, y)).to_dense()
        if not close(D, M @ truth[kind] @ M):
            return False
    return True


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(5)
        self.inp, self.mha, self.out = nn.Linear(4, 8), nn.MultiheadAttention(8, 2, batch_first=True), nn.Linear(8, 3)

    def forward(self, x):
        h = self.inp(x)
        return self.out(self.mha(h, h, h, need_weights=False)[0].mean(1))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(6)
        self.inp = nn.Linear(4, 8)
        self.enc = nn.TransformerEncoderLayer(8, 2, 12, batch_first=True)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        return self.out(self.enc(self.inp(x)).mean(1))


class SDPA(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(7)
        self.qkv, self.out = nn.Linear(4, 8), nn.Linear(8, 3)

    def forward(self, x):
        b, t, _ = x.shape
        h = self.qkv(x).view(b, t, 2, 4).transpose(1, 2)
        return self.out(F.scaled_dot_product_attention(h, h, h).transpose(1, 2).reshape(b, t, 8).mean(1))


def _layer_case(model, X, y):
    with sdpa_kernel(SDPBackend.MATH):
        truth = refs(model, X, ce_sum(y))
    for kind in ("hessian", "ggn", "residual"):
        A = op(kind, model, (X, y))
        if not close(A @ vec(A.shape[0]), truth[kind] @ vec(A.shape[0]), rtol=1e-7):
            return False
        if not close(A @ vec(A.shape[0], 3), truth[kind] @ vec(A.shape[0], 3), rtol=1e-7):
            return False
    return True


def _seq_data():
    g = torch.Generator().manual_seed(8)
    return torch.randn(5, 4, 4, generator=g, dtype=F64), torch.randint(0, 3, (5,), generator=g)


@case("layers")
def multihead_attention_need_weights_false():
    return _layer_case(Attention().double().eval(), *_seq_data())


@case("layers")
def transformer_encoder_layer():
    return _layer_case(Encoder().double().eval(), *_seq_data())


@case("layers")
def scaled_dot_product_attention():
    return _layer_case(SDPA().double().eval(), *_seq_data())


@case("layers")
def embedding_sparse():
    T, y = tokens()
    dense = gt.ggn_operator(Bag().double(), (T, y)).to_dense()
    return close(gt.ggn_operator(Bag(sparse=True).double(), (T, y)).to_dense(), dense)


@case("layers")
def embedding_max_norm():
    T, y = tokens()
    H = gt.hessian_operator(Bag(max_norm=0.5).double(), (T, y))
    H @ vec(H.shape[0])
    return False  # the forward renormalises the weight in place


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


class SquareOld(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class WithFn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        torch.manual_seed(9)
        self.a, self.b, self.fn = nn.Linear(3, 4), nn.Linear(4, 3), fn

    def forward(self, x):
        return self.b(self.fn.apply(self.a(x)))


def _all_kinds(model, X, y, truth):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kind in ("hessian", "ggn", "residual"):
            A = op(kind, model, (X, y))
            if not close(A @ vec(A.shape[0], 3), truth[kind] @ vec(A.shape[0], 3)):
                return False
    return True


@case("layers")
def custom_function_without_jvp():
    model = WithFn(SquareNoJvp).double()
    X, y = data()
    return _all_kinds(model, X, y, refs(model, X, ce_sum(y)))


@case("layers")
def custom_function_old_style():
    model = WithFn(SquareOld).double()
    X, y = data()
    return _all_kinds(model, X, y, refs(model, X, ce_sum(y)))


class Ckpt(nn.Module):
    def __init__(self, reentrant):
        super().__init__()
        torch.manual_seed(10)
        self.a, self.b, self.reentrant = nn.Linear(3, 4), nn.Linear(4, 3), reentrant

    def forward(self, x):
        return self.b(torch.utils.checkpoint.checkpoint(lambda z: torch.tanh(self.a(z)), x,
                                                        use_reentrant=self.reentrant))


def _ckpt(reentrant):
    model = Ckpt(reentrant).double()
    plain = nn.Sequential(model.a, nn.Tanh(), model.b)
    X, y = data()
    return _all_kinds(model, X, y, refs(plain, X, ce_sum(y)))


@case("layers")
def checkpoint_reentrant():
    return _ckpt(True)


@case("layers")
def checkpoint_non_reentrant():
    return _ckpt(False)


@case("layers")
def sequence_outputs_cross_entropy():
    torch.manual_seed(11)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4)).double()  # (N, T, 4)
    g = torch.Generator().manual_seed(12)
    X, y = torch.randn(6, 5, 3, generator=g, dtype=F64), torch.randint(0, 4, (6, 5), generator=g)
    truth = refs(model, X, lambda o: F.cross_entropy(o.reshape(-1, 4), y.reshape(-1), reduction="sum") / 5)
    return _all_kinds(model, X, y, truth)


@case("layers")
def tied_weight_by_second_name():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(14)
            self.enc, self.dec = nn.Linear(3, 3, bias=False), nn.Linear(3, 3)
            self.dec.weight = self.enc.weight

        def forward(self, x):
            return self.dec(torch.tanh(self.enc(x)))

    model = Tied().double()
    X, y = data()
    H = gt.hessian_operator(model, (X, y), params=["dec.weight"])
    truth = refs(model, X, ce_sum(y), names=["enc.weight"])["hessian"]
    return close(H.to_dense(), truth)


# ============================================================================= errors
@case("errors")
def wrong_input_width():
    gt.hessian_operator(mlp(), (torch.randn(13, 5, dtype=F64), data()[1]))
    return False


@case("errors")
def integer_inputs():
    gt.hessian_operator(mlp(), (torch.randint(0, 3, (13, 3)), data()[1]))
    return False


@case("errors")
def inputs_on_another_device():
    gt.hessian_operator(mlp(), (torch.randn(13, 3, device="meta"), data()[1]))
    return False


@case("errors")
def int32_targets():
    model = mlp()
    X, y = data()
    truth = refs(model, X, ce_sum(y))["ggn"]
    return close(gt.ggn_operator(model, (X, y.int())).to_dense(), truth)


@case("errors")
def inputs_with_requires_grad():
    model = mlp()
    X, y = data()
    truth = refs(model, X, ce_sum(y))["ggn"]
    G = gt.ggn_operator(model, (X.clone().requires_grad_(True), y))
    out = G @ vec(G.shape[0], 3)
    return out.grad_fn is None and close(out, truth @ vec(G.shape[0], 3))


@case("errors")
def vector_with_requires_grad():
    model = mlp()
    X, y = data()
    H = gt.hessian_operator(model, (X, y))
    out = H @ vec(H.shape[0]).requires_grad_(True)
    return out.grad_fn is None and close(out, refs(model, X, ce_sum(y))["hessian"] @ vec(H.shape[0]))


def _H():
    model = mlp()
    return gt.hessian_operator(model, data()), model


@case("errors")
def times_string():
    H, _ = _H()
    r = H * "a"
    r @ np.ones(H.shape[0])
    return False


@case("errors")
def times_complex():
    H, _ = _H()
    r = H * 1j
    r @ np.ones(H.shape[0])
    return False  # a complex multiple of a real operator: not an operator gn_theory can apply


@case("errors")
def plus_scalar():
    H, _ = _H()
    H + 3
    return False


@case("errors")
def plus_ndarray():
    H, _ = _H()
    A = np.eye(H.shape[0])
    return close((H + A).to_dense(), H.to_dense().numpy() + A)


@case("errors")
def ndarray_plus():
    H, _ = _H()
    A = np.eye(H.shape[0])
    return close((A + H).to_dense(), H.to_dense().numpy() + A)


@case("errors")
def matmat_wrong_rows():
    H, _ = _H()
    H.matmat(np.zeros((H.shape[0] + 1, 2)))
    return False


@case("errors")
def matmat_one_dimensional():
    H, _ = _H()
    H.matmat(np.zeros(H.shape[0]))
    return False


# ============================================================================= runner
class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout


def run(timeout: int) -> list[dict]:
    signal.signal(signal.SIGALRM, _alarm)
    rows = []
    for group, name, fn in CASES:
        start = time.perf_counter()
        signal.alarm(timeout)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ok = fn()
            outcome, detail = ("right", "") if ok else ("wrong", "completed")
        except Timeout:
            outcome, detail = "hang", f"> {timeout} s"
        except gt.GnTheoryError as exc:
            outcome, detail = "clear", f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        except Exception as exc:  # noqa: BLE001 - classifying every other failure
            outcome, detail = "bare", f"{type(exc).__module__}.{type(exc).__name__}: {' '.join(str(exc).split())}"
        finally:
            signal.alarm(0)
        rows.append({"group": group, "case": name, "outcome": outcome, "detail": detail[:300],
                     "seconds": round(time.perf_counter() - start, 2)})
        print(f"{outcome:6s} {group:7s} {name:45s} {detail[:110]}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=int, default=90, help="seconds per case (default 90)")
    parser.add_argument("--json", help="write the rows to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = run(args.timeout)
    counts = Counter(r["outcome"] for r in rows)
    print()
    print(f"{len(rows)} cases: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in
                                            ("right", "clear", "wrong", "bare", "hang")))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"counts": dict(counts), "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
