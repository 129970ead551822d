"""The validation scripts run end to end at their tiny sizes, and the runner covers every claim.

One run of ``python -m validation --tiny`` (all scripts, seconds each) feeds the tests below: the
claims table has a row for every ID of ``validation/claims.md``, each script wrote its JSON and
figures, the markdown report embeds them. The tiny sizes are too small to judge the claims; the
verdicts are not asserted, only their form.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from validation import _common, runner  # noqa: E402

ROW_KEYS = {"id", "paper", "claim", "measured", "criterion", "passed", "figure", "verdict",
            "evidence", "expected", "script", "size"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("validation")
    assert runner.main(["--tiny", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def rows(tiny_run):
    return json.loads((tiny_run / "claims.json").read_text())


def test_claims_table_parses():
    table = _common.claims_table()
    assert len(table) >= 40
    for cid, row in table.items():
        assert row["id"] == cid and row["paper"] and row["claim"], cid
    assert {"S16-3", "S17-1", "P19-1", "P19b-1", "P20-1", "FG-1", "RMT-1"} <= set(table)


def test_every_claim_has_exactly_one_row(rows):
    ids = [r["id"] for r in rows]
    assert sorted(ids) == sorted(_common.claims_table())
    assert len(ids) == len(set(ids))
    for r in rows:
        assert ROW_KEYS <= set(r), r["id"]
        assert r["verdict"] in ("PASS", "FAIL", "NOT TESTED"), (r["id"], r["evidence"])
        assert r["passed"] == {"PASS": True, "FAIL": False, "NOT TESTED": None}[r["verdict"]]
        assert r["criterion"], r["id"]
        assert r["size"] == "tiny"


def test_claims_without_a_script_are_only_the_declared_ones(rows):
    covered = {cid for name in runner.SCRIPTS for cid in runner._load(name).CLAIMS}
    assert set(_common.claims_table()) - covered == set(runner.NOT_COVERED)
    for r in rows:
        if r["id"] in runner.NOT_COVERED:
            assert r["verdict"] == "NOT TESTED" and r["script"] is None


def test_every_script_wrote_its_json_and_figures(tiny_run, rows):
    for name in runner.SCRIPTS:
        mod = runner._load(name)
        assert set(mod.SIZES) == set(_common.SIZES), name
        res = json.loads((tiny_run / f"{name}.json").read_text())
        assert res["size"] == "tiny"
        assert [r["id"] for r in res["claims"]] == list(mod.CLAIMS), name
    for r in rows:
        if r["figure"]:
            assert (tiny_run / r["figure"]).stat().st_size > 1000, r["figure"]


def test_report_embeds_the_figures(tiny_run, rows):
    page = (tiny_run / "validation.md").read_text()
    run = json.loads((tiny_run / "run.json").read_text())
    assert run["size"] == "tiny" and set(run["scripts"]) == set(runner.SCRIPTS)
    for r in rows:
        assert f"| {r['id']} |" in page
    figures = {r["figure"] for r in rows if r["figure"]}
    for f in figures:
        assert f"]({f})" in page, f


def test_sagun2016_network_size(tiny_run):
    res = json.loads((tiny_run / "sagun2016_network_size.json").read_text())
    assert (tiny_run / "sagun2016_network_size.png").stat().st_size > 1000
    widths = [r["width"] for r in res["rows"]]
    assert [r["num_params"] for r in res["rows"]] == [h * h + 6 * h + 2 for h in widths]
    for r in res["rows"]:
        assert r["outliers_gap_rule"] >= 1
        assert 0.0 <= r["near_zero_fraction"] <= 1.0
        assert r["top_eigenvalues"][0] > 0
    assert set(res["checks"]) == {"two_outliers_every_width", "near_zero_fraction_rises",
                                  "negatives_small"}


def test_rmt_simulations_quick(tmp_path):
    from validation import rmt_simulations

    assert rmt_simulations.main(["--tiny", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "rmt_simulations.json").read_text())
    assert res["pass"] and res["quick"]
    assert {f["case"] for f in res["fits"]} == {"planted", "atom"}
    assert abs(res["bbp_multiplicative"]["outlier"] / res["bbp_multiplicative"]["predicted"] - 1) < 0.05


def test_runner_only_and_errors(tmp_path):
    assert runner.main(["--tiny", "--only", "FG-7", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "claims.json").read_text())
    assert [r["id"] for r in rows] == ["FG-7"]
    # --only into a folder holding a run of the same size updates it
    assert runner.main(["--tiny", "--only", "rmt_simulations", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "claims.json").read_text())
    assert sorted(r["id"] for r in rows) == ["FG-7", "RMT-1"]
    run = json.loads((tmp_path / "run.json").read_text())
    assert set(run["scripts"]) == {"fortganguli2019_random_model", "rmt_simulations"}
    assert runner.main(["--report-only", "--out", str(tmp_path)]) == 0
    assert "re-ran rmt_simulations" in (tmp_path / "validation.md").read_text()
    assert runner.main(["--only", "NOPE-1", "--out", str(tmp_path)]) == 2
    assert runner.main(["--bogus"]) == 2
