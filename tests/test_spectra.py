"""Tests of gn_theory.spectra: exactness, known spectra, statistics, real models, I/O, bad input."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import scipy.sparse.linalg as sla
import torch

import gn_theory as gt
import gn_theory.models
from gn_theory.exceptions import (
    ConvergenceWarning,
    InvalidInputError,
    NonFiniteError,
    NotSymmetricError,
)
from gn_theory.operators import CurvatureOperator, DenseOperator
from gn_theory.results import load_result
from gn_theory.spectra import (
    Outliers,
    SpectralDensity,
    Spectrum,
    TraceEstimate,
    check_symmetric,
    eigh,
    lanczos,
    outliers,
    slq,
    trace,
)


# ----------------------------------------------------------------------------- test matrices
def rotate(eigs: np.ndarray, seed: int) -> np.ndarray:
    """A dense symmetric matrix with the given eigenvalues and a random eigenbasis."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((eigs.size, eigs.size)))
    A = (Q * eigs) @ Q.T
    return 0.5 * (A + A.T)


def hessian_like(P: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Low rank plus bulk, indefinite: 10 positive outliers, 3 negative, a near-zero atom."""
    rng = np.random.default_rng(seed)
    n_zero = P // 3
    bulk = rng.uniform(0.0, 1.0, P - n_zero - 13) ** 3  # many tiny eigenvalues
    pos = np.linspace(5.0, 50.0, 10)
    neg = np.array([-3.0, -2.0, -1.5])
    eigs = np.sort(np.r_[bulk, np.zeros(n_zero), pos, neg])
    return rotate(eigs, seed), eigs


CASES = {
    "diagonal": lambda: (np.diag(np.arange(1.0, 401.0) ** 1.5), np.arange(1.0, 401.0) ** 1.5),
    "random_symmetric": lambda: (lambda A: (A, np.linalg.eigvalsh(A)))(
        (lambda G: (G + G.T) / math.sqrt(2 * 300))(np.random.default_rng(3).standard_normal((300, 300)))
    ),
    "low_rank_plus_bulk": hessian_like,
}


def reference(eigs: np.ndarray, k: int, which: str) -> np.ndarray:
    e = np.sort(eigs)
    if which == "largest":
        return e[-k:]
    if which == "smallest":
        return e[:k]
    top = (k + 1) // 2
    return np.r_[e[: k - top], e[-top:]]


# ----------------------------------------------------------------------------- eigh
def test_eigh_matches_numpy_and_reports_residuals():
    A, eigs = hessian_like(200)
    s = eigh(A, return_eigenvectors=True)
    np.testing.assert_allclose(s.eigenvalues, np.linalg.eigvalsh(A), atol=1e-12)
    assert s.eigenvectors.shape == (200, 200)
    assert s.residual_norms.max() < 1e-11 * np.abs(eigs).max()
    assert s.which == "all" and s.method == "eigh" and s.all_converged


def test_eigh_accepts_every_input_type():
    A = rotate(np.arange(1.0, 31.0), 0)
    ref = np.arange(1.0, 31.0)
    for X in (A, torch.as_tensor(A), DenseOperator(A), sla.aslinearoperator(A)):
        np.testing.assert_allclose(eigh(X).eigenvalues, ref, rtol=1e-12)


# ----------------------------------------------------------------------------- lanczos
def test_lanczos_full_basis_is_exact():
    """With the basis spanning the whole space, Ritz values are the eigenvalues."""
    A, eigs = hessian_like(60)
    s = lanczos(A, 60, "largest", basis_size=60, seed=1)
    np.testing.assert_allclose(s.eigenvalues, np.sort(eigs), atol=1e-11)
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
    assert s.metadata["block_size"] == block_size
    np.testing.assert_allclose(s.eigenvalues, np.sort(eigs)[-6:], rtol=1e-8)


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
    assert s.metadata["restarts"] > 0
    assert s.metadata["basis_size"] == k + 3
    assert s.metadata["block_size"] == 1
    np.testing.assert_allclose(s.eigenvalues, np.sort(eigs)[-k:], rtol=1e-8)
    assert s.all_converged


def test_restart_memory_is_bounded(monkeypatch):
    """The only P-sized allocation in the solver is the (m + b, P) basis."""
    from gn_theory import _krylov

    sizes = []
    real_empty = torch.empty

    def spy(*shape, **kw):
        sizes.append(tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], tuple) else shape)
        return real_empty(*shape, **kw)

    monkeypatch.setattr(_krylov.torch, "empty", spy)
    A, _ = hessian_like(800, seed=4)
    s = lanczos(A, 8, basis_size=12, seed=0, tol=1e-9, max_matvecs=20000)
    monkeypatch.undo()
    assert s.metadata["restarts"] > 0
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
    assert s.all_converged and s.metadata["block_size"] == 1
    assert s.matvecs <= 2 * n_eigsh, (s.matvecs, n_eigsh)
    np.testing.assert_allclose(s.eigenvalues, np.linalg.eigvalsh(A)[-10:], rtol=1e-8)


def test_lanczos_float32_operator_with_float64_basis():
    A, eigs = hessian_like(300)
    op = DenseOperator(torch.as_tensor(A, dtype=torch.float32))
    s = lanczos(op, 3, dtype=torch.float64, tol=1e-5, seed=0)
    np.testing.assert_allclose(s.eigenvalues, np.sort(eigs)[-3:], rtol=1e-5)
    assert s.metadata["basis_dtype"] == "float64" and s.metadata["dtype"] == "float32"


def test_lanczos_is_reproducible_with_a_seed():
    A, _ = hessian_like(400)
    a = lanczos(A, 4, tol=1e-6, seed=7)
    b = lanczos(A, 4, tol=1e-6, seed=7)
    c = lanczos(A, 4, tol=1e-6, seed=8)
    np.testing.assert_array_equal(a.eigenvalues, b.eigenvalues)
    np.testing.assert_array_equal(a.eigenvectors, b.eigenvectors)
    assert a.matvecs == b.matvecs
    assert not np.array_equal(a.eigenvectors, c.eigenvectors)


def test_lanczos_warns_when_not_converged():
    A, _ = hessian_like(400)
    with pytest.warns(ConvergenceWarning, match="converged"):
        s = lanczos(A, 5, "smallest", max_matvecs=12, seed=0)
    assert not s.all_converged and s.matvecs <= 12


def test_progress_bar(capsys):
    A, _ = hessian_like(200)
    lanczos(A, 2, seed=0, progress=True)
    slq(A, num_probes=2, num_steps=5, seed=0, progress=True)
    err = capsys.readouterr().err
    assert "lanczos" in err and "slq" in err


# ----------------------------------------------------------------------------- real models
@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 10), torch.nn.Tanh(), torch.nn.Linear(10, 3)
    ).double()
    g = torch.Generator().manual_seed(1)
    X = torch.randn(30, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (30,), generator=g)
    gt.models.train(model, (X, y), steps=50, lr=0.5)
    return model, (X, y)


@pytest.mark.parametrize("factory", ["hessian_operator", "ggn_operator", "residual_operator"])
def test_lanczos_agrees_with_eigh_on_tiny_models(tiny_model, factory):
    model, data = tiny_model
    op = getattr(gt, factory)(model, data)
    exact = eigh(op).eigenvalues
    scale = np.abs(exact).max()
    top = lanczos(op, 4, "largest", seed=0, tol=1e-10)
    np.testing.assert_allclose(top.eigenvalues, exact[-4:], rtol=1e-8, atol=1e-9 * scale)
    if factory == "ggn_operator":
        # G's smallest eigenvalue is 0 with multiplicity >= P - N (C - 1), next to a
        # cluster at ~1e-7 ||G||: not resolvable to 1e-10. What must hold is the
        # Ritz bound: each reported value lies within its residual of the true one.
        with pytest.warns(ConvergenceWarning):
            both = lanczos(op, 4, "both", seed=0, tol=1e-10, block_size=2, max_matvecs=600)
        ref = np.r_[exact[:2], exact[-2:]]
        assert np.all(np.abs(both.eigenvalues - ref) <= both.residual_norms + 1e-9 * scale)
        assert both.converged[2:].all()
    else:
        both = lanczos(op, 4, "both", seed=0, tol=1e-10)
        np.testing.assert_allclose(
            both.eigenvalues, np.r_[exact[:2], exact[-2:]], rtol=1e-8, atol=1e-9 * scale
        )
        assert both.all_converged
    assert top.metadata["kind"] == factory.split("_")[0].replace("ggn", "ggn")
    assert top.metadata["model"] == "Sequential"


def test_slq_on_tiny_model_matches_moments(tiny_model):
    model, data = tiny_model
    op = gt.hessian_operator(model, data)
    exact = eigh(op).eigenvalues
    d = slq(op, num_probes=20, num_steps=op.num_params, seed=0)
    # a full-length Lanczos run per probe: the moments are exact per probe, so
    # only the probe variance remains; <= 4 standard errors of Hutchinson
    P = op.num_params
    m2 = np.mean(exact**2)
    assert abs(d.moment(1) - exact.mean()) <= 4 * math.sqrt(2 * m2 / (20 * P))
    assert d.wasserstein(exact) < 0.1 * (exact.max() - exact.min())


# ----------------------------------------------------------------------------- slq
def test_slq_rows_are_quadratures():
    A, eigs = hessian_like(300)
    d = slq(A, num_probes=5, num_steps=40, seed=0)
    assert d.nodes.shape == d.weights.shape == (5, 40)
    np.testing.assert_allclose(d.weights.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(d.weights >= 0)
    assert np.all(d.nodes >= eigs.min() - 1e-8) and np.all(d.nodes <= eigs.max() + 1e-8)


def test_slq_moments_exact_on_diagonal_with_rademacher_probes():
    """v_i^2 = 1 for Rademacher v, so v^T A^j v / v^T v = tr(A^j)/P for diagonal A."""
    e = np.linspace(-1.0, 3.0, 250)
    d = slq(np.diag(e), num_probes=3, num_steps=20, seed=0)
    for j in range(0, 8):  # exact up to degree 2m - 1
        assert d.moment(j) == pytest.approx(np.mean(e**j), rel=1e-10, abs=1e-12)
    assert d.trace_estimate == pytest.approx(e.sum(), rel=1e-10)


def test_slq_full_length_nodes_are_eigenvalues():
    e = np.arange(1.0, 41.0)
    d = slq(rotate(e, 1), num_probes=2, num_steps=40, seed=0)
    for row in d.nodes:
        np.testing.assert_allclose(np.sort(row), e, atol=1e-8)


def w1_bound(P: int, num_steps: int, num_probes: int, spread: float) -> float:
    """(b - a) (pi / (4 m) + 3 / sqrt(2 n_v P)).

    Gauss quadrature with m nodes matches 2m - 1 moments, so by Jackson's theorem its W1
    distance to the probe's weighted spectral measure is at most pi (b - a) / (4 m); the
    probe's measure differs from the eigenvalue distribution by a CDF error of standard
    deviation <= 1/sqrt(2 P) per probe, averaged over n_v probes (3 standard deviations).
    """
    return spread * (math.pi / (4 * num_steps) + 3.0 / math.sqrt(2.0 * num_probes * P))


def test_slq_wasserstein_below_a_bound_that_shrinks_with_probes():
    A, eigs = hessian_like(900, seed=1)
    spread = eigs.max() - eigs.min()
    m = 60
    bounds, dists = [], []
    for n_v in (1, 4, 16):
        ws = [slq(A, num_probes=n_v, num_steps=m, seed=s).wasserstein(eigs) for s in range(3)]
        bound = w1_bound(900, m, n_v, spread)
        assert max(ws) <= bound, (n_v, ws, bound)
        bounds.append(bound)
        dists.append(np.mean(ws))
    assert bounds[0] > bounds[1] > bounds[2]
    assert dists[2] < dists[0]  # more probes, closer on average


def test_slq_range_and_masses():
    A, eigs = hessian_like(900, seed=2)
    d = slq(A, num_probes=16, num_steps=60, seed=0)
    lb, ub = d.spectral_range
    spread = eigs.max() - eigs.min()
    assert ub == pytest.approx(eigs.max(), rel=1e-8)  # the top outlier converges
    assert lb == pytest.approx(eigs.min(), rel=1e-6)
    true_zero = np.mean(np.abs(eigs) < 1e-6 * spread)
    assert d.mass_near_zero() == pytest.approx(true_zero, abs=0.06)
    assert d.negative_mass() == pytest.approx(np.mean(eigs < 0), abs=0.02)
    assert d.negative_mass() > 0


def test_density_integrates_to_one_and_log_density_splits_sides():
    A, eigs = hessian_like(600)
    d = slq(A, num_probes=8, num_steps=50, seed=0)
    lb, ub = d.spectral_range
    t = np.linspace(lb - 5, ub + 5, 20001)
    assert np.trapezoid(d.density(t), t) == pytest.approx(1.0, abs=1e-3)
    assert d.density().shape == (1024,)
    assert d.default_sigma() > 0
    u = np.linspace(-12, 4, 4001)
    pos, neg = d.log_density(u, sigma=0.05)
    x, w = d.nodes.ravel(), d.weights.ravel() / d.num_probes
    assert np.trapezoid(pos, u) == pytest.approx(w[x > 1e-12].sum(), abs=1e-3)
    assert np.trapezoid(neg, u) == pytest.approx(w[x < -1e-12].sum(), abs=1e-3)
    # the negative outliers sit between 1.5 and 3: the negative side peaks there
    assert 0.1 < u[np.argmax(neg)] < 0.5


def test_density_with_unit_gaussians_of_the_exact_spectrum():
    e = np.array([0.0, 1.0])
    d = SpectralDensity.from_eigenvalues(e)
    t = np.array([0.0, 1.0])
    ref = 0.5 * (1 + math.exp(-0.5)) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(d.density(t, sigma=1.0), [ref, ref])


def test_slq_reproducible_and_seed_dependent():
    A, _ = hessian_like(300)
    a, b, c = (slq(A, num_probes=3, num_steps=20, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.nodes, b.nodes)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert not np.array_equal(a.weights, c.weights)


def test_slq_batches_probes_into_one_product_per_step():
    A, _ = hessian_like(200)
    calls = []

    class Spy(DenseOperator):
        def _matmat_torch(self, V):
            calls.append(V.shape[1])
            return super()._matmat_torch(V)

    d = slq(Spy(A), num_probes=7, num_steps=15, seed=0)
    assert calls == [7] * 15 and d.matvecs == 105


def test_slq_without_reorthogonalisation_still_estimates_the_moments():
    e = np.linspace(0.0, 1.0, 300)
    d = slq(rotate(e, 3), num_probes=10, num_steps=30, seed=0, reorthogonalize=False)
    assert d.moment(1) == pytest.approx(0.5, abs=0.03)


# ----------------------------------------------------------------------------- traces
def test_hutchinson_and_hutchpp_within_three_standard_errors():
    rng = np.random.default_rng(0)
    A, eigs = hessian_like(500)
    A = A @ A  # PSD with decaying spectrum
    tr = np.trace(A)
    for method in ("hutchinson", "hutch++"):
        for seed in range(3):
            t = trace(A, method=method, num_matvecs=90, seed=seed, probes="gaussian")
            assert abs(t.estimate - tr) <= 3 * t.stderr, (method, t)
            assert t.num_matvecs == 90
    pp = [abs(trace(A, method="hutch++", num_matvecs=90, seed=s).estimate - tr) for s in range(3)]
    hu = [abs(trace(A, num_matvecs=90, seed=s).estimate - tr) for s in range(3)]
    assert np.mean(pp) < np.mean(hu)  # 10 outliers carry most of tr(A^2): Hutch++ wins
    lo, hi = trace(A, num_matvecs=60, seed=0).conf_int(0.01)
    assert lo < hi
    del rng


def test_trace_probes_are_batched():
    calls = []

    class Spy(DenseOperator):
        def _matmat_torch(self, V):
            calls.append(V.shape[1])
            return super()._matmat_torch(V)

    trace(Spy(np.eye(50)), num_matvecs=70, block_size=32, seed=0)
    assert calls == [32, 32, 6]


# ----------------------------------------------------------------------------- outliers
def test_outliers_gap_rule_on_exact_and_lanczos_spectra():
    A, eigs = hessian_like(600)
    o = outliers(eigh(A))
    assert o.count == 10
    np.testing.assert_allclose(o.values, np.sort(eigs)[::-1][:10], rtol=1e-10)
    assert o.bulk_edge < 1.0 < o.threshold < 5.0
    o2 = outliers(lanczos(A, 15, seed=0))
    assert o2.count == 10
    neg = outliers(np.r_[eigs, -np.linspace(0.0, 0.05, 30)], side="negative")
    assert neg.count == 3 and neg.values.tolist() == [-3.0, -2.0, -1.5]


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


# ----------------------------------------------------------------------------- save / load
def _assert_same(a, b):
    import dataclasses

    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)
        else:
            assert x == y, f.name


def test_results_round_trip_exactly(tmp_path, tiny_model):
    model, data = tiny_model
    op = gt.hessian_operator(model, data)
    objs = [
        lanczos(op, 3, seed=0),
        lanczos(op, 3, seed=0, return_eigenvectors=False),
        eigh(op),
        slq(op, num_probes=3, num_steps=10, seed=0),
        trace(op, method="hutch++", num_matvecs=12, seed=0),
        outliers(np.r_[np.linspace(0, 1, 20), 5.0]),
    ]
    for i, obj in enumerate(objs):
        path = obj.save(tmp_path / f"r{i}")
        back = type(obj).load(path)
        _assert_same(obj, back)
        _assert_same(obj, load_result(tmp_path / f"r{i}.json"))
    meta = json.loads((tmp_path / "r0.json").read_text())
    fields = meta["fields"]
    assert fields["metadata"]["kind"] == "hessian" and fields["metadata"]["model"] == "Sequential"
    assert fields["metadata"]["dtype"] == "float64" and fields["metadata"]["device"] == "cpu"
    assert fields["seed"] == 0 and "torch" in meta["provenance"]
    assert isinstance(objs[0], Spectrum) and isinstance(objs[3], SpectralDensity)
    assert isinstance(objs[4], TraceEstimate) and isinstance(objs[5], Outliers)


# ----------------------------------------------------------------------------- bad input
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


def test_not_symmetric_detected_by_probe():
    B = np.triu(np.random.default_rng(0).standard_normal((50, 50)))
    with pytest.raises(NotSymmetricError, match="not symmetric"):
        lanczos(B, 2, check_symmetric=True)
    with pytest.raises(NotSymmetricError):
        slq(B, num_probes=2, num_steps=3, check_symmetric=True)
    with pytest.raises(NotSymmetricError):
        check_symmetric(sla.aslinearoperator(B))
    with pytest.raises(NotSymmetricError):
        eigh(B)
    assert check_symmetric(B + B.T) < 1e-12


class NaNAfter(CurvatureOperator):
    """Identity-like operator whose n-th product returns NaN."""

    def __init__(self, P: int, n: int):
        super().__init__(P, torch.device("cpu"), torch.float64)
        self.calls, self.n = 0, n
        self.d = torch.linspace(1.0, 2.0, P, dtype=torch.float64)

    def _matmat_torch(self, V):
        self.calls += 1
        out = self.d[:, None] * V
        if self.calls >= self.n:
            out[0, 0] = float("nan")
        return out


def test_nan_from_a_matvec_names_the_iteration():
    with pytest.raises(NonFiniteError, match="lanczos iteration 3"):
        lanczos(NaNAfter(100, 3), 2, seed=0)
    with pytest.raises(NonFiniteError, match="slq step 2"):
        slq(NaNAfter(100, 2), num_probes=2, num_steps=5, seed=0)
    with pytest.raises(NonFiniteError, match="trace"):
        trace(NaNAfter(100, 1), num_matvecs=4, seed=0)


def test_zero_probes_steps_and_matvecs():
    A = np.eye(10)
    with pytest.raises(InvalidInputError, match="num_probes"):
        slq(A, num_probes=0)
    with pytest.raises(InvalidInputError, match="num_steps"):
        slq(A, num_steps=0)
    with pytest.raises(InvalidInputError, match="num_matvecs"):
        trace(A, num_matvecs=1)
    with pytest.raises(InvalidInputError, match="num_matvecs"):
        trace(A, method="hutch++", num_matvecs=2)
    with pytest.raises(InvalidInputError, match="method"):
        trace(A, method="exact")
    with pytest.raises(InvalidInputError, match="edge"):
        outliers([1.0, 2.0], method="edge")
    with pytest.raises(InvalidInputError, match="sigma"):
        SpectralDensity.from_eigenvalues([1.0, 2.0]).density([0.0], sigma=0.0)
    with pytest.raises(InvalidInputError, match="expected a CurvatureOperator"):
        lanczos("not a matrix", 1)
