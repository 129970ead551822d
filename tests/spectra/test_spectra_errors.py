"""Bad input and broken operators across the spectral estimators."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gn_theory.exceptions import InvalidInputError, NonFiniteError
from gn_theory.operators import CurvatureOperator
from gn_theory.results import SpectralDensity
from gn_theory.spectra import lanczos, outliers, slq, trace


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


def test_bad_seed():
    for seed in (-1, 1.5, "0", True):
        with pytest.raises(InvalidInputError, match="seed"):
            lanczos(np.eye(5), 1, seed=seed)
