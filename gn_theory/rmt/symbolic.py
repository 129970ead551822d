r"""Sympy derivations of the random-matrix closed forms (docs/theory.md section 7).

Every closed form that :mod:`gn_theory.rmt._mp` and :mod:`gn_theory.rmt._bbp`
type in by hand is *derived* here from its defining equation, so that a test
can check code against derivation (``tests/test_rmt_symbolic.py``):

* Marchenko-Pastur: the Cauchy-Stieltjes transform ``G`` of MP(gamma, sigma^2)
  solves the quadratic

  .. math:: Q(G, z) = \sigma^2\gamma z G^2 - (z - \sigma^2(1-\gamma)) G + 1 = 0 ;

  its discriminant factorises as :math:`(z-\lambda_-)(z-\lambda_+)`, which
  gives the edges; the density is :math:`\sqrt{-\mathrm{disc}}/(2\pi\sigma^2\gamma x)`
  (the imaginary part of the roots on the cut); the branch with
  :math:`G \sim 1/z` at infinity is the transform; its expansion at infinity
  gives the moments; and ``integrate`` at rational gamma gives the mass and
  moments directly (with an ``mpmath.quad`` fall-back, docs/theory.md section 7).
* BBP, in the parametrisation of :func:`gn_theory.rmt.bbp_outlier` for each
  model (``theta`` the spike, ``gamma`` the ratio, ``sigma2`` the scale):

  - ``"additive"`` (Benaych-Georges & Nadakuditi 2011): the outlier solves
    ``G(lambda) = 1/theta``, i.e. ``Q(1/theta, lambda) = 0``; the threshold is
    ``1 / G(lambda_+)``; the squared overlap is ``-1 / (theta^2 G'(lambda))``
    with ``G' = -Q_z / Q_G`` (implicit differentiation).
  - ``"multiplicative"`` (Baik, Ben Arous & Peche 2005): the Silverstein
    equation ``z = -1/m + gamma sigma^2 / (1 + sigma^2 m)`` of the companion
    transform, evaluated at ``m = -1/L`` for the population eigenvalue
    ``L = sigma^2 (1 + theta)``, gives the outlier ``psi(L)``; the threshold is
    where ``d psi / d theta = 0``; the squared overlap is
    ``L psi'(L) / psi(L)`` (Paul 2007; Bai & Yao 2012).
  - ``"information_plus_noise"`` (Benaych-Georges & Nadakuditi 2012): with
    ``phi(rho) = rho G(rho^2)`` and ``phi~ = c phi + (1 - c)/rho`` the
    D-transform ``D = phi phi~`` reduces, modulo the MP quadratic, to
    ``lambda G(lambda) - 1``; ``D = 1/theta^2`` gives
    ``lambda(t) = (1 + t)(c + t)/t`` (``t = theta^2`` at unit scale), whose
    minimum over ``t`` is the edge and whose minimiser is the threshold; the
    overlaps are ``-2 phi / (theta^2 D')`` (left) and ``-2 phi~ / (theta^2 D')``
    (right). Scale enters by ``X -> sqrt(sigma2) X``.
  - ``"wigner"``: the semicircle transform solves ``sigma^2 G^2 - z G + 1 = 0``;
    then as for the additive model.

Every public function is cached (:func:`functools.lru_cache`) and returns sympy
objects; :func:`sympy.lambdify` turns them into numpy functions. This module
imports sympy and is never imported by ``gn_theory`` or ``gn_theory.rmt`` at
package import; tests and docs import it directly.

Examples
--------
>>> import sympy as sp
>>> from gn_theory.rmt.symbolic import bbp_outlier_expr, bbp_symbols
>>> theta, gamma, sigma2, _ = bbp_symbols()
>>> sp.simplify(bbp_outlier_expr("additive") - (theta + sigma2 * theta / (theta - gamma * sigma2)))
0
>>> bbp_threshold_expr("multiplicative")
sqrt(gamma)
"""

from __future__ import annotations

import functools
from fractions import Fraction
from typing import Any, Literal, NamedTuple

import sympy as sp

from ..exceptions import InvalidInputError
from ._common import BBPModel, check_model

