"""Reference networks used by the examples, validation and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .exceptions import InvalidInputError

__all__ = ["mlp", "train"]


def mlp(
    sizes: Sequence[int], *, activation: str = "relu", bias: bool = True, seed: int | None = None
) -> torch.nn.Sequential:
    """A fully connected network ``sizes[0] -> ... -> sizes[-1]``.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first, number of outputs last (at least two).
    activation : {"relu", "tanh"}, default "relu"
        Non-linearity between layers (none after the last).
    bias : bool, default True
        Whether layers have biases.
    seed : int, optional
        Seed for the initialisation (the global RNG state is restored).

    Returns
    -------
    torch.nn.Sequential

    Raises
    ------
    InvalidInputError
        Fewer than two sizes, or an unknown activation.

    Examples
    --------
    >>> from gn_theory.models import mlp
    >>> sum(p.numel() for p in mlp([4, 6, 3]).parameters())
    51
    """
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise InvalidInputError(f"sizes must hold at least two positive widths; got {list(sizes)}")
    acts = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}
    if activation not in acts:
        raise InvalidInputError(f"activation must be one of {sorted(acts)}; got {activation!r}")
    state = torch.random.get_rng_state()
    if seed is not None:
        torch.manual_seed(seed)
    try:
        layers: list[torch.nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(torch.nn.Linear(int(a), int(b), bias=bias))
            if i < len(sizes) - 2:
                layers.append(acts[activation]())
        return torch.nn.Sequential(*layers)
    finally:
        if seed is not None:
            torch.random.set_rng_state(state)


def train(
    model: torch.nn.Module,
    data: tuple[torch.Tensor, torch.Tensor],
    *,
    steps: int = 200,
    lr: float = 0.1,
    batch_size: int | None = None,
    momentum: float = 0.0,
    seed: int = 0,
) -> list[float]:
    """Train ``model`` in place with SGD on softmax cross-entropy.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier (modified in place).
    data : (Tensor, Tensor)
        Inputs and integer targets.
    steps : int, default 200
        Optimiser steps.
    lr : float, default 0.1
        Learning rate.
    batch_size : int, optional
        Mini-batch size (default full batch, i.e. gradient descent).
    momentum : float, default 0.0
        SGD momentum.
    seed : int, default 0
        Seed of the mini-batch sampler.

    Returns
    -------
    list of float
        The loss at every step.
    """
    X, y = data
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(int(steps)):
        if batch_size is None or batch_size >= X.shape[0]:
            xb, yb = X, y
        else:
            idx = torch.randint(0, X.shape[0], (batch_size,), generator=g)
            xb, yb = X[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses
