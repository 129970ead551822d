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

import warnings
from abc import abstractmethod
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch.func import functional_call, grad

from .. import _checks, _checks_torch, distributed
from .._autodiff import (
    FunctionalModel,
    Loss,
    LossCallable,
    exact_attention,
    leaf,
    make_loss,
    one_line,
    parameter_aliases,
)
from .._data import DataSource, reduce_sum
from ..exceptions import (
    DataError,
    DeviceMismatchError,
    GnTheoryError,
    GnTheoryWarning,
    InvalidInputError,
    NonFiniteError,
    ParameterSelectionError,
)
from ..results import fingerprint
from ._base import CurvatureOperator

__all__ = ["ModelCurvatureOperator"]

_DROPOUT = torch.nn.modules.dropout._DropoutNd
_BATCHNORM = torch.nn.modules.batchnorm._BatchNorm
_INSTANCENORM = torch.nn.modules.instancenorm._InstanceNorm
_EMBEDDINGS = (torch.nn.Embedding, torch.nn.EmbeddingBag)


def _select_params(model: torch.nn.Module, params: Iterable[Any] | None) -> list[str]:
    """Canonical names of the selected trainable parameters, in the model's order.

    A tied parameter (one tensor under several names) is selected by any of its
    names and listed once, under the name ``model.named_parameters()`` gives it.
    """
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
    aliases = parameter_aliases(model)
    by_id = {id(p): n for n, p in named}
    selected = []
    for item in params:
        if isinstance(item, str):
            if item not in aliases:
                close = [n for n in aliases if item in n or n in item][:5]
                hint = f"; did you mean one of {close}?" if close else ""
                raise ParameterSelectionError(
                    f"unknown parameter name {item!r}; the model has {list(by_name)[:20]}{hint}"
                )
            name = aliases[item]
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


def _label(name: str, module: torch.nn.Module) -> str:
    return f"submodule {name!r} ({type(module).__name__})" if name else (
        f"the model ({type(module).__name__})"
    )


def _check_modes(model: torch.nn.Module) -> list[str]:
    """Refuse submodules whose mode or options make the loss not a fixed function.

    Checks every submodule by type and mode (deterministic, unlike comparing two
    forward passes). Returns the labels of batch-norm layers without running
    statistics, which are refused later if the data come in several batches.
    """
    batch_stats = []
    for name, m in model.named_modules():
        label = _label(name, m)
        why = None
        if m.training:
            if isinstance(m, _DROPOUT) and float(m.p) > 0:
                why = f"dropout with p={m.p} zeroes random entries on every forward pass"
            elif isinstance(m, _BATCHNORM):
                why = (
                    "it normalises with each batch's own statistics and updates its running "
                    "statistics on every forward pass"
                )
            elif isinstance(m, _INSTANCENORM) and m.track_running_stats:
                why = "it updates its running statistics on every forward pass"
            elif isinstance(m, torch.nn.MultiheadAttention) and float(m.dropout) > 0:
                why = f"its attention dropout (p={m.dropout}) is random on every forward pass"
            elif isinstance(m, torch.nn.RNNBase) and float(m.dropout) > 0:
                why = f"its inter-layer dropout (p={m.dropout}) is random on every forward pass"
        if why is not None:
            raise InvalidInputError(
                f"{label} is in training mode: {why}, so the loss is not a fixed function of "
                "the parameters. Call model.eval() (or .eval() on that submodule) before "
                "building a curvature operator; gn_theory never changes modes itself"
            )
        if isinstance(m, _EMBEDDINGS) and m.max_norm is not None:
            raise InvalidInputError(
                f"{label} has max_norm={m.max_norm}: it rescales rows of its weight in place "
                "during the forward pass, so the loss is not a fixed function of the weight. "
                "Renormalise once (with torch.no_grad(): ...) and set max_norm=None to measure"
            )
        if isinstance(m, _BATCHNORM) and not m.training and not m.track_running_stats:
            batch_stats.append(label)
    return batch_stats


