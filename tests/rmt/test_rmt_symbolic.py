"""Code against derivation: the closed forms of gn_theory.rmt equal the sympy derivations of rmt.symbolic."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

from gn_theory.exceptions import InvalidInputError
from gn_theory.rmt import (
    MarchenkoPastur,
    bbp_outlier,
    bbp_overlap,
    bbp_spike,
    bbp_threshold,
    bbp_upper_edge,
    mp_edges,
    mp_moment,
)
from gn_theory.rmt import symbolic as S

RATIOS = [0.1, 0.25, 0.5, 0.9, 1.0, 2.0, 4.0, 10.0]
SCALES = [1.0, 0.37, 2.3]
MODELS = ["multiplicative", "additive", "information_plus_noise", "wigner"]
RTOL = 1e-12

theta, gamma, sigma2, lam = S.bbp_symbols()
z, G, x, _, _ = S.mp_symbols()


def _close(a, b, rtol=RTOL, atol=0.0):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------- Marchenko-Pastur
def test_discriminant_factorises_into_edges():
    disc = S.mp_discriminant()
    lo, hi = S.mp_edges_expr()
    assert sp.expand(S.mp_discriminant(factored=True) - disc) == 0
    assert sp.expand((z - lo) * (z - hi) - disc) == 0
    # the typed edges of docs/theory.md 4.1
    assert sp.simplify(lo - sigma2 * (1 - sp.sqrt(gamma)) ** 2) == 0
    assert sp.simplify(hi - sigma2 * (1 + sp.sqrt(gamma)) ** 2) == 0
    # the quadratic of docs/theory.md 4.3
    typed = sigma2 * gamma * z * G**2 - (z - sigma2 * (1 - gamma)) * G + 1
    assert sp.expand(S.mp_stieltjes_equation() - typed) == 0


@pytest.mark.parametrize("scale", SCALES)
def test_edges_match_code(scale):
    f = sp.lambdify((gamma, sigma2), S.mp_edges_expr())
    for r in RATIOS:
        _close(f(r, scale), mp_edges(r, scale), atol=1e-15 * scale)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("ratio", RATIOS)
def test_density_matches_code(ratio, scale):
    dens = sp.lambdify((x, gamma, sigma2), S.mp_density_expr(), "numpy")
    mp = MarchenkoPastur(ratio, scale)
    lo, hi = mp.lower_edge, mp.upper_edge
    xs = lo + (hi - lo) * np.linspace(0.002, 0.998, 41)
    xs = xs[xs > 0]
    _close(dens(xs, ratio, scale), mp.pdf(xs))
    # the derived form equals the typed one symbolically
    typed = sp.sqrt((sigma2 * (1 + sp.sqrt(gamma)) ** 2 - x) * (x - sigma2 * (1 - sp.sqrt(gamma)) ** 2)) / (
        2 * sp.pi * sigma2 * gamma * x
    )
    pt = {gamma: sp.Rational(1, 3), sigma2: sp.Rational(7, 5), x: sp.Rational(3, 2)}
    assert abs(complex(sp.N((S.mp_density_expr() - typed).subs(pt), 30))) < 1e-25


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("ratio", RATIOS)
def test_stieltjes_matches_code(ratio, scale):
    Gf = sp.lambdify((z, gamma, sigma2), S.mp_stieltjes_expr(), "numpy")
    mp = MarchenkoPastur(ratio, scale)
    lo, hi = mp.lower_edge, mp.upper_edge
    pts = np.array(
        [hi + 0.5, hi * 3 + 1.0, -1.0 - scale, 0.5 * (lo + hi) + 0.3j, 0.5 * (lo + hi) - 0.3j, 1j, -2.0 + 5.0j]
    )
    _close(Gf(pts.astype(complex), ratio, scale), mp.stieltjes(pts))
    # boundary value on the cut: -Im G / pi is the density
    xs = lo + (hi - lo) * np.array([0.1, 0.4, 0.77])
    xs = xs[xs > 0]
    _close(-Gf(xs.astype(complex), ratio, scale).imag / np.pi, mp.pdf(xs))


def test_moments_from_series_match_theory_and_code():
    for k in range(0, 7):
        typed = sigma2**k * sum(
            gamma**r / (r + 1) * sp.binomial(k, r) * sp.binomial(k - 1, r) for r in range(k)
        ) if k else sp.Integer(1)
        assert sp.expand(S.mp_moment_expr(k) - typed) == 0, k
        f = sp.lambdify((gamma, sigma2), S.mp_moment_expr(k))
        for r in RATIOS:
            for s in SCALES:
                assert math.isclose(float(f(r, s)), mp_moment(k, r, s), rel_tol=RTOL)


@pytest.mark.parametrize(
    "k,ratio,scale",
    [(1, "1/10", 1), (2, "1/2", "37/100"), (3, 2, 1), (3, 10, "23/10"), (2, "9/10", 1), (1, 4, "37/100")],
)
def test_integrated_moments(k, ratio, scale):
    res = S.mp_integrated_moment(k, ratio, scale)
    assert res.exact
    g, s = float(sp.Rational(ratio)), float(sp.Rational(scale))
    assert math.isclose(float(res.value), mp_moment(k, g, s), rel_tol=1e-13)


@pytest.mark.parametrize("ratio,mass", [("1/4", 1), (4, sp.Rational(1, 4))])
def test_integrated_mass_exact(ratio, mass):
    res = S.mp_integrated_moment(0, ratio)
    assert res.exact
    assert sp.simplify(res.value - mass) == 0


def test_integrated_moment_falls_back_to_mpmath(monkeypatch):
    # sympy's definite integral returns nan in some cases (docs/theory.md 7); simulate it
    S.clear_cache()
    monkeypatch.setattr(sp, "integrate", lambda *a, **k: sp.nan)
    try:
        res = S.mp_integrated_moment(1, "1/2", 3)
        assert not res.exact
        assert math.isclose(float(res.value), 3.0, rel_tol=1e-20)
        res2 = S.mp_integrated_moment(2, 0.1, 1, variable="x")
        assert not res2.exact
        assert math.isclose(float(res2.value), 1.1, rel_tol=1e-20)
    finally:
        S.clear_cache()


def test_integrated_moment_bad_input():
    for bad in [0, -1, "abc", float("nan"), True]:
        with pytest.raises(InvalidInputError):
            S.mp_integrated_moment(1, bad)
    with pytest.raises(InvalidInputError):
        S.mp_integrated_moment(1, 1, 0)
    for k in [-1, 13, 1.5, True]:
        with pytest.raises(InvalidInputError):
            S.mp_integrated_moment(k, 1)
    with pytest.raises(InvalidInputError):
        S.mp_integrated_moment(1, 1, variable="y")
    with pytest.raises(InvalidInputError):
        S.mp_moment_expr(-1)


# ----------------------------------------------------------------------------- BBP
# the closed forms as typed in rmt/_bbp.py's docstring and docs/theory.md section 5
_T = theta**2 / sigma2
TYPED = {
    "multiplicative": dict(
        threshold=sp.sqrt(gamma),
        outlier=sigma2 * (1 + theta) * (1 + gamma / theta),
        left=(1 - gamma / theta**2) / (1 + gamma / theta),
        edge=sigma2 * (1 + sp.sqrt(gamma)) ** 2,
    ),
    "additive": dict(
        threshold=sigma2 * (gamma + sp.sqrt(gamma)),
        outlier=theta + sigma2 * theta / (theta - gamma * sigma2),
        left=1 - gamma * sigma2**2 / (theta - gamma * sigma2) ** 2,
        edge=sigma2 * (1 + sp.sqrt(gamma)) ** 2,
    ),
    "information_plus_noise": dict(
        threshold=sp.sqrt(sigma2) * gamma ** sp.Rational(1, 4),
        outlier=sigma2 * (1 + _T) * (gamma + _T) / _T,
        left=1 - gamma * (1 + _T) / (_T * (_T + gamma)),
        right=1 - (gamma + _T) / (_T * (_T + 1)),
        edge=sigma2 * (1 + sp.sqrt(gamma)) ** 2,
    ),
    "wigner": dict(
        threshold=sp.sqrt(sigma2),
        outlier=theta + sigma2 / theta,
        left=1 - sigma2 / theta**2,
        edge=2 * sp.sqrt(sigma2),
    ),
}


def _derived(model, key):
    if key == "threshold":
        return S.bbp_threshold_expr(model)
    if key == "outlier":
        return S.bbp_outlier_expr(model)
    if key == "edge":
        return S.bbp_upper_edge_expr(model)
    return S.bbp_overlap_expr(model, side=key)


@pytest.mark.parametrize("model", MODELS)
def test_derived_equals_typed_symbolically(model):
    for key, typed in TYPED[model].items():
        assert sp.simplify(_derived(model, key) - typed) == 0, (model, key)


@pytest.mark.parametrize("model", MODELS)
def test_outlier_meets_edge_at_threshold(model):
    out = S.bbp_outlier_expr(model).subs(theta, S.bbp_threshold_expr(model))
    assert sp.simplify(out - S.bbp_upper_edge_expr(model)) == 0
    # and the overlap vanishes there
    ov = S.bbp_overlap_expr(model).subs(theta, S.bbp_threshold_expr(model))
    assert sp.simplify(ov) == 0


@pytest.mark.parametrize("model", ["multiplicative", "additive", "wigner"])
def test_threshold_is_critical_point_of_outlier_map(model):
    # d lambda / d theta = 0 at the threshold (the outlier map turns back into the bulk)
    d = sp.diff(S.bbp_outlier_expr(model), theta).subs(theta, S.bbp_threshold_expr(model))
    assert sp.simplify(d) == 0


@pytest.mark.parametrize("model", MODELS)
def test_bbp_code_matches_derivation_on_grid(model):
    args = (theta, gamma, sigma2)
    f_out = sp.lambdify(args, S.bbp_outlier_expr(model), "numpy")
    f_ov = sp.lambdify(args, S.bbp_overlap_expr(model), "numpy")
    f_thr = sp.lambdify((gamma, sigma2), S.bbp_threshold_expr(model), "numpy")
    f_edge = sp.lambdify((gamma, sigma2), S.bbp_upper_edge_expr(model), "numpy")
    f_spike = sp.lambdify((lam, gamma, sigma2), S.bbp_spike_expr(model), "numpy")
    f_right = (
        sp.lambdify(args, S.bbp_overlap_expr(model, "right"), "numpy")
        if model == "information_plus_noise"
        else None
    )
    ratios = [None] if model == "wigner" else RATIOS
    for r in ratios:
        rv = 1.0 if r is None else r  # the Wigner expressions do not contain gamma
        for s in SCALES:
            thr = bbp_threshold(r, s, model=model)
            assert math.isclose(float(f_thr(rv, s)), thr, rel_tol=RTOL)
            assert math.isclose(float(f_edge(rv, s)), bbp_upper_edge(r, s, model=model), rel_tol=RTOL)
            th = thr * np.array([1.01, 1.2, 1.5, 2.0, 3.0, 10.0, 100.0])
            lam_code = bbp_outlier(th, r, s, model=model)
            _close(f_out(th, rv, s), lam_code)
            _close(f_ov(th, rv, s), bbp_overlap(th, r, s, model=model), atol=1e-14)
            if f_right is not None:
                _close(
                    f_right(th, rv, s),
                    bbp_overlap(th, r, s, model=model, side="right"),
                    atol=1e-14,
                )
            # the inverse: derived spike of the code's outlier, and the code's spike
            _close(f_spike(lam_code, rv, s), th, rtol=1e-9)
            _close(bbp_spike(lam_code, r, s, model=model), th, rtol=1e-9)


def test_symbolic_bad_model_and_side():
    for fn in (S.bbp_outlier_expr, S.bbp_threshold_expr, S.bbp_upper_edge_expr, S.bbp_spike_expr):
        with pytest.raises(InvalidInputError):
            fn("spiked")
    with pytest.raises(InvalidInputError):
        S.bbp_overlap_expr("additive", side="right")
    with pytest.raises(InvalidInputError):
        S.bbp_overlap_expr("information_plus_noise", side="up")


def test_public_names_exist():
    for name in S.__all__:
        assert hasattr(S, name), name