__all__ = [
    # Marchenko-Pastur
    "MPSymbols",
    "mp_symbols",
    "mp_stieltjes_equation",
    "mp_discriminant",
    "mp_edges_expr",
    "mp_density_expr",
    "mp_stieltjes_expr",
    "mp_moment_expr",
    "IntegratedMoment",
    "mp_integrated_moment",
    "clear_cache",
    # BBP
    "BBPSymbols",
    "bbp_symbols",
    "bbp_upper_edge_expr",
    "bbp_threshold_expr",
    "bbp_outlier_expr",
    "bbp_overlap_expr",
    "bbp_spike_expr",
]

# One set of symbols for the whole module (sympy symbols are interned by name and
# assumptions, so these equal any symbol built the same way elsewhere).
_z = sp.Symbol("z")
_G = sp.Symbol("G")
_x = sp.Symbol("x", positive=True)
_gamma = sp.Symbol("gamma", positive=True)
_sigma2 = sp.Symbol("sigma2", positive=True)
_theta = sp.Symbol("theta", positive=True)
_lam = sp.Symbol("lambda", positive=True)


class MPSymbols(NamedTuple):
    """Symbols of the Marchenko-Pastur derivations."""

    #: complex argument of the Stieltjes transform
    z: sp.Symbol
    #: the unknown of the quadratic, ``G(z)``
    G: sp.Symbol
    #: real (positive) argument of the density
    x: sp.Symbol
    #: gamma = p / n
    ratio: sp.Symbol
    #: sigma^2
    scale: sp.Symbol


class BBPSymbols(NamedTuple):
    """Symbols of the BBP derivations (``ratio`` is ``c = n / m`` for information-plus-noise)."""

    #: spike strength in the model's parametrisation
    theta: sp.Symbol
    #: gamma = p / n (c = n / m for information-plus-noise; unused for Wigner)
    ratio: sp.Symbol
    #: sigma^2
    scale: sp.Symbol
    #: an observed outlier (the argument of :func:`bbp_spike_expr`)
    outlier: sp.Symbol


class IntegratedMoment(NamedTuple):
    """Result of :func:`mp_integrated_moment`."""

    #: the integral (an exact sympy number, or a ``sympy.Float`` from mpmath)
    value: sp.Expr
    #: True if sympy's ``integrate`` produced it, False if it came from ``mpmath.quad``
    exact: bool


def mp_symbols() -> MPSymbols:
    """Symbols used by the Marchenko-Pastur derivations.

    Returns
    -------
    MPSymbols
        ``(z, G, x, ratio, scale)``; ``x``, ``ratio`` and ``scale`` are positive.
    """
    return MPSymbols(_z, _G, _x, _gamma, _sigma2)


def bbp_symbols() -> BBPSymbols:
    """Symbols used by the BBP derivations.

    Returns
    -------
    BBPSymbols
        ``(theta, ratio, scale, outlier)``, all positive (the closed forms are
        used above the threshold, where every spike is positive).
    """
    return BBPSymbols(_theta, _gamma, _sigma2, _lam)


def _nice(expr: sp.Expr) -> sp.Expr:
    """Simplify with ``gamma = r**2`` (so ``sqrt(gamma)`` is a polynomial variable), then back."""
    r = sp.Symbol("r", positive=True)
    return sp.factor(sp.cancel(sp.expand(expr.subs(_gamma, r**2)))).subs(r, sp.sqrt(_gamma))


# ----------------------------------------------------------------------------- Marchenko-Pastur
@functools.lru_cache(maxsize=None)
def mp_stieltjes_equation() -> sp.Expr:
    r"""The quadratic :math:`Q(G, z) = \sigma^2\gamma z G^2 - (z - \sigma^2(1-\gamma))G + 1`.

    ``G(z) = E[1/(z - X)]`` for X ~ MP(gamma, sigma^2) (atom included) is the
    root of ``Q = 0`` with ``G ~ 1/z`` at infinity (docs/theory.md section 4.3).

    Returns
    -------
    sympy.Expr
        ``Q`` in the symbols of :func:`mp_symbols`.

    Examples
    --------
    >>> mp_stieltjes_equation()
    G**2*gamma*sigma2*z - G*(-sigma2*(1 - gamma) + z) + 1
    """
    return _sigma2 * _gamma * _z * _G**2 - (_z - _sigma2 * (1 - _gamma)) * _G + 1


