"""The Marchenko-Pastur law, scipy.stats style.

Convention (docs/theory.md section 4): ``ratio`` gamma = p / n (dimension over
number of samples), ``scale`` sigma^2 = the population variance. The limiting
spectral law of ``S = X X^T / n`` for ``X`` of shape (p, n) with iid entries
of variance sigma^2 is

.. math::

    \\mu = (1 - 1/\\gamma)_+ \\delta_0 + f(x)\\,dx, \\qquad
    f(x) = \\frac{\\sqrt{(\\lambda_+ - x)(x - \\lambda_-)}}{2 \\pi \\sigma^2 \\gamma x},
    \\quad \\lambda_\\pm = \\sigma^2 (1 \\pm \\sqrt{\\gamma})^2 .

Two objects:

* :data:`marchenko_pastur`, an ``rv_continuous`` for the *continuous part*
  normalised to one (shape ``ratio``; scipy's own ``scale`` keyword is
  sigma^2), usable wherever scipy expects a distribution
  (``scipy.stats.kstest`` included);
* :class:`MarchenkoPastur`, the frozen law with the atom at zero handled
  explicitly: ``cdf`` jumps by the atom mass at 0, ``pdf`` is the density of
  the continuous part (the atom has no density), and ``nonzero=True`` gives the
  law of the nonzero eigenvalues only.

Torch-free.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from .._checks import check_rng
from ..exceptions import InvalidInputError
from ._common import check_ratio_scale

__all__ = ["MarchenkoPastur", "marchenko_pastur", "mp_edges", "mp_moment"]


def mp_edges(ratio: float, scale: float = 1.0) -> tuple[float, float]:
    """Edges ``(lambda_-, lambda_+) = scale * (1 -+ sqrt(ratio))**2`` of the MP bulk.

    Examples
    --------
    >>> mp_edges(0.25, 2.0)
    (0.5, 4.5)
    """
    g, s = check_ratio_scale(ratio, scale)
    r = math.sqrt(g)
    return s * (1.0 - r) ** 2, s * (1.0 + r) ** 2


def mp_moment(k: int, ratio: float, scale: float = 1.0) -> float:
    """k-th moment of the full MP law (the atom contributes 0).

    .. math:: \\mathbb E x^k = \\sigma^{2k} \\sum_{r=0}^{k-1}
              \\frac{\\gamma^r}{r+1} \\binom{k}{r} \\binom{k-1}{r}

    Examples
    --------
    >>> mp_moment(2, 0.5, 1.0)  # 1 + gamma
    1.5
    >>> mp_moment(3, 2.0, 1.0)  # 1 + 3 gamma + gamma^2
    11.0
    """
    g, s = check_ratio_scale(ratio, scale)
    k = int(k)
    if k < 0:
        raise InvalidInputError(f"moment order must be >= 0, got {k}")
    if k == 0:
        return 1.0
    total = sum(
        g**r / (r + 1) * math.comb(k, r) * math.comb(k - 1, r) for r in range(k)
    )
    return s**k * total


# ----------------------------------------------------------------------------- standard law
def _edges1(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = np.sqrt(g)
    return (1.0 - r) ** 2, (1.0 + r) ** 2


def _cont_mass(g: np.ndarray) -> np.ndarray:
    return np.minimum(1.0, 1.0 / g)


def _pdf1(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Density of the continuous part of MP(g, 1), *not* renormalised (mass min(1, 1/g))."""
    lo, hi = _edges1(g)
    inside = (x > lo) & (x < hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        val = np.sqrt(np.clip((hi - x) * (x - lo), 0.0, None)) / (2.0 * np.pi * g * x)
    return np.where(inside, val, 0.0)


def standard_cdf(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """CDF of the continuous part of MP(g, 1), renormalised to total mass one.

    Not in ``__all__``: the fits of :mod:`gn_theory.rmt` use it directly (no scipy
    argument checks inside their optimisation loops). Closed form of docs/theory.md section 4.4 written with ``arctan2`` so that no
    branch shift is needed: with t = sqrt((hi - x)/(x - lo)),
    ``F = [pi g + sqrt((hi-x)(x-lo)) - (1+g) atan((t^2-1)/(2t))
    + (1-g) atan((lo t^2 - hi)/(2 (1-g) t))] / (2 pi g)`` plus the shift for
    g > 1; this function evaluates the equivalent antiderivative directly and
    is exact at the edges (0 at lo, 1 at hi).
    """
    x, g = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(g, dtype=float))
    lo, hi = _edges1(g)
    out = np.where(x >= hi, 1.0, 0.0)
    inside = (x > lo) & (x < hi)
    if not np.any(inside):
        return out
    xi, gi, li, hi_ = x[inside], g[inside], lo[inside], hi[inside]
    # Antiderivative of sqrt((hi-x)(x-lo)) / (2 pi g x) on [lo, x]; write
    # x = c + d cos(phi) with c = 1 + g, d = 2 sqrt(g) (lo = c - d, hi = c + d),
    # phi from pi (at lo) to 0 (at hi). Then the integral over [lo, x] is
    #   1/(2 pi g) * int_{phi}^{pi} d^2 sin^2(u) / (c + d cos u) du,
    # which has the elementary form below (c > d >= 0; c = d when g = 1).
    c = 1.0 + gi
    d = 2.0 * np.sqrt(gi)
    phi = np.arccos(np.clip((xi - c) / d, -1.0, 1.0))

    # int d^2 sin^2 u / (c + d cos u) du = c u - d sin u - 2 (c^2 - d^2)/sqrt(c^2-d^2) *
    #   atan( sqrt((c-d)/(c+d)) tan(u/2) ) + const ; c^2 - d^2 = (1 - g)^2.
    def antider(u: np.ndarray) -> np.ndarray:
        e = np.abs(1.0 - gi)  # sqrt(c^2 - d^2)
        k = np.sqrt((c - d) / (c + d))  # = |1 - sqrt g| / (1 + sqrt g)
        # atan(k tan(u/2)) continuous on [0, pi]: equals pi/2 at u = pi (for k > 0)
        at = np.arctan2(k * np.sin(u / 2.0), np.cos(u / 2.0))
        return c * u - d * np.sin(u) - 2.0 * e * at

    integral = (antider(np.full_like(phi, np.pi)) - antider(phi)) / (2.0 * np.pi * gi)
    out[inside] = integral / np.minimum(1.0, 1.0 / gi)
    return np.clip(out, 0.0, 1.0)


def standard_ppf(q: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Inverse of :func:`standard_cdf` by vectorised bisection, polished by Newton."""
    q, g = np.broadcast_arrays(np.asarray(q, dtype=float), np.asarray(g, dtype=float))
    lo, hi = _edges1(g)
    a = np.array(lo, dtype=float, copy=True)
    b = np.array(hi, dtype=float, copy=True)
    for _ in range(60):
        m = 0.5 * (a + b)
        left = standard_cdf(m, g) < q
        a = np.where(left, m, a)
        b = np.where(left, b, m)
    x = 0.5 * (a + b)
    for _ in range(2):
        dens = _pdf1(x, g) / _cont_mass(g)
        step = np.where(dens > 0, (standard_cdf(x, g) - q) / np.where(dens > 0, dens, 1.0), 0.0)
        x_new = x - step
        x = np.where((x_new > lo) & (x_new < hi), x_new, x)
    x = np.where(q <= 0, lo, x)
    x = np.where(q >= 1, hi, x)
    return x


class marchenko_pastur_gen(stats.rv_continuous):
    """Continuous part of the Marchenko-Pastur law, normalised to one.

    Shape parameter ``ratio`` (gamma = p/n > 0); scipy's ``scale`` keyword is
    the population variance sigma^2. The support is
    ``[scale (1 - sqrt(ratio))**2, scale (1 + sqrt(ratio))**2]``. For the law
    with its atom at zero use :class:`MarchenkoPastur`.

    Examples
    --------
    >>> from gn_theory.rmt import marchenko_pastur
    >>> round(float(marchenko_pastur.mean(0.5, scale=2.0)), 12)
    2.0
    >>> round(float(marchenko_pastur.cdf(4.0, 1.0)), 12)
    1.0
    """

    def _argcheck(self, ratio: np.ndarray) -> np.ndarray:
        return np.isfinite(ratio) & (ratio > 0)

    def _shape_info(self) -> list:
        return [stats._distn_infrastructure._ShapeInfo("ratio", False, (0, np.inf), (False, False))]

    def _get_support(self, ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # scipy calls this before _argcheck masks invalid shapes (ratio <= 0 -> nan, quietly)
        with np.errstate(invalid="ignore"):
            return _edges1(np.asarray(ratio, dtype=float))

    def _pdf(self, x: np.ndarray, ratio: np.ndarray) -> np.ndarray:
        return _pdf1(x, ratio) / _cont_mass(ratio)

    def _cdf(self, x: np.ndarray, ratio: np.ndarray) -> np.ndarray:
        return standard_cdf(x, ratio)

    def _sf(self, x: np.ndarray, ratio: np.ndarray) -> np.ndarray:
        return 1.0 - standard_cdf(x, ratio)

    def _ppf(self, q: np.ndarray, ratio: np.ndarray) -> np.ndarray:
        return standard_ppf(q, ratio)

    def _munp(self, n: Any, ratio: Any) -> Any:
        n = int(n)
        g = np.asarray(ratio, dtype=float)
        total = np.zeros_like(g)
        for r in range(n):
            total = total + g**r / (r + 1) * math.comb(n, r) * math.comb(n - 1, r)
        if n == 0:
            return np.ones_like(g)
        return total / _cont_mass(g)


#: The continuous part of the MP law as a scipy ``rv_continuous`` instance.
marchenko_pastur = marchenko_pastur_gen(a=0.0, name="marchenko_pastur")


# ----------------------------------------------------------------------------- frozen law
class MarchenkoPastur:
    """The Marchenko-Pastur law MP(ratio, scale), frozen, with its atom at zero.

    Parameters
    ----------
    ratio : float
        gamma = p / n > 0 (dimension over number of samples).
    scale : float, default 1.0
        sigma^2 > 0, the population variance. The bulk is
        ``[scale (1 - sqrt(ratio))**2, scale (1 + sqrt(ratio))**2]``.
    nonzero : bool, default False
        If True, describe only the nonzero eigenvalues (the continuous part,
        renormalised to mass one). If False and ``ratio > 1`` the law has an
        atom of mass ``1 - 1/ratio`` at zero: :meth:`cdf` jumps by it at 0,
        :meth:`pdf` excludes it (the atom has no density; the continuous part
        integrates to ``1/ratio``), :meth:`rvs` draws exact zeros with that
        probability and the moments include it (it contributes 0).

    Attributes
    ----------
    atom : float
        Mass at zero (0 when ``ratio <= 1`` or ``nonzero=True``).
    lower_edge, upper_edge : float
        lambda_- and lambda_+.

    Examples
    --------
    >>> from gn_theory.rmt import MarchenkoPastur
    >>> mp = MarchenkoPastur(ratio=4.0, scale=1.0)
    >>> mp.support(), mp.atom
    ((0.0, 9.0), 0.75)
    >>> round(float(mp.cdf(0.0)), 12), round(float(mp.cdf(9.0)), 12)
    (0.75, 1.0)
    >>> round(mp.mean(), 12), round(mp.var(), 12)
    (1.0, 4.0)
    >>> MarchenkoPastur(4.0, nonzero=True).support()
    (1.0, 9.0)
    """

    def __init__(self, ratio: float, scale: float = 1.0, *, nonzero: bool = False) -> None:
        self.ratio, self.scale = check_ratio_scale(ratio, scale)
        self.nonzero = bool(nonzero)
        self.lower_edge, self.upper_edge = mp_edges(self.ratio, self.scale)
        full_atom = max(0.0, 1.0 - 1.0 / self.ratio)
        self.atom = 0.0 if self.nonzero else full_atom
        #: mass of the continuous part under this object's normalisation
        self.continuous_mass = 1.0 - self.atom
        self._frozen = marchenko_pastur(self.ratio, scale=self.scale)

    def __repr__(self) -> str:
        extra = ", nonzero=True" if self.nonzero else ""
        return f"MarchenkoPastur(ratio={self.ratio:g}, scale={self.scale:g}{extra})"

    # -- support and moments ---------------------------------------------------
    def support(self) -> tuple[float, float]:
        """``(low, high)``: from 0 when there is an atom, else from lambda_-."""
        low = 0.0 if self.atom > 0 else self.lower_edge
        return (low, self.upper_edge)

    def moment(self, k: int) -> float:
        """Raw moment E[x^k] (the atom contributes 0 for k >= 1)."""
        m = mp_moment(k, self.ratio, self.scale)
        if k == 0:
            return 1.0
        full_cont = min(1.0, 1.0 / self.ratio)
        return m * (self.continuous_mass / full_cont)

    def mean(self) -> float:
        """E[x]; ``scale`` for the full law."""
        return self.moment(1)

    def var(self) -> float:
        """Var[x]; ``scale**2 * ratio`` for the full law."""
        return self.moment(2) - self.moment(1) ** 2

    def std(self) -> float:
        """Standard deviation."""
        return math.sqrt(self.var())

    # -- densities -------------------------------------------------------------
    def pdf(self, x: Any) -> np.ndarray:
        """Density of the continuous part, weighted by its mass (the atom is not included).

        Off the bulk (and at x = 0) the density is 0.
        """
        x = np.asarray(x, dtype=float)
        return self.continuous_mass * self._frozen.pdf(x)

    def logpdf(self, x: Any) -> np.ndarray:
        """Log of :meth:`pdf` (``-inf`` off the bulk)."""
        with np.errstate(divide="ignore"):
            return np.log(self.pdf(x))

    def cdf(self, x: Any) -> np.ndarray:
        """P(X <= x), with the atom at zero included for x >= 0."""
        x = np.asarray(x, dtype=float)
        out = self.continuous_mass * self._frozen.cdf(x)
        return out + np.where(x >= 0, self.atom, 0.0)

    def sf(self, x: Any) -> np.ndarray:
        """P(X > x), computed from the upper tail (accurate near lambda_+)."""
        x = np.asarray(x, dtype=float)
        out = self.continuous_mass * self._frozen.sf(x)
        return out + np.where(x < 0, self.atom, 0.0)

    def ppf(self, q: Any) -> np.ndarray:
        """Quantile function; quantiles inside the atom (q <= atom) are 0."""
        q = np.asarray(q, dtype=float)
        if np.any((q < 0) | (q > 1) | ~np.isfinite(q)):
            raise InvalidInputError("ppf needs probabilities in [0, 1]")
        qc = np.clip((q - self.atom) / self.continuous_mass, 0.0, 1.0)
        x = standard_ppf(qc, np.full_like(qc, self.ratio)) * self.scale
        return np.where(q <= self.atom, 0.0, x) if self.atom > 0 else x

    def rvs(self, size: int | tuple[int, ...] = 1, random_state: Any = None) -> np.ndarray:
        """Draw iid samples from the limiting law by inverse CDF.

        These are independent draws from the limit, not the (repelling)
        eigenvalues of one finite random matrix; for those use
        :func:`gn_theory.rmt.sample_covariance_eigenvalues`.
        """
        sizes = (size,) if isinstance(size, (int, np.integer)) else size
        if (
            not isinstance(sizes, tuple)
            or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in sizes)
            or any(n < 0 for n in sizes)
        ):
            raise InvalidInputError(
                f"size must be a non-negative int or a tuple of them; got {size!r}"
            )
        rng = check_rng(random_state)
        return self.ppf(rng.uniform(size=size))

    # -- transforms ------------------------------------------------------------
    def stieltjes(self, z: Any) -> np.ndarray:
        """Cauchy-Stieltjes transform ``G(z) = E[1 / (z - X)]`` (atom included).

        Solves ``sigma^2 gamma z G^2 - (z - sigma^2 (1 - gamma)) G + 1 = 0`` on
        the branch with ``G(z) ~ 1/z`` at infinity. For real ``z`` inside the
        bulk the boundary value ``G(x + i0)`` is returned, so
        ``-G(x + i0).imag / pi`` is the density. With ``nonzero=True`` the
        atom's ``atom/z`` term is removed and the rest renormalised.
        """
        z = np.asarray(z, dtype=complex)
        s, g = self.scale, self.ratio
        lo, hi = self.lower_edge, self.upper_edge
        # product of principal roots selects the branch ~ 1/z and G(x + i0) on the cut;
        # the root (b - root) / (2 s g z) of the quadratic equals 2 / (b + root), which has no
        # 0/0 at z = 0 (G(0) = -E[1/X] = -1 / (s (1 - g)) for g < 1)
        root = np.sqrt(z - lo) * np.sqrt(z - hi)
        b = z - s * (1.0 - g)
        full_atom = max(0.0, 1.0 - 1.0 / g)
        with np.errstate(divide="ignore", invalid="ignore"):
            plus, minus = b + root, b - root
            # of the two equal forms take the one without cancellation (near z = 0 with an atom,
            # b + root -> 0 and the quotient form is the stable one)
            G = np.where(np.abs(plus) >= np.abs(minus), 2.0 / plus, minus / (2.0 * s * g * z))
            if self.nonzero and full_atom > 0:
                G = (G - full_atom / z) / (1.0 - full_atom)
        at_zero = z == 0
        if np.any(at_zero):
            if full_atom > 0 and self.nonzero:
                # the nonzero part is MP(1/g, s g): G(0) = -1 / (s (g - 1))
                G = np.where(at_zero, -1.0 / (s * (g - 1.0)) + 0j, G)
            elif full_atom > 0 or g == 1.0:
                # the atom at zero (g > 1) or the 1/sqrt(x) edge (g = 1): E[1/X] is infinite
                G = np.where(at_zero, complex(np.nan, np.nan), G)
        return G

    def interval(self, confidence: float) -> tuple[float, float]:
        """Equal-tailed interval holding ``confidence`` of the mass."""
        a = (1.0 - confidence) / 2.0
        lo, hi = self.ppf([a, 1.0 - a])
        return float(lo), float(hi)
