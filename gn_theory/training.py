"""Training a classifier: SGD, full-batch GD, Adam; schedules, stop rules, a saved log, checkpoints.

:func:`train` trains a model in place and returns a :class:`~gn_theory.results.TrainingLog`
(loss, accuracy and full-batch gradient norm at the logged steps, evaluation
loss and accuracy where an evaluation split exists). :func:`save_checkpoint`
and :func:`load_checkpoint` store and restore the trained weights atomically.

Runs are deterministic given ``seed`` (on CPU; some CUDA kernels are not).
Thread counts are the caller's business (the CLI sets them).
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ._checks import check_choice, check_positive_int, check_seed
from .exceptions import DataError, InvalidInputError, NonFiniteError, ResultFileError
from .results import TrainingLog, atomic_write_bytes, fingerprint

__all__ = [
    "train",
    "learning_rate",
    "evaluate",
    "save_checkpoint",
    "load_checkpoint",
    "TrainingLog",
    "OPTIMIZERS",
    "SCHEDULES",
]

#: Optimisers accepted by :func:`train`.
OPTIMIZERS = ("sgd", "gd", "adam", "adamw")
#: Learning-rate schedules accepted by :func:`train` and :func:`learning_rate`.
SCHEDULES = ("constant", "step", "cosine")
_LOSSES = ("cross_entropy", "mse")
_CHECKPOINT_FORMAT = "gn_theory.checkpoint"
_CHECKPOINT_VERSION = 1

Callback = Callable[[int, int, "dict[str, float] | None"], None]


# ================================================================================ schedule
def learning_rate(
    step: int,
    *,
    lr: float,
    num_steps: int,
    schedule: Literal["constant", "step", "cosine"] = "constant",
    warmup_steps: int = 0,
    decay_every: int | None = None,
    decay_rate: float = 0.1,
    min_lr: float = 0.0,
) -> float:
    """The learning rate of update ``step`` (0-based) under a schedule.

    With ``t = step - warmup_steps`` and ``T = num_steps - warmup_steps``:

    * ``"constant"``: ``lr``;
    * ``"step"``: ``lr * decay_rate ** (t // decay_every)`` (default ``decay_every``:
      a third of ``T``, so two decays);
    * ``"cosine"``: ``min_lr + (lr - min_lr) * (1 + cos(pi * t / T)) / 2``.

    During the first ``warmup_steps`` updates the rate rises linearly,
    ``lr * (step + 1) / warmup_steps``.

    Parameters
    ----------
    step : int
        The update (0 is the first).
    lr : float
        Base learning rate.
    num_steps : int
        Total updates of the run.
    schedule : {"constant", "step", "cosine"}, default "constant"
    warmup_steps : int, default 0
    decay_every : int, optional
    decay_rate : float, default 0.1
    min_lr : float, default 0.0

    Returns
    -------
    float

    Examples
    --------
    >>> from gn_theory.training import learning_rate
    >>> [learning_rate(t, lr=1.0, num_steps=6, schedule="step", decay_every=2) for t in range(6)]
    [1.0, 1.0, 0.1, 0.1, 0.010000000000000002, 0.010000000000000002]
    >>> [learning_rate(t, lr=1.0, num_steps=10, schedule="cosine") for t in (0, 5)]
    [1.0, 0.5]
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    t = step - warmup_steps
    total = max(num_steps - warmup_steps, 1)
    if schedule == "constant":
        return lr
    if schedule == "step":
        every = decay_every if decay_every is not None else max(1, math.ceil(total / 3))
        return lr * decay_rate ** (t // every)
    if schedule == "cosine":
        return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(t, total) / total))
    check_choice("schedule", schedule, SCHEDULES)
    raise AssertionError  # pragma: no cover - check_choice raised


