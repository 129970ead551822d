"""Fixtures of tests/spectra: a tiny trained classifier."""

import pytest
import torch

from gn_theory.models import train


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 10), torch.nn.Tanh(), torch.nn.Linear(10, 3)
    ).double()
    g = torch.Generator().manual_seed(1)
    X = torch.randn(30, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (30,), generator=g)
    train(model, (X, y), steps=50, lr=0.5)
    return model, (X, y)
