"""Validation scripts run end to end at tiny sizes (their full runs are in validation/)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "validation"))


def test_sagun2016_blobs_quick(tmp_path):
    import sagun2016_blobs

    sagun2016_blobs.main(["--quick", "--out", str(tmp_path)])
    res = json.loads((tmp_path / "sagun2016_blobs.json").read_text())
    assert (tmp_path / "sagun2016_blobs.png").stat().st_size > 1000
    widths = [r["width"] for r in res["rows"]]
    assert [r["num_params"] for r in res["rows"]] == [h * h + 6 * h + 2 for h in widths]
    for r in res["rows"]:
        assert r["outliers_gap_rule"] >= 1
        assert 0.0 <= r["near_zero_fraction"] <= 1.0
        assert r["top_eigenvalues"][0] > 0
    assert set(res["checks"]) == {"outliers_1_or_2_every_width", "near_zero_fraction_rises", "negatives_small"}


def test_rmt_simulations_quick(tmp_path):
    import rmt_simulations

    assert rmt_simulations.main(["--quick", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "rmt_simulations.json").read_text())
    assert res["pass"] and res["quick"]
    assert {f["case"] for f in res["fits"]} == {"planted", "atom"}
    assert abs(res["bbp_multiplicative"]["outlier"] / res["bbp_multiplicative"]["predicted"] - 1) < 0.05
