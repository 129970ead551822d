"""Issue 13, spectra: wrong answers reported as right, and bare tracebacks turned into clear errors.

Each test reproduces a case of the issue (what was seen is in the docstring).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import scipy.sparse.linalg as sla
import torch
from spectra_matrices import rotate

import gn_theory as gt
from gn_theory.exceptions import (
    ConvergenceWarning,
    DTypeError,
    InvalidInputError,
    NotSymmetricError,
)
from gn_theory.operators import CurvatureOperator, DenseOperator
from gn_theory.results import SpectralDensity
from gn_theory.spectra import check_symmetric, eigh, lanczos, outliers, slq, trace


def _quiet(fn, *args, **kw):
    """Call ``fn`` and fail on any warning (a right answer needs no excuse)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kw)


# ----------------------------------------------------------------- 1. multiplicities
def _two_rank_one(P: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((P, 2)))
    u, w = Q[:, 0], Q[:, 1]
    return 5.0 * np.outer(u, u) - 3.0 * np.outer(w, w)


@pytest.mark.parametrize(
    ("which", "expected"),
    [("largest", [5.0, 0.0, 0.0]), ("smallest", [0.0, 0.0, -3.0]), ("both", [5.0, 0.0, -3.0])],
)
def test_lanczos_rank_two_returns_the_zero_copies(which, expected):
    """Seen: ``5 u u^T - 3 w w^T`` in 50 dimensions, top 3: [-3, 0, 5], all converged."""
    s = _quiet(lanczos, _two_rank_one(), 3, which, seed=0)
    np.testing.assert_allclose(s.eigenvalues, expected, atol=1e-10)
    assert s.all_converged
    assert s.settings["breakdowns"] >= 1


