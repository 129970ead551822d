"""Autodiff plumbing: the functional model, parameter layout, losses, HVP primitives.

Private module. Everything here works on one batch and returns *sums* over the
batch; the operators (:mod:`gn_theory.operators`) divide by the total number of
samples once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.func import functional_call, grad, jvp, vjp, vmap

from .exceptions import DataError, DTypeError, InvalidInputError, ShapeError

__all__: list[str] = []

LossCallable = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------- losses
class Loss:
    """A per-sample-additive loss: sum over a batch and its output Hessian."""

    name: str = "loss"
    #: whether the GGN of this loss is the classification GGN (C-class softmax)
    is_classification: bool = False

    def check(self, outputs: torch.Tensor, targets: torch.Tensor, index: int) -> None:
        """Raise DataError if ``targets`` do not fit ``outputs`` (batch ``index``)."""

    def sum(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Sum of the per-sample losses over the batch."""
        raise NotImplementedError

    def output_hvp(
        self, outputs: torch.Tensor, targets: torch.Tensor, u: torch.Tensor
    ) -> torch.Tensor:
        """Hessian of :meth:`sum` w.r.t. ``outputs`` applied to ``u`` (same shape)."""
        raise NotImplementedError

    def output_grad(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Gradient of :meth:`sum` w.r.t. ``outputs`` (the residuals), detached."""
        with torch.enable_grad():
            o = outputs.detach().requires_grad_(True)
            (r,) = torch.autograd.grad(self.sum(o, targets), o)
        return r


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy ``-log softmax(f)_y`` with integer targets."""

    name = "cross_entropy"
    is_classification = True

    def check(self, outputs: torch.Tensor, targets: torch.Tensor, index: int) -> None:  # noqa: D102
        if outputs.ndim != 2:
            raise ShapeError(
                f"batch {index}: cross_entropy needs model outputs of shape (batch, classes); "
                f"got {tuple(outputs.shape)}"
            )
        if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
            raise DTypeError(
                f"batch {index}: cross_entropy needs integer class targets (torch.long); "
                f"got dtype {targets.dtype}. Convert with targets.long()."
            )
        if targets.shape != outputs.shape[:1]:
            raise ShapeError(
                f"batch {index}: cross_entropy needs targets of shape ({outputs.shape[0]},); "
                f"got {tuple(targets.shape)}"
            )
        num_classes = outputs.shape[1]
        lo, hi = int(targets.min()), int(targets.max())
        if lo < 0 or hi >= num_classes:
            raise DataError(
                f"batch {index}: targets must lie in [0, {num_classes}) for a model with "
                f"{num_classes} outputs; found values in [{lo}, {hi}]"
            )

    def sum(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return torch.nn.functional.cross_entropy(outputs, targets, reduction="sum")

    def output_hvp(  # noqa: D102
        self, outputs: torch.Tensor, targets: torch.Tensor, u: torch.Tensor
    ) -> torch.Tensor:
        # (diag(p) - p p^T) u, row by row
        p = torch.softmax(outputs, dim=-1)
        pu = p * u
        return pu - p * pu.sum(dim=-1, keepdim=True)

    def output_grad(  # noqa: D102
        self, outputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        # softmax(f) - onehot(y)
        r = torch.softmax(outputs.detach(), dim=-1)
        r[torch.arange(r.shape[0], device=r.device), targets] -= 1
        return r


class MSELoss(Loss):
    """Half squared error summed over outputs: ``0.5 * ||f - y||^2`` per sample."""

    name = "mse"

    def check(self, outputs: torch.Tensor, targets: torch.Tensor, index: int) -> None:  # noqa: D102
        if not targets.is_floating_point():
            raise DTypeError(
                f"batch {index}: mse needs floating-point targets; got dtype {targets.dtype}"
            )
        if targets.shape != outputs.shape:
            raise ShapeError(
                f"batch {index}: mse needs targets of the outputs' shape {tuple(outputs.shape)}; "
                f"got {tuple(targets.shape)}"
            )

    def sum(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return 0.5 * ((outputs - targets) ** 2).sum()

    def output_hvp(  # noqa: D102
        self, outputs: torch.Tensor, targets: torch.Tensor, u: torch.Tensor
    ) -> torch.Tensor:
        return u

    def output_grad(  # noqa: D102
        self, outputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        return outputs.detach() - targets


class CallableLoss(Loss):
    """A user loss ``loss(outputs, targets) -> mean over the batch``.

    The batch sum is ``batch_size * loss(outputs, targets)``; the output Hessian
    is the exact Hessian of that sum w.r.t. the outputs (forward-over-reverse).
    """

    name = "callable"

    def __init__(self, fn: LossCallable) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", type(fn).__name__)

    def check(self, outputs: torch.Tensor, targets: torch.Tensor, index: int) -> None:  # noqa: D102
        try:
            value = self.fn(outputs, targets)
        except Exception as exc:  # the user's function refused the batch
            raise DataError(f"batch {index}: the loss callable raised {exc!r}") from exc
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise InvalidInputError(
                "a loss callable must return a scalar tensor (the mean loss over the batch); "
                f"got {type(value).__name__}"
                + (f" of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else "")
            )

    def sum(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return outputs.shape[0] * self.fn(outputs, targets).reshape(())

    def output_hvp(  # noqa: D102
        self, outputs: torch.Tensor, targets: torch.Tensor, u: torch.Tensor
    ) -> torch.Tensor:
        return jvp(grad(lambda o: self.sum(o, targets)), (outputs,), (u,))[1]


def make_loss(loss: str | LossCallable) -> Loss:
    """Turn the public ``loss`` argument into a :class:`Loss`."""
    if isinstance(loss, str):
        if loss == "cross_entropy":
            return CrossEntropyLoss()
        if loss == "mse":
            return MSELoss()
        raise InvalidInputError(
            f"loss must be 'cross_entropy', 'mse' or a callable(outputs, targets); got {loss!r}"
        )
    if callable(loss):
        return CallableLoss(loss)
    raise InvalidInputError(
        f"loss must be 'cross_entropy', 'mse' or a callable(outputs, targets); got {loss!r}"
    )


# --------------------------------------------------------------------------- model
@dataclass
class ParameterLayout:
    """How the flat parameter vector of length ``P`` maps to named tensors.

    Attributes
    ----------
    names : list of str
        Parameter names (as in ``model.named_parameters()``), in vector order.
    shapes : list of torch.Size
        Their shapes.
    offsets : list of int
        Start of each parameter in the flat vector; ``offsets[-1] + numel`` = P.
    """

    names: list[str]
    shapes: list[torch.Size]
    offsets: list[int]

    @property
    def numels(self) -> list[int]:
        """Number of entries of each parameter."""
        return [int(torch.Size(s).numel()) for s in self.shapes]

    @property
    def num_params(self) -> int:
        """Total length P of the flat vector."""
        return sum(self.numels)

    def slices(self) -> dict[str, slice]:
        """Map each name to its slice of the flat vector."""
        return {n: slice(o, o + k) for n, o, k in zip(self.names, self.offsets, self.numels)}

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a flat vector (P,) into a dict of views with the parameters' shapes."""
        parts = torch.split(flat, self.numels)
        return {n: p.view(s) for n, p, s in zip(self.names, parts, self.shapes)}

    def flatten(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate a dict of per-parameter tensors into one flat vector."""
        return torch.cat([tensors[n].reshape(-1) for n in self.names])


class FunctionalModel:
    """``f(theta, x)``: the model as a function of the flat selected parameters.

    The selected parameters are copied into the flat ``theta``. Parameters not
    selected, and buffers, are held fixed at their current values (converted to
    the compute device/dtype, which shares their storage when no conversion is
    needed); the user's module is never modified.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        selected: list[str],
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.model = model
        named = dict(model.named_parameters())
        self.layout = ParameterLayout(
            names=list(selected),
            shapes=[named[n].shape for n in selected],
            offsets=[],
        )
        offset = 0
        for n in selected:
            self.layout.offsets.append(offset)
            offset += named[n].numel()

        def conv(t: torch.Tensor) -> torch.Tensor:
            t = t.detach()
            return t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device)

        self.theta = torch.cat([conv(named[n]).reshape(-1) for n in selected]) if selected else (
            torch.zeros(0, device=device, dtype=dtype)
        )
        self.fixed = {n: conv(p) for n, p in named.items() if n not in set(selected)}
        self.fixed.update({n: conv(b) for n, b in model.named_buffers()})

    def __call__(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Evaluate the model at flat parameters ``theta`` on inputs ``x``."""
        params = self.layout.unflatten(theta)
        params.update(self.fixed)
        return functional_call(self.model, params, (x,))


# --------------------------------------------------------------------------- HVP primitives
#
# The per-batch kernels of the operators (``_matmat_batch`` in
# gn_theory/operators/hessian.py, ggn.py, residual.py) are built from these. Costs are
# in units of one plain autograd gradient of the same loss on the same batch, measured
# by ``benchmarks/bench_operators.py`` on a 784-256-128-10 ReLU MLP (P = 235,146),
# float32, CPU, 2 threads; see docs/performance.md ("Operators") for the table.
#
# Single vectors and blocks take different paths on purpose: for one vector,
# autograd double backward (H, R) and forward-mode dual numbers (G) are the
# cheapest; for a block, vmap shares the primal passes between the k vectors.
# Blocks cannot reach 1 gradient per vector on such an MLP: each vector needs
# X V1^T and (.)^T X through the first layer, as many flops as the whole
# first-layer share of a gradient, plus about twice the gradient's flops in
# the other layers (~1.2 gradients for H, ~1.07 for G by flop count).


def leaf(theta: torch.Tensor) -> torch.Tensor:
    """A fresh autograd leaf sharing ``theta``'s storage."""
    return theta.detach().requires_grad_(True)


def hvp_double_backward(value: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``(d^2 value / dt^2) @ v`` by autograd double backward (one vector).

    ``value`` is a scalar computed, with grad mode on, from the leaf ``t``.
    """
    with torch.enable_grad():
        if not value.requires_grad:  # constant in t
            return torch.zeros_like(v)
        (g,) = torch.autograd.grad(value, t, create_graph=True)
        if not g.requires_grad:  # linear in theta: zero Hessian
            return torch.zeros_like(v)
        (hv,) = torch.autograd.grad(g, t, v, allow_unused=True)
    return torch.zeros_like(v) if hv is None else hv.detach()


def hvp_block(
    scalar_of: Callable[[torch.Tensor], torch.Tensor],
    theta: torch.Tensor,
    V: torch.Tensor,
    chunk_size: int | None,
) -> torch.Tensor:
    """``Hess(scalar_of)(theta) @ V`` for a block (P, k).

    Reverse-over-reverse: one primal forward and one gradient pass recorded by
    ``vjp(grad(scalar_of))``, then the pullback vmapped over the k columns.
    """
    _, pullback = vjp(grad(scalar_of), theta)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        return pullback(v)[0]

    return vmap(hvp, in_dims=1, out_dims=1, chunk_size=chunk_size)(V)


def hvp(
    scalar_of: Callable[[torch.Tensor], torch.Tensor],
    theta: torch.Tensor,
    V: torch.Tensor,
    chunk_size: int | None,
) -> torch.Tensor:
    """``Hess(scalar_of)(theta) @ V`` for ``V`` of shape (P, k), by the cheaper path for k.

    One vector (k = 1): autograd double backward (gradient with
    ``create_graph=True``, then the gradient of ``<g, v>``). A block (k > 1):
    :func:`hvp_block`.
    """
    if V.shape[1] == 1:
        with torch.enable_grad():
            t = leaf(theta)
            return hvp_double_backward(scalar_of(t), t, V[:, 0]).unsqueeze(1)
    return hvp_block(scalar_of, theta, V, chunk_size)