# ================================================================================ losses
def _loss_fn(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if name == "cross_entropy":
        return torch.nn.functional.cross_entropy

    def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # 0.5 ||f - onehot||^2, mean
        if y.is_floating_point():
            target = y
        else:
            target = torch.nn.functional.one_hot(y, out.shape[1]).to(out.dtype)
        return 0.5 * ((out - target) ** 2).sum(dim=1).mean()

    return mse


def _correct(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    labels = y.argmax(dim=1) if y.is_floating_point() and y.ndim == 2 else y
    return (out.argmax(dim=1) == labels).sum()


@torch.no_grad()
def _eval_nograd(model, X, y, loss_fn, chunk) -> tuple[float, float]:
    total, correct = 0.0, 0
    n = X.shape[0]
    for i in range(0, n, chunk):
        out = model(X[i : i + chunk])
        yb = y[i : i + chunk]
        total += float(loss_fn(out, yb)) * yb.shape[0]
        correct += int(_correct(out, yb))
    return total / n, correct / n


def _eval_with_grad(model, params, X, y, loss_fn, chunk) -> tuple[float, float, float]:
    n = X.shape[0]
    grads = [torch.zeros_like(p) for p in params]
    total, correct = 0.0, 0
    for i in range(0, n, chunk):
        xb, yb = X[i : i + chunk], y[i : i + chunk]
        out = model(xb)
        loss = loss_fn(out, yb) * (yb.shape[0] / n)
        gs = torch.autograd.grad(loss, params, allow_unused=True)
        for acc, g in zip(grads, gs):
            if g is not None:
                acc.add_(g)
        total += float(loss.detach()) * n
        correct += int(_correct(out.detach(), yb))
    norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))
    return total / n, correct / n, norm


def evaluate(
    model: torch.nn.Module,
    data: tuple[torch.Tensor, torch.Tensor],
    *,
    loss: Literal["cross_entropy", "mse"] = "cross_entropy",
    gradient: bool = False,
    batch_size: int = 4096,
) -> dict[str, float]:
    """Mean loss, accuracy (and full-batch gradient norm) of ``model`` on ``data``.

    The model is evaluated in whatever mode it is in (``train()``/``eval()`` is not
    changed) and its ``.grad`` fields are not touched.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier.
    data : (Tensor, Tensor)
        Inputs and integer targets (moved to the model's device and dtype).
    loss : {"cross_entropy", "mse"}, default "cross_entropy"
        ``"mse"`` is ``0.5 * ||f(x) - onehot(y)||^2`` per sample.
    gradient : bool, default False
        Also compute the Euclidean norm of the gradient of the mean loss.
    batch_size : int, default 4096
        Samples per forward pass (memory only; the result does not depend on it
        beyond round-off).

    Returns
    -------
    dict
        ``{"loss", "accuracy"}`` and ``"grad_norm"`` when ``gradient``.

    Raises
    ------
    DataError
        If ``data`` is not an ``(inputs, targets)`` pair of tensors.
    """
    check_choice("loss", loss, _LOSSES)
    params = _trainable(model)
    X, y = _move(_as_pair(data, "data"), params[0])
    fn = _loss_fn(loss)
    chunk = check_positive_int("batch_size", batch_size)
    if gradient:
        lo, acc, gn = _eval_with_grad(model, params, X, y, fn, chunk)
        return {"loss": lo, "accuracy": acc, "grad_norm": gn}
    lo, acc = _eval_nograd(model, X, y, fn, chunk)
    return {"loss": lo, "accuracy": acc}


