"""train(): optimisers fit tiny problems, budgets, sampling, schedules, stop rules, determinism, errors."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from gn_theory.data import gaussian_mixture, load_dataset, two_blobs
from gn_theory.exceptions import DataError, InvalidInputError, NonFiniteError
from gn_theory.models import build_model, mlp
from gn_theory.models import train as short_train
from gn_theory.training import evaluate, learning_rate, train


def _problem(n=120, seed=0):
    X, y = gaussian_mixture(n, 4, 3, separation=4.0, noise=0.5, seed=seed)
    return X, y


def _net(seed=0, d=4, c=3):
    return build_model("mlp", input_shape=(d,), num_classes=c, width=16, depth=2, seed=seed)


def _vec(model):
    return torch.nn.utils.parameters_to_vector(model.parameters()).detach()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(optimizer="sgd", lr=0.1, momentum=0.9, batch_size=16),
        dict(optimizer="gd", lr=0.5),
        dict(optimizer="adam", lr=0.02),
        dict(optimizer="adamw", lr=0.02, weight_decay=1e-3, batch_size=32),
    ],
    ids=lambda kw: kw["optimizer"],
)
def test_each_optimizer_fits_a_tiny_problem(kwargs):
    X, y = _problem()
    log = train(_net(), (X, y), steps=600, stop_accuracy=1.0, seed=0, **kwargs)
    assert log.final_accuracy == 1.0 and log.stop_reason == "accuracy"
    assert log.num_steps < 600 and log.batch_loss.shape == (log.num_steps,)
    assert log.loss[-1] < log.loss[0]
    assert log.settings["optimizer"] == kwargs["optimizer"]


def test_optimizers_agree_with_torch_optim_bit_for_bit():
    X, y = _problem()
    cases = [
        ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
        ("adam", dict(lr=0.01, weight_decay=1e-2)),
        ("adamw", dict(lr=0.01, weight_decay=1e-2)),
    ]
    for kind, kw in cases:
        ref, ours = _net(), _net()
        opt = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[kind](
            ref.parameters(), **kw
        )
        g = torch.Generator().manual_seed(2)
        for _ in range(15):
            idx = torch.randint(0, X.shape[0], (16,), generator=g)
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(ref(X[idx]), y[idx]).backward()
            opt.step()
        extra = {k: v for k, v in kw.items() if k != "lr"}
        train(ours, (X, y), optimizer=kind, lr=kw["lr"], steps=15, batch_size=16,
              sampling="replacement", seed=2, **extra)
        assert torch.equal(_vec(ref), _vec(ours)), kind


def test_short_train_keeps_its_old_contract():
    X, y = _problem()
    ref, ours = mlp([4, 8, 3], seed=0), mlp([4, 8, 3], seed=0)
    opt = torch.optim.SGD(ref.parameters(), lr=0.2, momentum=0.5)
    losses_ref = []
    for _ in range(25):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(ref(X), y)
        loss.backward()
        opt.step()
        losses_ref.append(float(loss.detach()))
    losses = short_train(ours, (X, y), steps=25, lr=0.2, momentum=0.5)
    assert isinstance(losses, list) and losses == losses_ref
    assert torch.equal(_vec(ref), _vec(ours))


def test_deterministic_given_the_seed():
    X, y = _problem()
    kw = dict(optimizer="sgd", lr=0.1, batch_size=10, steps=60, seed=4)
    a, b, c = _net(), _net(), _net()
    la, lb = train(a, (X, y), **kw), train(b, (X, y), **kw)
    train(c, (X, y), **{**kw, "seed": 5})
    assert torch.equal(_vec(a), _vec(b)) and np.array_equal(la.batch_loss, lb.batch_loss)
    assert np.array_equal(la.loss, lb.loss) and la.settings == lb.settings
    assert not torch.equal(_vec(a), _vec(c))
    state = torch.random.get_rng_state()
    train(_net(), (X, y), **kw)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_epochs_shuffle_visits_every_sample_once_per_epoch():
    n, b = 12, 4
    X = torch.arange(n, dtype=torch.float32).reshape(n, 1)
    y = torch.arange(n) % 2
    seen: list[list[int]] = []

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(1, 2)

        def forward(self, x):
            if x.shape[0] == b:  # a training batch (the logged measurements see all n)
                seen.append(x[:, 0].long().tolist())
            return self.fc(x)

    log = train(Recorder(), (X, y), batch_size=b, epochs=3, lr=0.01, seed=0)
    assert log.num_steps == 9 and len(seen) == 9
    for e in range(3):
        assert sorted(sum(seen[3 * e : 3 * e + 3], [])) == list(range(n))
    assert seen[:3] != seen[3:6]  # a new permutation every epoch
    assert log.epoch[-1] == 3.0


def test_schedules_and_logged_learning_rates():
    assert [learning_rate(t, lr=1.0, num_steps=4, schedule="constant") for t in range(4)] == [1.0] * 4
    warm = [learning_rate(t, lr=1.0, num_steps=10, warmup_steps=4) for t in range(5)]
    assert warm == [0.25, 0.5, 0.75, 1.0, 1.0]
    cos = [learning_rate(t, lr=1.0, num_steps=100, schedule="cosine", min_lr=0.1) for t in (0, 50, 100)]
    assert cos == pytest.approx([1.0, 0.55, 0.1])
    step = [learning_rate(t, lr=1.0, num_steps=9, schedule="step") for t in (0, 2, 3, 6, 8)]
    assert step == pytest.approx([1.0, 1.0, 0.1, 0.01, 0.01])
    X, y = _problem()
    log = train(_net(), (X, y), optimizer="gd", lr=0.4, steps=20, schedule="cosine", log_every=5)
    assert log.step.tolist() == [0, 5, 10, 15, 20]
    expected = [learning_rate(t, lr=0.4, num_steps=20, schedule="cosine") for t in (0, 5, 10, 15, 19)]
    assert log.lr == pytest.approx(expected)


@pytest.mark.parametrize("rule, value", [("stop_loss", 0.05), ("stop_grad_norm", 0.05), ("stop_accuracy", 1.0)])
def test_stop_rules_stop_at_the_first_logged_step_that_meets_them(rule, value):
    X, y = _problem()
    log = train(_net(), (X, y), optimizer="adam", lr=0.02, steps=3000, log_every=5, **{rule: value})
    field = {"stop_loss": "loss", "stop_grad_norm": "grad_norm", "stop_accuracy": "accuracy"}[rule]
    met = (log.accuracy >= value) if field == "accuracy" else (getattr(log, field) <= value)
    assert log.stop_reason == field and log.stopped_early
    assert met[-1] and not met[:-1].any()
    assert log.num_steps == log.step[-1] < 3000
    assert log.settings[rule] == value


def test_logged_values_are_full_batch_measurements():
    X, y = _problem()
    net = _net()
    log = train(net, (X, y), optimizer="sgd", lr=0.1, batch_size=16, steps=30, log_every=10)
    final = evaluate(net, (X, y), gradient=True)
    assert log.final_loss == pytest.approx(final["loss"], rel=1e-6)
    assert log.final_accuracy == final["accuracy"]
    assert log.final_grad_norm == pytest.approx(final["grad_norm"], rel=1e-5)
    assert all(p.grad is None for p in net.parameters())
    # gradient norm by hand
    net.zero_grad()
    torch.nn.functional.cross_entropy(net(X), y).backward()
    by_hand = math.sqrt(sum(float((p.grad ** 2).sum()) for p in net.parameters()))
    assert log.final_grad_norm == pytest.approx(by_hand, rel=1e-5)


def test_eval_split_weight_decay_mse_and_callback():
    ds = load_dataset("blobs", num_samples=200, noise=0.4, eval_fraction=0.25, seed=0)
    calls = []
    log = train(_net(d=2, c=2), ds, optimizer="gd", lr=0.5, steps=40, log_every=10,
                callback=lambda t, total, row: calls.append((t, total, row is not None)))
    assert log.has_eval and log.num_eval == 50 and log.eval_accuracy.shape == log.step.shape
    assert log.final_eval_accuracy > 0.8
    assert log.settings["data"]["name"] == "blobs"
    assert calls[0] == (0, 40, True) and (40, 40, False) in calls and calls[-1] == (40, 40, True)
    X, y = ds.train
    plain, decayed = _net(d=2, c=2), _net(d=2, c=2)
    train(plain, (X, y), optimizer="gd", lr=0.5, steps=50)
    train(decayed, (X, y), optimizer="gd", lr=0.5, steps=50, weight_decay=0.05)
    assert float(_vec(decayed).norm()) < float(_vec(plain).norm())
    mse = train(_net(d=2, c=2), (X, y), optimizer="adam", lr=0.02, steps=300, loss="mse",
                stop_accuracy=1.0)
    assert mse.final_accuracy > 0.9 and mse.settings["loss"] == "mse"


def test_divergence_raises_non_finite_error():
    X, y = two_blobs(50)
    with pytest.raises(NonFiniteError, match="diverged"):
        train(_net(d=2, c=2), (X * 1e3, y), optimizer="gd", lr=1e6, steps=50, log_every=1)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(optimizer="rmsprop"), InvalidInputError, "optimizer must be one of"),
        (dict(optimizer="gd", batch_size=10), InvalidInputError, "full-batch"),
        (dict(steps=10, epochs=2), InvalidInputError, "not both"),
        (dict(lr=0.0), InvalidInputError, "lr must be a number > 0"),
        (dict(nesterov=True), InvalidInputError, "nesterov"),
        (dict(optimizer="adam", momentum=0.9), InvalidInputError, "uses betas"),
        (dict(schedule="linear"), InvalidInputError, "schedule must be one of"),
        (dict(stop_accuracy=2.0), InvalidInputError, "stop_accuracy"),
        (dict(batch_size=0), InvalidInputError, "batch_size"),
    ],
)
def test_bad_options(kwargs, error, match):
    X, y = _problem(30)
    with pytest.raises(error, match=match):
        train(_net(), (X, y), **{"steps": 2, **kwargs})


def test_bad_data_and_model():
    X, y = _problem(30)
    with pytest.raises(DataError, match="pair of tensors or a gn_theory.data.Dataset"):
        train(_net(), X, steps=1)
    with pytest.raises(DataError, match="30 samples but targets 29"):
        train(_net(), (X, y[:-1]), steps=1)
    with pytest.raises(DataError, match="no trainable parameters"):
        train(torch.nn.Flatten(), (X, y), steps=1)
    with pytest.raises(InvalidInputError, match="nn.Module"):
        train("mlp", (X, y), steps=1)


def test_zero_steps_only_measures():
    X, y = _problem(30)
    net = _net()
    before = copy.deepcopy(_vec(net))
    log = train(net, (X, y), steps=0)
    assert log.num_steps == 0 and log.step.tolist() == [0] and torch.equal(before, _vec(net))