def _draws_random_numbers(device: torch.device, fn: Any) -> tuple[Any, bool]:
    """``fn()`` and whether it drew from the CPU (or the device's) random generator.

    Runs under :func:`torch.random.fork_rng`, so the user's random streams are left
    exactly as they were.
    """
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else []):
        cpu_state = torch.get_rng_state()
        dev_state = torch.cuda.get_rng_state(device) if cuda else None
        out = fn()
        used = not torch.equal(torch.get_rng_state(), cpu_state)
        if dev_state is not None:
            used = used or not torch.equal(torch.cuda.get_rng_state(device), dev_state)
    return out, used


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
    max_batches : int, optional
        Bound on the batches of one pass over data without ``len()`` (default
        10,000); a stream still going after that many is refused as endless.

    Attributes
    ----------
    function : FunctionalModel
        ``f(theta, x)``, the model as a function of the flat selected parameters:
        a snapshot (``function.theta`` and ``function.fixed`` hold copies of every
        parameter and buffer at build time, the module tree is copied with its modes).
    loss : Loss
        The loss (batch sum, output Hessian, residuals).
    data : DataSource
        The batches, moved to the device and dtype on the fly; every pass is
        checked against the fingerprint of the validation pass.
    num_samples : int
        N, counted by the validation pass.
    num_outputs : int
        Number of model outputs per sample (C for a classifier; T x C for
        scores at T positions).
    chunk_size : int or None
        As given.

    Raises
    ------
    DataError, DTypeError, ShapeError, ParameterSelectionError, NonFiniteError,
    DeviceMismatchError, InvalidInputError
        See :func:`~gn_theory.hessian_operator`.

    Notes
    -----
    Subclasses set ``kind`` and write :meth:`_matmat_batch`; the data loop, the
    division by N, the validation pass, the choice of kernel by a trial product,
    :meth:`gradient`, :meth:`loss_value` and :attr:`fingerprint` are shared.

    The constructor checks, in this order: every submodule's mode and options
    (dropout, batch norm, instance norm with running statistics, attention or RNN
    dropout in training mode; ``Embedding(max_norm=...)``); then one pass over the
    data: each batch's conversion, the model's forward on it (failures name the
    batch, the inputs' shape and dtype and the model), finite outputs, targets that
    fit the loss, a finite loss, finite inputs and targets; on the first batch,
    that the forward draws no random numbers, writes to none of its tensors and
    repeats exactly; batch norm without running statistics only on one batch. The
    pass's fingerprint becomes the reference every later pass is checked against.
    Finally a trial product on two samples of the first batch picks the kernel:
    the ``torch.func`` one (vmapped blocks, forward mode for G) if it runs and its
    single-vector and block paths agree and are symmetric, else plain autograd
    one column at a time (announced with a :class:`~gn_theory.GnTheoryWarning`),
    else a clear error.
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
        max_batches: int | None = None,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise InvalidInputError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        if chunk_size is not None:
            chunk_size = _checks.check_positive_int("chunk_size", chunk_size)
        if max_batches is not None:
            max_batches = _checks.check_positive_int("max_batches", max_batches)
        self.loss: Loss = make_loss(loss)
        selected = _select_params(model, params)
        batch_stat_layers = _check_modes(model)
        dev, dt = _resolve_device_dtype(model, device, dtype)
        model_print = _model_fingerprint(model)  # values at build time, before any product
        self.function = FunctionalModel(model, selected, dev, dt)
        if not self.function.is_copy and any(
            isinstance(m, _EMBEDDINGS) and m.sparse for m in model.modules()
        ):
            raise InvalidInputError(
                "the model has an Embedding(sparse=True) and cannot be copied to switch it to "
                "dense gradients; set sparse=False (the curvature is the same)"
            )
        super().__init__(self.function.layout.num_params, dev, dt)
        self.layout = self.function.layout
        self._mask = self.function.fixed_entries
        self.data = DataSource(data, dev, dt, max_batches=max_batches)
        self.chunk_size = chunk_size
        self.kernel = "func"
        self._model_name = type(model).__name__
        self.num_samples, self.num_outputs, first = self._validate_data(batch_stat_layers)
        output_shape = tuple(first[2])
        self._choose_kernel(first[0], first[1])
        selection = list(selected) if params is not None else "all"
        self.metadata.update(
            {
                "model": type(model).__name__,
                "loss": self.loss.name,
                "num_params": self.num_params,
                "num_samples": self.num_samples,
                "num_outputs": self.num_outputs,
                "output_shape": list(output_shape),
                "dtype": str(dt).replace("torch.", ""),
                "device": str(dev),
                "params": selection,
                "kernel": self.kernel,
            }
        )
        note = self.loss.note(output_shape)
        if note is not None:
            self.metadata["loss_note"] = note
        if self._mask is not None:
            self.metadata["fixed_entries"] = int((self._mask == 0).sum())
        assert self.data.reference is not None  # set by the validation pass
        prints = {
            "model": model_print,
            "data": fingerprint(self.data.reference.value()),
            "num_samples": self.num_samples,
            "loss": _loss_fingerprint(self.loss, loss),
            "kind": self.kind,
            "params": fingerprint(list(selected)),
        }
        prints["operator"] = fingerprint(prints)
        # replicated across ranks in a data-parallel run: refused on every rank if not
        distributed.check_same(
            {k: prints[k] for k in ("model", "loss", "kind", "params")} | {"kernel": self.kernel},
            "the model, loss or parameter selection",
        )
        self.metadata["fingerprint"] = prints

    # -- the one-batch kernel ---------------------------------------------------
    @abstractmethod
    def _matmat_batch(self, x: torch.Tensor, y: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """Sum over the samples of one batch of the per-sample curvature times ``V``.

        Written by each subclass, for both kernels: ``self.kernel`` is ``"func"``
        (torch.func: vmapped blocks) or ``"autograd"`` (plain autograd, one column
        at a time; for models torch.func cannot differentiate). ``x``, ``y`` are on
        the device (inputs cast to the dtype); ``V`` is a trusted (P, k) block;
        return a (P, k) tensor. ``self.function``, ``self.loss`` and
        ``self.chunk_size`` are at hand.
        """

    def _matmat_torch(self, V: torch.Tensor) -> torch.Tensor:
        self.function.check_unchanged()
        mask = self._mask
        if mask is not None:  # entries torch's backward never moves: held fixed
            V = V * mask[:, None]
        acc = torch.zeros_like(V)
        for _, x, y in self.data:
            acc += self._matmat_batch(x, y, V)
        out = reduce_sum(acc) / self.num_samples
        if mask is not None:
            out = out * mask[:, None]
        if not bool(torch.isfinite(out).all()) and bool(torch.isfinite(V).all()):
            raise NonFiniteError(
                f"the {self.kind} product of a finite vector is not finite (NaN or inf): an "
                f"overflow in the model or the loss in {self.torch_dtype}? Try dtype=torch.float64"
            )
        return out

    # -- validation -------------------------------------------------------------
    def _forward(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """The model on one batch; its failures re-raised naming the batch, inputs and model."""
        f = self.function
        try:
            return f(f.theta, x)
        except GnTheoryError:
            raise
        except Exception as exc:  # the user's model refused the batch
            hint = ""
            if not x.is_floating_point():
                hint = (
                    " (only floating inputs are cast to the operator's dtype; integer inputs "
                    "are passed as they are, for models that take indices such as embeddings: "
                    "convert them with inputs.float() if the model expects features)"
                )
            raise DataError(
                f"batch {index}: the model ({self._model_name}) failed on inputs of shape "
                f"{tuple(x.shape)} and dtype {x.dtype} on {x.device}{hint}: {one_line(exc)}"
            ) from exc

    def _first_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The forward on batch 0, refused if it draws random numbers (user's RNG untouched)."""
        out, random = _draws_random_numbers(self.device, lambda: self._forward(0, x))
        if random:
            raise InvalidInputError(
                f"the forward pass of {self._model_name} draws random numbers (functional "
                "dropout, noise, sampling; e.g. F.dropout(..., training=True) in a custom "
                "module), so the loss is not a fixed function of the parameters; make the "
                "forward deterministic (call model.eval(), or training=self.training)"
            )
        return out

    def _check_first_forward(self, x: torch.Tensor, out: torch.Tensor) -> None:
        """Determinism on batch 0: no in-place writes, and an exactly equal repeat."""
        f = self.function
        before = f.versions()
        again = self._first_forward(x)
        after = f.versions()
        changed = [n for n in before if after[n] != before[n]]
        if changed:
            what = ", ".join(
                "its selected parameters" if n == "" else
                (f"its buffer {n!r}" if n in self._buffer_names else f"its parameter {n!r}")
                for n in changed
            )
            raise InvalidInputError(
                f"the forward pass of {self._model_name} writes to {what} in place (a running "
                "statistic, a counter, a cache), so the loss is not a fixed function of the "
                "parameters and the data. gn_theory calls the model on its own copies and "
                "never writes to the model's tensors; make the forward free of in-place "
                "updates of parameters and buffers (model.eval() for batch norm)"
            )
        if not torch.equal(out, again):
            raise InvalidInputError(
                "two forward passes on batch 0 gave different outputs: the model is "
                "not deterministic (dropout? call model.eval())"
            )

    def _validate_data(
        self, batch_stat_layers: list[str]
    ) -> tuple[int, int, tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]]:
        """One forward pass over the data: every check, N, the first batch's slice."""
        n = 0
        num_outputs = -1
        batches = 0
        first: tuple[torch.Tensor, torch.Tensor, tuple[int, ...]] | None = None
        self._buffer_names = {name for name, _ in self.function.model.named_buffers()}
        error: Exception | None = None
        try:
            with torch.no_grad():
                for index, x, y in self.data:
                    out = self._first_forward(x) if first is None else self._forward(index, x)
                    if not isinstance(out, torch.Tensor):
                        raise DataError(
                            f"batch {index}: the model returned {type(out).__name__}, not a tensor"
                        )
                    if out.shape[:1] != x.shape[:1]:
                        raise DataError(
                            f"batch {index}: the model returned {out.shape[0] if out.ndim else 0} "
                            f"outputs for {x.shape[0]} inputs"
                        )
                    _check_finite_batch(index, x, out)
                    if y.is_floating_point():
                        _checks_torch.check_finite_tensor(y, f"batch {index}: the targets")
                    self.loss.check(out, y, index)
                    value = self.loss.sum(out, y)
                    if not bool(torch.isfinite(value)):
                        raise NonFiniteError(f"batch {index}: the loss is {float(value)}")
                    if first is None:
                        self._check_first_forward(x, out)
                        first = (x, y, tuple(out.shape[1:]))
                    num_outputs = int(out[0].numel())
                    n += x.shape[0]
                    batches += 1
        except Exception as exc:  # noqa: BLE001 - re-raised below, after every rank agreed
            error = exc
        # every rank learns of a failure on any rank before the next collective: a bad batch
        # in one shard stops every rank at once instead of leaving the others waiting
        failed = distributed.any_rank(error is not None)
        if error is not None:
            raise error
        if failed:
            raise DataError(
                f"data-parallel run: the data check failed on rank(s) {failed} (their error is "
                "reported there); every rank stops"
            )
        empty = distributed.any_rank(n == 0 or first is None)
        if empty and distributed.world_size() > 1:
            raise DataError(
                f"data-parallel run: the shards of ranks {empty} hold no samples; give every "
                "rank at least one sample (e.g. a DistributedSampler over at least world_size "
                "samples)"
            )
        if empty or first is None:
            raise DataError("data is empty: it holds no samples")
        self.data.num_samples = n  # this rank's shard
        # N and the batch count over all ranks: every product is divided by the total count
        n, batches = (int(v) for v in reduce_sum(torch.tensor([n, batches], dtype=torch.int64)))
        if batch_stat_layers and batches > 1:
            raise InvalidInputError(
                f"{batch_stat_layers[0]} has track_running_stats=False: it normalises with "
                "each batch's own statistics even in eval mode, so the loss depends on how "
                f"the data are split into batches ({batches} here). Pass the data as one "
                "batch (inputs, targets), or use running statistics (track_running_stats=True "
                "and model.eval())"
            )
        return n, num_outputs, first

    def _choose_kernel(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Pick the kernel by a trial product on two samples of batch 0; refuse if none works.

        A model that cannot run on two samples (a batch size fixed in its forward) is
        tried on the whole first batch instead.
        """
        xs, ys = x[:2], y[:2]
        if xs.shape[0] < x.shape[0]:
            try:
                with torch.no_grad():
                    self.function(self.function.theta, xs)
            except Exception:  # the model needs its real batch: try on all of batch 0
                xs, ys = x, y
        self._trial(xs, ys)

    def _trial(self, x: torch.Tensor, y: torch.Tensor) -> None:
        P = self.num_params
        g = torch.Generator(device="cpu").manual_seed(0)
        V = torch.randn(P, 2, generator=g, dtype=torch.float64).to(self.device, self.torch_dtype)
        if self._mask is not None:
            V = V * self._mask[:, None]
        tol = 10 * float(torch.finfo(self.torch_dtype).eps) ** 0.5
        self._refuse_silent_gradient_droppers(x)
        failures: list[tuple[str, BaseException | str]] = []
        for kernel in ("func", "autograd"):
            self.kernel = kernel
            try:
                one = self._matmat_batch(x, y, V[:, :1])
                both = self._matmat_batch(x, y, V)
            except GnTheoryError:
                raise
            except Exception as exc:  # torch could not differentiate the model this way
                failures.append((kernel, exc))
                continue
            if self._mask is not None:
                one, both = one * self._mask[:, None], both * self._mask[:, None]
            problem = _inconsistency(one, both, V, tol)
            if problem is None:
                break
            failures.append((kernel, problem))
        else:
            raise InvalidInputError(_diagnose(self.kind, self._model_name, failures)) from next(
                (e for _, e in reversed(failures) if isinstance(e, BaseException)), None
            )
        if failures:
            warnings.warn(
                f"{self.kind} operator of {self._model_name}: torch.func could not handle the "
                f"model ({_describe(failures[0][1])}); products use plain autograd one column "
                "at a time instead (exact, but a block of k vectors costs about k single "
                "products)",
                GnTheoryWarning,
                stacklevel=5,
            )
        self._after_trial(x, y)

    def _refuse_silent_gradient_droppers(self, x: torch.Tensor) -> None:
        """Refuse (or announce) selected parameters the outputs do not reach in autograd.

        Reentrant activation checkpointing (``use_reentrant=True``) whose inputs need
        no gradient runs without a graph: the parameters inside the checkpointed
        function silently get no derivatives. That case is refused; any other selected
        parameter the outputs do not depend on (unused, or detached in the forward)
        is announced, since its rows and columns of the operator are zero.
        """
        f = self.function
        leaves = {n: p.detach().requires_grad_(True) for n, p in f.layout.unflatten(f.theta).items()}
        with torch.enable_grad(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with exact_attention():
                out = functional_call(f.model, {**leaves, **f.fixed}, (x,))
            if isinstance(out, torch.Tensor) and out.requires_grad:
                grads = torch.autograd.grad(
                    out.sum(), list(leaves.values()), allow_unused=True
                )
            else:
                grads = [None] * len(leaves)
        if any("None of the inputs have requires_grad=True" in str(w.message) for w in caught):
            raise InvalidInputError(
                f"{self._model_name} uses torch.utils.checkpoint with use_reentrant=True on "
                "inputs that need no gradient: torch then records no graph, so the parameters "
                "inside the checkpointed function would silently get no curvature; call "
                "checkpoint(..., use_reentrant=False), or no checkpointing while measuring"
            )
        unused = [n for n, g in zip(leaves, grads) if g is None]
        if unused:
            warnings.warn(
                f"the outputs of {self._model_name} do not depend on the selected parameters "
                f"{unused[:10]} (unused by the forward, or detached in it): their rows and "
                "columns of the operator are zero",
                GnTheoryWarning,
                stacklevel=6,
            )

    def _after_trial(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Hook for subclasses: checks on the first batch's slice after the trial."""

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
        validation pass. Every later pass over the data recomputes the data
        checksum and refuses data that differ from it.
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
        self.function.check_unchanged()
        f, loss = self.function, self.loss
        acc = torch.zeros_like(f.theta)
        for _, x, y in self.data:
            if self.kernel == "func":
                acc += grad(lambda t: loss.sum(f(t, x), y))(f.theta)
            else:
                with torch.enable_grad():
                    t = leaf(f.theta)
                    (g,) = torch.autograd.grad(loss.sum(f(t, x), y), t, allow_unused=True)
                if g is not None:
                    acc += g
        out = reduce_sum(acc) / self.num_samples
        return out if self._mask is None else out * self._mask

    def loss_value(self) -> float:
        """The mean loss over all samples at the operator's parameters.

        Returns
        -------
        float
            :math:`L(\\theta)`.
        """
        self.function.check_unchanged()
        f, loss = self.function, self.loss
        total = torch.zeros((), dtype=self.torch_dtype, device=self.device)
        with torch.no_grad():
            for _, x, y in self.data:
                total += loss.sum(f(f.theta, x), y)
        return float(reduce_sum(total)) / self.num_samples


def _check_finite_batch(index: int, x: torch.Tensor, out: torch.Tensor) -> None:
    """Finite outputs and inputs; finite outputs can hide inf inputs (``tanh(inf) = 1``)."""
    bad_in = 0 if not x.is_floating_point() else int((~torch.isfinite(x)).sum())
    inputs = f"batch {index}: the inputs contain {bad_in} non-finite value(s) (NaN or inf)"
    if not bool(torch.isfinite(out).all()):
        n_bad = int((~torch.isfinite(out)).sum())
        raise NonFiniteError(
            f"batch {index}: the model outputs contain {n_bad} non-finite value(s) (NaN or inf)"
            + (f"; {inputs}" if bad_in else "")
        )
    if bad_in:
        raise NonFiniteError(
            f"{inputs}: every product through them would be NaN; clean or drop those samples"
        )


def _inconsistency(one: torch.Tensor, both: torch.Tensor, V: torch.Tensor, tol: float) -> str | None:
    """Why a trial product is not trustworthy (paths disagree, not symmetric), or None."""
    if not (bool(torch.isfinite(one).all()) and bool(torch.isfinite(both).all())):
        return "the trial product is not finite"
    a, b = one[:, 0].double(), both[:, 0].double()
    scale = float(a.norm() + b.norm())
    if float((a - b).norm()) > tol * max(scale, 1e-300):
        return "its single-vector and block products disagree"
    u, v = V[:, 0].double(), V[:, 1].double()
    ub, vb = both[:, 1].double(), both[:, 0].double()  # A v, A u with u = V0, v = V1
    lhs, rhs = float(u @ ub), float(v @ vb)
    bound = tol * (float(u.norm() * ub.norm()) + float(v.norm() * vb.norm()))
    if abs(lhs - rhs) > max(bound, 1e-300):
        return f"its products are not symmetric (u.Av = {lhs:.6g}, v.Au = {rhs:.6g})"
    return None


def _describe(failure: BaseException | str) -> str:
    return failure if isinstance(failure, str) else one_line(failure)


def _diagnose(kind: str, model_name: str, failures: list[tuple[str, BaseException | str]]) -> str:
    """The message when neither kernel can differentiate the model."""
    text = " ".join(_describe(e) for _, e in failures).lower()
    if "checkpoint" in text or "saved tensor hooks" in text:
        advice = (
            "The model uses torch.utils.checkpoint: use checkpoint(..., use_reentrant=False), "
            "or no activation checkpointing while measuring curvature"
        )
    elif "sparse" in text:
        advice = "A layer produces sparse gradients: switch it to dense ones (sparse=False)"
    elif "not implemented" in text or "does not support" in text:
        advice = (
            "An operation in the model has no second derivative in torch (for attention, "
            "gn_theory already runs torch.nn.attention.sdpa_kernel(SDPBackend.MATH)); replace "
            "it, or give a custom autograd.Function a differentiable backward"
        )
    else:
        advice = "torch could not differentiate the model twice"
    tried = "; ".join(f"{k} kernel: {_describe(e)}" for k, e in failures)
    return f"cannot build the {kind} operator of {model_name}: {advice}. Tried: {tried}"
