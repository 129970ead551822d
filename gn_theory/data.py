"""Data that needs no download: generated Gaussian mixtures.

All generators are seeded and return ``(inputs, targets)`` tensors, the pair
that every gn_theory entry point accepts as ``data``.
"""

from __future__ import annotations

import torch

from ._checks import check_positive_int
from .exceptions import InvalidInputError

__all__ = ["gaussian_mixture", "batches"]


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