# ================================================================================ train
def train(
    model: torch.nn.Module,
    data: Any,
    *,
    optimizer: Literal["sgd", "gd", "adam", "adamw"] = "sgd",
    lr: float | None = None,
    momentum: float = 0.0,
    nesterov: bool = False,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
    batch_size: int | None = None,
    steps: int | None = None,
    epochs: int | None = None,
    sampling: Literal["shuffle", "replacement"] = "shuffle",
    schedule: Literal["constant", "step", "cosine"] = "constant",
    warmup_steps: int = 0,
    decay_every: int | None = None,
    decay_rate: float = 0.1,
    min_lr: float = 0.0,
    loss: Literal["cross_entropy", "mse"] = "cross_entropy",
    stop_grad_norm: float | None = None,
    stop_loss: float | None = None,
    stop_accuracy: float | None = None,
    log_every: int | None = None,
    eval_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    eval_batch_size: int = 4096,
    seed: int | None = 0,
    callback: Callback | None = None,
) -> TrainingLog:
    """Train ``model`` in place on a classification problem and return its log.

    Each update draws a mini-batch (or takes the whole training set), computes the
    mean loss, back-propagates and steps the optimiser at the scheduled learning
    rate. Every ``log_every`` updates, and at the end, the model is measured on
    the whole training split (loss, accuracy, norm of the full-batch gradient) and
    on the evaluation split; the stop rules are checked there.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier, mapping ``(B, ...)`` inputs to ``(B, C)`` logits; trained in
        place, in whatever ``train()``/``eval()`` mode it is in.
    data : (Tensor, Tensor) or gn_theory.data.Dataset
        The training inputs and integer targets, or a :class:`~gn_theory.data.Dataset`
        (its training split; its evaluation split unless ``eval_data`` is given).
        Moved to the model's device and floating dtype.
    optimizer : {"sgd", "gd", "adam", "adamw"}, default "sgd"
        ``"gd"`` is full-batch gradient descent (SGD on the whole training set;
        ``batch_size`` must be left out); ``momentum`` and ``nesterov`` apply to both.
        ``"adam"`` uses ``weight_decay`` as an L2 term, ``"adamw"`` decoupled.
    lr : float, optional
        Base learning rate (default 0.1 for SGD/GD, 0.001 for Adam/AdamW).
    momentum : float, default 0.0
        Heavy-ball momentum of SGD/GD.
    nesterov : bool, default False
        Nesterov momentum (SGD/GD, needs ``momentum > 0``).
    betas : (float, float), default (0.9, 0.999)
        Adam's moment decay rates.
    weight_decay : float, default 0.0
        L2 penalty coefficient (not part of the logged loss).
    batch_size : int, optional
        Samples per update (default, or a value >= N: the full batch). Small
        against large batches matters for the papers' sharpness results.
    steps, epochs : int, optional
        The budget, one of them: updates, or passes over the training set
        (``ceil(N / batch_size)`` updates each). Default 1000 steps.
    sampling : {"shuffle", "replacement"}, default "shuffle"
        ``"shuffle"``: each epoch a seeded permutation cut into consecutive batches
        (the last may be smaller); ``"replacement"``: every batch drawn uniformly
        with replacement.
    schedule : {"constant", "step", "cosine"}, default "constant"
        Learning-rate schedule (see :func:`learning_rate`, with ``warmup_steps``,
        ``decay_every``, ``decay_rate``, ``min_lr``).
    warmup_steps, decay_every, decay_rate, min_lr
        Schedule options (see :func:`learning_rate`).
    loss : {"cross_entropy", "mse"}, default "cross_entropy"
        Softmax cross-entropy, or ``0.5 * ||f(x) - onehot(y)||^2`` per sample.
    stop_grad_norm : float, optional
        Stop at a logged step whose full-batch gradient norm is <= this.
    stop_loss : float, optional
        Stop at a logged step whose training loss is <= this.
    stop_accuracy : float, optional
        Stop at a logged step whose training accuracy is >= this (1.0: a perfect fit).
    log_every : int, optional
        Updates between logged steps (default: once an epoch, at most 200 rows;
        full-batch runs log at no extra cost).
    eval_data : (Tensor, Tensor), optional
        An evaluation split, measured at every logged step.
    eval_batch_size : int, default 4096
        Samples per forward pass of the logged measurements (memory only).
    seed : int or None, default 0
        Seed of the batch sampler and of torch's global RNG during training (for
        dropout); the global RNG state is restored afterwards. ``None`` draws one
        (recorded in the log's settings).
    callback : callable, optional
        ``callback(step, num_steps, record)`` after every update (``record`` is
        ``None``) and at every logged step (``record`` is the logged row), e.g. for
        a progress bar.

    Returns
    -------
    TrainingLog
        Saved with ``log.save(path)``; loaded with ``TrainingLog.load(path)``.

    Raises
    ------
    InvalidInputError
        For a bad option (unknown optimizer or schedule, both ``steps`` and
        ``epochs``, ``batch_size`` with ``"gd"``, a non-positive rate, ...).
    DataError
        If ``data`` is not an ``(inputs, targets)`` pair or a Dataset, or the model
        has no trainable parameters.
    NonFiniteError
        If the loss becomes NaN or infinite (the step is named; lower ``lr``).

    Examples
    --------
    >>> from gn_theory.data import two_blobs
    >>> from gn_theory.models import build_model
    >>> from gn_theory.training import train
    >>> X, y = two_blobs(200, noise=0.3, seed=0)
    >>> net = build_model("mlp", input_shape=(2,), num_classes=2, width=8, seed=0)
    >>> log = train(net, (X, y), optimizer="gd", lr=0.5, steps=300, stop_accuracy=1.0)
    >>> log.final_accuracy, log.stop_reason
    (1.0, 'accuracy')
    """
    # ---- options -----------------------------------------------------------------------
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_choice("schedule", schedule, SCHEDULES)
    check_choice("sampling", sampling, ("shuffle", "replacement"))
    check_choice("loss", loss, _LOSSES)
    seed = check_seed(seed)
    base_lr = (0.1 if optimizer in ("sgd", "gd") else 1e-3) if lr is None else _positive("lr", lr)
    momentum = _nonneg("momentum", momentum)
    weight_decay = _nonneg("weight_decay", weight_decay)
    decay_rate = _positive("decay_rate", decay_rate)
    min_lr = _nonneg("min_lr", min_lr)
    warmup_steps = check_positive_int("warmup_steps", warmup_steps, minimum=0)
    if decay_every is not None:
        decay_every = check_positive_int("decay_every", decay_every)
    if nesterov and (momentum <= 0 or optimizer not in ("sgd", "gd")):
        raise InvalidInputError("nesterov needs optimizer 'sgd' or 'gd' with momentum > 0")
    if optimizer not in ("sgd", "gd") and momentum:
        raise InvalidInputError(f"momentum applies to 'sgd' and 'gd'; {optimizer!r} uses betas")
    b1, b2 = (float(b) for b in betas)
    if not (0 <= b1 < 1 and 0 <= b2 < 1):
        raise InvalidInputError(f"betas must lie in [0, 1); got {tuple(betas)}")
    for name, value in (("stop_grad_norm", stop_grad_norm), ("stop_loss", stop_loss)):
        if value is not None:
            _nonneg(name, value)
    if stop_accuracy is not None and not 0.0 <= float(stop_accuracy) <= 1.0:
        raise InvalidInputError(f"stop_accuracy must lie in [0, 1]; got {stop_accuracy!r}")
    if callback is not None and not callable(callback):
        raise InvalidInputError(f"callback must be callable; got {type(callback).__name__}")

    # ---- data ----------------------------------------------------------------------------
    params = _trainable(model)
    data_settings: dict[str, Any]
    if hasattr(data, "train_inputs") and hasattr(data, "train_targets"):  # a data.Dataset
        pair = (data.train_inputs, data.train_targets)
        if eval_data is None and getattr(data, "eval", None) is not None:
            eval_data = data.eval
        data_settings = dict(getattr(data, "settings", {}) or {})
    else:
        pair = _as_pair(data, "data")
        data_settings = {}
    X, y = _move(pair, params[0])
    n = int(X.shape[0])
    if n == 0:
        raise DataError("data holds no samples")
    if "fingerprint" not in data_settings:
        data_settings["fingerprint"] = fingerprint(
            X.detach().cpu().numpy(), y.detach().cpu().numpy()
        )
    ev = None if eval_data is None else _move(_as_pair(eval_data, "eval_data"), params[0])

    # ---- budget --------------------------------------------------------------------------
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)
        if optimizer == "gd" and batch_size < n:
            raise InvalidInputError(
                f"optimizer 'gd' is full-batch; leave batch_size out (got {batch_size} < N = {n})"
            )
    full = batch_size is None or batch_size >= n
    b = n if full else int(batch_size)
    per_epoch = 1 if full else math.ceil(n / b)
    if steps is not None and epochs is not None:
        raise InvalidInputError("give steps or epochs, not both")
    if epochs is not None:
        num_steps = check_positive_int("epochs", epochs, minimum=0) * per_epoch
    else:
        num_steps = 1000 if steps is None else check_positive_int("steps", steps, minimum=0)
    if log_every is None:
        log_every = max(per_epoch, math.ceil(num_steps / 200), 1)
    log_every = check_positive_int("log_every", log_every)
    chunk = check_positive_int("eval_batch_size", eval_batch_size)
    fn = _loss_fn(loss)

    # ---- optimiser -------------------------------------------------------------------------
    opt = _Optimizer(params, optimizer, momentum=momentum, nesterov=nesterov,
                     betas=(b1, b2), weight_decay=weight_decay)

    def lr_at(t: int) -> float:
        return learning_rate(t, lr=base_lr, num_steps=num_steps, schedule=schedule,
                             warmup_steps=warmup_steps, decay_every=decay_every,
                             decay_rate=decay_rate, min_lr=min_lr)

    settings: dict[str, Any] = {
        "optimizer": optimizer, "lr": base_lr, "momentum": momentum, "nesterov": bool(nesterov),
        "betas": [b1, b2] if optimizer in ("adam", "adamw") else None,
        "weight_decay": weight_decay, "batch_size": None if full else b,
        "steps": num_steps, "epochs": epochs, "sampling": "full batch" if full else sampling,
        "schedule": schedule, "warmup_steps": warmup_steps, "decay_every": decay_every,
        "decay_rate": decay_rate, "min_lr": min_lr, "loss": loss,
        "stop_grad_norm": stop_grad_norm, "stop_loss": stop_loss, "stop_accuracy": stop_accuracy,
        "log_every": log_every, "seed": seed,
        "dtype": str(params[0].dtype).replace("torch.", ""), "device": str(params[0].device),
        "model": type(model).__name__, "data": data_settings,
    }

    # ---- loop ------------------------------------------------------------------------------
    rows: dict[str, list[float]] = {k: [] for k in (
        "step", "loss", "accuracy", "grad_norm", "lr", "eval_loss", "eval_accuracy")}
    batch_losses: list[float] = []
    stop_reason = "steps"
    start = time.perf_counter()
    devices = [params[0].device] if params[0].device.type == "cuda" else []
    sampler = torch.Generator().manual_seed(seed)
    order = torch.empty(0, dtype=torch.int64)

    def record(t: int, lo: float, acc: float, gn: float, rate: float) -> dict[str, float]:
        row = {"step": t, "loss": lo, "accuracy": acc, "grad_norm": gn, "lr": rate}
        if ev is not None:
            row["eval_loss"], row["eval_accuracy"] = _eval_nograd(model, *ev, fn, chunk)
        for k, v in row.items():
            rows[k].append(v)
        if not math.isfinite(lo):
            raise NonFiniteError(
                f"the training loss at step {t} is {lo}; training diverged (lower lr={base_lr})"
            )
        return row

    def stop(row: dict[str, float]) -> str | None:
        if stop_accuracy is not None and row["accuracy"] >= float(stop_accuracy):
            return "accuracy"
        if stop_loss is not None and row["loss"] <= float(stop_loss):
            return "loss"
        if stop_grad_norm is not None and row["grad_norm"] <= float(stop_grad_norm):
            return "grad_norm"
        return None

    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        t = 0
        while True:
            log_now = t % log_every == 0 or t == num_steps
            if t == num_steps:
                lo, acc, gn = _eval_with_grad(model, params, X, y, fn, chunk)
                row = record(t, lo, acc, gn, lr_at(max(t - 1, 0)))
                if callback is not None:
                    callback(t, num_steps, row)
                break
            rate = lr_at(t)
            if full:
                xb, yb = X, y
            else:
                if sampling == "replacement":
                    idx = torch.randint(0, n, (b,), generator=sampler)
                else:
                    pos = (t % per_epoch) * b
                    if pos == 0:
                        order = torch.randperm(n, generator=sampler)
                    idx = order[pos : pos + b]
                idx = idx.to(X.device)
                xb, yb = X[idx], y[idx]
            if log_now and not full:
                lo, acc, gn = _eval_with_grad(model, params, X, y, fn, chunk)
            _zero_grad(params)
            out = model(xb)
            batch_loss = fn(out, yb)
            batch_loss.backward()
            if log_now:
                if full:
                    lo, acc = float(batch_loss.detach()), int(_correct(out.detach(), yb)) / n
                    gn = math.sqrt(sum(float((p.grad.double() ** 2).sum())
                                       for p in params if p.grad is not None))
                row = record(t, lo, acc, gn, rate)
                if callback is not None:
                    callback(t, num_steps, row)
                reason = stop(row)
                if reason is not None:
                    stop_reason = reason
                    break
            value = float(batch_loss.detach())
            if not math.isfinite(value):
                raise NonFiniteError(
                    f"the mini-batch loss at step {t} is {value}; training diverged "
                    f"(lower lr={base_lr})"
                )
            opt.step(rate)
            batch_losses.append(value)
            t += 1
            if callback is not None:
                callback(t, num_steps, None)
        _zero_grad(params)

    steps_done = len(batch_losses)
    step_arr = np.asarray(rows["step"], dtype=np.int64)
    return TrainingLog(
        step=step_arr,
        epoch=(step_arr / per_epoch) if full or sampling == "shuffle" else step_arr * (b / n),
        loss=np.asarray(rows["loss"]),
        accuracy=np.asarray(rows["accuracy"]),
        grad_norm=np.asarray(rows["grad_norm"]),
        lr=np.asarray(rows["lr"]),
        eval_loss=np.asarray(rows["eval_loss"]),
        eval_accuracy=np.asarray(rows["eval_accuracy"]),
        batch_loss=np.asarray(batch_losses, dtype=np.float64),
        num_steps=steps_done,
        stop_reason=stop_reason,
        num_params=int(sum(p.numel() for p in params)),
        num_samples=n,
        num_eval=0 if ev is None else int(ev[1].shape[0]),
        elapsed_s=time.perf_counter() - start,
        settings=settings,
    )


