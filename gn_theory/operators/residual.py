r"""The residual :math:`R = H - G`, the part of the Hessian weighted by the loss residuals."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from .._autodiff import LossCallable, hvp_autograd, hvp_block, hvp_double_backward, leaf
from ._model import ModelCurvatureOperator

__all__ = ["ResidualOperator", "residual_operator"]


class ResidualOperator(ModelCurvatureOperator):
    r"""The residual term :math:`R = H - G` of the mean loss over a dataset.

    Build it with :func:`residual_operator`, which documents the parameters.
    One batch's kernel: with the residuals :math:`r = \partial\ell/\partial f`
    held fixed, :math:`R = \nabla^2_\theta\,(r^\top f(\theta))` exactly, so
    ``R V`` is one Hessian-vector product of that pseudo-loss (not ``H V - G V``).
    """

    kind = "residual"

    def _matmat_batch(self, x: torch.Tensor, y: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        # one vector: about 2.0-2.3 gradients (about 5.7 as H v - G v); a block: about
        # 1.2-1.4 per vector for k = 10 (about 2.4 as H V - G V)
        f, loss, theta = self.function, self.loss, self.function.theta
        if self.kernel == "autograd":
            with torch.no_grad():
                r = loss.output_grad(f(theta, x), y)
            return hvp_autograd(lambda t: (r * f(t, x)).sum(), theta, V)
        if V.shape[1] == 1:
            with torch.enable_grad():
                t = leaf(theta)
                out = f(t, x)  # one forward: the residuals and the product's graph
                r = loss.output_grad(out.detach(), y)
                return hvp_double_backward((r * out).sum(), t, V[:, 0]).unsqueeze(1)

        with torch.no_grad():  # one primal forward for r, then the block HVP
            r = loss.output_grad(f(theta, x), y)
        return hvp_block(lambda t: (r * f(t, x)).sum(), theta, V, self.chunk_size)


def residual_operator(
    model: torch.nn.Module,
    data: Any,
    loss: str | LossCallable = "cross_entropy",
    *,
    params: Iterable[str | torch.Tensor] | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    chunk_size: int | None = None,
    max_batches: int | None = None,
) -> ResidualOperator:
    r"""Residual :math:`R = H - G`, the part of H weighted by the loss residuals.

    .. math::

        R = \frac1N\sum_i\sum_c \frac{\partial\ell_i}{\partial f_{i,c}}\,
        \nabla^2_\theta f_{i,c}(x_i;\theta).

    With the loss residuals :math:`r_i = \partial\ell_i/\partial f` held
    fixed, :math:`R = \nabla^2_\theta \frac1N\sum_i r_i^\top f(x_i;\theta)`
    exactly, so ``R v`` is one Hessian-vector product of that pseudo-loss,
    in one pass over the data (not ``H v - G v``, which would cost twice as
    much). R is indefinite; it vanishes for models linear in their parameters
    and is small when the residuals :math:`\partial\ell/\partial f` are.

    Cost of one product: measured about 2.0-2.3 full-data gradients for one
    vector and about 1.2-1.4 per vector in blocks of 10: one Hessian-vector
    product of the pseudo-loss r^T f (residuals r held fixed), not H v - G v;
    see docs/performance.md.

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
        cross-entropy on them); its residuals are its exact gradient
        w.r.t. the outputs.
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
    ResidualOperator
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
    hessian_operator, ggn_operator

    Examples
    --------
    A model linear in its parameters has :math:`H = G`, so :math:`R = 0`:

    >>> import torch
    >>> from gn_theory import ggn_operator, hessian_operator, residual_operator
    >>> X, y = torch.randn(8, 3, dtype=torch.float64), torch.arange(8) % 2
    >>> model = torch.nn.Linear(3, 2).double()
    >>> float(residual_operator(model, (X, y)).to_dense().abs().max()) < 1e-12
    True

    For a network, R is exactly H - G:

    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()
    >>> R = residual_operator(model, (X, y)).to_dense()
    >>> H, G = hessian_operator(model, (X, y)).to_dense(), ggn_operator(model, (X, y)).to_dense()
    >>> torch.allclose(R, H - G)
    True
    """
    return ResidualOperator(
        model, data, loss, params=params, device=device, dtype=dtype, chunk_size=chunk_size,
        max_batches=max_batches,
    )
