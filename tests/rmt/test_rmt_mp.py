"""The Marchenko-Pastur law: generic scipy-style checks over a table of ratios and scales."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from gn_theory.exceptions import InvalidInputError
from gn_theory.rmt import (
    MarchenkoPastur,
    marchenko_pastur,
    mp_edges,
    mp_moment,
    sample_covariance_eigenvalues,
)

# simulations on one BLAS thread (see conftest.single_blas_thread)
pytestmark = pytest.mark.usefixtures("single_blas_thread")


RATIOS = [0.1, 0.25, 0.5, 0.9, 1.0, 2.0, 4.0, 10.0]
SCALES = [1.0, 0.37, 2.3]
GRID = [(r, s) for r in RATIOS for s in SCALES]
IDS = [f"g{r}-s{s}" for r, s in GRID]


def _density(x, r, s):
    """Reference density of the continuous part (mass min(1, 1/r)), written from docs/theory.md 4.1."""
    lo, hi = s * (1 - math.sqrt(r)) ** 2, s * (1 + math.sqrt(r)) ** 2
    if not lo < x < hi:
        return 0.0
    return math.sqrt((hi - x) * (x - lo)) / (2 * math.pi * s * r * x)


def _quad(fun, r, s, lo=None, hi=None):
    a, b = mp_edges(r, s)
    lo = a if lo is None else lo
    hi = b if hi is None else hi
    # split at the middle so each piece has one square-root endpoint singularity
    mid = 0.5 * (a + b)
    pts = sorted({lo, min(max(mid, lo), hi), hi})
    total = 0.0
    for u, v in zip(pts[:-1], pts[1:]):
        if v > u:
            total += integrate.quad(fun, u, v, epsabs=1e-13, epsrel=1e-11, limit=200)[0]
    return total


def _theory_moment(k, r, s):
    return s**k * sum(r**j / (j + 1) * math.comb(k, j) * math.comb(k - 1, j) for j in range(k))


# ----------------------------------------------------------------------------- mass and moments
@pytest.mark.parametrize("r,s", GRID, ids=IDS)
def test_normalisation_mass_plus_atom(r, s):
    mp = MarchenkoPastur(r, s)
    mass = _quad(lambda t: float(mp.pdf(t)), r, s)
    assert mass == pytest.approx(min(1.0, 1.0 / r), rel=1e-7)
    assert mp.atom == pytest.approx(max(0.0, 1.0 - 1.0 / r), abs=1e-15)
    assert mass + mp.atom == pytest.approx(1.0, rel=1e-7)
    # pdf equals the docs/theory.md 4.1 density
    xs = np.linspace(*mp_edges(r, s), 23)[1:-1]
    np.testing.assert_allclose(mp.pdf(xs), [_density(t, r, s) for t in xs], rtol=1e-13)


@pytest.mark.parametrize("r,s", GRID, ids=IDS)
def test_moments_quadrature_and_formula(r, s):
    mp = MarchenkoPastur(r, s)
    for k in (1, 2, 3):
        quad = _quad(lambda t: t**k * _density(t, r, s), r, s)
        assert mp.moment(k) == pytest.approx(quad, rel=1e-7)
        assert mp_moment(k, r, s) == pytest.approx(_theory_moment(k, r, s), rel=1e-14)
        assert mp.moment(k) == pytest.approx(_theory_moment(k, r, s), rel=1e-14)
    assert mp.mean() == pytest.approx(s, rel=1e-14)
    assert mp.var() == pytest.approx(s**2 * r, rel=1e-12)
    assert mp.std() == pytest.approx(s * math.sqrt(r), rel=1e-12)
    assert mp.moment(0) == 1.0


# ----------------------------------------------------------------------------- cdf, sf, ppf
@pytest.mark.parametrize("r,s", GRID, ids=IDS)
def test_cdf_is_integral_of_pdf(r, s):
    mp = MarchenkoPastur(r, s)
    lo, hi = mp.lower_edge, mp.upper_edge
    for frac in (0.01, 0.2, 0.5, 0.8, 0.99):
        x = lo + frac * (hi - lo)
        ref = mp.atom + _quad(lambda t: _density(t, r, s), r, s, hi=x)
        assert float(mp.cdf(x)) == pytest.approx(ref, abs=1e-9)
    assert float(mp.cdf(hi)) == pytest.approx(1.0, abs=1e-14)
    assert float(mp.cdf(hi * 1.5 + 1)) == 1.0
    assert float(mp.cdf(-1.0)) == 0.0
    # the atom: cdf jumps at zero
    assert float(mp.cdf(0.0)) == pytest.approx(mp.atom, abs=1e-15)
    if r > 1:
        assert float(mp.cdf(-1e-300)) == 0.0
        assert float(mp.cdf(0.5 * lo)) == pytest.approx(1 - 1 / r, abs=1e-15)


@pytest.mark.parametrize("r,s", GRID, ids=IDS)
def test_sf_and_ppf(r, s):
    mp = MarchenkoPastur(r, s)
    lo, hi = mp.lower_edge, mp.upper_edge
    xs = np.concatenate([[-1.0, 0.0], lo + (hi - lo) * np.linspace(0.0, 1.0, 31), [hi + 1.0]])
    np.testing.assert_allclose(mp.sf(xs), 1.0 - mp.cdf(xs), atol=1e-14)
    q = np.linspace(mp.atom + 1e-6, 1 - 1e-6, 41)
    xq = mp.ppf(q)
    np.testing.assert_allclose(mp.cdf(xq), q, atol=1e-11)
    assert np.all(np.diff(xq) > 0)
    xs_in = lo + (hi - lo) * np.linspace(0.05, 0.95, 19)
    np.testing.assert_allclose(mp.ppf(mp.cdf(xs_in)), xs_in, rtol=1e-9, atol=1e-12 * hi)
    assert float(mp.ppf(1.0)) == pytest.approx(hi, rel=1e-14)
    if mp.atom > 0:
        assert float(mp.ppf(0.5 * mp.atom)) == 0.0
    else:
        assert float(mp.ppf(0.0)) == pytest.approx(lo, rel=1e-12, abs=1e-300)
    a, b = mp.interval(0.9)
    if mp.atom > 0.05:  # the lower quantile falls in the atom: [0, b] holds 0.95
        assert a == 0.0 and float(mp.cdf(b)) == pytest.approx(0.95, abs=1e-10)
    else:
        assert float(mp.cdf(b) - mp.cdf(a)) == pytest.approx(0.9, abs=1e-10)


@pytest.mark.parametrize("r,s", GRID, ids=IDS)
def test_edges_and_support(r, s):
    mp = MarchenkoPastur(r, s)
    lo, hi = mp_edges(r, s)
    assert (mp.lower_edge, mp.upper_edge) == (lo, hi)
    assert lo == pytest.approx(s * (1 - math.sqrt(r)) ** 2, rel=1e-14, abs=1e-300)
    assert hi == pytest.approx(s * (1 + math.sqrt(r)) ** 2, rel=1e-14)
    assert mp.support() == ((0.0 if r > 1 else lo), hi)
    assert MarchenkoPastur(r, s, nonzero=True).support() == (lo, hi)
    assert float(mp.pdf(hi * 1.01 + 0.1)) == 0.0
    assert float(mp.pdf(-0.5)) == 0.0
    assert float(mp.pdf(0.0)) == 0.0
    assert np.isneginf(mp.logpdf(hi + 1.0))


@pytest.mark.parametrize("r", [0.1, 0.5, 2.0, 10.0])
@pytest.mark.parametrize("s", [1.0, 2.3])
def test_pdf_near_edges_finite_and_accurate(r, s):
    mp = MarchenkoPastur(r, s)
    lo, hi = mp.lower_edge, mp.upper_edge
    with mpmath.workdps(40):
        for x in (lo * (1 + 1e-9), lo + 1e-6 * (hi - lo), hi - 1e-6 * (hi - lo), hi * (1 - 1e-9)):
            xm = mpmath.mpf(x)
            lom = mpmath.mpf(s) * (1 - mpmath.sqrt(r)) ** 2
            him = mpmath.mpf(s) * (1 + mpmath.sqrt(r)) ** 2
            ref = float(mpmath.sqrt((him - xm) * (xm - lom)) / (2 * mpmath.pi * s * r * xm))
            val = float(mp.pdf(x))
            assert math.isfinite(val) and val > 0
            # x carries a relative rounding error ~1e-16 against a distance ~1e-9 x to the edge
            assert val == pytest.approx(ref, rel=1e-5)


def test_pdf_at_ratio_one_diverges_only_at_zero():
    mp = MarchenkoPastur(1.0, 1.0)
    xs = np.array([1e-12, 1e-6, 1e-3])
    vals = mp.pdf(xs)
    assert np.all(np.isfinite(vals))
    np.testing.assert_allclose(vals, np.sqrt((4 - xs) * xs) / (2 * np.pi * xs), rtol=1e-12)


# ----------------------------------------------------------------------------- Stieltjes transform
@pytest.mark.parametrize("r,s", GRID, ids=IDS)
def test_stieltjes_vs_quadrature(r, s):
    mp = MarchenkoPastur(r, s)
    lo, hi = mp.lower_edge, mp.upper_edge
    for zz in (0.5 * (lo + hi) + 0.4j * s, hi + 0.7 * s, -0.5 * s, lo + 0.1j * s, 2j * s):
        re = _quad(lambda t: ((1 / (zz - t)).real) * _density(t, r, s), r, s)
        im = _quad(lambda t: ((1 / (zz - t)).imag) * _density(t, r, s), r, s)
        ref = complex(re, im) + mp.atom / zz
        assert complex(mp.stieltjes(zz)) == pytest.approx(ref, rel=1e-7, abs=1e-9)
    # on the cut, the boundary value G(x + i0): -Im G / pi = pdf
    xs = lo + (hi - lo) * np.linspace(0.02, 0.98, 17)
    np.testing.assert_allclose(-mp.stieltjes(xs).imag / np.pi, mp.pdf(xs), rtol=1e-10, atol=1e-13)
    # G(z) ~ 1/z at infinity
    big = 1e8 * (1 + 1j)
    assert complex(mp.stieltjes(big)) * big == pytest.approx(1.0, rel=1e-6)
    # conjugate symmetry off the axis
    zz = 0.3 * hi + 0.2j
    assert complex(mp.stieltjes(np.conj(zz))) == pytest.approx(np.conj(complex(mp.stieltjes(zz))), rel=1e-13)


@pytest.mark.parametrize("r", [0.5, 2.0, 4.0, 10.0])
def test_nonzero_variant(r):
    s = 0.37
    full = MarchenkoPastur(r, s)
    nz = MarchenkoPastur(r, s, nonzero=True)
    assert nz.atom == 0.0 and nz.continuous_mass == 1.0
    assert "nonzero=True" in repr(nz)
    lo, hi = nz.lower_edge, nz.upper_edge
    cm = min(1.0, 1.0 / r)
    xs = lo + (hi - lo) * np.linspace(0.0, 1.0, 21)
    np.testing.assert_allclose(nz.pdf(xs), full.pdf(xs) / cm, rtol=1e-13)
    np.testing.assert_allclose(nz.cdf(xs), (full.cdf(xs) - full.atom) / cm, atol=1e-13)
    for k in (1, 2, 3):
        assert nz.moment(k) == pytest.approx(mp_moment(k, r, s) / cm, rel=1e-13)
    assert _quad(lambda t: float(nz.pdf(t)), r, s) == pytest.approx(1.0, rel=1e-7)
    for zz in (hi + 1.0, 0.5 * (lo + hi) + 0.3j, -1.0):
        re = _quad(lambda t: ((1 / (zz - t)).real) * float(nz.pdf(t)), r, s)
        im = _quad(lambda t: ((1 / (zz - t)).imag) * float(nz.pdf(t)), r, s)
        assert complex(nz.stieltjes(zz)) == pytest.approx(complex(re, im), rel=1e-7, abs=1e-9)
    q = np.array([0.0, 0.3, 0.9])
    assert float(nz.ppf(0.0)) == pytest.approx(lo, rel=1e-12)
    np.testing.assert_allclose(nz.cdf(nz.ppf(q)), q, atol=1e-11)


# ----------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("r,s", [(0.25, 1.0), (1.0, 0.37), (4.0, 2.3)])
def test_rvs_ks_against_cdf(r, s):
    mp = MarchenkoPastur(r, s)
    x = mp.rvs(size=3000, random_state=123)
    assert x.shape == (3000,)
    nonzero = x[x > 0]
    if mp.atom > 0:
        assert np.mean(x == 0) == pytest.approx(mp.atom, abs=0.03)
    assert np.all((nonzero >= mp.lower_edge - 1e-12) & (nonzero <= mp.upper_edge + 1e-12))
    nz = MarchenkoPastur(r, s, nonzero=True)
    assert stats.kstest(nonzero, nz.cdf).pvalue > 1e-3
    # reproducible
    np.testing.assert_array_equal(mp.rvs(size=5, random_state=7), mp.rvs(size=5, random_state=7))
    # and the KS test does detect a wrong law
    wrong = MarchenkoPastur(r * 1.3, s, nonzero=True)
    assert stats.kstest(nonzero, wrong.cdf).pvalue < 1e-6


@pytest.mark.parametrize("r,s", [(0.1, 1.0), (0.5, 0.37), (1.0, 1.0), (4.0, 2.3), (10.0, 1.0)])
def test_scipy_rv_continuous_agrees(r, s):
    nz = MarchenkoPastur(r, s, nonzero=True)
    frozen = marchenko_pastur(r, scale=s)
    lo, hi = nz.lower_edge, nz.upper_edge
    xs = np.linspace(lo, hi, 13)
    np.testing.assert_allclose(frozen.pdf(xs), nz.pdf(xs), rtol=1e-13)
    np.testing.assert_allclose(frozen.cdf(xs), nz.cdf(xs), atol=1e-14)
    np.testing.assert_allclose(marchenko_pastur.cdf(xs, r, scale=s), nz.cdf(xs), atol=1e-14)
    assert frozen.support() == pytest.approx((lo, hi), rel=1e-14)
    assert frozen.mean() == pytest.approx(nz.mean(), rel=1e-12)
    assert frozen.var() == pytest.approx(nz.var(), rel=1e-10)
    assert frozen.moment(3) == pytest.approx(nz.moment(3), rel=1e-12)
    q = np.array([0.01, 0.5, 0.99])
    np.testing.assert_allclose(frozen.ppf(q), nz.ppf(q), rtol=1e-12)
    np.testing.assert_allclose(frozen.sf(xs), 1 - nz.cdf(xs), atol=1e-14)
    sample = frozen.rvs(size=1500, random_state=np.random.default_rng(5))
    assert stats.kstest(sample, frozen.cdf).pvalue > 1e-3
    assert stats.kstest(sample, marchenko_pastur.cdf, args=(r, 0.0, s)).pvalue > 1e-3
    # scipy conventions: bad shape -> nan (quietly), off support -> 0
    for fn in (marchenko_pastur.pdf, marchenko_pastur.cdf, marchenko_pastur.ppf):
        assert np.isnan(fn(0.5, -1.0)) and np.isnan(fn(0.5, np.nan))
    assert marchenko_pastur.pdf(hi + 1.0, r, scale=s) == 0.0


def test_vectorised_shapes():
    mp = MarchenkoPastur(0.5, 2.0)
    x = np.linspace(0.0, 7.0, 12).reshape(3, 4)
    for f in (mp.pdf, mp.cdf, mp.sf, mp.logpdf):
        out = f(x)
        assert out.shape == (3, 4)
        np.testing.assert_allclose(out.ravel(), [float(f(t)) for t in x.ravel()], rtol=1e-14)
        assert np.ndim(f(1.0)) == 0
    assert mp.ppf(np.full((2, 5), 0.3)).shape == (2, 5)
    assert mp.stieltjes(np.ones((4, 2)) * (1 + 1j)).shape == (4, 2)
    assert mp.rvs(size=(3, 2), random_state=0).shape == (3, 2)
    # broadcasting through the scipy instance: ratio array against x column
    out = marchenko_pastur.cdf(np.array([[0.5], [1.0]]), np.array([0.25, 0.5, 1.0]))
    assert out.shape == (2, 3)
    for i, xv in enumerate([0.5, 1.0]):
        for j, rv in enumerate([0.25, 0.5, 1.0]):
            assert out[i, j] == pytest.approx(float(MarchenkoPastur(rv, nonzero=True).cdf(xv)), abs=1e-14)


# ----------------------------------------------------------------------------- finite-size Wishart
@pytest.mark.parametrize("p,n", [(800, 1600), (1200, 300)])
def test_wishart_ks_distance(p, n):
    """docs/theory.md 8: KS distance of simulated Wishart spectra to MP is 0.003-0.008 at p ~ 500-2000."""
    r, s = p / n, 1.7
    eigs = sample_covariance_eigenvalues(p, n, scale=s, seed=11)
    mp = MarchenkoPastur(r, s)
    if r > 1:
        assert np.mean(eigs == 0) == pytest.approx(mp.atom, abs=1e-12)  # 0.75 for ratio 4
    nonzero = eigs[eigs > 0]
    ks = stats.kstest(nonzero, MarchenkoPastur(r, s, nonzero=True).cdf).statistic
    assert ks < 0.012
    # mean and second moment of the spectrum (docs/theory.md 4.2)
    assert np.mean(eigs) == pytest.approx(mp.mean(), rel=0.01)
    assert np.mean(eigs**2) == pytest.approx(mp.moment(2), rel=0.02)


# ----------------------------------------------------------------------------- properties
@settings(max_examples=40, deadline=None, derandomize=True, database=None)  # reproducible
@given(
    r=st.floats(0.05, 20.0),
    s=st.floats(0.1, 10.0),
    u=st.floats(0.0, 1.0),
    v=st.floats(0.0, 1.0),
)
def test_cdf_monotone_property(r, s, u, v):
    mp = MarchenkoPastur(r, s)
    lo, hi = mp.lower_edge, mp.upper_edge
    a, b = sorted((lo + u * (hi - lo), lo + v * (hi - lo)))
    fa, fb = float(mp.cdf(a)), float(mp.cdf(b))
    assert 0.0 <= fa <= fb <= 1.0
    assert fb - fa == pytest.approx(
        _quad(lambda t: _density(t, r, s), r, s, lo=a, hi=b) if b > a else 0.0, abs=1e-8
    )


@settings(max_examples=40, deadline=None, derandomize=True, database=None)  # reproducible
@given(r=st.floats(0.05, 20.0), s=st.floats(0.1, 10.0), u=st.floats(0.02, 0.98))
def test_ppf_inverts_cdf_property(r, s, u):
    mp = MarchenkoPastur(r, s, nonzero=True)
    lo, hi = mp.lower_edge, mp.upper_edge
    x = lo + u * (hi - lo)
    assert float(mp.ppf(mp.cdf(x))) == pytest.approx(x, rel=1e-8, abs=1e-10 * hi)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "ratio,scale",
    [(0.0, 1.0), (-1.0, 1.0), (float("nan"), 1.0), (float("inf"), 1.0), (0.5, 0.0), (0.5, -2.0),
     (0.5, float("nan")), ("a", 1.0), (None, 1.0), (0.5, None)],
)
def test_bad_parameters_raise(ratio, scale):
    with pytest.raises(InvalidInputError):
        MarchenkoPastur(ratio, scale)
    with pytest.raises(InvalidInputError):
        mp_edges(ratio, scale)
    with pytest.raises(InvalidInputError):
        mp_moment(2, ratio, scale)
    with pytest.raises(ValueError):  # InvalidInputError is a ValueError
        MarchenkoPastur(ratio, scale)


def test_bad_moment_order_and_probabilities():
    with pytest.raises(InvalidInputError):
        mp_moment(-1, 0.5)
    mp = MarchenkoPastur(0.5)
    for q in (-0.1, 1.1, float("nan")):
        with pytest.raises(InvalidInputError):
            mp.ppf(q)
