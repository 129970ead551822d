"""Tiny model/data cases shared by the tests (float64, seeded)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass
class Case:
    """A tiny model, its data and a loss, built reproducibly from a seed."""

    name: str
    make_model: Callable[[], torch.nn.Module]
    make_data: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    loss: str | Callable = "cross_entropy"

    def build(self) -> tuple[torch.nn.Module, tuple[torch.Tensor, torch.Tensor]]:
        # crc32, not hash(): Python salts str hashes per process, so a failure could not be replayed
        torch.manual_seed(zlib.crc32(self.name.encode()))
        model = self.make_model().double()
        X, y = self.make_data()
        return model, (X, y)


def _cls_data(n: int, d: int, c: int) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    def make() -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(n * 31 + d * 7 + c)
        X = torch.randn(n, d, generator=g, dtype=torch.float64)
        y = torch.randint(0, c, (n,), generator=g)
        return X, y

    return make


def _img_data(n: int, c: int) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    def make() -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(n + c)
        X = torch.randn(n, 1, 6, 6, generator=g, dtype=torch.float64)
        y = torch.randint(0, c, (n,), generator=g)
        return X, y

    return make


def _reg_data(n: int, d: int, k: int) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    def make() -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(n + d + k)
        X = torch.randn(n, d, generator=g, dtype=torch.float64)
        Y = torch.randn(n, k, generator=g, dtype=torch.float64)
        return X, Y

    return make


def smooth_l1_mean(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """A user loss: mean over samples of a smooth (log-cosh) error summed over outputs."""
    return torch.log(torch.cosh(outputs - targets)).sum(dim=1).mean()


nn = torch.nn

CASES = [
    Case(
        "relu_mlp",
        lambda: nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)),
        _cls_data(13, 4, 3),
    ),
    Case(
        "tanh_mlp",
        lambda: nn.Sequential(nn.Linear(3, 7), nn.Tanh(), nn.Linear(7, 4)),
        _cls_data(11, 3, 4),
    ),
    Case(
        "tanh_mlp_nobias",
        lambda: nn.Sequential(nn.Linear(3, 6, bias=False), nn.Tanh(), nn.Linear(6, 3, bias=False)),
        _cls_data(10, 3, 3),
    ),
    Case(
        "small_cnn",
        lambda: nn.Sequential(
            nn.Conv2d(1, 2, 3), nn.Tanh(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3)
        ),
        _img_data(9, 3),
    ),
    Case(
        "tanh_mlp_mse",
        lambda: nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)),
        _reg_data(12, 3, 2),
        "mse",
    ),
    Case(
        "tanh_mlp_callable",
        lambda: nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)),
        _reg_data(12, 3, 2),
        smooth_l1_mean,
    ),
]


# ----------------------------------------------------------------------------- classifiers
def _unbalanced_data(n_per_class: list[int], d: int, seed: int) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
    """Class counts fixed in advance, shuffled; inputs shifted by 0.5 * class."""

    def make() -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        y = torch.cat([torch.full((n,), c) for c, n in enumerate(n_per_class)])
        y = y[torch.randperm(y.numel(), generator=g)]
        X = torch.randn(y.numel(), d, generator=g, dtype=torch.float64) + 0.5 * y[:, None].double()
        return X, y

    return make


#: Unbalanced softmax classifiers (docs/theory.md 2.6: class counts 5/9/7; 3/8/2/6), every class present.
TANH_C3_UNBALANCED = Case(
    "tanh_C3_unbalanced",
    lambda: nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)),
    _unbalanced_data([5, 9, 7], 4, 1),
)
RELU_C4_UNBALANCED = Case(
    "relu_C4_unbalanced",
    lambda: nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 4)),
    _unbalanced_data([3, 8, 2, 6], 3, 2),
)

#: The softmax cross-entropy cases (every class present), for the class structure of G.
CLASSIFIER_CASES = [c for c in CASES if c.loss == "cross_entropy"] + [
    TANH_C3_UNBALANCED,
    RELU_C4_UNBALANCED,
]
