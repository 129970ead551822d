"""Simulators of the spiked random-matrix models, for tests and for users.

Each function draws one random matrix of a spiked model (parametrisations in
:func:`gn_theory.rmt.bbp_outlier`) with Gaussian noise and returns its
eigenvalues in descending order (largest first, as everywhere in gn_theory);
with ``return_vectors=True`` it also returns the squared overlaps of the top
eigenvectors with the planted spike directions (the first coordinate axes
``e_1, e_2, ...``: the Gaussian noise is orthogonally invariant, so this is
as general as a random direction). Spike strengths use the same
parametrisation as :func:`gn_theory.rmt.bbp_outlier` for the matching model.

Overlaps are matched to spikes by rank: the spike with the largest ``theta``
is compared with the top eigenvector, the second largest with the second
eigenvector, and so on (ties keep the order given). With several spikes of
equal strength the eigenvectors mix and per-spike overlaps are not meaningful.

``seed`` is None (fresh entropy), an int in [0, 2**63) or a numpy
``Generator`` (drawn from, as the bootstrap does). Torch-free.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._checks import check_positive_float, check_positive_int, check_real_array, check_rng
from ..exceptions import InvalidInputError

__all__ = [
    "sample_covariance_eigenvalues",
    "spiked_wigner_eigenvalues",
    "additive_spiked_mp_eigenvalues",
    "information_plus_noise_eigenvalues",
]


def _check_spikes(spikes: Any, dim: int, *, name: str, minimum: float | None = None,
                  strict: bool = True) -> tuple[np.ndarray, bool]:
    """1-D float array of spikes (and whether a scalar was given)."""
    arr = check_real_array(spikes, name, ndim=None, scalar=True, allow_empty=True)
    scalar = arr.ndim == 0
    arr = arr.reshape(-1)
    if arr.size > dim:
        raise InvalidInputError(f"at most {dim} spikes fit in dimension {dim}; got {arr.size}")
    if minimum is not None:
        bad = arr <= minimum if strict else arr < minimum
        if np.any(bad):
            op = ">" if strict else ">="
            raise InvalidInputError(f"{name} must be {op} {minimum:g}; got {arr[bad].tolist()}")
    return arr, scalar


def _rank_matched(top_vectors_rows: np.ndarray, spikes: np.ndarray) -> np.ndarray:
    """Squared overlaps by rank.

    ``top_vectors_rows[i, r]`` is the r-th coordinate of the i-th top eigenvector
    (i = 0 the largest), restricted to the spike coordinates.
    """
    k = spikes.size
    order = np.argsort(-spikes, kind="stable")  # order[r] = spike index with rank r
    out = np.empty(k)
    for rank, j in enumerate(order):
        out[j] = top_vectors_rows[rank, j] ** 2
    return out


def sample_covariance_eigenvalues(
    p: int,
    n: int,
    scale: float = 1.0,
    spikes: Any = (),
    *,
    seed: Any = None,
    return_vectors: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Eigenvalues of a (spiked) sample covariance matrix: the multiplicative model.

    ``S = Sigma^(1/2) Z Z^T Sigma^(1/2) / n`` with ``Z`` p x n iid N(0, 1) and
    ``Sigma = scale * diag(1 + spikes[0], ..., 1 + spikes[k-1], 1, ..., 1)``.
    Without spikes the spectrum follows MP(p / n, scale).

    Parameters
    ----------
    p, n : int
        Dimension and number of samples (``ratio = p / n``).
    scale : float, default 1.0
        sigma^2, the population variance of the bulk.
    spikes : float or sequence of float, default ()
        Multiplicative spikes ``theta_j > -1`` (population eigenvalues
        ``scale (1 + theta_j)``) on the first coordinates.
    seed : None, int or numpy.random.Generator
        Randomness.
    return_vectors : bool, default False
        Also return the squared overlaps of the top eigenvectors with the spike
        axes ``e_j``, matched by rank (module docstring).

    Returns
    -------
    eigenvalues : ndarray, shape (p,)
        Descending; ``p - n`` exact zeros (last) when ``p > n``.
    overlaps : ndarray, shape (len(spikes),)
        Only with ``return_vectors``.

    Raises
    ------
    InvalidInputError
        Non-integer or non-positive sizes, bad scale, spikes <= -1, or more
        spikes than dimensions.

    Notes
    -----
    When ``n < p`` the nonzero eigenvalues come from the n x n Gram matrix
    ``Y^T Y / n`` (``Y = Sigma^(1/2) Z``) and the eigenvectors from
    ``Y a / sqrt(n lambda)``.

    Examples
    --------
    >>> eigs = sample_covariance_eigenvalues(400, 800, spikes=[4.0], seed=0)
    >>> eigs.shape, bool(abs(eigs[0] / 5.625 - 1) < 0.05)  # bbp_outlier(4.0, 0.5) = 5.625
    ((400,), True)
    """
    p, n = check_positive_int("p", p), check_positive_int("n", n)
    s = check_positive_float("scale", scale)
    th, _ = _check_spikes(spikes, p, name="spikes", minimum=-1.0)
    rng = check_rng(seed)
    k = th.size
    y = rng.standard_normal((p, n))
    d = np.ones(p)
    d[:k] += th
    y *= np.sqrt(s * d)[:, None]
    if n < p:
        gram = (y.T @ y) / n
        w, a = np.linalg.eigh(gram)
        eigs = np.concatenate([np.clip(w, 0.0, None)[::-1], np.zeros(p - n)])
        if not return_vectors:
            return eigs
        top_w = w[::-1][:k]
        top_a = a[:, ::-1][:, : top_w.size]
        with np.errstate(divide="ignore", invalid="ignore"):
            rows = (y[:k] @ top_a) / np.sqrt(n * top_w)[None, :]  # (k coords, top vectors)
        rows = np.nan_to_num(rows)
        vec_rows = np.zeros((k, k))
        vec_rows[: top_w.size, :] = rows.T
        return eigs, _rank_matched(vec_rows, th)
    cov = (y @ y.T) / n
    if not return_vectors:
        return np.linalg.eigvalsh(cov)[::-1].copy()
    w, v = np.linalg.eigh(cov)
    top = v[:k, ::-1][:, :k]  # coords (k) x top vectors (k)
    return w[::-1].copy(), _rank_matched(top.T, th)


