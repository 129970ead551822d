"""Autodiff plumbing: the functional model, parameter layout, losses, HVP primitives.

Private module. Everything here works on one batch and returns *sums* over the
batch; the operators (:mod:`gn_theory.operators`) divide by the total number of
samples once.

Two families of per-batch primitives exist. The ``torch.func`` ones (vmapped
pullbacks, forward-mode dual numbers) are the fast default; the ``*_autograd``
ones use only ``torch.autograd.grad`` (one column at a time) and serve models that
``torch.func`` or forward mode cannot differentiate: custom ``autograd.Function``\\ s
without ``jvp``/``vmap`` rules, non-reentrant activation checkpointing. The
operators pick one at construction by a trial product.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.func import functional_call, grad, vjp, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

from .exceptions import DataError, DTypeError, InvalidInputError, ShapeError

__all__: list[str] = []

LossCallable = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: ``u -> (d^2 loss_sum / d outputs^2) u`` for one batch, ``u`` of the outputs' shape.
OutputHessian = Callable[[torch.Tensor], torch.Tensor]


def one_line(exc: BaseException) -> str:
    """``Type: message`` of an exception on one line (torch messages span several)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:500]}"


# --------------------------------------------------------------------------- losses
class Loss:
    """A per-sample-additive loss: its sum over a batch, output Hessian and residuals."""

    name: str = "loss"
    #: whether the GGN of this loss is the classification GGN (C-class softmax)
    is_classification: bool = False
    #: whether G uses a second derivative of this loss that may vanish identically
    #: (callables); the GGN operator warns when it is zero on the first batch
    may_be_linear: bool = False

    def check(self, outputs: torch.Tensor, targets: torch.Tensor, index: int) -> None:
        """Raise DataError if ``targets`` do not fit ``outputs`` (batch ``index``)."""

    def note(self, output_shape: tuple[int, ...]) -> str | None:
        """A sentence on how the loss is read, for the operator's metadata (or None)."""
        return None

    def sum(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Sum of the per-sample losses over the batch."""
        raise NotImplementedError

    def output_hessian(
        self, outputs: torch.Tensor, targets: torch.Tensor, *, functional: bool = True
    ) -> OutputHessian:
        """The Hessian of :meth:`sum` w.r.t. ``outputs``, prepared once for a batch.

        ``functional=True`` returns a function that may be called inside
        ``torch.func.vmap``; ``False`` one built from plain autograd only.
        """
        raise NotImplementedError

    def output_hvp(
        self, outputs: torch.Tensor, targets: torch.Tensor, u: torch.Tensor
    ) -> torch.Tensor:
        """Hessian of :meth:`sum` w.r.t. ``outputs`` applied to ``u`` (same shape)."""
        return self.output_hessian(outputs, targets)(u)

    def output_grad(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Gradient of :meth:`sum` w.r.t. ``outputs`` (the residuals), detached."""
        with torch.enable_grad():
            o = outputs.detach().requires_grad_(True)
            (r,) = torch.autograd.grad(self.sum(o, targets), o, allow_unused=True)
        return torch.zeros_like(o) if r is None else r.detach()


def _positions(outputs: torch.Tensor) -> int:
    """Number T of output positions per sample of class scores ``(B, *T, C)``."""
    return math.prod(int(d) for d in outputs.shape[1:-1])


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy ``-log softmax(f)_y`` with integer targets.

    Outputs ``(B, C)`` with targets ``(B,)``, or class scores at several positions
    ``(B, T, ..., C)`` (classes on the last axis, e.g. tokens) with targets
    ``(B, T, ...)``: the per-sample loss is then the mean over the sample's positions.
    Targets of any integer dtype are accepted (read as ``torch.long``).
    """

    name = "cross_entropy"
    is_classification = True

    def check(self, outputs: torch.Tensor, targets: torch.Tensor, index: int) -> None:  # noqa: D102
        if outputs.ndim < 2:
            raise ShapeError(
                f"batch {index}: cross_entropy needs model outputs of shape (batch, classes) "
                f"or (batch, positions, classes); got {tuple(outputs.shape)}"
            )
        if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
            raise DTypeError(
                f"batch {index}: cross_entropy needs integer class targets (torch.long); "
                f"got dtype {targets.dtype}. Convert with targets.long()."
            )
        want = tuple(outputs.shape[:-1])
        if tuple(targets.shape) != want:
            recipe = ""
            if outputs.ndim > 2 or targets.ndim > 1:
                recipe = (
                    ": one class index per output position, classes on the last axis. A "
                    "sequence model with outputs (N, T, C) takes targets (N, T); with classes "
                    "on axis 1 (torch's (N, C, T) layout) return out.movedim(1, -1), or "
                    "reshape outputs to (N * T, C) and targets to (N * T,) to count each "
                    "position as a sample"
                )
            raise ShapeError(
                f"batch {index}: cross_entropy needs targets of shape {want}; got "
                f"{tuple(targets.shape)}{recipe}"
            )
        num_classes = outputs.shape[-1]
        lo, hi = int(targets.min()), int(targets.max())
        if lo < 0 or hi >= num_classes:
            hint = (
                "; -100 is torch's ignore_index for padding positions, which gn_theory does "
                "not read (drop them, or give each sample only its real positions)"
                if lo == -100 else ""
            )
            raise DataError(
                f"batch {index}: targets must lie in [0, {num_classes}) for a model with "
                f"{num_classes} outputs; found values in [{lo}, {hi}]{hint}"
            )

    def note(self, output_shape: tuple[int, ...]) -> str | None:  # noqa: D102
        if len(output_shape) <= 1:
            return None
        return (
            f"outputs of shape {output_shape} per sample: the per-sample loss is the mean over "
            f"its {math.prod(output_shape[:-1])} output positions (tokens) of the softmax "
            "cross-entropy over the last axis"
        )

    def sum(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # noqa: D102
        c = outputs.shape[-1]
        total = torch.nn.functional.cross_entropy(
            outputs.reshape(-1, c), targets.reshape(-1).long(), reduction="sum"
        )
        t = _positions(outputs)
        return total if t == 1 else total / t

    def output_hessian(  # noqa: D102
        self, outputs: torch.Tensor, targets: torch.Tensor, *, functional: bool = True
    ) -> OutputHessian:
        # (diag(p) - p p^T) u at every position, divided by the number of positions
        p = torch.softmax(outputs.detach(), dim=-1)
        scale = 1.0 / _positions(outputs)

        def apply(u: torch.Tensor) -> torch.Tensor:
            pu = p * u
            out = pu - p * pu.sum(dim=-1, keepdim=True)
            return out if scale == 1.0 else out * scale

        return apply

    def output_grad(  # noqa: D102
        self, outputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        # softmax(f) - onehot(y), divided by the number of positions
        r = torch.softmax(outputs.detach(), dim=-1)
        r = r - torch.nn.functional.one_hot(targets.long(), r.shape[-1]).to(r.dtype)
        t = _positions(outputs)
        return r if t == 1 else r / t


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

    def output_hessian(  # noqa: D102
        self, outputs: torch.Tensor, targets: torch.Tensor, *, functional: bool = True
    ) -> OutputHessian:
        return lambda u: u

    def output_grad(  # noqa: D102
        self, outputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        return outputs.detach() - targets


#: torch's losses whose ``reduction="mean"`` divides by the batch's total class weight
#: and leaves out ``ignore_index`` targets: not a mean over the batch's samples.
_NORMALISED_BY_TARGETS = (torch.nn.CrossEntropyLoss, torch.nn.NLLLoss)
_NORMALISED_FUNCTIONS = (torch.nn.functional.cross_entropy, torch.nn.functional.nll_loss)


class CallableLoss(Loss):
    """A user loss ``loss(outputs, targets)``.

    By default the callable returns the *mean over the batch* of a per-sample loss,
    so the batch sum is ``batch_size * loss(outputs, targets)``. torch's own loss
    modules say how they reduce: ``reduction="sum"`` is the batch sum itself and
    ``reduction="none"`` per-entry losses, summed. The output Hessian is the exact
    Hessian of the batch sum w.r.t. the outputs, by reverse-over-reverse (which,
    unlike forward mode, every differentiable torch loss supports).
    """

    name = "callable"
    may_be_linear = True

    def __init__(self, fn: LossCallable) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", type(fn).__name__)
        self.reduction = "mean"
        if isinstance(fn, torch.nn.modules.loss._Loss):
            self.reduction = str(fn.reduction)
            if self.reduction not in ("mean", "sum", "none"):
                raise InvalidInputError(
                    f"{type(fn).__name__}(reduction={fn.reduction!r}) is not understood; use "
                    "reduction='mean', 'sum' or 'none'"
                )
            weight = getattr(fn, "weight", None)
            if (
                isinstance(fn, _NORMALISED_BY_TARGETS)
                and weight is not None
                and self.reduction == "mean"
            ):
                raise InvalidInputError(
                    f"{type(fn).__name__}(weight=..., reduction='mean') divides each batch by "
                    "the total class weight of its targets, so the loss depends on how the data "
                    "are batched and is not a mean over samples; pass "
                    f"{type(fn).__name__}(weight=..., reduction='sum') (the operators then "
                    "divide the weighted sum by the number of samples)"
                )

    def _ignore_index(self) -> int | None:
        if self.reduction != "mean":
            return None
        if isinstance(self.fn, _NORMALISED_BY_TARGETS):
            return int(self.fn.ignore_index)
        if any(self.fn is g for g in _NORMALISED_FUNCTIONS):
            return -100
        return None

    def check(self, outputs: torch.Tensor, targets: torch.Tensor, index: int) -> None:  # noqa: D102
        ignore = self._ignore_index()
        if ignore is not None and not targets.is_floating_point() and bool((targets == ignore).any()):
            raise DataError(
                f"batch {index}: targets equal to ignore_index={ignore} with reduction='mean': "
                "the mean is then over each batch's other targets, which depends on the "
                "batching; drop those samples or use reduction='sum'"
            )
        try:
            value = self.fn(outputs, targets)
        except Exception as exc:  # the user's function refused the batch
            raise DataError(f"batch {index}: the loss callable raised {one_line(exc)}") from exc
        if not isinstance(value, torch.Tensor):
            raise InvalidInputError(
                "a loss callable must return a scalar tensor (the mean loss over the batch); "
                f"got {type(value).__name__}"
            )
        if self.reduction != "none" and value.numel() != 1:
            raise InvalidInputError(
                "a loss callable must return a scalar tensor (the mean loss over the batch); "
                f"got {type(value).__name__} of shape {tuple(value.shape)}"
            )

    def sum(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # noqa: D102
        value = self.fn(outputs, targets)
        if self.reduction == "none":
            return value.sum()
        if self.reduction == "sum":
            return value.reshape(())
        return outputs.shape[0] * value.reshape(())

    def output_hessian(  # noqa: D102
        self, outputs: torch.Tensor, targets: torch.Tensor, *, functional: bool = True
    ) -> OutputHessian:
        outputs = outputs.detach()
        if functional:
            _, pullback = vjp(grad(lambda o: self.sum(o, targets)), outputs)
            return lambda u: pullback(u)[0]
        with torch.enable_grad():
            o = outputs.requires_grad_(True)
            (g,) = torch.autograd.grad(self.sum(o, targets), o, create_graph=True)

        def apply(u: torch.Tensor) -> torch.Tensor:
            if not g.requires_grad:  # linear loss
                return torch.zeros_like(u)
            with torch.enable_grad():
                (h,) = torch.autograd.grad(g, o, u, retain_graph=True, allow_unused=True)
            return torch.zeros_like(u) if h is None else h.detach()

        return apply


class NLLOnLogProbabilities(CallableLoss):
    """``F.nll_loss`` / ``nn.NLLLoss``: cross-entropy when the outputs are log-probabilities.

    ``nll_loss`` is linear in its input, so split at the model's outputs its Gauss-Newton
    term would be zero. When the outputs are log-probabilities (``logsumexp = 0`` on every
    batch, e.g. a final ``log_softmax``), ``nll(z, y) = cross_entropy(z, y)`` for every
    parameter value, and the output Hessian of cross-entropy at ``z`` gives exactly the
    Gauss-Newton of softmax cross-entropy on the logits; so the loss is read as
    cross-entropy (H unchanged, G the classical GGN, R = H - G). Otherwise it stays the
    linear callable (and the GGN operator warns that G = 0).
    """

    def __init__(self, fn: LossCallable) -> None:
        super().__init__(fn)
        self.name = "nll_loss"
        weight = getattr(fn, "weight", None)
        self.as_cross_entropy: bool | None = None if weight is None else False
        self._ce = CrossEntropyLoss()

    def check(self, outputs: torch.Tensor, targets: torch.Tensor, index: int) -> None:  # noqa: D102
        super().check(outputs, targets, index)
        if self.as_cross_entropy is False:
            return
        if outputs.ndim != 2 or not outputs.is_floating_point():
            self.as_cross_entropy = False
            return
        tol = 10 * float(torch.finfo(outputs.dtype).eps) ** 0.5
        lse = torch.logsumexp(outputs.detach(), dim=-1)
        self.as_cross_entropy = bool((lse.abs() <= tol).all())
        self.may_be_linear = not self.as_cross_entropy

    def note(self, output_shape: tuple[int, ...]) -> str | None:  # noqa: D102
        if self.as_cross_entropy:
            return (
                "nll_loss on log-probabilities (logsumexp of the outputs is 0): read as softmax "
                "cross-entropy on them, equal as a function of the parameters, so G is the "
                "Gauss-Newton of cross-entropy on the logits"
            )
        return "nll_loss on outputs that are not log-probabilities: linear in them, so G = 0"

    def sum(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.as_cross_entropy:
            return self._ce.sum(outputs, targets)
        return super().sum(outputs, targets)

    def output_hessian(  # noqa: D102
        self, outputs: torch.Tensor, targets: torch.Tensor, *, functional: bool = True
    ) -> OutputHessian:
        if self.as_cross_entropy:
            return self._ce.output_hessian(outputs, targets)
        return super().output_hessian(outputs, targets, functional=functional)

    def output_grad(  # noqa: D102
        self, outputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        if self.as_cross_entropy:
            return self._ce.output_grad(outputs, targets)
        return super().output_grad(outputs, targets)


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
        if loss is torch.nn.functional.nll_loss or isinstance(loss, torch.nn.NLLLoss):
            return NLLOnLogProbabilities(loss)
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


@contextlib.contextmanager
def exact_attention() -> Iterator[None]:
    """Run attention through the differentiable math kernel, restoring the global settings.

    Flash and memory-efficient scaled-dot-product attention, and the fused
    ``nn.MultiheadAttention`` / ``nn.TransformerEncoderLayer`` fast path, have no
    forward-mode or second derivatives in torch; the math backend computes the same
    function (exactly, up to round-off) with all of them.
    """
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)


_EMBEDDINGS = (torch.nn.Embedding, torch.nn.EmbeddingBag)


def parameter_aliases(model: torch.nn.Module) -> dict[str, str]:
    """Every name of every parameter (tied weights have several) -> its canonical name."""
    canonical = {id(p): n for n, p in model.named_parameters()}
    return {n: canonical[id(p)] for n, p in model.named_parameters(remove_duplicate=False)}


def structural_copy(model: torch.nn.Module) -> torch.nn.Module | None:
    """A copy of the module tree that shares the tensors (none are copied), or None.

    The copy freezes the modules' modes and attributes at build time; it is called
    with the operator's own snapshot of every parameter and buffer. ``None`` if the
    model cannot be deep-copied (e.g. it holds a lock or an open file).
    """
    memo: dict[int, Any] = {}
    for t in itertools.chain(model.parameters(), model.buffers()):
        memo[id(t)] = t
    try:
        clone = copy.deepcopy(model, memo)
    except Exception:  # anything the user's attributes raise: fall back to the live module
        return None
    for m in clone.modules():
        if isinstance(m, _EMBEDDINGS) and getattr(m, "sparse", False):
            m.sparse = False  # same function and derivatives; dense gradients for torch.func
    return clone


class FunctionalModel:
    """``f(theta, x)``: the model as a function of the flat selected parameters.

    A **snapshot**: the selected parameters are copied into the flat ``theta``, and
    every other parameter and every buffer into ``fixed`` (converted to the compute
    device/dtype, always copies), so training the user's model afterwards cannot
    change ``f``; the user's module and its tensors are never written to. The module
    tree is copied too (sharing no mutable tensors with the forward), which freezes
    the submodules' train/eval modes; where the model cannot be copied, the live
    module is called and :meth:`check_unchanged` refuses once a mode has changed.
    Attention runs through the exact math kernel (:func:`exact_attention`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        selected: list[str],
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        copied = structural_copy(model)
        self.model = model if copied is None else copied
        self.is_copy = copied is not None
        self._modes = [m.training for m in model.modules()]
        self._live = model
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
            if t.is_floating_point():
                return t.to(device=device, dtype=dtype, copy=True)
            return t.to(device=device, copy=True)

        self.theta = torch.cat([conv(named[n]).reshape(-1) for n in selected]) if selected else (
            torch.zeros(0, device=device, dtype=dtype)
        )
        chosen = set(selected)
        self.fixed = {n: conv(p) for n, p in named.items() if n not in chosen}
        self.fixed.update({n: conv(b) for n, b in model.named_buffers()})
        self.fixed_entries = self._padding_mask(model, named)

    def _padding_mask(
        self, model: torch.nn.Module, named: dict[str, torch.Tensor]
    ) -> torch.Tensor | None:
        """1/0 mask of the flat vector: 0 on rows of ``padding_idx`` of selected embeddings.

        torch's backward never moves an embedding's padding row (its gradient is zero)
        while forward mode differentiates it; the operators hold those entries fixed so
        that H, G and R agree with torch's training semantics and stay symmetric.
        """
        by_id = {id(p): n for n, p in named.items()}
        slices = self.layout.slices()
        mask = None
        for m in model.modules():
            pad = getattr(m, "padding_idx", None)
            if not isinstance(m, _EMBEDDINGS) or pad is None:
                continue
            name = by_id.get(id(m.weight))
            if name is None or name not in slices:
                continue
            if mask is None:
                mask = torch.ones_like(self.theta)
            dim = m.weight.shape[1]
            start = slices[name].start + int(pad) % m.weight.shape[0] * dim
            mask[start : start + dim] = 0
        return mask

    def check_unchanged(self) -> None:
        """Raise if the live model (used only when it could not be copied) changed mode."""
        if self.is_copy:
            return
        now = [m.training for m in self._live.modules()]
        if now != self._modes:
            raise InvalidInputError(
                "the model's train/eval modes changed after the operator was built (the model "
                "could not be copied, so the operator calls it live); the operator is a "
                "snapshot: restore the modes, or build a new operator"
            )

    def __call__(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Evaluate the model at flat parameters ``theta`` on inputs ``x``."""
        params = self.layout.unflatten(theta)
        params.update(self.fixed)
        with exact_attention():
            return functional_call(self.model, params, (x,))

    def versions(self) -> dict[str, int]:
        """In-place modification counters of ``theta`` and every fixed tensor."""
        out = {n: t._version for n, t in self.fixed.items()}
        out[""] = self.theta._version
        return out


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


def vmap_columns(
    fn: Callable[[torch.Tensor], torch.Tensor], V: torch.Tensor, chunk_size: int | None
) -> torch.Tensor:
    """``[fn(V[:, 0]), ..., fn(V[:, k-1])]`` as a (P, k) tensor, vmapped.

    Stacks along dim 0 and transposes: vmap's ``out_dims=1`` fails when ``fn``'s result
    does not depend on its input (an identically zero second derivative).
    """
    return vmap(fn, in_dims=1, out_dims=0, chunk_size=chunk_size)(V).T


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
    return vmap_columns(lambda v: pullback(v)[0], V, chunk_size)


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


def hvp_autograd(
    scalar_of: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, V: torch.Tensor
) -> torch.Tensor:
    """``Hess(scalar_of)(theta) @ V`` by plain autograd: one gradient graph, k backwards."""
    with torch.enable_grad():
        t = leaf(theta)
        value = scalar_of(t)
        if not value.requires_grad:
            return torch.zeros_like(V)
        (g,) = torch.autograd.grad(value, t, create_graph=True)
        if not g.requires_grad:
            return torch.zeros_like(V)
        cols = []
        for j in range(V.shape[1]):
            (h,) = torch.autograd.grad(g, t, V[:, j], retain_graph=True, allow_unused=True)
            cols.append(torch.zeros_like(theta) if h is None else h.detach())
    return torch.stack(cols, dim=1)


def ggn_autograd(
    outputs_of: Callable[[torch.Tensor], torch.Tensor],
    output_hessian: Callable[[torch.Tensor], OutputHessian],
    theta: torch.Tensor,
    V: torch.Tensor,
) -> torch.Tensor:
    """``J^T H_out J V`` by plain autograd (no forward mode, no vmap), one column at a time.

    ``J v`` is the derivative in ``u`` of ``<J^T u, v>`` (the double-vjp trick);
    ``output_hessian(outputs)`` prepares ``u -> H_out u``.
    """
    with torch.enable_grad():
        t = leaf(theta)
        out = outputs_of(t)
        if not out.requires_grad:
            return torch.zeros_like(V)
        hess = output_hessian(out.detach())
        u = torch.zeros_like(out, requires_grad=True)
        (jtu,) = torch.autograd.grad(out, t, u, create_graph=True, allow_unused=True)
        cols = []
        for j in range(V.shape[1]):
            if jtu is None or not jtu.requires_grad:
                cols.append(torch.zeros_like(theta))
                continue
            (jv,) = torch.autograd.grad(jtu, u, V[:, j], retain_graph=True, allow_unused=True)
            w = hess(torch.zeros_like(out) if jv is None else jv.detach())
            (g,) = torch.autograd.grad(out, t, w, retain_graph=True, allow_unused=True)
            cols.append(torch.zeros_like(theta) if g is None else g.detach())
    return torch.stack(cols, dim=1)
