"""Resumable Hutch++ (issue 16): interrupted in the sketch, the range or the Hutchinson part.

The checkpoint holds the sketch basis and its exact trace part after the range products,
then the deflated Hutchinson samples per block; a run interrupted anywhere (an operator
that raises after a given number of products) and resumed equals the uninterrupted
checkpointed run bit for bit in float64. Foreign and truncated checkpoints are refused.
"""

from __future__ import annotations

import numpy as np
import pytest

import gn_theory as gt
from gn_theory.exceptions import ResultFileError
from helpers import Interrupted, InterruptingOperator

KW = {"method": "hutch++", "num_matvecs": 60, "block_size": 4, "seed": 5}


def _matrix() -> np.ndarray:
    a = np.random.default_rng(4).standard_normal((200, 200))
    return (a + a.T) / 2 + np.diag(np.arange(200.0))


def test_hutchpp_interrupted_anywhere_resumes_bit_for_bit(tmp_path):
    A = _matrix()
    plain = gt.trace(A, **KW)
    ref = gt.trace(A, checkpoint=tmp_path / "ref.npz", **KW)
    assert ref.estimate == plain.estimate and np.array_equal(ref.samples, plain.samples)
    assert ref.num_matvecs == 60
    kinds = set()
    for stop in (3, 25, 41, 47, 55):  # in the sketch, the range, and the Hutchinson part
        path = tmp_path / f"stop{stop}.npz"
        with pytest.raises(Interrupted):
            gt.trace(InterruptingOperator(A, stop), checkpoint=path, **KW)
        if path.exists():
            with np.load(path) as z:
                kinds.add(int(z["samples"].size))
        back = gt.trace(A, checkpoint=path, resume=True, **{**KW, "seed": None if path.exists()
                                                              else KW["seed"]})
        assert back.seed == ref.seed
        assert back.estimate == ref.estimate and back.bse == ref.bse
        assert np.array_equal(back.samples, ref.samples)
        assert back.num_matvecs == ref.num_matvecs
    assert kinds == {0, 4, 12}  # after the range products, and after one and three blocks
    again = gt.trace(A, checkpoint=tmp_path / "stop55.npz", resume=True, **KW)  # finished
    assert again.estimate == ref.estimate and again.num_matvecs == ref.num_matvecs


def test_hutchpp_foreign_and_truncated_checkpoints_are_refused(tmp_path):
    A = _matrix()
    path = tmp_path / "ck.npz"
    with pytest.raises(Interrupted):
        gt.trace(InterruptingOperator(A, 45), checkpoint=path, **KW)
    with pytest.raises(ResultFileError, match="operator"):
        gt.trace(2 * A, checkpoint=path, resume=True, **KW)
    with pytest.raises(ResultFileError, match="seed"):
        gt.trace(A, checkpoint=path, resume=True, **{**KW, "seed": 6})
    with pytest.raises(ResultFileError, match="num_matvecs"):
        gt.trace(A, checkpoint=path, resume=True, **{**KW, "num_matvecs": 63})
    with pytest.raises(ResultFileError, match="method"):
        gt.trace(A, checkpoint=path, resume=True, **{**KW, "method": "hutchinson"})
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[:100])
    with pytest.raises(ResultFileError, match="truncated or corrupt"):
        gt.trace(A, checkpoint=cut, resume=True, **KW)
