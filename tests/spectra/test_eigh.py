"""Tests of gn_theory.spectra.eigh: the dense spectrum, descending, from every input type."""

from __future__ import annotations

import numpy as np
import scipy.sparse.linalg as sla
import torch
from spectra_matrices import hessian_like, rotate

from gn_theory.operators import DenseOperator
from gn_theory.spectra import eigh


def test_eigh_matches_numpy_and_reports_residuals():
    A, eigs = hessian_like(200)
    s = eigh(A, return_eigenvectors=True)
    np.testing.assert_allclose(s.eigenvalues, np.linalg.eigvalsh(A)[::-1], atol=1e-12)
    assert s.eigenvectors.shape == (200, 200)
    assert s.residual_norms.max() < 1e-11 * np.abs(eigs).max()
    assert s.which == "all" and s.method == "eigh" and s.all_converged


def test_eigh_is_descending_with_matching_vectors():
    A, _ = hessian_like(120, seed=1)
    s = eigh(A, return_eigenvectors=True)
    assert np.all(np.diff(s.eigenvalues) <= 0)
    X = s.eigenvectors
    np.testing.assert_allclose(A @ X, X * s.eigenvalues, atol=1e-10)
    np.testing.assert_array_equal(s.largest(3), s.eigenvalues[:3])
    np.testing.assert_array_equal(s.smallest(2), np.sort(s.eigenvalues)[:2])


def test_eigh_accepts_every_input_type():
    A = rotate(np.arange(1.0, 31.0), 0)
    ref = np.arange(1.0, 31.0)[::-1]
    for X in (A, torch.as_tensor(A), DenseOperator(A), sla.aslinearoperator(A)):
        np.testing.assert_allclose(eigh(X).eigenvalues, ref, rtol=1e-12)
