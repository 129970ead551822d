r"""The Hessian :math:`H = \nabla^2_\theta L` of a model's mean loss, matrix-free."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from .._autodiff import LossCallable, hvp, hvp_autograd
from ._model import ModelCurvatureOperator

__all__ = ["HessianOperator", "hessian_operator"]


class HessianOperator(ModelCurvatureOperator):
    r"""The Hessian :math:`H = \nabla^2_\theta L` of the mean loss over a dataset.

    Build it with :func:`hessian_operator`, which documents the parameters.
    One batch's kernel: ``H_batch V`` by double backward for one vector, by
    ``vjp(grad(loss))`` with the pullback vmapped over the columns for a block.
    """

    kind = "hessian"

    def _matmat_batch(self, x: torch.Tensor, y: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        # one vector: double backward, about 2.0-2.4 gradients (jvp(grad): 3.2-3.5);
        # a block: reverse-over-reverse, about 1.2-1.4 gradients per vector for k = 10,
        # 5-10 % less than vmapped jvp(grad) (flop bound about 1.2)
        f, loss = self.function, self.loss
        if self.kernel == "autograd":
            return hvp_autograd(lambda t: loss.sum(f(t, x), y), f.theta, V)
        return hvp(lambda t: loss.sum(f(t, x), y), f.theta, V, self.chunk_size)


def hessian_operator(
    model: torch.nn.Module,
    data: Any,
    loss: str | LossCallable = "cross_entropy",
    *,
    params: Iterable[str | torch.Tensor] | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    chunk_size: int | None = None,
    max_batches: int | None = None,
) -> HessianOperator:
    r"""Hessian :math:`H = \nabla^2_\theta L` of the mean loss, matrix-free.

    With :math:`L(\theta) = \frac1N\sum_{i=1}^N \ell(f(x_i;\theta), y_i)` over all
    N samples of ``data``, :math:`H = \frac1N\sum_i \nabla^2_\theta \ell_i = G + R`
    (see :func:`ggn_operator` and :func:`residual_operator`).

    ``H v`` is computed by double backward (the gradient recorded with
    ``create_graph=True``, then the gradient of its inner product with v); a
    block ``V`` of shape (P, k) records the forward and gradient passes once
    (``torch.func.vjp`` of ``torch.func.grad``) and vmaps the pullback over
    the k columns.

    Cost of one product: measured about 2.0-2.4 full-data gradients for one
    vector (double backward) and about 1.2-1.4 per vector in blocks of 10
    (reverse-over-reverse, vmapped pullback); see docs/performance.md.

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
        cross-entropy on them).
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
    HessianOperator
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
    ggn_operator, residual_operator

    Examples
    --------
    A linear model :math:`f(x) = Wx` with the ``"mse"`` loss has
    :math:`H = I_k \otimes X^\top X / N` (W flattened row by row):

    >>> import torch
    >>> from gn_theory import hessian_operator
    >>> X, Y = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 2, dtype=torch.float64)
    >>> model = torch.nn.Linear(3, 2, bias=False).double()
    >>> H = hessian_operator(model, (X, Y), "mse")
    >>> H.shape
    (6, 6)
    >>> torch.allclose(H.to_dense(), torch.kron(torch.eye(2, dtype=torch.float64), X.T @ X / 20))
    True
    """
    return HessianOperator(
        model, data, loss, params=params, device=device, dtype=dtype, chunk_size=chunk_size,
        max_batches=max_batches,
    )
