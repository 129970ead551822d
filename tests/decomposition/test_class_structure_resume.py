"""Resumable class structure (issue 16): the streaming class-mean pass interrupted and resumed.

The pass runs in rounds of ``batches_per_checkpoint`` batches and checkpoints the class
sums, counts, loss and rounds after each; a pass interrupted in any round (data that
raise at a given batch) and resumed equals the uninterrupted checkpointed pass bit for
bit in float64. Another model, data, setting, or a truncated file is refused.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gn_theory.data import gaussian_mixture
from gn_theory.decomposition import class_structure
from gn_theory.exceptions import ResultFileError
from gn_theory.models import mlp


class _Interrupted(Exception):
    pass


class _Interrupting(list):
    """A list of batches whose second pass (the streaming one) stops at batch ``at``."""

    def __init__(self, batches, at: int) -> None:
        super().__init__(batches)
        self.at, self.passes = at, 0

    def __iter__(self):
        self.passes += 1
        for i, batch in enumerate(list.__iter__(self)):
            if self.passes == 2 and i == self.at:
                raise _Interrupted
            yield batch


def _problem(seed: int = 0):
    X, y = gaussian_mixture(130, 5, 3, seed=0, dtype=torch.float64)
    model = mlp([5, 8, 3], seed=seed).double()
    return model, [(X[i : i + 10], y[i : i + 10]) for i in range(0, 130, 10)]  # 13 batches


def _assert_same(a, b) -> None:
    for name in ("class_means", "class_level_means", "self_class_means", "K", "K0", "K1", "K2"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None) and (x is None or np.array_equal(x, y)), name
    assert np.array_equal(a.class_counts, b.class_counts)
    assert a.loss_value == b.loss_value and a.num_matvecs == b.num_matvecs


@pytest.mark.parametrize("method", ["class_split", "masked"])
def test_class_structure_interrupted_resumes_bit_for_bit(tmp_path, method):
    model, batches = _problem()
    kw = {"method": method, "buffer_rows": 8, "batches_per_checkpoint": 3}
    plain = class_structure(model, batches, method=method, buffer_rows=8)
    ref = class_structure(model, batches, checkpoint=tmp_path / "ref.npz", **kw)
    np.testing.assert_allclose(ref.class_means, plain.class_means, rtol=1e-12, atol=1e-15)
    assert ref.settings["batches_per_checkpoint"] == 3
    for at in (2, 4, 9, 12):
        path = tmp_path / f"at{at}.npz"
        with pytest.raises(_Interrupted):
            class_structure(model, _Interrupting(batches, at), checkpoint=path, **kw)
        rounds = 0
        if path.exists():  # nothing is written before the first round ends
            with np.load(path) as z:
                rounds = int(z["rounds"])
        assert rounds == at // 3
        _assert_same(class_structure(model, batches, checkpoint=path, resume=True, **kw), ref)
    again = class_structure(model, batches, checkpoint=tmp_path / "at9.npz", resume=True, **kw)
    _assert_same(again, ref)  # a complete pass: nothing computed again


def test_class_structure_foreign_and_truncated_checkpoints_are_refused(tmp_path):
    model, batches = _problem()
    kw = {"buffer_rows": 8, "batches_per_checkpoint": 3}
    path = tmp_path / "ck.npz"
    with pytest.raises(_Interrupted):
        class_structure(model, _Interrupting(batches, 7), checkpoint=path, **kw)
    other_model, _ = _problem(seed=1)
    with pytest.raises(ResultFileError, match="operator"):
        class_structure(other_model, batches, checkpoint=path, resume=True, **kw)
    with pytest.raises(ResultFileError, match="operator"):  # other data
        class_structure(model, batches[:-1], checkpoint=path, resume=True, **kw)
    with pytest.raises(ResultFileError, match="batches_per_checkpoint"):
        class_structure(model, batches, checkpoint=path, resume=True,
                        **{**kw, "batches_per_checkpoint": 4})
    with pytest.raises(ResultFileError, match="buffer_rows"):
        class_structure(model, batches, checkpoint=path, resume=True, **{**kw, "buffer_rows": 9})
    with pytest.raises(ResultFileError, match="full"):  # the 2CP fallback holds other sums
        with pytest.warns(Warning):
            class_structure(model, batches, checkpoint=path, resume=True, max_bytes=10_000, **kw)
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(ResultFileError, match="truncated or corrupt"):
        class_structure(model, batches, checkpoint=cut, resume=True, **kw)
