"""The class structure alone claims counts and gives lower bounds, never outlier positions."""

from __future__ import annotations

import numpy as np

from gn_theory import ggn_operator
from gn_theory.decomposition import class_structure
from gn_theory.spectra import eigh

from cases import RELU_C4_UNBALANCED, TANH_C3_UNBALANCED


def test_lower_bounds_hold_and_the_summary_says_what_they_are():
    for case in (RELU_C4_UNBALANCED, TANH_C3_UNBALANCED):
        model, data = case.build()
        cs = class_structure(model, data)
        ev = eigh(ggn_operator(model, data)).eigenvalues  # descending
        pred = cs.predicted_outliers()
        C = cs.num_classes
        assert pred["positions"] == "lower bounds"
        e1, ecm = pred["outliers"], pred["class_mean_top"]
        # Weyl: G >= G_cm >= G_1 in Loewner order (G_w and G_0 + G_2 are PSD)
        tol = 1e-10 * ev[0]
        assert np.all(ev[: ecm.size] >= ecm - tol)
        assert np.all(ecm[: e1.size] >= e1 - tol)
        assert np.all(cs.eigenvalues("G_cm") <= ev[: cs.eigenvalues("G_cm").size] + tol)
        s = cs.summary()
        rows = dict(s.rows)
        assert rows["outliers claimed (level 1)"].startswith(f"{pred['num_outliers']} (also compare C-1")
        assert "positions not predicted" in rows["outliers claimed (level 1)"]
        assert f"lower bounds on the top {ecm.size} of G" in rows
        assert "predicted outliers" not in rows  # the old row placed them at eig(G_1)
        assert any("does not place the outliers" in n for n in s.notes)
        assert C >= 2