@functools.lru_cache(maxsize=None)
def mp_discriminant(*, factored: bool = False) -> sp.Expr:
    """Discriminant in ``G`` of :func:`mp_stieltjes_equation`, ``B**2 - 4 A C``.

    Parameters
    ----------
    factored : bool, default False
        If True return it as ``(z - lambda_-)(z - lambda_+)``, after checking
        that this product expands to the discriminant (the check substitutes
        ``gamma = r**2`` and lets :func:`sympy.factor` find the factors).

    Returns
    -------
    sympy.Expr

    Raises
    ------
    RuntimeError
        If the factorisation check fails (it does not; this guards the derivation).

    Examples
    --------
    >>> mp_discriminant(factored=True)
    (-sigma2*(sqrt(gamma) - 1)**2 + z)*(-sigma2*(sqrt(gamma) + 1)**2 + z)
    """
    a, b, c = sp.Poly(mp_stieltjes_equation(), _G).all_coeffs()
    disc = sp.expand(b**2 - 4 * a * c)
    if not factored:
        return disc
    r = sp.Symbol("r", positive=True)
    fac = sp.factor(disc.subs(_gamma, r**2))
    # collect the linear factors in z: each is z - (an edge)
    factors = [f for f in sp.Mul.make_args(fac) if f.has(_z)]
    edges = sorted(
        (sp.factor(sp.solve(f, _z)[0]).subs(r, sp.sqrt(_gamma)) for f in factors),
        key=lambda e: float(e.subs({_gamma: sp.Rational(1, 2), _sigma2: 1})),
    )
    if len(edges) != 2:  # pragma: no cover - guards the derivation
        raise RuntimeError(f"discriminant did not factor into two linear factors: {fac}")
    prod = (_z - edges[0]) * (_z - edges[1])
    if sp.expand(prod - disc) != 0:  # pragma: no cover
        raise RuntimeError("factorised discriminant does not expand back")
    return prod


@functools.lru_cache(maxsize=None)
def mp_edges_expr() -> tuple[sp.Expr, sp.Expr]:
    """Edges ``(lambda_-, lambda_+)`` as the zeros in ``z`` of the discriminant.

    Returns
    -------
    (sympy.Expr, sympy.Expr)
        ``sigma2 (1 - sqrt(gamma))**2`` and ``sigma2 (1 + sqrt(gamma))**2``.

    Examples
    --------
    >>> mp_edges_expr()
    (sigma2*(sqrt(gamma) - 1)**2, sigma2*(sqrt(gamma) + 1)**2)
    """
    edges = [sp.solve(f, _z)[0] for f in sp.Mul.make_args(mp_discriminant(factored=True))]
    lo, hi = sorted(edges, key=lambda e: float(e.subs({_gamma: sp.Rational(1, 2), _sigma2: 1})))
    return _nice(lo), _nice(hi)


@functools.lru_cache(maxsize=None)
def mp_density_expr() -> sp.Expr:
    r"""Density of the continuous part of MP(gamma, sigma^2), derived from the quadratic.

    The two roots of ``Q(G, x) = 0`` are ``(-B +- sqrt(disc)) / (2 A)`` with
    ``A = sigma2 gamma x``; inside the bulk ``disc < 0``, so the boundary values
    ``G(x +- i0)`` have imaginary parts ``-+ sqrt(-disc) / (2 A)`` and the
    density ``-Im G(x + i0) / pi`` is

    .. math:: f(x) = \frac{\sqrt{(\lambda_+ - x)(x - \lambda_-)}}{2\pi\sigma^2\gamma x}.

    Returns
    -------
    sympy.Expr
        ``f`` in the symbols of :func:`mp_symbols` (mass ``min(1, 1/gamma)``;
        ``nan`` from :func:`sympy.lambdify` outside the bulk).

    Raises
    ------
    RuntimeError
        If the root-gap check fails (it does not; this guards the derivation).

    Examples
    --------
    >>> mp_density_expr()
    sqrt(-(-sigma2*(sqrt(gamma) - 1)**2 + x)*(-sigma2*(sqrt(gamma) + 1)**2 + x))/(2*pi*gamma*sigma2*x)
    """
    q = mp_stieltjes_equation()
    a, b, _ = sp.Poly(q, _G).all_coeffs()
    roots = sp.solve(q, _G)
    disc = mp_discriminant()
    # (root_1 - root_2)^2 = disc / A^2: the half gap sqrt(-disc)/(2A) is |Im G| on the cut,
    # and the mean of the roots -B/(2A) is real there.
    gap2 = sp.expand(sp.simplify(((roots[0] - roots[1]) * a) ** 2))
    if sp.expand(gap2 - disc) != 0:  # pragma: no cover - guards the derivation
        raise RuntimeError("roots of the MP quadratic do not have the expected gap")
    if sp.simplify(roots[0] + roots[1] + b / a) != 0:  # pragma: no cover
        raise RuntimeError("roots of the MP quadratic do not have the expected mean")
    disc_f = mp_discriminant(factored=True).subs(_z, _x)
    return sp.sqrt(-disc_f) / (2 * sp.pi * a.subs(_z, _x))