def spiked_wigner_eigenvalues(
    p: int,
    theta: Any,
    scale: float = 1.0,
    *,
    seed: Any = None,
    return_vectors: bool = False,
) -> np.ndarray | tuple[np.ndarray, Any]:
    """Eigenvalues of a spiked Wigner matrix ``W + sum_j theta_j e_j e_j^T``.

    ``W = sqrt(scale / p) (A + A^T) / sqrt(2)``, ``A`` p x p iid N(0, 1) (GOE):
    off-diagonal entries of variance ``scale / p``, semicircle of radius
    ``2 sqrt(scale)``.

    Parameters
    ----------
    p : int
        Dimension.
    theta : float or sequence of float
        Additive spike(s), eigenvalue units (``model="wigner"``).
    scale : float, default 1.0
        sigma^2; the semicircle radius is ``2 sqrt(scale)``.
    seed : None, int or numpy.random.Generator
        Randomness.
    return_vectors : bool, default False
        Also return the squared overlap(s) of the top eigenvector(s) with
        ``e_j`` (a float for scalar ``theta``).

    Returns
    -------
    eigenvalues : ndarray, shape (p,)
        Descending.
    overlaps : float or ndarray
        Only with ``return_vectors``.

    Raises
    ------
    InvalidInputError
        Bad ``p``, ``scale`` or ``theta``.

    Examples
    --------
    >>> eigs = spiked_wigner_eigenvalues(400, 2.0, seed=1)
    >>> bool(abs(eigs[0] - 2.5) < 0.1), bool(abs(eigs[-1] + 2.0) < 0.1)
    (True, True)
    """
    p = check_positive_int("p", p)
    s = check_positive_float("scale", scale)
    th, scalar = _check_spikes(theta, p, name="theta")
    rng = check_rng(seed)
    a = rng.standard_normal((p, p))
    w = (a + a.T) * math.sqrt(s / (2.0 * p))
    k = th.size
    w[np.arange(k), np.arange(k)] += th
    return _finish_symmetric(w, th, scalar, return_vectors)


def _finish_symmetric(m: np.ndarray, th: np.ndarray, scalar: bool, return_vectors: bool) -> Any:
    if not return_vectors:
        return np.linalg.eigvalsh(m)[::-1].copy()
    k = th.size
    w, v = np.linalg.eigh(m)
    ov = _rank_matched(v[:k, ::-1][:, :k].T, th)
    return w[::-1].copy(), (float(ov[0]) if scalar else ov)