@pytest.mark.parametrize("seed", range(5))
def test_lanczos_ggn_of_two_samples_smallest_are_zeros(seed):
    """Seen: G of 2 samples (P = 83, rank 4), smallest 3: [~0, 0.292, 0.490]; truth [0, 0, 0]."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 10), torch.nn.Tanh(), torch.nn.Linear(10, 3)
    ).double()
    g = torch.Generator().manual_seed(1)
    X = torch.randn(2, 4, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 2])
    G = gt.ggn_operator(model, (X, y))
    exact = eigh(G).eigenvalues
    assert G.num_params == 83 and int((np.abs(exact) > 1e-10 * exact[0]).sum()) == 4
    s = _quiet(lanczos, G, 3, "smallest", seed=seed)
    np.testing.assert_allclose(s.eigenvalues, [0.0, 0.0, 0.0], atol=1e-8 * exact[0])
    top = _quiet(lanczos, G, 6, "largest", seed=seed)  # 4 positive, then two zeros
    np.testing.assert_allclose(top.eigenvalues, exact[:6], atol=1e-8 * exact[0])


def test_lanczos_multiple_of_the_identity():
    """Seen: ``lanczos(3 * eye(50), 5, max_matvecs=3)``: 3 values, "converged", no warning."""
    s = _quiet(lanczos, 3.0 * np.eye(50), 5, seed=0)
    np.testing.assert_allclose(s.eigenvalues, np.full(5, 3.0), rtol=1e-12)
    assert s.all_converged
    with pytest.raises(InvalidInputError, match="max_matvecs"):
        lanczos(3.0 * np.eye(50), 5, max_matvecs=3)
    # the whole spectrum of a multiple of the identity
    s = _quiet(lanczos, 3.0 * np.eye(20), 20, seed=0)
    np.testing.assert_allclose(s.eigenvalues, np.full(20, 3.0), rtol=1e-12)


def test_lanczos_budget_ending_the_copy_search_is_not_converged():
    """Running out of products before the copies are confirmed: warned, flagged, named."""
    A = _two_rank_one()
    with pytest.warns(ConvergenceWarning, match="max_matvecs"):
        s = lanczos(A, 3, "largest", max_matvecs=4, seed=0)  # probe + 3 Krylov products
    assert s.num_matvecs <= 4
    assert s.converged[0] and not s.converged[1:].any()


def test_lanczos_finds_a_repeated_top_eigenvalue_among_few_values():
    eigs = np.r_[np.full(4, 7.0), np.full(30, 1.0), np.full(26, -2.0)]
    A = rotate(eigs, 3)
    s = _quiet(lanczos, A, 6, "both", seed=1)
    np.testing.assert_allclose(s.eigenvalues, [7.0, 7.0, 7.0, -2.0, -2.0, -2.0], atol=1e-9)


def test_lanczos_reports_true_residuals_after_a_breakdown():
    A = _two_rank_one()
    s = lanczos(A, 4, "largest", seed=2)
    X = s.eigenvectors
    true = np.linalg.norm(A @ X - X * s.eigenvalues, axis=0)
    assert np.all(true <= s.residual_norms + 1e-12)
    np.testing.assert_allclose(X.T @ X, np.eye(4), atol=1e-10)


# ----------------------------------------------------------------- 2. float16
def test_lanczos_float16_matrix_is_computed_in_float32():
    """Seen: ``diag(1..50)`` in half precision, top 3: [22.3, 24.2, 29.9], residual 0."""
    A = np.diag(np.arange(1.0, 51.0)).astype(np.float16)
    s = lanczos(A, 3, seed=0, tol=1e-5)
    np.testing.assert_allclose(s.eigenvalues, [50.0, 49.0, 48.0], rtol=1e-5)
    assert s.all_converged and s.settings["compute_dtype"] == "float32"
    d = slq(torch.as_tensor(A), num_probes=2, num_steps=10, seed=0)
    assert d.settings["compute_dtype"] == "float32"
    t = trace(A, num_matvecs=10, seed=0)
    assert t.estimate == pytest.approx(1275.0, rel=1e-5)  # Rademacher: exact on a diagonal


class _HalfOperator(CurvatureOperator):
    """A float16 operator that is not a dense matrix (a half-precision model, say)."""

    def __init__(self):
        super().__init__(20, torch.device("cpu"), torch.float16)
        self.d = torch.arange(1.0, 21.0, dtype=torch.float16)

    def _matmat_torch(self, V):
        return self.d[:, None] * V


def test_half_precision_products_are_refused():
    for fn in (lambda op: lanczos(op, 2), lambda op: slq(op), lambda op: trace(op)):
        with pytest.raises(DTypeError, match="float16"):
            fn(_HalfOperator())


def test_eigh_half_precision_solver_is_refused():
    """Seen: ``eigh(dtype=float16)``: NotImplementedError from torch."""
    with pytest.raises(InvalidInputError, match="dtype"):
        eigh(np.eye(3), dtype=torch.float16)
    s = eigh(np.diag([3.0, 1.0, 2.0]).astype(np.float16))  # a half matrix, solved in float64
    assert s.eigenvalues.tolist() == [3.0, 2.0, 1.0]


# ----------------------------------------------------------------- 3. outliers of SLQ
def test_outliers_of_an_slq_that_stopped_early_ignore_the_padding():
    """Seen: an SLQ stopped at 9 of 40 steps gave 39 "outliers", all equal; its eigh gave 8."""
    eigs = np.r_[-np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0]), np.full(32, -1.0)]
    A = rotate(eigs, 0)
    d = slq(A, num_probes=3, num_steps=40, seed=0)
    assert max(d.settings["lengths"]) <= 10  # 9 distinct values: every probe stops early
    exact = outliers(eigh(A), side="negative")
    o = outliers(d, side="negative")
    assert exact.count == 8
    assert o.count == exact.count
    np.testing.assert_allclose(o.values, exact.values, rtol=1e-8)
    # the value of a weight-0 node never matters
    nodes = d.nodes.copy()
    nodes[d.weights == 0] = -1e6
    moved = dataclasses.replace(d, nodes=nodes)
    assert outliers(moved, side="negative").count == 8


def test_outliers_refuse_nan_and_inf_eigenvalues():
    """Seen: a NaN eigenvalue dropped silently, inf reported as an outlier."""
    e = np.r_[np.linspace(0.1, 1.0, 30), 9.0]
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(InvalidInputError, match="non-finite"):
            outliers(np.r_[e, bad])
        padded = dataclasses.replace(
            SpectralDensity.from_eigenvalues(np.r_[e, 0.5]),
            nodes=np.r_[e, bad][None, :], weights=np.r_[np.ones(31) / 31, 0.0][None, :],
        )
        with pytest.raises(InvalidInputError, match="non-finite"):
            outliers(padded)  # even with weight 0
        with pytest.raises(InvalidInputError, match="edge"):
            outliers(e, method="edge", edge=bad)


# ----------------------------------------------------------------- 4. asymmetry
def _asymmetric(P: int = 60) -> np.ndarray:
    rng = np.random.default_rng(4)
    A = rotate(np.linspace(1.0, 10.0, P), 4)
    return A + 0.05 * rng.standard_normal((P, P))


def test_non_symmetric_operator_is_refused_by_default():
    """Seen: wrong Lanczos values with a warning blaming max_matvecs, a wrong SLQ silently."""
    A = _asymmetric()
    with pytest.raises(NotSymmetricError, match="not symmetric"):
        lanczos(A, 3, seed=0)
    with pytest.raises(NotSymmetricError, match="not symmetric"):
        lanczos(A, 3, seed=0, block_size=2)
    with pytest.raises(NotSymmetricError, match="not symmetric"):
        slq(A, num_probes=1, num_steps=10, seed=0)
    with pytest.raises(NotSymmetricError, match="not symmetric"):
        slq(A, num_probes=4, num_steps=10, seed=0)
    with pytest.raises(NotSymmetricError, match="not symmetric"):
        slq(sla.aslinearoperator(A), seed=0)


def test_symmetry_probe_costs_at_most_one_product():
    A = rotate(np.linspace(1.0, 10.0, 80), 1)
    on = lanczos(A, 3, seed=0)
    off = lanczos(A, 3, seed=0, check_symmetric=False)
    assert on.num_matvecs == off.num_matvecs + 1
    np.testing.assert_allclose(on.eigenvalues, off.eigenvalues, rtol=1e-13)  # same start
    assert on.settings["asymmetry"] < 1e-12 and off.settings["asymmetry"] is None
    blk = lanczos(A, 3, seed=0, block_size=2)
    assert blk.num_matvecs == lanczos(A, 3, seed=0, block_size=2, check_symmetric=False).num_matvecs
    assert slq(A, num_probes=1, num_steps=5, seed=0).num_matvecs == 6
    assert slq(A, num_probes=3, num_steps=5, seed=0).num_matvecs == 15  # free with 2+ probes


# ----------------------------------------------------------------- complex input
def test_complex_input_is_refused():
    """Seen: ``eigh([[2, 1j], [-1j, 2]])`` gives [2, 2] (the imaginary part dropped)."""
    H = np.array([[2.0, 1j], [-1j, 2.0]])
    for A in (H, torch.as_tensor(H), sla.aslinearoperator(H)):
        with pytest.raises(DTypeError, match="complex"):
            eigh(A)
        with pytest.raises(DTypeError, match="complex"):
            lanczos(A, 1)
        with pytest.raises(DTypeError, match="complex"):
            slq(A)
        with pytest.raises(DTypeError, match="complex"):
            trace(A)
        with pytest.raises(DTypeError, match="complex"):
            check_symmetric(A)
    assert eigh(H.real).eigenvalues.tolist() == [2.0, 2.0]


# ----------------------------------------------------------------- tolerances, seeds
def test_one_real_number_rule_for_tolerances():
    """Seen: ``tol=True`` accepted as 1, ``tol=np.float32(1e-6)`` refused."""
    A = np.diag(np.arange(1.0, 51.0))
    for bad in (True, False, "1e-8", 1j, np.nan, np.inf, -1.0, 0.0, None):
        with pytest.raises(InvalidInputError, match="tol"):
            lanczos(A, 2, tol=bad)
    for good in (np.float32(1e-6), np.float64(1e-9), 1e-8, np.array(1e-7)):
        s = lanczos(A, 2, tol=good, seed=0)
        assert s.all_converged and s.settings["tol"] == float(good)
    with pytest.raises(InvalidInputError, match="rtol"):
        check_symmetric(A, rtol=True)
    assert check_symmetric(A, rtol=np.float32(1e-6)) < 1e-12
    e = np.r_[np.linspace(0.1, 1.0, 30), 9.0]
    with pytest.raises(InvalidInputError, match="min_ratio"):
        outliers(e, min_ratio=True)
    assert outliers(e, min_ratio=np.float32(3.0)).count == 1
    with pytest.raises(InvalidInputError, match="edge"):
        outliers(e, method="edge", edge=True)
    assert outliers(e, method="edge", edge=np.float32(2.0)).count == 1
    d = SpectralDensity.from_eigenvalues(e)
    with pytest.raises(InvalidInputError, match="sigma"):
        d.density([0.0], sigma=True)
    assert d.density([1.0], sigma=np.float32(0.5)).shape == (1,)
    with pytest.raises(InvalidInputError, match="eps"):
        d.mass_near_zero(eps=True)


@pytest.mark.parametrize("seed", [2**70, 2**63, -1, "0", 1.5, True, np.float64(3.0)])
def test_bad_seeds_are_refused_everywhere(seed):
    """Seen: ``seed=2**70`` or a string: a bare traceback."""
    A = np.diag(np.arange(1.0, 21.0))
    for fn in (
        lambda: lanczos(A, 1, seed=seed),
        lambda: slq(A, num_steps=3, seed=seed),
        lambda: trace(A, num_matvecs=4, seed=seed),
        lambda: check_symmetric(A, seed=seed),
    ):
        with pytest.raises(InvalidInputError, match="seed"):
            fn()
    assert lanczos(A, 1, seed=np.int64(3)).seed == 3


def test_hutchpp_at_its_minimum_has_a_finite_standard_error():
    """Seen: Hutch++ at its documented minimum of 3 products gives a NaN standard error."""
    A = np.diag(np.arange(1.0, 41.0))
    t = trace(A, method="hutch++", num_matvecs=4, seed=0)
    assert t.num_matvecs == 4 and np.isfinite(t.bse) and np.isfinite(t.conf_int()).all()
    with pytest.raises(InvalidInputError, match="num_matvecs"):
        trace(A, method="hutch++", num_matvecs=3)
    for n in range(4, 12):
        assert np.isfinite(trace(A, method="hutch++", num_matvecs=n, seed=1).bse)


def test_dense_operator_wrapping_keeps_working():
    op = DenseOperator(torch.diag(torch.arange(1.0, 31.0, dtype=torch.float64)))
    s = _quiet(lanczos, op, 2, seed=0)
    np.testing.assert_allclose(s.eigenvalues, [30.0, 29.0], rtol=1e-10)
