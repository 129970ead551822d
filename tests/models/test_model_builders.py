"""build_model and the reference networks: shapes, parameter counts, seeds, user modules, errors."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

import gn_theory as gt
from gn_theory.exceptions import InvalidInputError, ShapeError
from gn_theory.models import MODELS, build_model, fully_connected, mlp, num_params, small_cnn


def test_mlp_width_depth_and_parameter_count():
    net = build_model("mlp", input_shape=(1, 14, 14), num_classes=10, width=24, depth=2)
    assert num_params(net) == 196 * 24 + 24 + 24 * 24 + 24 + 24 * 10 + 10
    assert net(torch.zeros(5, 1, 14, 14)).shape == (5, 10)
    assert sum(isinstance(m, torch.nn.ReLU) for m in net) == 2
    deep = build_model("mlp", input_shape=(3,), num_classes=2, width=5, depth=4)
    assert sum(isinstance(m, torch.nn.Linear) for m in deep) == 5
    assert not any(isinstance(m, torch.nn.Flatten) for m in deep)
    tanh = fully_connected((3,), 2, width=4, depth=1, activation="tanh")
    assert any(isinstance(m, torch.nn.Tanh) for m in tanh)


def test_cnn_and_linear():
    cnn = build_model("cnn", input_shape=(1, 14, 14), num_classes=10)
    assert cnn(torch.zeros(2, 1, 14, 14)).shape == (2, 10)
    assert any(isinstance(m, torch.nn.Conv2d) for m in cnn.modules())
    wide = build_model("cnn", input_shape=(1, 7, 7), num_classes=3, channels=(2, 3, 4))
    assert wide(torch.zeros(1, 1, 7, 7)).shape == (1, 3)
    assert small_cnn((8, 8), 2)(torch.zeros(4, 8, 8)).shape == (4, 2)
    lin = build_model("linear", input_shape=(2,), num_classes=2)
    assert num_params(lin) == 6


def test_seed_fixes_the_weights_and_leaves_the_global_rng():
    before = torch.random.get_rng_state()
    a = build_model("mlp", input_shape=(4,), num_classes=3, seed=7)
    b = build_model("mlp", input_shape=(4,), num_classes=3, seed=7)
    c = build_model("mlp", input_shape=(4,), num_classes=3, seed=8)
    assert torch.equal(torch.random.get_rng_state(), before)
    pa, pb, pc = (torch.nn.utils.parameters_to_vector(m.parameters()) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)
    cnn1 = build_model("cnn", input_shape=(1, 6, 6), num_classes=2, seed=1)
    cnn2 = build_model("cnn", input_shape=(1, 6, 6), num_classes=2, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(cnn1.parameters(), cnn2.parameters()))
    assert mlp([4, 6, 3], seed=0)[0].weight.shape == (6, 4)


def test_dtype_device_and_the_operators_accept_the_built_models():
    net = build_model("mlp", input_shape=(1, 4, 4), num_classes=3, width=5, dtype=torch.float64)
    assert next(net.parameters()).dtype == torch.float64
    X, y = torch.randn(12, 1, 4, 4, dtype=torch.float64), torch.arange(12) % 3
    H = gt.hessian_operator(net, (X, y))
    assert H.shape == (num_params(net), num_params(net))


@pytest.fixture
def model_module(tmp_path, monkeypatch):
    src = textwrap.dedent(
        """
        import torch

        def tiny(input_shape, num_classes):
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(int(torch.tensor(input_shape).prod()), num_classes))

        class Net(torch.nn.Module):
            def __init__(self, num_classes=2):
                super().__init__()
                self.fc = torch.nn.Linear(3, num_classes)
            def forward(self, x):
                return self.fc(x)

        def wrong_outputs(input_shape):
            return torch.nn.Linear(input_shape[0], 7)

        def not_a_module():
            return "model"

        def broken(**kwargs):
            raise RuntimeError("cannot build")
        """
    )
    (tmp_path / "gn_user_model_mod.py").write_text(src)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "gn_user_model_mod"
    sys.modules.pop("gn_user_model_mod", None)


def test_user_module_callable(model_module, tmp_path):
    net = build_model(f"{model_module}:tiny", input_shape=(2, 3), num_classes=4, seed=0)
    assert net(torch.zeros(1, 2, 3)).shape == (1, 4)
    again = build_model(f"{model_module}:tiny", input_shape=(2, 3), num_classes=4, seed=0)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), again.parameters()))
    cls = build_model(f"{model_module}:Net", input_shape=(3,), num_classes=5)
    assert cls(torch.zeros(2, 3)).shape == (2, 5)
    by_file = build_model(f"{tmp_path / 'gn_user_model_mod.py'}:Net", input_shape=(3,), num_classes=2)
    assert num_params(by_file) == 8


def test_user_module_errors(model_module):
    with pytest.raises(ShapeError, match=r"logits \(B, 2\).*\(2, 7\)"):
        build_model(f"{model_module}:wrong_outputs", input_shape=(3,), num_classes=2)
    with pytest.raises(InvalidInputError, match="must return a torch.nn.Module"):
        build_model(f"{model_module}:not_a_module", input_shape=(3,), num_classes=2)
    with pytest.raises(InvalidInputError, match="cannot build"):
        build_model(f"{model_module}:broken", input_shape=(3,), num_classes=2)
    with pytest.raises(InvalidInputError, match="no attribute"):
        build_model(f"{model_module}:missing", input_shape=(3,), num_classes=2)
    with pytest.raises(ShapeError, match="fails on a batch"):
        build_model(f"{model_module}:Net", input_shape=(4,), num_classes=2)


def test_bad_names_and_options():
    with pytest.raises(InvalidInputError) as err:
        build_model("resnet50", input_shape=(3,), num_classes=2)
    assert all(repr(m) in str(err.value) for m in MODELS)
    with pytest.raises(InvalidInputError, match="width does not apply to model 'cnn'"):
        build_model("cnn", input_shape=(1, 4, 4), num_classes=2, width=3)
    with pytest.raises(InvalidInputError, match="channels does not apply"):
        build_model("mlp", input_shape=(3,), num_classes=2, channels=(2,))
    with pytest.raises(InvalidInputError, match="image inputs"):
        build_model("cnn", input_shape=(5,), num_classes=2)
    with pytest.raises(InvalidInputError, match="width must be an integer >= 1"):
        build_model("mlp", input_shape=(3,), num_classes=2, width=0)
    with pytest.raises(InvalidInputError, match="activation"):
        build_model("mlp", input_shape=(3,), num_classes=2, activation="gelu")
