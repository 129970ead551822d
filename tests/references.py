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


class DenseClassStructure:
    """Everything of THEORY.md section 2 from per-sample jacrev Jacobians, in float64.

    ``delta[i, c']`` = sqrt(p_{i,c'}) J_i^T (e_{c'} - p_i); class means, class-level means,
    priors and the dense P x P matrices G, G_cm, G_w, G_0, G_1, G_2.
    """

    def __init__(self, model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> None:
        names = [n for n, _ in model.named_parameters()]
        f, theta = _flat_fn(model, names)
        N, P = X.shape[0], theta.numel()
        C = int(f(theta, X[:1]).shape[1])
        self.C, self.N, self.P = C, N, P
        delta = torch.zeros(N, C, P, dtype=torch.float64)
        for i in range(N):
            xi = X[i : i + 1]
            J = jacrev(lambda t: f(t, xi).squeeze(0))(theta)  # (C, P)
            p = torch.softmax(f(theta, xi).squeeze(0).detach(), -1)
            for c2 in range(C):
                e = torch.zeros(C, dtype=torch.float64)
                e[c2] = 1
                delta[i, c2] = p[c2].sqrt() * (J.T @ (e - p))
        self.delta = delta
        counts = torch.bincount(y, minlength=C)
        self.counts = counts
        self.priors = counts.double() / N
        means = torch.zeros(C, C, P, dtype=torch.float64)
        for c in range(C):
            if counts[c]:
                means[c] = delta[y == c].mean(0)
        self.means = means
        off = ~torch.eye(C, dtype=torch.bool)
        self.level = torch.stack([means[c][off[c]].mean(0) for c in range(C)])
        pi = self.priors

        def outer(v: torch.Tensor) -> torch.Tensor:
            return torch.outer(v, v)

        self.G = sum(outer(delta[i, c2]) for i in range(N) for c2 in range(C)) / N
        self.G_cm = sum(pi[c] * outer(means[c, c2]) for c in range(C) for c2 in range(C))
        self.G_w = torch.zeros(P, P, dtype=torch.float64)
        for c in range(C):
            rows = delta[y == c]
            for c2 in range(C):
                for r in rows:
                    self.G_w += pi[c] * outer(r[c2] - means[c, c2]) / counts[c]
        self.G_0 = sum(pi[c] * outer(means[c, c]) for c in range(C))
        self.G_1 = (C - 1) * sum(pi[c] * outer(self.level[c]) for c in range(C))
        self.G_2 = sum(
            pi[c] * outer(means[c, c2] - self.level[c])
            for c in range(C) for c2 in range(C) if c2 != c
        )

    def part(self, name: str) -> torch.Tensor:
        """The dense matrix of ``"G_cm"``, ``"G_0"``, ``"G_1"``, ``"G_2"`` or ``"G_w"``."""
        return {"G_cm": self.G_cm, "G_0": self.G_0, "G_1": self.G_1, "G_2": self.G_2,
                "G_w": self.G_w}[name]


# ----------------------------------------------------------------------------- autograd-only references
def flat_model(model: torch.nn.Module, names: list[str] | None = None):
    """``(f(theta, x), theta0, names)`` for the model's parameters ``names`` (default: all trainable)."""
    names = names or [n for n, p in model.named_parameters() if p.requires_grad]
    f, theta0 = _flat_fn(model, names)
    return f, theta0.detach().clone(), names


def dense_hessian_autograd(scalar_of: Callable, theta0: torch.Tensor) -> torch.Tensor:
    """Hessian of ``scalar_of(theta)`` by plain autograd double backward, one column at a time.

    The reference where ``torch.func.hessian`` (forward-over-reverse) is wrong or unsupported
    (LayerNorm models in torch 2.13, ops without a forward-mode derivative).
    """
    t = theta0.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(scalar_of(t), t, create_graph=True)
    P = t.numel()
    cols = []
    for j in range(P):
        e = torch.zeros(P, dtype=t.dtype)
        e[j] = 1
        (hj,) = torch.autograd.grad(g, t, e, retain_graph=True, allow_unused=True)
        cols.append(torch.zeros(P, dtype=t.dtype) if hj is None else hj)
    return torch.stack(cols, 1).detach()


def dense_ggn_autograd(outputs_of: Callable, loss_sum_of_outputs: Callable, theta0: torch.Tensor,
                       num_samples: int) -> torch.Tensor:
    """``(1/N) J^T (d^2 loss / d out^2) J`` with J and the output Hessian by plain autograd.

    ``outputs_of(theta)`` returns all outputs (any shape); ``loss_sum_of_outputs(out)``
    the summed loss over the N samples.
    """
    t = theta0.detach().clone().requires_grad_(True)
    out = outputs_of(t)
    flat = out.reshape(-1)
    J = torch.stack([
        (lambda r: torch.zeros_like(t) if r is None else r)(
            torch.autograd.grad(flat[i], t, retain_graph=True, allow_unused=True)[0])
        for i in range(flat.numel())
    ])
    o = out.detach().clone().requires_grad_(True)
    Hl = dense_hessian_autograd(lambda z: loss_sum_of_outputs(z.view_as(out)), o.reshape(-1))
    return (J.T @ Hl @ J / num_samples).detach()