# ================================================================================ optimisers
class _Optimizer:
    """SGD (momentum, Nesterov), Adam and AdamW updates in plain torch.

    The formulas and the order of floating-point operations are those of
    ``torch.optim``'s single-tensor code paths (SGD with ``dampening=0``; Adam
    without ``amsgrad``; ``eps=1e-8``), so results agree with ``torch.optim`` bit
    for bit on CPU. Writing them out avoids ``torch.optim.Optimizer.__init__``,
    which imports ``torch._dynamo`` on first use (2-5 s of a short run).
    """

    def __init__(
        self,
        params: list[torch.Tensor],
        kind: str,
        *,
        momentum: float,
        nesterov: bool,
        betas: tuple[float, float],
        weight_decay: float,
        eps: float = 1e-8,
    ) -> None:
        self.params = params
        self.kind = kind
        self.momentum = momentum
        self.nesterov = nesterov
        self.beta1, self.beta2 = betas
        self.weight_decay = weight_decay
        self.eps = eps
        self.num_updates = 0
        self.buffers: list[torch.Tensor | None] = [None] * len(params)
        if kind in ("adam", "adamw"):
            fmt = torch.preserve_format
            self.exp_avg = [torch.zeros_like(p, memory_format=fmt) for p in params]
            self.exp_avg_sq = [torch.zeros_like(p, memory_format=fmt) for p in params]

    @torch.no_grad()
    def step(self, lr: float) -> None:
        self.num_updates += 1
        if self.kind in ("sgd", "gd"):
            self._sgd(lr)
        else:
            self._adam(lr)

    def _sgd(self, lr: float) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            grad = p.grad
            if self.weight_decay != 0:
                grad = grad.add(p, alpha=self.weight_decay)
            if self.momentum != 0:
                buf = self.buffers[i]
                if buf is None:
                    buf = grad.detach().clone()
                    self.buffers[i] = buf
                else:
                    buf.mul_(self.momentum).add_(grad, alpha=1.0)
                grad = grad.add(buf, alpha=self.momentum) if self.nesterov else buf
            p.add_(grad, alpha=-lr)

    def _adam(self, lr: float) -> None:
        step = float(self.num_updates)
        b1, b2 = self.beta1, self.beta2
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            grad = p.grad
            if self.weight_decay != 0:
                if self.kind == "adamw":
                    p.mul_(1 - lr * self.weight_decay)
                else:
                    grad = grad.add(p, alpha=self.weight_decay)
            m, v = self.exp_avg[i], self.exp_avg_sq[i]
            m.lerp_(grad, 1 - b1)
            v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            bias_correction1 = 1 - b1**step
            bias_correction2 = 1 - b2**step
            step_size = lr / bias_correction1
            denom = (v.sqrt() / bias_correction2**0.5).add_(self.eps)
            p.addcdiv_(m, denom, value=-step_size)


