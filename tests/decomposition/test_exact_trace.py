"""tr G exactly, from the per-sample delta vectors in one data pass (measure_outlier_inputs).

tr G = (1/N) sum_i sum_c' ||delta_{i,c'}||^2 (docs/theory.md section 3.4), which the
class-mean pass cannot give (it sums the deltas before taking norms).
"""

from __future__ import annotations

import numpy as np
import pytest

from gn_theory import ggn_operator
from gn_theory.decomposition import class_structure, measure_outlier_inputs
from gn_theory.results import OutlierInputs, TraceEstimate

from cases import RELU_C4_UNBALANCED, TANH_C3_UNBALANCED
from references import DenseClassStructure


@pytest.mark.parametrize("case", [RELU_C4_UNBALANCED, TANH_C3_UNBALANCED], ids=lambda c: c.name)
def test_exact_trace_matches_the_dense_trace(case, tmp_path):
    model, (X, y) = case.build()
    dense = DenseClassStructure(model, X, y)
    # uneven batches: the per-sample pass does not depend on how the data are batched
    batches = [(X[:5], y[:5]), (X[5:6], y[5:6]), (X[6:], y[6:])]
    cs = class_structure(model, batches)
    G = ggn_operator(model, batches)
    before = G.num_matvecs
    inputs = measure_outlier_inputs(G, cs, num_probes=2, num_steps=8, seed=0)
    spent = G.num_matvecs - before
    tr = inputs.trace
    assert isinstance(tr, TraceEstimate) and tr.method == "exact" and tr.bse == 0.0
    exact = float(np.trace(dense.G.numpy()))
    assert tr.estimate == pytest.approx(exact, rel=1e-12)
    # per true class: (1/N) sum over the class's samples of sum_c' ||delta_{i,c'}||^2
    per_class = [float((dense.delta[(y == c)] ** 2).sum()) / dense.N for c in range(dense.C)]
    np.testing.assert_allclose(tr.samples, per_class, rtol=1e-12)
    assert tr.num_matvecs == dense.N * dense.C  # VJPs, not products with G ...
    assert inputs.num_matvecs == spent  # ... so the products with G are counted apart
    np.testing.assert_allclose(tr.conf_int(), [[exact, exact]], rtol=1e-12)
    back = OutlierInputs.load(inputs.save(tmp_path / "inputs"))
    assert back.trace.estimate == tr.estimate
    assert "tr G" in str(inputs.summary())


def test_exact_trace_can_be_skipped():
    model, data = RELU_C4_UNBALANCED.build()
    cs = class_structure(model, data)
    inputs = measure_outlier_inputs(ggn_operator(model, data), cs, num_probes=2, num_steps=8,
                                    exact_trace=False)
    assert inputs.trace is None and inputs.settings["exact_trace"] is False
