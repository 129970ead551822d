"""`fit`, `plot` and `report` run where torch cannot be imported; `fit` takes other tools' spectra."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from cli_tiny import tiny_run  # noqa: F401 (fixture)

from gn_theory.analysis import read_summary
from gn_theory.cli import main
from gn_theory.rmt import sample_covariance_eigenvalues

BLOCK = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked")
sys.meta_path.insert(0, _Block())
"""


def _run_blocked(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_fit_plot_report_with_torch_blocked(tiny_run, tmp_path):
    run = tmp_path / "laptop"
    shutil.copytree(tiny_run, run)
    res = _run_blocked(f"""
        from gn_theory.cli import main
        codes = [main(["fit", {str(run)!r}, "--force", "--quiet"]),
                 main(["plot", {str(run)!r}, "--quiet"]),
                 main(["report", {str(run)!r}, "--quiet"])]
        assert "torch" not in sys.modules
        print(codes)
    """, tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "[0, 0, 0]"
    assert (run / "report.html").is_file() and len(list((run / "figures").glob("*.png"))) == 5
    assert read_summary(run)["top_eigenvalues"] == read_summary(tiny_run)["top_eigenvalues"]


def test_torch_needed_stages_fail_clearly_without_torch(tiny_run, tmp_path):
    run = tmp_path / "nogpu"
    shutil.copytree(tiny_run, run)
    res = _run_blocked(f"""
        from gn_theory.cli import main
        print(main(["measure", {str(run)!r}, "--force", "--quiet"]))
    """, tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "1"
    assert "torch" in res.stderr and "Traceback" not in res.stderr


def _spiked(seed=0):
    return sample_covariance_eigenvalues(300, 900, 1.0, spikes=[12.0, 8.0, 6.0], seed=seed)


@pytest.mark.parametrize("fmt", ["npy", "txt", "csv", "npz"])
def test_fit_on_eigenvalues_from_other_tools(fmt, tmp_path):
    ev = _spiked()
    path = tmp_path / f"eigs.{fmt}"
    if fmt == "npy":
        np.save(path, ev)
    elif fmt == "txt":
        np.savetxt(path, ev)
    elif fmt == "csv":
        path.write_text("eigenvalue\n" + "\n".join(f"{v:.17g}" for v in ev) + "\n")
    else:
        np.savez(path, eigenvalues=ev)
    out = tmp_path / "fit"
    assert main(["fit", "--spectrum", str(path), "--num-classes", "4", "--out", str(out),
                 "--quiet"]) == 0
    s = read_summary(out)
    assert s["outliers"]["count"] == 3 and s["outliers"]["rule"] == "mp_edge"
    assert s["outliers"]["operator"] == "eigs" and s["num_classes"] == 4
    assert s["mp_fit"]["ks_statistic"] < 0.1 and s["prediction"] is None


def test_given_spectrum_fit_plot_report_with_torch_blocked(tmp_path):
    path = tmp_path / "eigs.npy"
    np.save(path, _spiked())
    out = tmp_path / "fit"
    res = _run_blocked(f"""
        from gn_theory.cli import main
        codes = [main(["fit", "--spectrum", {str(path)!r}, "--num-classes", "4",
                       "--out", {str(out)!r}, "--quiet"]),
                 main(["plot", {str(out)!r}, "--quiet"]),
                 main(["report", {str(out)!r}, "--quiet"])]
        assert "torch" not in sys.modules
        print(codes)
    """, tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "[0, 0, 0]"
    assert (out / "figures" / "spectrum.png").is_file()
    report = (out / "report.md").read_text()
    assert "3 outliers of eigs found by the MP-edge rule for C = 4 classes (= C - 1)" in report
    assert "A spectrum from another tool" in report and "mlp" not in report


def test_fit_on_slq_nodes_and_weights(tmp_path):
    ev = _spiked()
    rng = np.random.default_rng(0)
    # a "quadrature" of 4 probes: nodes the eigenvalues, weights random positive, rows summing to 1
    nodes = np.tile(ev, (4, 1))
    weights = rng.uniform(0.5, 1.5, nodes.shape)
    weights /= weights.sum(axis=1, keepdims=True)
    path = tmp_path / "density.npz"
    np.savez(path, nodes=nodes, weights=weights, num_params=ev.size)
    out = tmp_path / "dfit"
    assert main(["fit", "--spectrum", str(path), "--out", str(out), "--quiet"]) == 0
    s = read_summary(out)
    assert s["mp_fit"]["fitted_to"].startswith("the given SLQ density")
    assert s["mp_fit"]["n_total"] == ev.size and s["mp_fit"]["weighted"] is True
    assert main(["plot", str(out), "--quiet"]) == 0


@pytest.mark.parametrize("content, words", [
    (None, "no spectrum file"),
    (np.ones((3, 4)), "expected a 1-d list of eigenvalues"),
    (np.array([1.0, np.nan, 2.0, 3.0]), "NaN or inf"),
    ("hello", "unknown spectrum format"),
])
def test_fit_bad_spectrum_files(content, words, tmp_path, capsys):
    path = tmp_path / ("x.npy" if not isinstance(content, str) else "x.xyz")
    if isinstance(content, np.ndarray):
        np.save(path, content)
    elif isinstance(content, str):
        path.write_text(content)
    out = tmp_path / "o"
    assert main(["fit", "--spectrum", str(path), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not out.exists()


def test_summary_of_a_given_spectrum_is_strict_json(tmp_path):
    path = tmp_path / "e.npy"
    np.save(path, _spiked())
    out = tmp_path / "j"
    assert main(["fit", "--spectrum", str(path), "--out", str(out), "--quiet"]) == 0
    json.loads((out / "summary.json").read_text(), parse_constant=lambda c: 1 / 0)
