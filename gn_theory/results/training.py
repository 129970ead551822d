"""The training log: :class:`TrainingLog` (torch-free).

:func:`gn_theory.training.train` returns one; it saves and loads like every
result (``.npz`` + ``.json``), so a training run's curves can be plotted and
reported on a machine without torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..exceptions import InvalidInputError, ShapeError
from ._base import Result
from ._summary import Summary

__all__ = ["TrainingLog"]

#: The reasons a training run stops, in ``TrainingLog.stop_reason``.
STOP_REASONS = ("steps", "grad_norm", "loss", "accuracy")


@dataclass
class TrainingLog(Result):
    """Loss, accuracy and gradient norm over a training run, at the logged steps.

    Attributes
    ----------
    step : numpy.ndarray
        ``int64``, the logged steps in increasing order: the number of optimiser
        updates done when the row was measured (0 is the initial model; the last
        row is the returned model).
    epoch : numpy.ndarray
        Passes over the training set done at each logged step (``step * batch / N``).
    loss : numpy.ndarray
        Mean training loss over the whole training split (the data term, without
        weight decay).
    accuracy : numpy.ndarray
        Training accuracy (fraction of samples whose largest logit is the label).
    grad_norm : numpy.ndarray
        Euclidean norm of the full-batch gradient of ``loss``.
    lr : numpy.ndarray
        Learning rate of the next update at each logged step (that of the last
        update for the final row).
    eval_loss, eval_accuracy : numpy.ndarray
        The same on the evaluation split, aligned with ``step``; empty without one.
    batch_loss : numpy.ndarray
        The mini-batch loss of every update, ``num_steps`` values.
    num_steps : int
        Optimiser updates done.
    stop_reason : str
        ``"steps"`` (the budget ran out), or the stop rule that fired:
        ``"grad_norm"``, ``"loss"``, ``"accuracy"``.
    num_params : int
        Trainable parameters.
    num_samples : int
        Training samples N.
    num_eval : int
        Evaluation samples (0 without a split).
    elapsed_s : float
        Wall-clock seconds spent in training (including the logged evaluations).
    settings : dict
        The options of the run (optimizer, lr, schedule, batch size, steps, stop
        rules, loss, seed, dtype, device) and the dataset's settings or fingerprint.
    """

    step: np.ndarray
    epoch: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    grad_norm: np.ndarray
    lr: np.ndarray
    eval_loss: np.ndarray
    eval_accuracy: np.ndarray
    batch_loss: np.ndarray
    num_steps: int
    stop_reason: str
    num_params: int
    num_samples: int
    num_eval: int = 0
    elapsed_s: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    _title = "Training log"

    def __post_init__(self) -> None:
        self.step = np.asarray(self.step, dtype=np.int64)
        for name in ("epoch", "loss", "accuracy", "grad_norm", "lr", "eval_loss",
                     "eval_accuracy", "batch_loss"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        n = self.step.shape
        if self.step.ndim != 1 or self.step.size == 0:
            raise ShapeError(f"step must be a non-empty 1-d array; got shape {self.step.shape}")
        for name in ("epoch", "loss", "accuracy", "grad_norm", "lr"):
            if getattr(self, name).shape != n:
                raise ShapeError(
                    f"{name} must have the shape of step {n}; got {getattr(self, name).shape}"
                )
        for name in ("eval_loss", "eval_accuracy"):
            if getattr(self, name).shape not in (n, (0,)):
                raise ShapeError(
                    f"{name} must have the shape of step {n} or be empty; got "
                    f"{getattr(self, name).shape}"
                )
        if self.batch_loss.shape != (int(self.num_steps),):
            raise ShapeError(
                f"batch_loss must hold num_steps={self.num_steps} values; got "
                f"{self.batch_loss.shape}"
            )
        if self.stop_reason not in STOP_REASONS:
            raise InvalidInputError(
                f"stop_reason must be one of {', '.join(map(repr, STOP_REASONS))}; "
                f"got {self.stop_reason!r}"
            )

    # -- derived ------------------------------------------------------------------------
    @property
    def has_eval(self) -> bool:
        """Whether an evaluation split was measured."""
        return self.eval_loss.size > 0

    @property
    def final_loss(self) -> float:
        """Training loss of the returned model."""
        return float(self.loss[-1])

    @property
    def final_accuracy(self) -> float:
        """Training accuracy of the returned model."""
        return float(self.accuracy[-1])

    @property
    def final_grad_norm(self) -> float:
        """Full-batch gradient norm of the returned model."""
        return float(self.grad_norm[-1])

    @property
    def final_eval_loss(self) -> float:
        """Evaluation loss of the returned model (NaN without an evaluation split)."""
        return float(self.eval_loss[-1]) if self.has_eval else math.nan

    @property
    def final_eval_accuracy(self) -> float:
        """Evaluation accuracy of the returned model (NaN without an evaluation split)."""
        return float(self.eval_accuracy[-1]) if self.has_eval else math.nan

    @property
    def stopped_early(self) -> bool:
        """Whether a stop rule ended the run before its step budget."""
        return self.stop_reason != "steps"

    def as_records(self) -> list[dict[str, float]]:
        """The logged rows as dicts (``step``, ``epoch``, ``loss``, ... per row).

        Returns
        -------
        list of dict
        """
        out = []
        for i in range(self.step.size):
            row: dict[str, float] = {
                "step": int(self.step[i]),
                "epoch": float(self.epoch[i]),
                "loss": float(self.loss[i]),
                "accuracy": float(self.accuracy[i]),
                "grad_norm": float(self.grad_norm[i]),
                "lr": float(self.lr[i]),
            }
            if self.has_eval:
                row["eval_loss"] = float(self.eval_loss[i])
                row["eval_accuracy"] = float(self.eval_accuracy[i])
            out.append(row)
        return out

    # -- text ---------------------------------------------------------------------------
    def summary(self) -> Summary:
        """Optimizer, budget, final loss, accuracy and gradient norm; notes on the stop.

        Returns
        -------
        Summary
        """
        s = self.settings
        opt = s.get("optimizer", "-")
        batch = s.get("batch_size")
        rows = [
            ("optimizer", f"{opt}, lr {s.get('lr', '-')} ({s.get('schedule', 'constant')})"),
            ("batch size", "full batch" if batch is None else str(batch)),
            ("steps", f"{self.num_steps} ({float(self.epoch[-1]):.3g} epochs)"),
            ("samples", f"N = {self.num_samples} train, {self.num_eval} eval"),
            ("parameters", str(self.num_params)),
            ("loss", f"{float(self.loss[0]):.4g} -> {self.final_loss:.4g}"),
            ("train accuracy", f"{float(self.accuracy[0]):.4f} -> {self.final_accuracy:.4f}"),
            ("gradient norm", f"{float(self.grad_norm[0]):.4g} -> {self.final_grad_norm:.4g}"),
        ]
        if self.has_eval:
            rows.append(("eval accuracy", f"{self.final_eval_accuracy:.4f} "
                                          f"(loss {self.final_eval_loss:.4g})"))
        rows += [
            ("stopped by", self.stop_reason),
            ("seed", str(s.get("seed", "-"))),
            ("time", f"{self.elapsed_s:.3g} s"),
        ]
        notes = []
        if self.stopped_early:
            rule = {"grad_norm": ("gradient norm", "stop_grad_norm", "<="),
                    "loss": ("training loss", "stop_loss", "<="),
                    "accuracy": ("training accuracy", "stop_accuracy", ">=")}[self.stop_reason]
            notes.append(
                f"stopped at step {self.num_steps}: the {rule[0]} reached {rule[2]} "
                f"{s.get(rule[1], '?')}"
            )
        elif any(s.get(k) is not None for k in ("stop_grad_norm", "stop_loss", "stop_accuracy")):
            notes.append("no stop rule fired within the step budget")
        if self.final_accuracy < 1.0:
            notes.append(
                f"the model does not fit the training set: accuracy {self.final_accuracy:.4f}"
            )
        return Summary(self._title, rows, notes)

    def __repr__(self) -> str:
        return (
            f"TrainingLog(steps={self.num_steps}, loss={self.final_loss:.4g}, "
            f"accuracy={self.final_accuracy:.4f}, grad_norm={self.final_grad_norm:.3g}, "
            f"stop_reason={self.stop_reason!r})"
        )