@functools.lru_cache(maxsize=None)
def mp_stieltjes_expr() -> sp.Expr:
    r"""Cauchy-Stieltjes transform ``G(z)`` of MP(gamma, sigma^2), the branch with ``z G -> 1``.

    Of the two candidates
    ``(z - sigma2 (1 - gamma) -+ sqrt(z - lambda_-) sqrt(z - lambda_+)) / (2 sigma2 gamma z)``
    (each solves the quadratic, since the product of square roots squares to the
    discriminant), the one with ``lim z G(z) = 1`` at infinity is returned.
    The product of principal square roots is the branch that is analytic off
    ``[lambda_-, lambda_+]`` and gives ``G(x + i0)`` on the cut, so the
    expression lambdifies to the right complex function.

    Returns
    -------
    sympy.Expr

    Raises
    ------
    RuntimeError
        If no candidate has the right behaviour at infinity (guards the derivation).

    Examples
    --------
    >>> mp_stieltjes_expr()
    (gamma*sigma2 - sigma2 + z - sqrt(-sigma2*(sqrt(gamma) - 1)**2 + z)*sqrt(-sigma2*(sqrt(gamma) + 1)**2 + z))/(2*gamma*sigma2*z)
    """
    q = mp_stieltjes_equation()
    lo, hi = mp_edges_expr()
    a, b, _ = sp.Poly(q, _G).all_coeffs()
    big_r = sp.Symbol("R")  # stands for the square root of the discriminant
    root = sp.sqrt(_z - lo) * sp.sqrt(_z - hi)
    zr = sp.Symbol("zr", positive=True)  # z -> +infinity along the real axis
    for sign in (-1, 1):
        # Q(candidate) * 4A is a polynomial in R; it vanishes modulo R^2 = disc
        residual = sp.rem(
            sp.Poly(sp.expand(q.subs(_G, (-b + sign * big_r) / (2 * a)) * 4 * a), big_r),
            sp.Poly(big_r**2 - mp_discriminant(), big_r),
        )
        if sp.expand(residual.as_expr()) != 0:  # pragma: no cover - guards the derivation
            continue
        cand = (-b + sign * root) / (2 * a)
        if sp.limit((zr * cand).subs(_z, zr), zr, sp.oo) == 1:
            return cand
    raise RuntimeError("no branch of the MP quadratic behaves like 1/z")  # pragma: no cover


@functools.lru_cache(maxsize=None)
def _mp_moment_series(kmax: int) -> tuple[sp.Expr, ...]:
    w = sp.Symbol("w", positive=True)
    lo, hi = mp_edges_expr()
    # G(1/w) for small w > 0: sqrt(z - lo) sqrt(z - hi) = sqrt((1 - lo w)(1 - hi w)) / w
    poly = sp.expand((1 - lo * w) * (1 - hi * w))
    g_w = (1 - _sigma2 * (1 - _gamma) * w - sp.sqrt(poly)) / (2 * _sigma2 * _gamma)
    ser = sp.expand(sp.series(g_w, w, 0, kmax + 2).removeO())
    return tuple(sp.factor(ser.coeff(w, k + 1)) for k in range(kmax + 1))


