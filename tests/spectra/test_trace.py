"""Tests of gn_theory.spectra.trace: Hutchinson and Hutch++ accuracy, intervals, batching."""

from __future__ import annotations

import numpy as np
from spectra_matrices import hessian_like

from gn_theory.operators import DenseOperator
from gn_theory.spectra import trace


def test_hutchinson_and_hutchpp_within_three_standard_errors():
    rng = np.random.default_rng(0)
    A, eigs = hessian_like(500)
    A = A @ A  # PSD with decaying spectrum
    tr = np.trace(A)
    for method in ("hutchinson", "hutch++"):
        for seed in range(3):
            t = trace(A, method=method, num_matvecs=90, seed=seed, probes="gaussian")
            assert abs(t.estimate - tr) <= 3 * t.bse, (method, t)
            assert t.num_matvecs == 90
    pp = [abs(trace(A, method="hutch++", num_matvecs=90, seed=s).estimate - tr) for s in range(3)]
    hu = [abs(trace(A, num_matvecs=90, seed=s).estimate - tr) for s in range(3)]
    assert np.mean(pp) < np.mean(hu)  # 10 outliers carry most of tr(A^2): Hutch++ wins
    ci = trace(A, num_matvecs=60, seed=0).conf_int(0.01)
    assert ci.shape == (1, 2)
    lo, hi = ci[0]
    assert lo < hi
    del rng


def test_trace_params_and_interval_follow_the_vocabulary():
    t = trace(np.diag(np.arange(1.0, 51.0)), num_matvecs=20, seed=0, probes="gaussian")
    np.testing.assert_array_equal(t.params, [t.estimate])
    assert t.param_names == ["trace"]
    ci90, ci99 = t.conf_int(0.1), t.conf_int(0.01)
    assert ci99[0, 0] < ci90[0, 0] < t.estimate < ci90[0, 1] < ci99[0, 1]
    assert t.settings["probes"] == "gaussian" and t.settings["block_size"] == 32


def test_trace_probes_are_batched():
    calls = []

    class Spy(DenseOperator):
        def _matmat_torch(self, V):
            calls.append(V.shape[1])
            return super()._matmat_torch(V)

    trace(Spy(np.eye(50)), num_matvecs=70, block_size=32, seed=0)
    assert calls == [32, 32, 6]
