r"""The generalized Gauss-Newton term :math:`G = \frac1N\sum_i J_i^\top \nabla^2_f\ell_i J_i`."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import torch
import torch.autograd.forward_ad as fwAD
from torch.func import jvp, vjp

from .._autodiff import LossCallable, ggn_autograd, leaf, vmap_columns
from ..exceptions import GnTheoryWarning
from ._model import ModelCurvatureOperator

__all__ = ["GGNOperator", "ggn_operator"]


class GGNOperator(ModelCurvatureOperator):
    r"""The generalized Gauss-Newton term G of the mean loss over a dataset.

    Build it with :func:`ggn_operator`, which documents the parameters.
    One batch's kernel: ``J V`` by forward mode, the loss's output Hessian in
    closed form (or by forward-over-reverse for a callable loss), ``J^T`` by
    reverse mode.
    """

    kind = "ggn"

    def _matmat_batch(self, x: torch.Tensor, y: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        f, loss, theta = self.function, self.loss, self.function.theta
        if self.kernel == "autograd":
            return ggn_autograd(
                lambda t: f(t, x),
                lambda out: loss.output_hessian(out, y, functional=False),
                theta,
                V,
            )
        if V.shape[1] == 1:
            # one forward pass on dual numbers that also records the autograd graph
            # gives the outputs and J v; one backward applies J^T. About 1.7-2.0
            # gradients (separate vjp and jvp passes: 2.4-2.6)
            v = V[:, 0]
            with torch.enable_grad():
                t = leaf(theta)
                with fwAD.dual_level():
                    primal, jv = fwAD.unpack_dual(f(fwAD.make_dual(t, v), x))
                if jv is None:  # outputs do not depend on theta
                    jv = torch.zeros_like(primal)
                u = loss.output_hessian(primal.detach(), y)(jv)
                if not primal.requires_grad:
                    return torch.zeros_like(V)
                (gv,) = torch.autograd.grad(primal, t, u, allow_unused=True)
            return (torch.zeros_like(v) if gv is None else gv.detach()).unsqueeze(1)

        # a block: one primal vjp shared by the block, vmap over the jvp and the vjp
        # function; about 1.0-1.2 gradients per vector for k = 10 (flop bound ~1.07)
        out, vjp_fn = vjp(lambda t: f(t, x), theta)
        hess = loss.output_hessian(out.detach(), y)  # prepared once for the block

        def one(v: torch.Tensor) -> torch.Tensor:
            jv = jvp(lambda t: f(t, x), (theta,), (v,))[1]
            return vjp_fn(hess(jv))[0]

        return vmap_columns(one, V, self.chunk_size)

    def _after_trial(self, x: torch.Tensor, y: torch.Tensor) -> None:
        # a loss linear in the outputs (nll_loss on scores, L1) has G = 0: right, but say so
        if not self.loss.may_be_linear:
            return
        with torch.no_grad():
            out = self.function(self.function.theta, x)
        g = torch.Generator(device="cpu").manual_seed(1)
        u = torch.randn(out.shape, generator=g, dtype=torch.float64).to(out.device, out.dtype)
        if bool((self.loss.output_hessian(out, y)(u) == 0).all()):
            warnings.warn(
                f"the loss {self.loss.name!r} is linear in the model outputs (its Hessian with "
                "respect to them is zero on the first batch), so G = 0 and R = H. For "
                "nll_loss this means the outputs are not log-probabilities; for the "
                "Gauss-Newton of softmax cross-entropy pass logits with loss='cross_entropy'",
                GnTheoryWarning,
                stacklevel=6,
            )


def ggn_operator(
    model: torch.nn.Module,
    data: Any,
    loss: str | LossCallable = "cross_entropy",
    *,
    params: Iterable[str | torch.Tensor] | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    chunk_size: int | None = None,
    max_batches: int | None = None,
) -> GGNOperator:
    r"""Generalized Gauss-Newton term :math:`G = \frac1N\sum_i J_i^\top \nabla^2_f\ell_i J_i`.

    With :math:`J_i = \partial f(x_i;\theta)/\partial\theta` over all N samples of
    ``data``. ``G v`` is ``J v`` by forward mode (one forward pass on dual
    numbers for a single vector; a vmapped ``jvp`` for a block), the output
    Hessian of the loss in closed form (softmax cross-entropy:
    :math:`\mathrm{diag}(p) - pp^\top`; mse: identity; a callable: its exact
    output Hessian), then ``J^T`` by one vjp. G is positive semi-definite for
    convex losses, with rank at most :math:`N(C-1)` for C-class cross-entropy.

    Cost of one product: measured about 1.7-2.0 full-data gradients for one
    vector (one forward pass on dual numbers, one backward) and about 1.0-1.2
    per vector in blocks of 10; see docs/performance.md.

    Parameters
    ----------
    model : torch.nn.Module
        The network, called as ``model(inputs)``. The operator is a
        **snapshot**: every parameter and buffer is copied (to
        ``device``/``dtype``) at build time, and so are the submodules' modes,
        so training the model afterwards does not change it; the model and
        its tensors are never written to (calls go through
        :func:`torch.func.functional_call` on the copies). Put it in
        ``eval()`` mode first if it has dropout or batch norm (every
        submodule is checked). See docs/operators.md, "What a model and data
        must satisfy".
    data : (Tensor, Tensor) or iterable of (Tensor, Tensor)
        ``(inputs, targets)``, or a re-iterable of such batches (a list, a
        ``DataLoader``). The operator is for the **mean loss over all
        samples**: batches are summed and divided by the total count once,
        so uneven batches are weighted correctly.
    loss : {"cross_entropy", "mse"} or callable, default "cross_entropy"
        ``"cross_entropy"``: softmax cross-entropy, outputs (B, C) logits,
        integer targets (B,) in [0, C) of any integer dtype; class scores at
        several positions (B, T, C) with targets (B, T) give the per-sample
        mean over the T positions (tokens). ``"mse"``: per sample
        ``0.5 * ||f - y||^2`` summed over outputs (targets of the outputs'
        shape); note this is *not* ``torch.nn.MSELoss``'s mean over entries.
        A callable ``loss(outputs, targets)`` must return the *mean over the
        batch* of a per-sample loss (torch's loss modules say their
        ``reduction``, which is read: ``"sum"`` and ``"none"`` work too;
        ``F.nll_loss`` / ``nn.NLLLoss`` on log-probabilities is read as
        cross-entropy on them); G then uses the exact Hessian of that
        callable w.r.t. the outputs.
    params : iterable of str or Tensor, optional
        Restrict to these parameters (names from ``model.named_parameters()``
        or the parameter tensors themselves); default all trainable ones. The
        flat vector follows the model's parameter order; see
        ``op.param_names`` and ``op.unflatten``.
    device : str or torch.device, optional
        Where to compute (default: the model's device). Batches are moved
        there; products never leave it.
    dtype : torch.dtype, optional
        Precision (default: the model's). ``torch.float64`` works end to end.
    chunk_size : int, optional
        Vectors per vmapped pass when applied to a block (default: the whole
        block at once); lower it to save memory.
    max_batches : int, optional
        Bound on the batches of one pass over data without a ``len()``
        (default 10,000): a stream that has not ended by then is refused as
        endless instead of being read forever. Data with a ``len()`` may
        yield at most that many batches.

    Returns
    -------
    GGNOperator
        A :class:`~gn_theory.CurvatureOperator` (a scipy ``LinearOperator``) of
        shape (P, P) that also supports ``op @ tensor`` on the device, with
        ``gradient()``, ``loss_value()`` and a provenance ``fingerprint``.

    Raises
    ------
    DataError
        Empty data, targets out of range or not matching the outputs, batches
        that are not (inputs, targets) pairs, one-shot iterators, endless
        streams, inputs the model fails on (the batch, shape, dtype and model
        are named); from a product: a pass over the data that saw other
        samples than the build (the likely cause is named).
    DTypeError
        Targets of the wrong dtype for the loss; a non-floating ``dtype``.
    ShapeError
        Targets or outputs of the wrong shape.
    ParameterSelectionError
        Unknown or frozen parameter names, or no trainable parameters.
    NonFiniteError
        Non-finite inputs, targets, model outputs or loss (the batch is
        named); a non-finite product of a finite vector.
    DeviceMismatchError
        A model spread over several devices with no ``device`` given.
    InvalidInputError
        A submodule in training mode with dropout, batch norm, instance norm
        with running statistics or attention/RNN dropout; a forward that
        draws random numbers or writes to its tensors in place;
        ``Embedding(max_norm=...)``; batch norm without running statistics
        on several batches; reentrant activation checkpointing; a model torch
        cannot differentiate twice; loss modules whose mean is not over
        samples (class weights); an unknown loss; a bad ``chunk_size`` or
        ``max_batches``.

    See Also
    --------
    hessian_operator, residual_operator

    Examples
    --------
    A linear softmax classifier :math:`f(x) = Wx` has
    :math:`J_i = I_C \otimes x_i^\top`, so
    :math:`G = \frac1N\sum_i (\mathrm{diag}(p_i) - p_ip_i^\top) \otimes x_ix_i^\top`:

    >>> import torch
    >>> from gn_theory import ggn_operator
    >>> X, y = torch.randn(10, 4, dtype=torch.float64), torch.arange(10) % 3
    >>> model = torch.nn.Linear(4, 3, bias=False).double()
    >>> G = ggn_operator(model, (X, y))
    >>> p = torch.softmax(model(X), dim=1).detach()
    >>> blocks = [torch.kron(torch.diag(q) - torch.outer(q, q), torch.outer(x, x)) for q, x in zip(p, X)]
    >>> torch.allclose(G.to_dense(), sum(blocks) / 10)
    True

    For a network, G stays positive semi-definite:

    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    >>> G = ggn_operator(model, (X.float(), y), dtype=torch.float64)
    >>> G.shape
    (67, 67)
    >>> bool(torch.linalg.eigvalsh(G.to_dense()).min() > -1e-12)
    True
    """
    return GGNOperator(
        model, data, loss, params=params, device=device, dtype=dtype, chunk_size=chunk_size,
        max_batches=max_batches,
    )