def mp_moment_expr(k: int) -> sp.Expr:
    r"""k-th moment of MP(gamma, sigma^2) from the expansion of ``G`` at infinity.

    ``G(z) = sum_k E[X^k] / z^(k+1)``; the coefficients of the series of
    :func:`mp_stieltjes_expr` in ``w = 1/z`` are the moments (the atom at zero
    contributes nothing for ``k >= 1``). docs/theory.md section 4.2 gives
    ``sigma^(2k) sum_r gamma^r / (r+1) C(k, r) C(k-1, r)``.

    Parameters
    ----------
    k : int
        Order, ``0 <= k <= 30``.

    Returns
    -------
    sympy.Expr
        A polynomial in ``gamma`` times ``sigma2**k`` (factored).

    Raises
    ------
    InvalidInputError
        ``k`` not an integer in ``[0, 30]``.

    Examples
    --------
    >>> [mp_moment_expr(k) for k in range(4)]
    [1, sigma2, sigma2**2*(gamma + 1), sigma2**3*(gamma**2 + 3*gamma + 1)]
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= 30:
        raise InvalidInputError(f"moment order must be an integer in [0, 30]; got {k!r}")
    # compute in blocks of 4 so that small k share one cached series
    return _mp_moment_series(max(4, k))[k]


def _as_rational(value: Any, name: str) -> sp.Rational:
    if isinstance(value, bool):
        raise InvalidInputError(f"{name} must be a positive rational number; got {value!r}")
    try:
        if isinstance(value, float):
            r = sp.Rational(str(value))  # 0.1 -> 1/10, not the binary fraction
        elif isinstance(value, Fraction):
            r = sp.Rational(value.numerator, value.denominator)
        else:
            r = sp.Rational(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be a positive rational number; got {value!r}") from exc
    if not r.is_finite or r <= 0:
        raise InvalidInputError(f"{name} must be a positive rational number; got {value!r}")
    return r


@functools.lru_cache(maxsize=None)
def _integrated_moment(k: int, g: sp.Rational, s: sp.Rational, variable: str) -> IntegratedMoment:
    import mpmath

    lo = (1 - sp.sqrt(g)) ** 2
    hi = (1 + sp.sqrt(g)) ** 2
    value: sp.Expr | None = None
    if variable == "angle":
        # x = c + d cos(phi), c = 1 + g, d = 2 sqrt(g): phi from pi (x = lo) to 0 (x = hi),
        # sqrt((hi - x)(x - lo)) = d sin(phi), dx = -d sin(phi) dphi
        phi = sp.Symbol("phi", real=True)
        c, d = 1 + g, 2 * sp.sqrt(g)
        integrand = d**2 * sp.sin(phi) ** 2 * (c + d * sp.cos(phi)) ** (k - 1) / (2 * sp.pi * g)
        try:
            value = sp.integrate(sp.expand(integrand) if k >= 1 else integrand, (phi, 0, sp.pi))
        except (NotImplementedError, ValueError):  # pragma: no cover - sympy gave up
            value = None
    else:
        x = sp.Symbol("x", positive=True)
        dens = sp.sqrt((hi - x) * (x - lo)) / (2 * sp.pi * g * x)
        try:
            value = sp.integrate(x**k * dens, (x, lo, hi))
        except (NotImplementedError, ValueError):  # pragma: no cover
            value = None
    ok = value is not None and not value.has(sp.Integral)
    if ok:
        num = complex(sp.N(value, 30))
        ok = num == num and abs(num.imag) <= 1e-20 * max(1.0, abs(num.real)) and abs(num.real) < float("inf")
    if ok:
        return IntegratedMoment(value * s**k, True)
    # sympy returned nan (docs/theory.md section 7: e.g. the mean at gamma = 1/2) or gave up
    with mpmath.workdps(30):
        gm = mpmath.mpf(g.p) / g.q
        lo_m, hi_m = (1 - mpmath.sqrt(gm)) ** 2, (1 + mpmath.sqrt(gm)) ** 2
        f = lambda t: t**k * mpmath.sqrt((hi_m - t) * (t - lo_m)) / (2 * mpmath.pi * gm * t)  # noqa: E731
        num = mpmath.quad(f, [lo_m, 1 + gm, hi_m])
        return IntegratedMoment(sp.Float(num, 25) * s**k, False)


def mp_integrated_moment(
    k: int,
    ratio: Any,
    scale: Any = 1,
    *,
    variable: Literal["angle", "x"] = "angle",
) -> IntegratedMoment:
    r"""``int x^k f(x) dx`` over the bulk at a rational ratio, by :func:`sympy.integrate`.

    ``k = 0`` gives the continuous mass ``min(1, 1/gamma)``; ``k >= 1`` the
    moments of the full law (the atom contributes 0). sympy sometimes returns
    ``nan`` for such a definite integral (docs/theory.md section 7: the mean at
    ``gamma = 1/2`` with ``variable="x"``); then the value comes from
    ``mpmath.quad`` at 30 digits and ``exact`` is False.

    Parameters
    ----------
    k : int
        Order, ``0 <= k <= 12``.
    ratio : int, float, str, fractions.Fraction or sympy.Rational
        gamma > 0, made exact (a float via its decimal string, so ``0.1`` is 1/10).
    scale : same types as ratio, default 1
        sigma^2 > 0; the result scales as ``scale**k``.
    variable : {"angle", "x"}, default "angle"
        ``"angle"`` integrates after ``x = 1 + gamma + 2 sqrt(gamma) cos(phi)``,
        which makes the integrand a trigonometric polynomial for ``k >= 1``
        (fast, exact); ``"x"`` integrates the density in ``x`` as written
        (seconds per integral, and where sympy returns ``nan``).

    Returns
    -------
    IntegratedMoment
        ``(value, exact)``.

    Raises
    ------
    InvalidInputError
        ``k`` out of range, ``ratio``/``scale`` not positive rationals, or an
        unknown ``variable``.

    Examples
    --------
    >>> mp_integrated_moment(2, "1/2")
    IntegratedMoment(value=3/2, exact=True)
    >>> mp_integrated_moment(0, 4)
    IntegratedMoment(value=1/4, exact=True)
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= 12:
        raise InvalidInputError(f"moment order must be an integer in [0, 12]; got {k!r}")
    if variable not in ("angle", "x"):
        raise InvalidInputError(f"variable must be 'angle' or 'x'; got {variable!r}")
    g = _as_rational(ratio, "ratio")
    s = _as_rational(scale, "scale")
    res = _integrated_moment(k, g, s, variable)
    if res.exact:
        val = sp.nsimplify(sp.radsimp(res.value)) if not res.value.is_Rational else res.value
        # keep the simplified form only when it is the same number
        if abs(complex(sp.N(val - res.value, 30))) > 1e-25:
            val = res.value
        return IntegratedMoment(val, True)
    return res