def _zero_grad(params: list[torch.Tensor]) -> None:
    for p in params:
        p.grad = None


# ================================================================================ checkpoints
def save_checkpoint(
    model: torch.nn.Module | dict[str, torch.Tensor],
    path: str | os.PathLike,
    *,
    settings: dict[str, Any] | None = None,
) -> Path:
    """Save a model's ``state_dict`` atomically (a crash leaves the old file or the new one).

    The file is ``torch.save`` of ``{"format", "version", "state_dict", "settings",
    "num_params", "model"}`` with every tensor on the CPU, loadable with
    ``torch.load(..., weights_only=True)``.

    Parameters
    ----------
    model : torch.nn.Module or dict of str to Tensor
        The model (or its ``state_dict``).
    path : str or os.PathLike
        Destination file (conventionally ``model.pt``); its folder is created.
    settings : dict, optional
        JSON-serialisable description stored with the weights (how to rebuild the
        model: name, input shape, classes, seed, ...).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    InvalidInputError
        If ``settings`` is not JSON-serialisable or ``model`` is neither a module
        nor a state dict.
    """
    if isinstance(model, torch.nn.Module):
        state = model.state_dict()
        kind = type(model).__name__
    elif isinstance(model, dict) and all(isinstance(v, torch.Tensor) for v in model.values()):
        state, kind = model, "state_dict"
    else:
        raise InvalidInputError(
            f"save_checkpoint needs an nn.Module or a state_dict; got {type(model).__name__}"
        )
    settings = {} if settings is None else settings
    try:
        json.dumps(settings, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"checkpoint settings must be JSON-serialisable: {exc}") from exc
    payload = {
        "format": _CHECKPOINT_FORMAT,
        "version": _CHECKPOINT_VERSION,
        "state_dict": {k: v.detach().cpu().clone() for k, v in state.items()},
        "settings": settings,
        "num_params": int(sum(v.numel() for v in state.values() if v.is_floating_point())),
        "model": kind,
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module | None = None,
    *,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (safely: ``weights_only=True``).

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file.
    model : torch.nn.Module, optional
        If given, its weights are replaced (``load_state_dict(strict=True)``).
    map_location : str or torch.device, default "cpu"
        Where the tensors are loaded.

    Returns
    -------
    dict
        ``{"state_dict", "settings", "num_params", "model", "format", "version"}``.

    Raises
    ------
    ResultFileError
        If the file is missing, corrupt, not a gn_theory checkpoint or of a newer
        version.
    InvalidInputError
        If ``model`` does not match the stored weights (missing or unexpected keys,
        other shapes).
    """
    p = Path(path)
    if not p.is_file():
        raise ResultFileError(f"no checkpoint at {str(p)!r}")
    try:
        payload = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ResultFileError(
            f"{str(p)!r} is not a readable checkpoint (corrupt or truncated): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != _CHECKPOINT_FORMAT:
        raise ResultFileError(f"{str(p)!r} is not a gn_theory checkpoint")
    if int(payload.get("version", 0)) > _CHECKPOINT_VERSION:
        raise ResultFileError(
            f"{str(p)!r} has checkpoint version {payload['version']}, newer than this "
            f"gn_theory's ({_CHECKPOINT_VERSION})"
        )
    if model is not None:
        state = payload["state_dict"]
        own = model.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
        if missing or unexpected or shapes:
            parts = []
            if missing:
                parts.append(f"missing {missing[:5]}")
            if unexpected:
                parts.append(f"unexpected {unexpected[:5]}")
            if shapes:
                k = shapes[0]
                parts.append(f"{k} has shape {tuple(state[k].shape)} in the file, "
                             f"{tuple(own[k].shape)} in the model")
            raise InvalidInputError(
                f"the checkpoint {str(p)!r} does not fit this model: {'; '.join(parts)}"
            )
        model.load_state_dict(state, strict=True)
    return payload


# ================================================================================ helpers
def _trainable(model: Any) -> list[torch.Tensor]:
    if not isinstance(model, torch.nn.Module):
        raise InvalidInputError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise DataError("the model has no trainable parameters")
    return params


def _as_pair(data: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and isinstance(data[0], torch.Tensor)
        and isinstance(data[1], torch.Tensor)
    ):
        X, y = data
        if X.shape[0] != y.shape[0]:
            raise DataError(
                f"{name}: inputs hold {X.shape[0]} samples but targets {y.shape[0]}"
            )
        return X, y
    raise DataError(
        f"{name} must be an (inputs, targets) pair of tensors or a gn_theory.data.Dataset; "
        f"got {type(data).__name__}"
    )


def _move(
    pair: tuple[torch.Tensor, torch.Tensor], like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    X, y = pair
    X = X.to(device=like.device, dtype=like.dtype if X.is_floating_point() else X.dtype)
    y = y.to(device=like.device, dtype=like.dtype if y.is_floating_point() else y.dtype)
    return X, y


def _positive(name: str, value: Any) -> float:
    v = _number(name, value)
    if not v > 0:
        raise InvalidInputError(f"{name} must be a number > 0; got {value!r}")
    return v


def _nonneg(name: str, value: Any) -> float:
    v = _number(name, value)
    if not v >= 0:
        raise InvalidInputError(f"{name} must be a number >= 0; got {value!r}")
    return v


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise InvalidInputError(f"{name} must be a number; got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(v):
        raise InvalidInputError(f"{name} must be finite; got {value!r}")
    return v
