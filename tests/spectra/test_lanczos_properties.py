"""Property: ``lanczos`` equals ``numpy.linalg.eigvalsh``, multiplicities included.

Random symmetric matrices, low-rank ones (rank below k: the wanted values include copies of 0)
and repeated-value ones (a few distinct values with exact multiplicities, clusters at zero),
sizes 5-60, k up to the dimension, top / bottom / both ends. Plus the exact reproductions of
issue 13 as regression tests (``test_spectra_reliability.py`` holds the rest).
"""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spectra_matrices import reference, rotate

from gn_theory.spectra import lanczos

PROPERTY = settings(
    max_examples=60, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def _check(A: np.ndarray, k: int, which: str, seed: int, **options) -> None:
    eigs = np.linalg.eigvalsh(A)
    scale = max(float(np.abs(eigs).max()), 1e-300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a right answer comes without a ConvergenceWarning
        s = lanczos(A, k, which, seed=seed, **options)
    ref = reference(eigs, k, which)
    np.testing.assert_allclose(s.eigenvalues, ref, rtol=0, atol=1e-7 * scale)
    assert s.all_converged
    assert np.all(np.diff(s.eigenvalues[: (k + 1) // 2 if which == "both" else k]) <= 1e-12)


@st.composite
def _sizes(draw, min_k: int = 1):
    P = draw(st.integers(5, 60))
    k = draw(st.integers(min_k, P))
    return P, k, draw(st.sampled_from(["largest", "smallest", "both"])), draw(st.integers(0, 2**32))


@PROPERTY
@given(_sizes())
def test_lanczos_equals_eigvalsh_on_random_symmetric(case):
    P, k, which, seed = case
    G = np.random.default_rng(seed).standard_normal((P, P))
    _check((G + G.T) / np.sqrt(2 * P), k, which, seed)


@PROPERTY
@given(_sizes(min_k=2), st.data())
def test_lanczos_equals_eigvalsh_on_low_rank(case, data):
    P, k, which, seed = case
    r = data.draw(st.integers(1, k - 1), label="rank")
    signs = data.draw(st.sampled_from(["psd", "indefinite"]), label="signs")
    rng = np.random.default_rng(seed)
    top = rng.uniform(0.5, 5.0, r)
    if signs == "indefinite":
        top *= rng.choice([-1.0, 1.0], r)
    _check(rotate(np.r_[top, np.zeros(P - r)], seed), k, which, seed)


@PROPERTY
@given(_sizes(), st.data())
def test_lanczos_equals_eigvalsh_on_repeated_values(case, data):
    P, k, which, seed = case
    d = data.draw(st.integers(1, 6), label="distinct values")
    zero = data.draw(st.sampled_from(["none", "exact", "cluster"]), label="zeros")
    rng = np.random.default_rng(seed)
    values = np.round(rng.uniform(-5.0, 5.0, d), 2)
    eigs = rng.choice(values, size=P)
    if zero != "none":
        n0 = data.draw(st.integers(1, P - 1), label="zeros")
        eigs[:n0] = 0.0 if zero == "exact" else rng.uniform(-1e-12, 1e-12, n0)
    _check(rotate(eigs, seed), k, which, seed)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(_sizes(), st.integers(1, 3), st.integers(1, 4))
def test_lanczos_blocks_equal_eigvalsh_on_repeated_values(case, block_size, d):
    P, k, which, seed = case
    rng = np.random.default_rng(seed)
    eigs = rng.choice(np.round(rng.uniform(-5.0, 5.0, d), 2), size=P)
    _check(rotate(eigs, seed), k, which, seed, block_size=block_size)


# ------------------------------------------------------------ issue 13, exactly as reported
def test_issue_rank_two_top_three():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((50, 2)))
    A = 5.0 * np.outer(Q[:, 0], Q[:, 0]) - 3.0 * np.outer(Q[:, 1], Q[:, 1])
    for seed in range(10):
        s = lanczos(A, 3, seed=seed)
        np.testing.assert_allclose(s.eigenvalues, [5.0, 0.0, 0.0], atol=1e-10)


def test_issue_multiple_of_identity():
    s = lanczos(3.0 * np.eye(50), 5, seed=0)
    np.testing.assert_allclose(s.eigenvalues, np.full(5, 3.0), rtol=1e-12)
    assert s.all_converged and s.eigenvalues.size == 5
