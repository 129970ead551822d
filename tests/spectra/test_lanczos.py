"""Tests of gn_theory.spectra.lanczos: known spectra, blocks, restarts, cost, models, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as sla
import torch
from spectra_matrices import CASES, hessian_like, reference, rotate

import gn_theory as gt
from gn_theory.exceptions import ConvergenceWarning, InvalidInputError
from gn_theory.operators import DenseOperator
from gn_theory.spectra import eigh, lanczos, slq


def test_lanczos_full_basis_is_exact():
    """With the basis spanning the whole space, Ritz values are the eigenvalues."""
    A, eigs = hessian_like(60)
    s = lanczos(A, 60, "largest", basis_size=60, seed=1)
    np.testing.assert_allclose(s.eigenvalues, np.sort(eigs)[::-1], atol=1e-11)
    assert s.all_converged


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("which", ["largest", "smallest", "both"])
def test_lanczos_known_spectra(name, which):
    A, eigs = CASES[name]()
    if name == "random_symmetric" and which != "largest":
        k = 4  # semicircle edges are crowded; keep the test fast
    else:
        k = 6
    if name == "low_rank_plus_bulk" and which == "smallest":
        k = 3  # the three negative outliers; below them the bulk is a zero atom
    s = lanczos(A, k, which, tol=1e-10, seed=0, max_matvecs=20000)
    ref = reference(eigs, k, which)
    assert s.all_converged, s
    assert np.all(np.diff(s.eigenvalues) <= 0)  # descending
    np.testing.assert_allclose(s.eigenvalues, ref, rtol=1e-8, atol=1e-8 * np.abs(eigs).max())
    # the reported residuals are true residuals of the returned vectors
    X = s.eigenvectors
    true_res = np.linalg.norm(A @ X - X * s.eigenvalues, axis=0)
    scale = np.abs(eigs).max()
    assert np.all(true_res <= 1e-9 * scale), true_res
    np.testing.assert_allclose(s.residual_norms, true_res, atol=1e-9 * scale)
    np.testing.assert_allclose(X.T @ X, np.eye(k), atol=1e-8)


@pytest.mark.parametrize("block_size", [2, 4])
def test_block_lanczos(block_size):
    A, eigs = hessian_like(500, seed=2)
    s = lanczos(A, 6, "largest", block_size=block_size, seed=0, tol=1e-10)
    assert s.settings["block_size"] == block_size
    np.testing.assert_allclose(s.eigenvalues, np.sort(eigs)[-6:][::-1], rtol=1e-8)


def test_block_lanczos_finds_a_multiple_eigenvalue():
    eigs = np.r_[np.full(3, 10.0), np.linspace(0.0, 1.0, 197)]
    A = rotate(eigs, 5)
    s = lanczos(A, 3, block_size=3, seed=0)
    np.testing.assert_allclose(s.eigenvalues, [10.0, 10.0, 10.0], rtol=1e-8)


def test_restart_keeps_the_basis_bounded():
    """A basis smaller than k + buffer forces restarts; the answer stays right."""
    A, eigs = hessian_like(800, seed=4)
    k = 8
    s = lanczos(A, k, "largest", basis_size=k + 3, seed=0, tol=1e-9, max_matvecs=20000)
    assert s.settings["restarts"] > 0
    assert s.settings["basis_size"] == k + 3
    assert s.settings["block_size"] == 1
    np.testing.assert_allclose(s.eigenvalues, np.sort(eigs)[-k:][::-1], rtol=1e-8)
    assert s.all_converged


def test_restart_memory_is_bounded(monkeypatch):
    """The only P-sized allocation in the solver is the (m + b, P) basis."""
    sizes = []
    real_empty = torch.empty

    def spy(*shape, **kw):
        sizes.append(tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], tuple) else shape)
        return real_empty(*shape, **kw)

    monkeypatch.setattr(torch, "empty", spy)
    A, _ = hessian_like(800, seed=4)
    s = lanczos(A, 8, basis_size=12, seed=0, tol=1e-9, max_matvecs=20000)
    monkeypatch.undo()
    assert s.settings["restarts"] > 0
    assert sizes and all(sh[0] <= 12 + 1 for sh in sizes if len(sh) == 2), sizes


def test_lanczos_on_scipy_operator_needs_at_most_twice_eigsh():
    A, _ = hessian_like(800, seed=6)
    count = [0]

    def mv(x):
        count[0] += 1
        return A @ x

    L = sla.LinearOperator(A.shape, matvec=mv, dtype=np.float64)
    sla.eigsh(L, 10, which="LA", tol=1e-8)
    n_eigsh = count[0]
    s = lanczos(L, 10, tol=1e-8, seed=0)
    assert s.all_converged and s.settings["block_size"] == 1
    assert s.num_matvecs <= 2 * n_eigsh, (s.num_matvecs, n_eigsh)
    np.testing.assert_allclose(s.eigenvalues, np.linalg.eigvalsh(A)[-10:][::-1], rtol=1e-8)


def test_lanczos_float32_operator_with_float64_basis():
    A, eigs = hessian_like(300)
    op = DenseOperator(torch.as_tensor(A, dtype=torch.float32))
    s = lanczos(op, 3, dtype=torch.float64, tol=1e-5, seed=0)
    np.testing.assert_allclose(s.eigenvalues, np.sort(eigs)[-3:][::-1], rtol=1e-5)
    assert s.settings["basis_dtype"] == "float64" and s.settings["dtype"] == "float32"


def test_lanczos_is_reproducible_with_a_seed():
    A, _ = hessian_like(400)
    a = lanczos(A, 4, tol=1e-6, seed=7)
    b = lanczos(A, 4, tol=1e-6, seed=7)
    c = lanczos(A, 4, tol=1e-6, seed=8)
    np.testing.assert_array_equal(a.eigenvalues, b.eigenvalues)
    np.testing.assert_array_equal(a.eigenvectors, b.eigenvectors)
    assert a.num_matvecs == b.num_matvecs
    assert not np.array_equal(a.eigenvectors, c.eigenvectors)


def test_lanczos_warns_when_not_converged():
    A, _ = hessian_like(400)
    with pytest.warns(ConvergenceWarning, match="converged"):
        s = lanczos(A, 5, "smallest", max_matvecs=12, seed=0)
    assert not s.all_converged and s.num_matvecs <= 12


def test_progress_bar(capsys):
    A, _ = hessian_like(200)
    lanczos(A, 2, seed=0, progress=True)
    slq(A, num_probes=2, num_steps=5, seed=0, progress=True)
    err = capsys.readouterr().err
    assert "lanczos" in err and "slq" in err


@pytest.mark.parametrize("factory", ["hessian_operator", "ggn_operator", "residual_operator"])
def test_lanczos_agrees_with_eigh_on_tiny_models(tiny_model, factory):
    model, data = tiny_model
    op = getattr(gt, factory)(model, data)
    exact = eigh(op).eigenvalues  # descending
    scale = np.abs(exact).max()
    top = lanczos(op, 4, "largest", seed=0, tol=1e-10)
    np.testing.assert_allclose(top.eigenvalues, exact[:4], rtol=1e-8, atol=1e-9 * scale)
    # "both": the ceil(k/2) largest first, then the smallest, all descending
    ref = np.r_[exact[:2], exact[-2:]]
    if factory == "ggn_operator":
        # G's smallest eigenvalue is 0 with multiplicity >= P - N (C - 1), next to a
        # cluster at ~1e-7 ||G||: not resolvable to 1e-10. What must hold is the
        # Ritz bound: each reported value lies within its residual of the true one.
        with pytest.warns(ConvergenceWarning):
            both = lanczos(op, 4, "both", seed=0, tol=1e-10, block_size=2, max_matvecs=600)
        assert np.all(np.abs(both.eigenvalues - ref) <= both.residual_norms + 1e-9 * scale)
        assert both.converged[:2].all()
    else:
        both = lanczos(op, 4, "both", seed=0, tol=1e-10)
        np.testing.assert_allclose(both.eigenvalues, ref, rtol=1e-8, atol=1e-9 * scale)
        assert both.all_converged
    assert top.settings["kind"] == factory.split("_")[0].replace("ggn", "ggn")
    assert top.settings["model"] == "Sequential"


def test_bad_k():
    A = np.eye(10)
    for k in (0, -1, 11):
        with pytest.raises(InvalidInputError, match="k must"):
            lanczos(A, k)
    with pytest.raises(InvalidInputError, match="k must"):
        lanczos(A, 2.5)
    with pytest.raises(InvalidInputError, match="which"):
        lanczos(A, 2, "middle")
    with pytest.raises(InvalidInputError, match="basis_size"):
        lanczos(A, 5, basis_size=4)
    with pytest.raises(InvalidInputError, match="tol"):
        lanczos(A, 2, tol=-1.0)
