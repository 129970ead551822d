"""TrainingLog save/load round trip and summary; checkpoints round trip and bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gn_theory.data import load_dataset
from gn_theory.exceptions import InvalidInputError, ResultFileError, ShapeError
from gn_theory.models import build_model
from gn_theory.results import TrainingLog, load_result
from gn_theory.training import load_checkpoint, save_checkpoint, train


@pytest.fixture(scope="module")
def trained():
    ds = load_dataset("gaussian_mixture", num_samples=150, num_classes=3, num_features=5,
                      separation=4.0, eval_fraction=0.2, seed=0)
    net = build_model("mlp", input_shape=ds.input_shape, num_classes=3, width=12, seed=0)
    log = train(net, ds, optimizer="sgd", lr=0.1, momentum=0.9, batch_size=20, epochs=30,
                stop_accuracy=1.0, seed=0)
    return ds, net, log


def test_log_save_load_round_trip(trained, tmp_path):
    _, _, log = trained
    path = log.save(tmp_path / "train_log")
    assert path.suffix == ".json" and (tmp_path / "train_log.npz").is_file()
    back = TrainingLog.load(path)
    same = load_result(tmp_path / "train_log")
    assert isinstance(same, TrainingLog)
    for name in ("step", "epoch", "loss", "accuracy", "grad_norm", "lr", "eval_loss",
                 "eval_accuracy", "batch_loss"):
        a, b = getattr(log, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert back.settings == json.loads(json.dumps(log.settings))
    assert (back.num_steps, back.stop_reason, back.num_params) == (
        log.num_steps, log.stop_reason, log.num_params)
    assert back.elapsed_s == log.elapsed_s
    assert TrainingLog.from_dict(log.to_dict()).final_loss == log.final_loss
    assert back.provenance  # versions and time recorded by the store


def test_log_summary_and_records(trained):
    _, _, log = trained
    text = str(log.summary())
    assert "Training log" in text and "sgd" in text and "stopped by" in text
    assert "eval accuracy" in text and "stopped at step" in text
    rows = log.as_records()
    assert len(rows) == log.step.size and set(rows[0]) >= {"step", "loss", "eval_accuracy"}
    assert "TrainingLog(steps=" in repr(log)
    assert log.summary().as_html().startswith("<table>")


def test_log_validates_its_arrays():
    base = dict(step=[0, 1], epoch=[0, 1], loss=[1, 0.5], accuracy=[0.5, 1], grad_norm=[1, 0.1],
                lr=[0.1, 0.1], eval_loss=[], eval_accuracy=[], batch_loss=[1.0], num_steps=1,
                stop_reason="steps", num_params=3, num_samples=4)
    log = TrainingLog(**base)
    assert not log.has_eval and np.isnan(log.final_eval_accuracy)
    with pytest.raises(ShapeError, match="loss must have the shape of step"):
        TrainingLog(**{**base, "loss": [1.0]})
    with pytest.raises(ShapeError, match="batch_loss must hold num_steps=1"):
        TrainingLog(**{**base, "batch_loss": [1.0, 2.0]})
    with pytest.raises(InvalidInputError, match="stop_reason"):
        TrainingLog(**{**base, "stop_reason": "tired"})


def test_checkpoint_round_trip(trained, tmp_path):
    ds, net, _ = trained
    settings = {"model": "mlp", "width": 12, "input_shape": list(ds.input_shape), "seed": 0}
    path = save_checkpoint(net, tmp_path / "ckpt" / "model.pt", settings=settings)
    assert path.is_file() and not list(path.parent.glob(".*.tmp"))
    fresh = build_model("mlp", input_shape=ds.input_shape, num_classes=3, width=12, seed=99)
    X = ds.train_inputs
    assert not torch.equal(fresh(X), net(X))
    payload = load_checkpoint(path, fresh)
    assert torch.equal(fresh(X), net(X))
    assert payload["settings"] == settings and payload["num_params"] == sum(
        p.numel() for p in net.parameters())
    raw = torch.load(path, weights_only=True)  # plain torch reads it safely
    assert set(raw["state_dict"]) == set(net.state_dict())
    # a state dict saves too, and overwriting keeps one valid file
    save_checkpoint(net.state_dict(), path)
    assert load_checkpoint(path)["model"] == "state_dict"


def test_checkpoint_errors(trained, tmp_path):
    _, net, _ = trained
    with pytest.raises(ResultFileError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    with pytest.raises(ResultFileError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(ResultFileError, match="not a gn_theory checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    good = save_checkpoint(net, tmp_path / "good.pt")
    data = good.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ResultFileError):
        load_checkpoint(tmp_path / "cut.pt")
    other = build_model("mlp", input_shape=(5,), num_classes=3, width=7)
    with pytest.raises(InvalidInputError, match="does not fit this model.*shape"):
        load_checkpoint(good, other)
    with pytest.raises(InvalidInputError, match="JSON-serialisable"):
        save_checkpoint(net, tmp_path / "bad.pt", settings={"fn": print})
    with pytest.raises(InvalidInputError, match="nn.Module or a state_dict"):
        save_checkpoint([1, 2], tmp_path / "bad.pt")


def test_log_loads_without_torch(trained, tmp_path):
    import subprocess
    import sys

    _, _, log = trained
    log.save(tmp_path / "log")
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from gn_theory.results import load_result\n"
        f"log = load_result({str(tmp_path / 'log')!r})\n"
        "print(type(log).__name__, log.num_steps, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["TrainingLog", str(log.num_steps), "False"]