def additive_spiked_mp_eigenvalues(
    p: int,
    n: int,
    theta: Any,
    scale: float = 1.0,
    *,
    seed: Any = None,
    return_vectors: bool = False,
) -> np.ndarray | tuple[np.ndarray, Any]:
    """Eigenvalues of an MP matrix plus additive spikes, ``scale Z Z^T / n + sum_j theta_j e_j e_j^T``.

    Parameters
    ----------
    p, n : int
        ``Z`` is p x n iid N(0, 1); ``ratio = p / n``.
    theta : float or sequence of float
        Additive spike(s), eigenvalue units (``model="additive"``).
    scale : float, default 1.0
        sigma^2 of the MP bulk.
    seed : None, int or numpy.random.Generator
        Randomness.
    return_vectors : bool, default False
        Also return the squared overlap(s) of the top eigenvector(s) with
        ``e_j`` (a float for scalar ``theta``).

    Returns
    -------
    eigenvalues : ndarray, shape (p,)
        Descending.
    overlaps : float or ndarray
        Only with ``return_vectors``.

    Raises
    ------
    InvalidInputError
        Bad sizes, ``scale`` or ``theta``.

    Examples
    --------
    >>> eigs = additive_spiked_mp_eigenvalues(400, 800, 3.0, seed=2)
    >>> bool(abs(eigs[0] / 4.2 - 1) < 0.05)  # bbp_outlier(3.0, 0.5, model="additive")
    True
    """
    p, n = check_positive_int("p", p), check_positive_int("n", n)
    s = check_positive_float("scale", scale)
    th, scalar = _check_spikes(theta, p, name="theta")
    rng = check_rng(seed)
    z = rng.standard_normal((p, n))
    m = (z @ z.T) * (s / n)
    k = th.size
    m[np.arange(k), np.arange(k)] += th
    return _finish_symmetric(m, th, scalar, return_vectors)


def information_plus_noise_eigenvalues(
    n: int,
    m: int,
    theta: Any,
    scale: float = 1.0,
    *,
    seed: Any = None,
    return_vectors: bool = False,
) -> np.ndarray | tuple[np.ndarray, Any, Any]:
    """Eigenvalues of ``X X^T`` for ``X = sqrt(scale) E / sqrt(m) + sum_j theta_j e_j f_j^T``.

    The information-plus-noise (rectangular spiked) model: ``E`` n x m iid
    N(0, 1), ``e_j`` and ``f_j`` the coordinate axes of R^n and R^m. The
    eigenvalues are the squared singular values of ``X``; the bulk is
    MP(n / m, scale).

    Parameters
    ----------
    n, m : int
        ``X`` is n x m; ``ratio = c = n / m``.
    theta : float or sequence of float
        Signal singular value(s), ``>= 0`` (``model="information_plus_noise"``).
    scale : float, default 1.0
        sigma^2, the noise variance (entries of ``sqrt(scale) E`` have variance
        ``scale``).
    seed : None, int or numpy.random.Generator
        Randomness.
    return_vectors : bool, default False
        Also return the squared overlaps of the top left singular vector(s)
        with ``e_j`` and of the top right singular vector(s) with ``f_j``
        (floats for scalar ``theta``).

    Returns
    -------
    eigenvalues : ndarray, shape (n,)
        Descending; ``n - m`` exact zeros (last) when ``n > m``.
    left_overlaps, right_overlaps : float or ndarray
        Only with ``return_vectors``.

    Raises
    ------
    InvalidInputError
        Bad sizes, ``scale`` or ``theta`` (negative or more spikes than
        ``min(n, m)``).

    Examples
    --------
    >>> eigs, u2, w2 = information_plus_noise_eigenvalues(300, 600, 2.0, seed=0,
    ...                                                   return_vectors=True)
    >>> bool(abs(eigs[0] / 5.625 - 1) < 0.05), bool(abs(u2 - 0.861) < 0.1)
    (True, True)
    """
    n, m = check_positive_int("n", n), check_positive_int("m", m)
    s = check_positive_float("scale", scale)
    th, scalar = _check_spikes(theta, min(n, m), name="theta", minimum=0.0, strict=False)
    rng = check_rng(seed)
    x = rng.standard_normal((n, m)) * math.sqrt(s / m)
    k = th.size
    x[np.arange(k), np.arange(k)] += th
    if not return_vectors:
        if n <= m:
            return np.clip(np.linalg.eigvalsh(x @ x.T), 0.0, None)[::-1].copy()
        w = np.clip(np.linalg.eigvalsh(x.T @ x), 0.0, None)[::-1]
        return np.concatenate([w, np.zeros(n - m)])
    u, sv, vt = np.linalg.svd(x, full_matrices=False)  # sv descending
    eigs = np.concatenate([sv**2, np.zeros(n - sv.size)])  # descending
    left = _rank_matched(u[:k, :k].T, th)
    right = _rank_matched(vt[:k, :k], th)
    if scalar:
        return eigs, float(left[0]), float(right[0])
    return eigs, left, right
