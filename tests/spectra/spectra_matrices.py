"""Dense test matrices with known spectra for tests/spectra (imported by the test files)."""

from __future__ import annotations

import math

import numpy as np


def rotate(eigs: np.ndarray, seed: int) -> np.ndarray:
    """A dense symmetric matrix with the given eigenvalues and a random eigenbasis."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((eigs.size, eigs.size)))
    A = (Q * eigs) @ Q.T
    return 0.5 * (A + A.T)


def hessian_like(P: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Low rank plus bulk, indefinite: 10 positive outliers, 3 negative, a near-zero atom.

    Returns the matrix and its eigenvalues (ascending, as built).
    """
    rng = np.random.default_rng(seed)
    n_zero = P // 3
    bulk = rng.uniform(0.0, 1.0, P - n_zero - 13) ** 3  # many tiny eigenvalues
    pos = np.linspace(5.0, 50.0, 10)
    neg = np.array([-3.0, -2.0, -1.5])
    eigs = np.sort(np.r_[bulk, np.zeros(n_zero), pos, neg])
    return rotate(eigs, seed), eigs


def random_symmetric() -> tuple[np.ndarray, np.ndarray]:
    """A GOE-like 300 x 300 matrix (semicircle on [-2, 2]) and its eigenvalues."""
    G = np.random.default_rng(3).standard_normal((300, 300))
    A = (G + G.T) / math.sqrt(2 * 300)
    return A, np.linalg.eigvalsh(A)


CASES = {
    "diagonal": lambda: (np.diag(np.arange(1.0, 401.0) ** 1.5), np.arange(1.0, 401.0) ** 1.5),
    "random_symmetric": random_symmetric,
    "low_rank_plus_bulk": hessian_like,
}


def reference(eigs: np.ndarray, k: int, which: str) -> np.ndarray:
    """The k eigenvalues ``lanczos(..., which)`` must return, descending."""
    e = np.sort(eigs)
    if which == "largest":
        return e[-k:][::-1]
    if which == "smallest":
        return e[:k][::-1]
    top = (k + 1) // 2
    return np.r_[e[: k - top], e[-top:]][::-1]
