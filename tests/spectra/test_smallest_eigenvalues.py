"""Tests of gn_theory.spectra.smallest_eigenvalues (Lanczos with the top eigenpairs deflated).

References: ``numpy.linalg.eigvalsh`` on matrices whose spectra look like trained Hessians
(a few large outliers, a bulk crowded at zero, a clustered negative end, repeated values) and
on the dense float64 Hessian of a tiny model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from spectra_matrices import rotate

import gn_theory as gt
from gn_theory.exceptions import InvalidInputError
from gn_theory.spectra import lanczos, smallest_eigenvalues

from cases import TANH_C3_UNBALANCED


def crowded(P: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """8 outliers up to 200, a bulk in [0, 0.3] with an atom at 0, a negative end in a cluster."""
    rng = np.random.default_rng(seed)
    neg = -0.05 - 0.002 * np.arange(6)  # clustered: spacing 1e-2 of the bulk's width
    outl = np.linspace(20.0, 200.0, 8)
    bulk = 0.3 * rng.uniform(0.0, 1.0, P - 6 - 8 - P // 4) ** 2
    eigs = np.sort(np.r_[neg, outl, bulk, np.zeros(P // 4)])[::-1]
    return rotate(eigs, seed), eigs


@pytest.mark.parametrize("seed", [0, 1])
def test_smallest_match_eigvalsh_with_deflation(seed):
    A, eigs = crowded(seed=seed)
    s = smallest_eigenvalues(A, 3, top=8, seed=seed)
    np.testing.assert_allclose(s.eigenvalues, eigs[-3:], rtol=0, atol=1e-6 * 200)
    assert s.which == "smallest" and s.all_converged
    assert np.all(np.diff(s.eigenvalues) <= 0)  # descending, most negative last
    assert s.settings["deflated"] == 8 and s.settings["deflation_source"] == "lanczos"
    assert s.eigenvectors is None


def test_deflation_spends_fewer_products_than_plain_lanczos():
    A, eigs = crowded(seed=2)
    top = lanczos(A, 8, seed=0)
    s = smallest_eigenvalues(A, 3, top=top, seed=0, max_matvecs=4000)
    plain = lanczos(A, 3, "smallest", seed=0, tol=1e-6, max_matvecs=4000, warn=False,
                    return_eigenvectors=False)
    np.testing.assert_allclose(s.eigenvalues, eigs[-3:], rtol=0, atol=1e-6 * 200)
    np.testing.assert_allclose(plain.eigenvalues, eigs[-3:], rtol=0, atol=1e-6 * 200)
    assert s.settings["deflation_source"] == "given"
    assert s.num_matvecs < plain.num_matvecs  # the given top costs nothing here
    assert s.num_matvecs < 0.7 * plain.num_matvecs


def test_repeated_smallest_values_are_all_found():
    rng = np.random.default_rng(5)
    P = 300
    eigs = np.sort(np.r_[[-0.2, -0.2, -0.2], np.linspace(40, 100, 6),
                        0.5 * rng.uniform(size=P - 9)])[::-1]
    A = rotate(eigs, 5)
    s = smallest_eigenvalues(A, 4, top=6, seed=0)
    np.testing.assert_allclose(s.eigenvalues, eigs[-4:], rtol=0, atol=1e-6 * 100)


def test_without_usable_deflation_it_is_plain_lanczos():
    A, eigs = crowded(seed=3)
    no_vec = lanczos(A, 8, seed=0, return_eigenvectors=False)
    s = smallest_eigenvalues(A, 2, top=no_vec, seed=0, max_matvecs=4000)
    assert s.settings["deflated"] == 0 and "not used" in s.settings["deflation_source"]
    np.testing.assert_allclose(s.eigenvalues, eigs[-2:], rtol=0, atol=1e-6 * 200)
    s0 = smallest_eigenvalues(A, 2, top=0, seed=0, max_matvecs=4000)
    assert s0.settings["deflated"] == 0 and s0.settings["deflation_source"] == "none"
    np.testing.assert_allclose(s0.eigenvalues, eigs[-2:], rtol=0, atol=1e-6 * 200)
    # a top whose smallest value is not positive would put the shift among the wanted values
    B = rotate(np.r_[np.linspace(-1.0, -0.5, 5), np.linspace(0.1, 1, 45)], 0)
    allneg = lanczos(-B, 5, seed=0)  # eigenvectors of B's most negative values
    s1 = smallest_eigenvalues(B, 2, top=allneg.__class__(
        eigenvalues=-allneg.eigenvalues, eigenvectors=allneg.eigenvectors,
        residual_norms=allneg.residual_norms, converged=allneg.converged,
        num_matvecs=0, which="smallest", method="lanczos", num_params=50), seed=0)
    assert s1.settings["deflated"] == 0
    np.testing.assert_allclose(s1.eigenvalues, [-0.875, -1.0], atol=1e-8)


def test_model_hessian_against_dense_float64():
    model, (X, y) = TANH_C3_UNBALANCED.build()
    model = model.double()
    H = gt.hessian_operator(model, (X.double(), y))
    dense = np.linalg.eigvalsh(H.to_dense().numpy())
    s = smallest_eigenvalues(H, 3, top=6, seed=0, tol=1e-9, max_matvecs=2000)
    np.testing.assert_allclose(s.eigenvalues, dense[:3][::-1], rtol=0,
                               atol=1e-7 * np.abs(dense).max())
    assert s.num_matvecs > 0 and s.settings["deflated"] == 6


def test_bad_input():
    A, _ = crowded(P=60)
    with pytest.raises(InvalidInputError, match="below the dimension"):
        smallest_eigenvalues(A, 60)
    with pytest.raises(InvalidInputError, match="top must be"):
        smallest_eigenvalues(A, 2, top="10")
    with pytest.raises(InvalidInputError):
        smallest_eigenvalues(A, 2, tol=0.0)
    with pytest.raises(InvalidInputError):
        smallest_eigenvalues(A, 0)


def test_torch_tensor_input():
    A, eigs = crowded(P=200, seed=4)
    s = smallest_eigenvalues(torch.as_tensor(A), 2, top=8, seed=0)
    np.testing.assert_allclose(s.eigenvalues, eigs[-2:], rtol=0, atol=1e-6 * 200)
