r"""Operators of a model's mean loss over a dataset: the data loop, written once.

For the mean loss :math:`L(\theta) = \frac1N\sum_i \ell(f(x_i;\theta), y_i)` over all
N samples (definitions of H, G and R in :mod:`gn_theory.operators`),
:class:`ModelCurvatureOperator` validates the model, the data and the parameter
selection once, and computes every product as a sum of per-batch sums divided by
:math:`N` once (so uneven batches and a ``DataLoader`` equal one full batch). A
subclass writes only :meth:`ModelCurvatureOperator._matmat_batch`, the sum over one
batch of the per-sample curvature applied to a block ``V`` (see
:mod:`~gn_theory.operators.hessian`, :mod:`~gn_theory.operators.ggn`,
:mod:`~gn_theory.operators.residual`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch.func import grad

from .. import _checks, _checks_torch
from .._autodiff import FunctionalModel, Loss, LossCallable, make_loss
from .._data import DataChecksum, DataSource, reduce_sum
from ..exceptions import (
    DataError,
    DeviceMismatchError,
    InvalidInputError,
    NonFiniteError,
    ParameterSelectionError,
)
from ..results import fingerprint
from ._base import CurvatureOperator

__all__ = ["ModelCurvatureOperator"]

_STOCHASTIC_MODULES = (
    torch.nn.modules.dropout._DropoutNd,
    torch.nn.modules.batchnorm._BatchNorm,
)


def _select_params(model: torch.nn.Module, params: Iterable[Any] | None) -> list[str]:
    """Names of the selected trainable parameters, in the model's order."""
    named = list(model.named_parameters())
    if params is None:
        selected = [n for n, p in named if p.requires_grad]
        if not selected:
            raise ParameterSelectionError(
                f"{type(model).__name__} has no trainable parameters (all have "
                "requires_grad=False); unfreeze some or pass params=[...]"
            )
        return selected
    if isinstance(params, (str, torch.Tensor)):
        params = [params]
    by_name = dict(named)
    by_id = {id(p): n for n, p in named}
    selected = []
    for item in params:
        if isinstance(item, str):
            if item not in by_name:
                close = [n for n in by_name if item in n or n in item][:5]
                hint = f"; did you mean one of {close}?" if close else ""
                raise ParameterSelectionError(
                    f"unknown parameter name {item!r}; the model has {list(by_name)[:20]}{hint}"
                )
            name = item
        elif isinstance(item, torch.Tensor):
            if id(item) not in by_id:
                raise ParameterSelectionError(
                    f"a tensor of shape {tuple(item.shape)} in params is not a parameter of the model"
                )
            name = by_id[id(item)]
        else:
            raise ParameterSelectionError(
                f"params must hold parameter names or parameter tensors; got {type(item).__name__}"
            )
        if not by_name[name].requires_grad:
            raise ParameterSelectionError(
                f"parameter {name!r} is frozen (requires_grad=False); it has no curvature to "
                "measure, leave it out of params"
            )
        if name not in selected:
            selected.append(name)
    if not selected:
        raise ParameterSelectionError("params selects no parameters; pass None for all")
    order = {n: i for i, (n, _) in enumerate(named)}  # keep the model's own order
    return sorted(selected, key=order.__getitem__)


def _resolve_device_dtype(
    model: torch.nn.Module, device: str | torch.device | None, dtype: torch.dtype | None
) -> tuple[torch.device, torch.dtype]:
    """The compute device and dtype: the ones given, else the model's."""
    tensors = list(model.parameters()) + list(model.buffers())
    devices = {t.device for t in tensors}
    if device is None:
        if len(devices) > 1:
            raise DeviceMismatchError(
                f"the model's tensors live on several devices {sorted(map(str, devices))}; "
                "pass device=... to compute on one"
            )
        device = devices.pop() if devices else torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    if dtype is None:
        floats = {t.dtype for t in model.parameters() if t.is_floating_point()}
        dtype = floats.pop() if len(floats) == 1 else torch.float32
    return dev, _checks_torch.check_float_dtype(dtype)


def _tensor_bytes(t: torch.Tensor) -> np.ndarray:
    """The raw bytes of a tensor as a host uint8 array (any dtype, bfloat16 included)."""
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()


def _model_fingerprint(model: torch.nn.Module) -> str:
    """Hash of every parameter and buffer of ``model``: names, dtypes, shapes and values."""
    parts: list[Any] = []
    for what, named in (("parameter", model.named_parameters()), ("buffer", model.named_buffers())):
        for name, t in named:
            parts.append(f"{what} {name} {t.dtype} {tuple(t.shape)}")
            parts.append(_tensor_bytes(t))
    return fingerprint(type(model).__name__, *parts)


