"""Data that would silently change the operator is refused with the reason (issue 13, items 6-10).

The operator is the curvature of the mean loss over one fixed set of samples. Every pass over
the data is checked against the fingerprint of the constructor's validation pass (sample count
and an order-invariant checksum), so one-shot iterables, shuffling with ``drop_last``, sampling
with replacement, random augmentation and data changed after the build are refused instead of
giving wrong products; shuffling alone (same samples, other order) gives the right answer.
"""

from __future__ import annotations

import time

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, RandomSampler, TensorDataset

import gn_theory as gt
from cases import CASES
from gn_theory.data import gaussian_mixture
from gn_theory.models import mlp
from helpers import allclose_report, compare_matmat
from references import dense_hessian

KINDS = ["hessian", "ggn", "residual"]


@pytest.fixture
def tiny():
    return CASES[0].build()  # relu_mlp, 13 samples, 3 classes, float64


def vec(op, k=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (op.num_params,) if k is None else (op.num_params, k)
    return torch.randn(*shape, generator=g, dtype=op.torch_dtype)


def factory(kind):
    return getattr(gt, f"{kind}_operator")


# ----------------------------------------------------------------------------- one-shot data
class SharedGenerator:
    """Looks re-iterable, but ``__iter__`` hands out one shared generator."""

    def __init__(self, batches):
        self.gen = (b for b in batches)

    def __iter__(self):
        return self.gen


class FreshWrapperOverSharedGenerator:
    """Each ``__iter__`` is a new generator, but all of them drain one shared generator."""

    def __init__(self, batches):
        self.gen = (b for b in batches)

    def __iter__(self):
        return (b for b in self.gen)


class GeneratorDataset(IterableDataset):
    def __init__(self, batches):
        self.gen = (s for x, y in batches for s in zip(x, y))

    def __iter__(self):
        return self.gen


def _batches(X, y, size=5):
    return [(X[i : i + size], y[i : i + size]) for i in range(0, X.shape[0], size)]


@pytest.mark.parametrize("kind", KINDS)
def test_shared_generator_wrapper_is_refused_at_construction(tiny, kind):
    model, (X, y) = tiny
    with pytest.raises(gt.DataError, match="one-shot"):
        factory(kind)(model, SharedGenerator(_batches(X, y)))


def test_dataloader_over_generator_dataset_is_refused_at_construction(tiny):
    model, (X, y) = tiny
    loader = DataLoader(GeneratorDataset(_batches(X, y)), batch_size=4)
    with pytest.raises(gt.DataError, match="one-shot"):
        gt.ggn_operator(model, loader)


@pytest.mark.parametrize("kind", KINDS)
def test_data_used_up_by_the_validation_pass_is_refused_at_the_first_product(tiny, kind):
    model, (X, y) = tiny
    op = factory(kind)(model, FreshWrapperOverSharedGenerator(_batches(X, y)))
    with pytest.raises(gt.DataError, match=r"0 samples.*13 .*one-shot"):
        op @ vec(op)
    with pytest.raises(gt.DataError, match="one-shot"):
        op @ vec(op, 3)


# ----------------------------------------------------------------------------- data that differ between passes
@pytest.mark.parametrize("kind", KINDS)
def test_shuffle_with_drop_last_is_refused(tiny, kind):
    model, (X, y) = tiny
    loader = DataLoader(TensorDataset(X, y), batch_size=5, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    op = factory(kind)(model, loader)
    assert op.num_samples == 10
    with pytest.raises(gt.DataError, match="differ from the samples the operator was built"):
        for seed in range(3):  # a pass may by chance drop the same samples: then it is right
            op @ vec(op, seed=seed)


def test_shuffle_without_drop_last_gives_the_full_batch_operator(tiny):
    model, (X, y) = tiny
    loader = DataLoader(TensorDataset(X, y), batch_size=4, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    op = gt.hessian_operator(model, loader)
    compare_matmat(op, dense_hessian(model, X, y), rtol=1e-10)


def test_sampling_with_replacement_is_refused(tiny):
    model, (X, y) = tiny
    ds = TensorDataset(X, y)
    sampler = RandomSampler(ds, replacement=True, generator=torch.Generator().manual_seed(0))
    op = gt.ggn_operator(model, DataLoader(ds, batch_size=4, sampler=sampler))
    with pytest.raises(gt.DataError, match="sampler with replacement"):
        op @ vec(op)


class Augmented(Dataset):
    """Random noise added in ``__getitem__`` (random augmentation)."""

    def __init__(self, X, y):
        self.X, self.y = X, y

    def __len__(self):
        return self.X.shape[0]

    def __getitem__(self, i):
        return self.X[i] + 0.05 * torch.randn_like(self.X[i]), self.y[i]


def test_random_augmentation_is_refused(tiny):
    model, (X, y) = tiny
    op = gt.hessian_operator(model, DataLoader(Augmented(X, y), batch_size=5))
    with pytest.raises(gt.DataError, match="augmentation"):
        op @ vec(op, 2)


def test_class_structure_refuses_changing_data():
    X, y = gaussian_mixture(43, 4, 3, seed=0)  # 43 = 5 batches of 8 + 3 dropped
    model = mlp([4, 6, 3], seed=0)
    loader = DataLoader(TensorDataset(X, y), batch_size=8, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(1))
    with pytest.raises(gt.DataError, match="differ"):
        for _ in range(3):  # the class-mean pass is checked against the build's fingerprint
            gt.class_structure(model, loader, dtype=torch.float64)


def test_data_appended_after_the_build_is_refused(tiny):
    model, (X, y) = tiny
    batches = _batches(X, y)
    op = gt.hessian_operator(model, batches)
    before = op @ vec(op)
    batches.append((X[:4], y[:4]))
    with pytest.raises(gt.DataError, match=r"13 samples when the operator was built.*17"):
        op @ vec(op)
    del batches[-1]  # back to the samples it was built from: right again
    assert torch.equal(op @ vec(op), before)


def test_data_modified_in_place_after_the_build_is_refused(tiny):
    model, (X, y) = tiny
    X = X.clone()
    op = gt.ggn_operator(model, (X, y))
    X[0, 0] += 1.0
    with pytest.raises(gt.DataError, match="modified in place"):
        op @ vec(op)


# ----------------------------------------------------------------------------- endless data
class Endless(IterableDataset):
    def __iter__(self):
        while True:
            yield torch.randn(3, dtype=torch.float64), torch.tensor(1)


def test_endless_iterable_dataset_is_refused_after_a_bounded_pass():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2)).double()
    start = time.perf_counter()
    with pytest.raises(gt.DataError, match=r"max_batches=50 .*endless"):
        gt.hessian_operator(model, DataLoader(Endless(), batch_size=4), max_batches=50)
    assert time.perf_counter() - start < 30


def test_max_batches_bounds_unsized_data_and_is_checked(tiny):
    model, (X, y) = tiny

    class Unsized:
        def __iter__(self):
            return iter(_batches(X, y, 2))

    with pytest.raises(gt.DataError, match="more than max_batches=3"):
        gt.ggn_operator(model, Unsized(), max_batches=3)
    op = gt.ggn_operator(model, Unsized(), max_batches=7)  # exactly 7 batches: fine
    assert op.num_samples == 13
    with pytest.raises(gt.InvalidInputError):
        gt.ggn_operator(model, Unsized(), max_batches=0)


def test_sized_data_yielding_more_batches_than_its_len_is_refused(tiny):
    model, (X, y) = tiny

    class Liar:
        def __len__(self):
            return 2

        def __iter__(self):
            while True:
                yield X, y

    with pytest.raises(gt.DataError, match=r"more batches than its len\(\) = 2"):
        gt.hessian_operator(model, Liar())


# ----------------------------------------------------------------------------- values of the data
@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_inputs_are_refused_at_construction(bad):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    X = torch.randn(6, 3, dtype=torch.float64)
    X[4, 1] = bad
    # NaN reaches the outputs (named first); inf is hidden by tanh: the inputs are named
    with pytest.raises(gt.NonFiniteError, match=r"batch 1: the inputs contain 1 non-finite"):
        gt.hessian_operator(model, [(X[:3], torch.zeros(3, dtype=torch.long)),
                                    (X[3:], torch.zeros(3, dtype=torch.long))])


def test_non_finite_regression_targets_are_refused():
    model = torch.nn.Linear(3, 2).double()
    Y = torch.zeros(5, 2, dtype=torch.float64)
    Y[2, 0] = float("inf")
    with pytest.raises(gt.NonFiniteError, match="batch 0: the targets"):
        gt.ggn_operator(model, (torch.randn(5, 3, dtype=torch.float64), Y), "mse")


def test_class_structure_with_inf_inputs_raises_a_clear_error():
    X, y = gaussian_mixture(20, 4, 2, seed=0)
    X[3, 0] = float("inf")
    model = mlp([4, 5, 2], seed=0)
    with pytest.raises(gt.NonFiniteError, match="inputs"):
        gt.class_structure(model, (X, y), dtype=torch.float64)


# ----------------------------------------------------------------------------- the model failing on the data
def test_wrong_input_width_names_batch_shape_dtype_and_model(tiny):
    model, (X, y) = tiny
    bad = torch.randn(13, 5, dtype=torch.float64)
    with pytest.raises(gt.DataError, match=r"batch 1: the model \(Sequential\) failed on inputs of "
                                           r"shape \(8, 5\) and dtype torch.float64.*mat1 and mat2"):
        gt.hessian_operator(model, [(X[:5], y[:5]), (bad[5:], y[5:])])


def test_integer_inputs_name_the_dtype(tiny):
    model, (_, y) = tiny
    with pytest.raises(gt.DataError, match=r"dtype torch.int64.*only floating inputs are cast"):
        gt.ggn_operator(model, (torch.randint(0, 3, (13, 4)), y))


def test_inputs_that_cannot_reach_the_device_name_the_batch(tiny):
    model, (X, y) = tiny
    with pytest.raises(gt.DataError, match=r"batch 0: cannot move the inputs.*from meta to cpu"):
        gt.hessian_operator(model, (X.to("meta"), y))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8])
