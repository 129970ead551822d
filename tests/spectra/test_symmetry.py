"""Tests of gn_theory.spectra.check_symmetric and the estimators' symmetry checks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as sla

from gn_theory.exceptions import NotSymmetricError
from gn_theory.spectra import check_symmetric, eigh, lanczos, slq


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