def _loss_fingerprint(loss: Loss, given: str | LossCallable) -> str:
    """Hash of the loss: its name, and for a callable its module, name and bytecode."""
    if isinstance(given, str):
        return fingerprint("loss", loss.name)
    code = getattr(given, "__code__", None)
    return fingerprint(
        "callable loss",
        getattr(given, "__module__", None),
        getattr(given, "__qualname__", type(given).__qualname__),
        b"" if code is None else code.co_code,
        [] if code is None else [repr(c) for c in code.co_consts],
    )


class ModelCurvatureOperator(CurvatureOperator):
    r"""A curvature operator of a model's mean loss over all samples of a dataset.

    The base of :class:`~gn_theory.operators.HessianOperator`,
    :class:`~gn_theory.operators.GGNOperator` and
    :class:`~gn_theory.operators.ResidualOperator`; build them with
    :func:`~gn_theory.hessian_operator`, :func:`~gn_theory.ggn_operator` and
    :func:`~gn_theory.residual_operator`, whose docstrings describe the parameters.

    Parameters
    ----------
    model : torch.nn.Module
        The network, called as ``model(inputs)``; never modified.
    data : (Tensor, Tensor) or iterable of (Tensor, Tensor)
        One ``(inputs, targets)`` batch or a re-iterable of batches.
    loss : {"cross_entropy", "mse"} or callable, default "cross_entropy"
        The per-sample loss.
    params : iterable of str or Tensor, optional
        The parameters to differentiate in (default: all trainable ones).
    device : str or torch.device, optional
        Where to compute (default: the model's device).
    dtype : torch.dtype, optional
        Precision (default: the model's).
    chunk_size : int, optional
        Vectors per vmapped pass on a block (default: the whole block).

    Attributes
    ----------
    function : FunctionalModel
        ``f(theta, x)``, the model as a function of the flat selected parameters;
        ``function.theta`` holds their values at build time.
    loss : Loss
        The loss (batch sum, output Hessian, residuals).
    data : DataSource
        The batches, moved to the device and dtype on the fly.
    num_samples : int
        N, counted by the validation pass.
    num_outputs : int
        Number of model outputs per sample (C for a classifier).
    chunk_size : int or None
        As given.

    Raises
    ------
    DataError, DTypeError, ShapeError, ParameterSelectionError, NonFiniteError,
    DeviceMismatchError, InvalidInputError
        See :func:`~gn_theory.hessian_operator`.

    Notes
    -----
    Subclasses set ``kind`` and write :meth:`_matmat_batch`; the data loop,
    the division by N, the validation pass (target checks, finiteness, two
    equal forward passes on the first batch), :meth:`gradient`,
    :meth:`loss_value` and :attr:`fingerprint` are shared.
    """

    kind = "model"

    def __init__(
        self,
        model: torch.nn.Module,
        data: Any,
        loss: str | LossCallable = "cross_entropy",
        *,
        params: Iterable[str | torch.Tensor] | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        chunk_size: int | None = None,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise InvalidInputError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        if chunk_size is not None:
            chunk_size = _checks.check_positive_int("chunk_size", chunk_size)
        self.loss: Loss = make_loss(loss)
        selected = _select_params(model, params)
        if model.training and any(isinstance(m, _STOCHASTIC_MODULES) for m in model.modules()):
            raise InvalidInputError(
                f"{type(model).__name__} is in training mode and has dropout or batch-norm "
                "layers, so its loss is not a fixed function of the parameters; call "
                "model.eval() before building a curvature operator"
            )
        dev, dt = _resolve_device_dtype(model, device, dtype)
        model_print = _model_fingerprint(model)  # values at build time, before any product
        self.function = FunctionalModel(model, selected, dev, dt)
        super().__init__(self.function.layout.num_params, dev, dt)
        self.layout = self.function.layout
        self.data = DataSource(data, dev, dt)
        self.chunk_size = chunk_size
        checksum = DataChecksum()
        self.num_samples, self.num_outputs = self._validate_data(checksum)
        selection = list(selected) if params is not None else "all"
        self.metadata.update(
            {
                "model": type(model).__name__,
                "loss": self.loss.name,
                "num_params": self.num_params,
                "num_samples": self.num_samples,
                "num_outputs": self.num_outputs,
                "dtype": str(dt).replace("torch.", ""),
                "device": str(dev),
                "params": selection,
            }
        )
        prints = {
            "model": model_print,
            "data": fingerprint(checksum.value()),
            "num_samples": self.num_samples,
            "loss": _loss_fingerprint(self.loss, loss),
            "kind": self.kind,
            "params": fingerprint(list(selected)),
        }
        prints["operator"] = fingerprint(prints)
        self.metadata["fingerprint"] = prints

    # -- the one-batch kernel ---------------------------------------------------
    @abstractmethod
    def _matmat_batch(self, x: torch.Tensor, y: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """Sum over the samples of one batch of the per-sample curvature times ``V``.

        Written by each subclass. ``x``, ``y`` are on the device (inputs cast to
        the dtype); ``V`` is a trusted (P, k) block; return a (P, k) tensor.
        ``self.function``, ``self.loss`` and ``self.chunk_size`` are at hand.
        """

    def _matmat_torch(self, V: torch.Tensor) -> torch.Tensor:
        acc = torch.zeros_like(V)
        for _, x, y in self.data:
            acc += self._matmat_batch(x, y, V)
        return reduce_sum(acc) / self.num_samples

    # -- validation -------------------------------------------------------------
    def _validate_data(self, checksum: DataChecksum) -> tuple[int, int]:
        """One forward pass: check targets, finiteness and determinism; count N; checksum."""
        n = 0
        num_outputs = -1
        f = self.function
        with torch.no_grad():
            for index, x, y in self.data:
                out = f(f.theta, x)
                if not isinstance(out, torch.Tensor):
                    raise DataError(
                        f"batch {index}: the model returned {type(out).__name__}, not a tensor"
                    )
                if out.shape[:1] != x.shape[:1]:
                    raise DataError(
                        f"batch {index}: the model returned {out.shape[0] if out.ndim else 0} "
                        f"outputs for {x.shape[0]} inputs"
                    )
                _checks_torch.check_finite_tensor(out, f"batch {index}: the model outputs")
                self.loss.check(out, y, index)
                value = self.loss.sum(out, y)
                if not bool(torch.isfinite(value)):
                    raise NonFiniteError(f"batch {index}: the loss is {float(value)}")
                if n == 0 and not torch.equal(out, f(f.theta, x)):
                    raise InvalidInputError(
                        "two forward passes on batch 0 gave different outputs: the model is "
                        "not deterministic (dropout? call model.eval())"
                    )
                checksum.update(x, y)
                num_outputs = int(out[0].numel())
                n += x.shape[0]
        if n == 0:
            raise DataError("data is empty: it holds no samples")
        self.data.num_samples = n
        return n, num_outputs

    # -- provenance -------------------------------------------------------------
    @property
    def fingerprint(self) -> dict[str, Any]:
        """Short hashes of what this operator was built from, for provenance.

        Returns
        -------
        dict
            ``"model"``: the model's parameters and buffers (names, dtypes,
            shapes, values at build time); ``"data"``: the samples (their count
            and an order-invariant checksum taken in the constructor's
            validation pass, so batching and order do not change it);
            ``"num_samples"``; ``"loss"``; ``"kind"``; ``"params"``: the
            parameter selection; ``"operator"``: all of these together. Hashes
            are 16 hex digits (:func:`gn_theory.results.fingerprint`). The same
            dict is ``metadata["fingerprint"]``, so results built from the
            operator carry it in their ``settings``.

        Notes
        -----
        Computed once in the constructor: the model hash costs one copy of the
        parameters and buffers to the host and a SHA-256 over them; the data
        checksum a few integer operations per input byte, on the device, in the
        validation pass.
        """
        return dict(self.metadata["fingerprint"])

    # -- full-data values -------------------------------------------------------
    def gradient(self) -> torch.Tensor:
        r"""The full-data gradient of the mean loss at the operator's parameters.

        Returns
        -------
        torch.Tensor
            :math:`\nabla_\theta L`, shape (P,), on the operator's device.
        """
        f, loss = self.function, self.loss
        acc = torch.zeros_like(f.theta)
        for _, x, y in self.data:
            acc += grad(lambda t: loss.sum(f(t, x), y))(f.theta)
        return reduce_sum(acc) / self.num_samples

    def loss_value(self) -> float:
        """The mean loss over all samples at the operator's parameters.

        Returns
        -------
        float
            :math:`L(\\theta)`.
        """
        f, loss = self.function, self.loss
        total = torch.zeros((), dtype=self.torch_dtype, device=self.device)
        with torch.no_grad():
            for _, x, y in self.data:
                total += loss.sum(f(f.theta, x), y)
        return float(reduce_sum(total)) / self.num_samples