# ----------------------------------------------------------------------------- BBP
def _wigner_equation() -> sp.Expr:
    """``sigma2 G^2 - z G + 1``: the semicircle of radius ``2 sqrt(sigma2)``."""
    return _sigma2 * _G**2 - _z * _G + 1


def _additive_rule(q: sp.Expr, edge: sp.Expr) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """Outlier, threshold and overlap of ``bulk + theta u u^T`` from the bulk's quadratic ``q``.

    Benaych-Georges & Nadakuditi (2011): ``G(lambda) = 1/theta``; threshold
    ``1/G(edge)`` (at the edge the discriminant vanishes, so ``G = -B/(2A)``,
    the double root); overlap ``-1/(theta^2 G')``, ``G' = -Q_z/Q_G``.
    """
    sols = sp.solve(q.subs(_G, 1 / _theta), _z)
    if len(sols) != 1:  # pragma: no cover - linear in z for both bulks
        raise RuntimeError(f"expected one solution of G(z) = 1/theta, got {sols}")
    outlier = sp.factor(sols[0])
    a, b, _ = sp.Poly(q, _G).all_coeffs()
    g_edge = sp.simplify((-b / (2 * a)).subs(_z, edge))
    threshold = _nice(1 / g_edge)
    dg = -sp.diff(q, _z) / sp.diff(q, _G)
    overlap = sp.factor(sp.simplify(-1 / (_theta**2 * dg.subs(_G, 1 / _theta).subs(_z, outlier))))
    return outlier, threshold, overlap


