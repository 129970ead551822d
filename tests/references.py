"""Dense float64 references built independently of gn_theory's kernels."""

from __future__ import annotations

from typing import Callable

import torch
from torch.func import functional_call, hessian, jacrev


def _flat_fn(model: torch.nn.Module, names: list[str]):
    named = dict(model.named_parameters())
    shapes = [named[n].shape for n in names]
    sizes = [named[n].numel() for n in names]
    theta0 = torch.cat([named[n].detach().reshape(-1) for n in names])
    fixed = {n: p.detach() for n, p in named.items() if n not in names}
    fixed.update(dict(model.named_buffers()))

    def f(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(theta, sizes)
        params = {n: p.view(s) for n, p, s in zip(names, parts, shapes)}
        params.update(fixed)
        return functional_call(model, params, (x,))

    return f, theta0


def per_sample_loss(loss, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample losses for one sample ``out`` (C,), ``y``."""
    if loss == "cross_entropy":
        return -torch.log_softmax(out, -1)[y]
    if loss == "mse":
        return 0.5 * ((out - y) ** 2).sum()
    return loss(out.unsqueeze(0), y.unsqueeze(0))


def dense_hessian(model, X, y, loss="cross_entropy", names=None) -> torch.Tensor:
    """torch.func.hessian of the flat mean loss."""
    names = names or [n for n, p in model.named_parameters() if p.requires_grad]
    f, theta0 = _flat_fn(model, names)

    def mean_loss(theta):
        out = f(theta, X)
        return torch.stack([per_sample_loss(loss, o, t) for o, t in zip(out, y)]).mean()

    return hessian(mean_loss)(theta0)


def dense_ggn(model, X, y, loss="cross_entropy", names=None) -> torch.Tensor:
    """Explicit (1/N) sum_i J_i^T H_loss,i J_i with J_i from jacrev."""
    names = names or [n for n, p in model.named_parameters() if p.requires_grad]
    f, theta0 = _flat_fn(model, names)
    P = theta0.numel()
    G = torch.zeros(P, P, dtype=theta0.dtype)
    for xi, yi in zip(X, y):
        J = jacrev(lambda t: f(t, xi.unsqueeze(0)).squeeze(0))(theta0)  # (C, P)
        out = f(theta0, xi.unsqueeze(0)).squeeze(0).detach()
        Hl = hessian(lambda o: per_sample_loss(loss, o, yi))(out)  # (C, C)
        G += J.T @ Hl @ J
    return G / X.shape[0]


def rel_err(A: torch.Tensor, B: torch.Tensor) -> float:
    """Relative Frobenius error ||A - B|| / max(||B||, tiny)."""
    return float((A - B).norm() / max(float(B.norm()), 1e-300))
