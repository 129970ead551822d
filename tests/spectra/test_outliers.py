"""Tests of gn_theory.spectra.outliers: gap and edge rules on exact, Lanczos and SLQ spectra."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from spectra_matrices import hessian_like

from gn_theory.exceptions import InvalidInputError, ShapeError
from gn_theory.spectra import eigh, lanczos, outliers, slq


def test_outliers_gap_rule_on_exact_and_lanczos_spectra():
    A, eigs = hessian_like(600)
    o = outliers(eigh(A))
    assert o.count == 10
    np.testing.assert_allclose(o.values, np.sort(eigs)[::-1][:10], rtol=1e-10)
    assert o.bulk_edge < 1.0 < o.threshold < 5.0
    o2 = outliers(lanczos(A, 15, seed=0))
    assert o2.count == 10
    neg = outliers(np.r_[eigs, -np.linspace(0.0, 0.05, 30)], side="negative")
    assert neg.count == 3 and neg.values.tolist() == [-1.5, -2.0, -3.0]  # descending


def test_outliers_no_gap_means_no_outliers():
    assert outliers(np.linspace(1.0, 2.0, 100)).count == 0


def test_outliers_from_a_density():
    A, eigs = hessian_like(600, seed=3)
    d = slq(A, num_probes=6, num_steps=60, seed=0)
    o = outliers(d, max_outliers=20)
    assert o.count == 10
    np.testing.assert_allclose(o.values, np.sort(eigs)[::-1][:10], rtol=1e-6)


def test_outliers_edge_rule():
    e = np.r_[np.linspace(0.0, 1.0, 50), 3.0, 4.0]
    o = outliers(e, method="edge", edge=1.2)
    assert o.count == 2 and o.bulk_edge == 1.0 and o.threshold == 1.2
    assert o.values.tolist() == [4.0, 3.0] and o.settings["edge"] == 1.2


def test_outliers_accept_tensors_and_reject_broken_input():
    e = np.r_[np.linspace(0.0, 1.0, 50), 3.0, 4.0]
    assert outliers(torch.as_tensor(e)).count == outliers(e).count == 2
    with pytest.raises(InvalidInputError, match="non-finite"):
        outliers(np.r_[e, np.nan])
    with pytest.raises(ShapeError, match="1-d"):
        outliers(np.ones((3, 3)))
    with pytest.raises(InvalidInputError, match="empty"):
        outliers([])
    with pytest.raises(InvalidInputError, match="Spectrum"):
        outliers("abc")