@functools.lru_cache(maxsize=None)
def _derive(model: str) -> dict[str, sp.Expr]:
    """All closed forms of one model: edge, threshold, outlier, overlaps."""
    if model == "additive":
        edge = mp_edges_expr()[1]
        outlier, threshold, overlap = _additive_rule(mp_stieltjes_equation(), edge)
        return {"edge": edge, "threshold": threshold, "outlier": outlier, "left": overlap}
    if model == "wigner":
        disc = sp.discriminant(_wigner_equation(), _G)
        edge = max(sp.solve(disc, _z), key=lambda e: float(e.subs(_sigma2, 1)))
        outlier, threshold, overlap = _additive_rule(_wigner_equation(), edge)
        return {"edge": edge, "threshold": threshold, "outlier": outlier, "left": overlap}
    if model == "multiplicative":
        m = sp.Symbol("m")
        big_l = sp.Symbol("L", positive=True)  # population eigenvalue
        silverstein = -1 / m + _gamma * _sigma2 / (1 + _sigma2 * m)
        psi = sp.factor(silverstein.subs(m, -1 / big_l))
        outlier = sp.factor(psi.subs(big_l, _sigma2 * (1 + _theta)))
        crit = [r for r in sp.solve(sp.diff(outlier, _theta), _theta) if r.is_positive]
        if len(crit) != 1:  # pragma: no cover
            raise RuntimeError(f"expected one positive critical spike, got {crit}")
        threshold = crit[0]
        overlap = sp.factor(sp.simplify(big_l * sp.diff(psi, big_l) / psi)).subs(
            big_l, _sigma2 * (1 + _theta)
        )
        edge = _nice(outlier.subs(_theta, threshold))
        return {
            "edge": edge,
            "threshold": threshold,
            "outlier": outlier,
            "left": sp.factor(sp.simplify(overlap)),
        }
    # information-plus-noise, derived at unit scale, then X -> sqrt(sigma2) X
    c = _gamma
    rho = sp.Symbol("rho", positive=True)  # singular value; lambda = rho^2
    gp = sp.Symbol("Gp")  # G'(rho^2)
    q = mp_stieltjes_equation().subs(_sigma2, 1)
    # D(lambda) = phi phi~ = c lambda G^2 + (1 - c) G, reduced modulo Q(G, lambda) = 0
    d_lam = sp.rem(sp.Poly(c * _lam * _G**2 + (1 - c) * _G, _G), sp.Poly(q.subs(_z, _lam), _G))
    g_sol = sp.solve(sp.Eq(d_lam.as_expr(), 1 / _theta**2), _G)[0]
    lam_sol = [sp.factor(v) for v in sp.solve(q.subs(_z, _lam).subs(_G, g_sol), _lam)]
    if len(lam_sol) != 1:  # pragma: no cover
        raise RuntimeError(f"expected one outlier, got {lam_sol}")
    out1 = lam_sol[0]
    t = sp.Symbol("t", positive=True)  # t = theta^2: lambda(t) = (1 + t)(c + t)/t
    lam_t = sp.factor(out1.subs(_theta, sp.sqrt(t)))
    t_star = [r for r in sp.solve(sp.diff(lam_t, t), t) if r.is_positive]
    if len(t_star) != 1:  # pragma: no cover
        raise RuntimeError(f"expected one positive minimiser, got {t_star}")
    thr1 = sp.sqrt(t_star[0])
    edge1 = _nice(lam_t.subs(t, t_star[0]))
    # overlaps (Benaych-Georges & Nadakuditi 2012, Thm 2.9): -2 phi / (theta^2 D'), -2 phi~ / (theta^2 D')
    phi = rho * _G
    dphi = _G + 2 * rho**2 * gp
    phit = c * phi + (1 - c) / rho
    dphit = c * dphi - (1 - c) / rho**2
    d_rho = dphi * phit + phi * dphit
    dg = (-sp.diff(q, _z) / sp.diff(q, _G)).subs(_z, rho**2)

    def at_outlier(e: sp.Expr) -> sp.Expr:
        e = e.subs(gp, dg).subs(_G, g_sol.subs(_lam, rho**2)).subs(rho, sp.sqrt(out1))
        return sp.factor(sp.simplify(e))

    left1 = at_outlier(-2 * phi / (_theta**2 * d_rho))
    right1 = at_outlier(-2 * phit / (_theta**2 * d_rho))
    th_unit = _theta / sp.sqrt(_sigma2)
    return {
        "edge": _sigma2 * edge1,
        "threshold": sp.sqrt(_sigma2) * thr1,
        "outlier": sp.factor(_sigma2 * out1.subs(_theta, th_unit)),
        "left": sp.factor(left1.subs(_theta, th_unit)),
        "right": sp.factor(right1.subs(_theta, th_unit)),
    }


def bbp_upper_edge_expr(model: BBPModel = "multiplicative") -> sp.Expr:
    """Upper edge of the bulk, derived (the outlier at the threshold, or a zero of the discriminant).

    Parameters
    ----------
    model : {"multiplicative", "additive", "information_plus_noise", "wigner"}
        The spiked model, parametrised as in :func:`gn_theory.rmt.bbp_outlier`.

    Returns
    -------
    sympy.Expr
        In the symbols of :func:`bbp_symbols`.

    Raises
    ------
    InvalidInputError
        Unknown model.

    Examples
    --------
    >>> bbp_upper_edge_expr("wigner")
    2*sqrt(sigma2)
    """
    return _derive(check_model(model))["edge"]


