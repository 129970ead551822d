"""The data building blocks: down-sampling, balanced subsets, splits, generators, batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gn_theory.data import (
    balanced_indices,
    batches,
    downsample,
    gaussian_mixture,
    random_inputs,
    train_eval_split,
    two_blobs,
)
from gn_theory.exceptions import InvalidInputError, ShapeError


def test_downsample_is_the_block_average():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 12, 12, generator=g, dtype=torch.float64)
    for size in (6, 4, 3, 1):
        k = 12 // size
        out = downsample(x, size)
        assert out.shape == (3, 2, size, size)
        by_hand = torch.empty(3, 2, size, size, dtype=torch.float64)
        for i in range(size):
            for j in range(size):
                by_hand[..., i, j] = x[..., i * k : (i + 1) * k, j * k : (j + 1) * k].mean(dim=(-2, -1))
        assert torch.allclose(out, by_hand, atol=1e-15)
    assert torch.equal(downsample(x, 12), x)
    assert downsample(torch.ones(2, 4, 4, dtype=torch.uint8), 2).dtype == torch.float32


def test_downsample_errors():
    with pytest.raises(ShapeError, match="square"):
        downsample(torch.zeros(1, 4, 6), 2)
    with pytest.raises(ShapeError, match=r"one of \[1, 2, 3, 6\]"):
        downsample(torch.zeros(1, 6, 6), 4)
    with pytest.raises(ShapeError, match=r"\(N, H, W\)"):
        downsample(torch.zeros(6, 6), 3)


def test_balanced_indices_counts_determinism_and_shortage():
    y = np.array([0] * 50 + [1] * 30 + [2] * 20)
    idx = balanced_indices(y, 31, num_classes=3, seed=1)
    assert np.bincount(y[idx]).tolist() == [11, 10, 10]
    assert len(set(idx.tolist())) == 31
    assert np.array_equal(idx, balanced_indices(y, 31, num_classes=3, seed=1))
    assert not np.array_equal(idx, balanced_indices(y, 31, num_classes=3, seed=2))
    with pytest.raises(InvalidInputError, match="needs 25 of class 2, which has 20"):
        balanced_indices(y, 75, num_classes=3)
    with pytest.raises(InvalidInputError, match="non-negative integer labels"):
        balanced_indices(np.array([0.5, 1.0]), 2, num_classes=2)


def test_train_eval_split_disjoint_stratified_deterministic():
    y = np.repeat(np.arange(4), [40, 20, 20, 20])
    tr, ev = train_eval_split(y, 0.25, seed=3)
    assert len(set(tr.tolist()) & set(ev.tolist())) == 0
    assert sorted(np.concatenate([tr, ev]).tolist()) == list(range(100))
    assert np.bincount(y[ev]).tolist() == [10, 5, 5, 5]
    tr2, ev2 = train_eval_split(y, 0.25, seed=3)
    assert np.array_equal(tr, tr2) and np.array_equal(ev, ev2)
    tr3, ev3 = train_eval_split(y, 0.25, stratified=False, seed=3)
    assert len(ev3) == 25
    assert train_eval_split(y, 0.0)[1].size == 0
    with pytest.raises(InvalidInputError, match=r"\[0, 1\)"):
        train_eval_split(y, 1.5)


def test_two_blobs_and_mixture_generators():
    X, y = two_blobs(1000, noise=0.5, seed=0, dtype=torch.float64)
    assert X.shape == (1000, 2) and X.dtype == torch.float64
    assert y.tolist()[:4] == [0, 1, 0, 1]
    assert float((X[y == 0] - torch.tensor([1.0, 1.0], dtype=torch.float64)).std()) == pytest.approx(0.5, rel=0.1)
    assert torch.equal(two_blobs(10, seed=4)[0], two_blobs(10, seed=4)[0])
    with pytest.raises(InvalidInputError, match="noise"):
        two_blobs(10, noise=-1.0)
    Xm, ym = gaussian_mixture(90, 6, 3, seed=0)
    assert Xm.shape == (90, 6) and np.bincount(ym.numpy()).tolist() == [30, 30, 30]


def test_random_inputs_are_seeded_noise():
    x = torch.randn(50, 3) * 4 + 2
    a, b = random_inputs(x, seed=1), random_inputs(x, seed=1)
    assert torch.equal(a, b) and a.shape == x.shape and a.dtype == x.dtype
    assert not torch.equal(a, random_inputs(x, seed=2))


def test_batches_cover_the_data():
    X, y = torch.arange(10.0).reshape(10, 1), torch.arange(10)
    parts = batches(X, y, 4)
    assert [len(b[1]) for b in parts] == [4, 4, 2]
    assert torch.equal(torch.cat([b[0] for b in parts]), X)