@pytest.mark.parametrize("kind", KINDS)
def test_small_integer_targets_give_the_long_target_operator(tiny, kind, dtype):
    model, (X, y) = tiny
    ref = factory(kind)(model, (X, y)).to_dense()
    op = factory(kind)(model, (X, y.to(dtype)))
    allclose_report(op.to_dense(), ref, rtol=1e-14, what=f"{dtype} targets")


@pytest.mark.parametrize("kind", KINDS)
def test_tensors_with_requires_grad_give_plain_products(tiny, kind):
    model, (X, y) = tiny
    ref = factory(kind)(model, (X, y))
    op = factory(kind)(model, (X.clone().requires_grad_(True), y))
    for V in (vec(op), vec(op, 3)):
        out = op @ V.clone().requires_grad_(True)
        assert not out.requires_grad and out.grad_fn is None
        allclose_report(out, ref @ V, rtol=1e-13, what="requires_grad inputs")
    Y = torch.randn(13, 3, dtype=torch.float64)
    reg = factory(kind)(model, (X, Y.clone().requires_grad_(True)), "mse")
    out = reg @ vec(reg, 2)
    assert out.grad_fn is None
    allclose_report(out, factory(kind)(model, (X, Y), "mse") @ vec(reg, 2), rtol=1e-13)