def bbp_threshold_expr(model: BBPModel = "multiplicative") -> sp.Expr:
    """Critical spike of the BBP transition, derived.

    additive and Wigner: ``1 / G(edge)``; multiplicative: the zero of
    ``d outlier / d theta``; information-plus-noise: the minimiser of
    ``lambda(t) = (1 + t)(c + t)/t`` mapped to ``theta = sqrt(sigma2 t)``.

    Parameters
    ----------
    model : {"multiplicative", "additive", "information_plus_noise", "wigner"}
        The spiked model.

    Returns
    -------
    sympy.Expr

    Raises
    ------
    InvalidInputError
        Unknown model.

    Examples
    --------
    >>> bbp_threshold_expr("information_plus_noise")
    gamma**(1/4)*sqrt(sigma2)
    """
    return _derive(check_model(model))["threshold"]


def bbp_outlier_expr(model: BBPModel = "multiplicative") -> sp.Expr:
    """Limiting outlier above the threshold, derived (module docstring).

    Parameters
    ----------
    model : {"multiplicative", "additive", "information_plus_noise", "wigner"}
        The spiked model.

    Returns
    -------
    sympy.Expr

    Raises
    ------
    InvalidInputError
        Unknown model.

    Examples
    --------
    >>> bbp_outlier_expr("multiplicative")
    sigma2*(gamma + theta)*(theta + 1)/theta
    >>> bbp_outlier_expr("wigner")
    (sigma2 + theta**2)/theta
    """
    return _derive(check_model(model))["outlier"]


def bbp_overlap_expr(model: BBPModel = "multiplicative", side: Literal["left", "right"] = "left") -> sp.Expr:
    """Limiting squared overlap of the outlier's eigenvector with the spike, derived.

    Parameters
    ----------
    model : {"multiplicative", "additive", "information_plus_noise", "wigner"}
        The spiked model.
    side : {"left", "right"}, default "left"
        ``"right"`` (overlap of the right singular vector with ``w``) only for
        information-plus-noise.

    Returns
    -------
    sympy.Expr

    Raises
    ------
    InvalidInputError
        Unknown model or side, or ``side="right"`` for another model.

    Examples
    --------
    >>> bbp_overlap_expr("wigner")
    -(sigma2 - theta**2)/theta**2
    """
    d = _derive(check_model(model))
    if side not in ("left", "right"):
        raise InvalidInputError(f"side must be 'left' or 'right'; got {side!r}")
    if side not in d:
        raise InvalidInputError(
            f"side='right' exists only for model='information_plus_noise'; got model={model!r}"
        )
    return d[side]


@functools.lru_cache(maxsize=None)
def bbp_spike_expr(model: BBPModel = "multiplicative") -> sp.Expr:
    """Inverse of :func:`bbp_outlier_expr`: the spike above threshold giving outlier ``lambda``.

    Solves ``outlier(theta) = lambda`` and keeps the root that maps back to a
    spike above the threshold (checked at a sample point).

    Parameters
    ----------
    model : {"multiplicative", "additive", "information_plus_noise", "wigner"}
        The spiked model.

    Returns
    -------
    sympy.Expr
        In ``lambda`` (``bbp_symbols().outlier``), ``gamma`` and ``sigma2``.

    Raises
    ------
    InvalidInputError
        Unknown model.

    Examples
    --------
    >>> import sympy as sp
    >>> _, _, sigma2, lam = bbp_symbols()
    >>> sp.factor(bbp_spike_expr("wigner") - (lam + sp.sqrt(lam**2 - 4 * sigma2)) / 2)
    0
    """
    model = check_model(model)
    out = bbp_outlier_expr(model)
    thr = bbp_threshold_expr(model)
    th_any = sp.Symbol("theta_any")  # no sign assumption, so every root is returned
    roots = sp.solve(sp.Eq(out.subs(_theta, th_any), _lam), th_any)
    point = {_gamma: sp.Rational(1, 2), _sigma2: sp.Rational(3, 2)}
    th0 = 2 * thr.subs(point)
    lam0 = out.subs(point).subs(_theta, th0)
    for r in roots:
        val = complex(sp.N(r.subs(point).subs(_lam, lam0), 30))
        if abs(val - complex(sp.N(th0, 30))) < 1e-20:
            return r
    raise RuntimeError(f"no root of outlier(theta) = lambda maps back above threshold: {roots}")  # pragma: no cover


def clear_cache() -> None:
    """Forget every cached derivation and integral (they are recomputed on the next call).

    Examples
    --------
    >>> from gn_theory.rmt import symbolic
    >>> symbolic.clear_cache()
    """
    for value in list(globals().values()):
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()
