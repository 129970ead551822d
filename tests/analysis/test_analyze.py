"""gn_theory.analyze: measure -> decompose -> fit on a tiny model, against dense references."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from cases import RELU_C4_UNBALANCED, TANH_C3_UNBALANCED
from references import dense_ggn, dense_hessian

import gn_theory as gt
from gn_theory.analysis import (
    Analysis,
    Decomposition,
    Measurement,
    TheoryFit,
    fit_theory,
    measure_model,
    read_summary,
)
from gn_theory.exceptions import InvalidInputError, ResultFileError
from gn_theory.results import load_result
from gn_theory.rmt import sample_covariance_eigenvalues


@pytest.fixture(scope="module")
def tiny():
    model, data = TANH_C3_UNBALANCED.build()
    analysis = gt.analyze(model, data, num_probes=3, num_steps=20, seed=0)
    return model, data, analysis


def test_analyze_returns_every_stage(tiny):
    _, _, a = tiny
    assert isinstance(a, Analysis)
    assert isinstance(a.measurement, Measurement) and isinstance(a.decomposition, Decomposition)
    assert isinstance(a.theory, TheoryFit) and a.training is None
    assert (a.num_params, a.num_classes, a.num_samples) == (51, 3, 21)
    assert a.theory.prediction is not None and a.theory.outliers is not None
    assert a.theory.mp_fit is not None and a.theory.spiked_fit is not None


def test_measured_spectra_match_dense_references(tiny):
    model, (X, y), a = tiny
    m = a.measurement
    H = torch.linalg.eigvalsh(dense_hessian(model, X, y)).flip(0).numpy()
    G = torch.linalg.eigvalsh(dense_ggn(model, X, y)).flip(0).numpy()
    k = m.settings["top_k"]
    assert k == 9 and len(m.R_top) == 3 and len(m.H_bottom) == 3
    np.testing.assert_allclose(m.H_top.eigenvalues, H[:k], rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(m.G_top.eigenvalues, G[:k], rtol=1e-7, atol=1e-10)
    assert m.H_bottom.eigenvalues[-1] == pytest.approx(H[-1], rel=1e-6, abs=1e-10)
    assert m.identity_errors.shape == (4,) and m.identity_error < 1e-12
    assert m.H_density.num_probes == 3 and m.G_density.num_probes == 3


def test_decomposition_identities(tiny):
    _, _, a = tiny
    d = a.decomposition
    assert set(d.identity_errors) == {"G = G_cm + G_w", "G_cm = G_0 + G_1 + G_2"}
    assert max(d.identity_errors.values()) < 1e-10
    assert d.inputs.observed is not None and d.num_matvecs > 0


def test_prediction_compares_with_the_top_of_G(tiny):
    _, _, a = tiny
    p = a.theory.prediction
    assert p.k == 3  # C
    np.testing.assert_allclose(p.observed[:9], a.decomposition.inputs.observed.eigenvalues)


def test_save_load_round_trip(tiny, tmp_path):
    _, _, a = tiny
    path = a.save(tmp_path / "analysis")
    assert path.name == "summary.json"
    names = sorted(p.name for p in (tmp_path / "analysis").iterdir())
    assert names == ["decomposition.json", "decomposition.npz", "fit.json", "fit.npz",
                     "measurement.json", "measurement.npz", "summary.json"]
    b = Analysis.load(tmp_path / "analysis")
    assert b.summary_dict()["top_eigenvalues"] == a.summary_dict()["top_eigenvalues"]
    np.testing.assert_array_equal(b.measurement.H_top.eigenvalues, a.measurement.H_top.eigenvalues)
    assert isinstance(load_result(tmp_path / "analysis" / "fit"), TheoryFit)
    assert read_summary(tmp_path / "analysis")["num_params"] == 51


def test_summary_dict_is_strict_json(tiny):
    _, _, a = tiny
    text = json.dumps(a.summary_dict(), allow_nan=False)  # raises on NaN / inf
    d = json.loads(text)
    assert d["identity"]["H = G + R"] < 1e-12
    assert d["outliers"]["operator"] == "H" and d["outliers"]["num_classes"] == 3


def test_mse_loss_skips_the_class_structure():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    model = model.double()
    X = torch.randn(10, 3, dtype=torch.float64)
    Y = torch.randn(10, 2, dtype=torch.float64)
    m = measure_model(model, (X, Y), loss="mse", top_k=3, bottom_k=1, num_probes=2, num_steps=8)
    assert m.identity_error < 1e-12 and len(m.H_top) == 3


def test_data_as_batches_and_dataset():
    from gn_theory.data import load_dataset
    from gn_theory.models import build_model

    ds = load_dataset("blobs", num_samples=40, seed=0)
    model = build_model("mlp", input_shape=(2,), num_classes=2, width=4, depth=1)
    a = measure_model(model, ds, top_k=3, bottom_k=0, num_probes=2, num_steps=8,
                      densities=("H",))
    b = measure_model(model, ds.batches(16), top_k=3, bottom_k=0, num_probes=2, num_steps=8,
                      densities=("H",))
    np.testing.assert_allclose(a.H_top.eigenvalues, b.H_top.eigenvalues, rtol=1e-9)
    assert a.H_bottom is None and a.G_density is None and a.num_classes == 2


def test_bad_options():
    model, data = RELU_C4_UNBALANCED.build()
    with pytest.raises(InvalidInputError):
        measure_model(model, data, top_k=10_000)
    with pytest.raises(InvalidInputError):
        measure_model(model, data, densities=("R",))
    with pytest.raises(InvalidInputError):
        measure_model(model, "not data")
    with pytest.raises(InvalidInputError):
        gt.analyze(model, data, loss="hinge")


def test_fit_theory_on_a_spiked_spectrum():
    ev = sample_covariance_eigenvalues(300, 900, 1.0, spikes=[12.0, 8.0, 6.0], seed=1)
    t = fit_theory(ev, num_classes=4)
    assert t.outliers.count == 3 and t.outliers.rule == "mp_edge"
    assert t.mp_fit.ks_statistic < 0.1 and t.spiked_fit.num_spikes == 3
    assert t.prediction is None and t.spectrum.which == "all"
    np.testing.assert_allclose(t.outliers.values, np.sort(ev)[::-1][:3])


def test_fit_theory_rejects_non_spectra():
    with pytest.raises(InvalidInputError):
        fit_theory("eigenvalues")
    with pytest.raises(InvalidInputError):
        fit_theory([1.0, np.nan, 2.0])
    with pytest.raises(InvalidInputError):
        fit_theory([3.0, 2.0, 1.0], mp_method="mle")


def test_load_of_an_empty_directory(tmp_path):
    with pytest.raises(ResultFileError, match="holds no analysis results"):
        Analysis.load(tmp_path)
    with pytest.raises(ResultFileError, match="no analysis directory"):
        Analysis.load(tmp_path / "missing")
    with pytest.raises(ResultFileError, match="no summary.json"):
        read_summary(tmp_path)
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(ResultFileError, match="not readable JSON"):
        read_summary(tmp_path)


def test_saved_analysis_loads_and_reports_without_torch(tiny, tmp_path):
    _, _, a = tiny
    a.save(tmp_path / "a")
    block = textwrap.dedent("""
        import sys
        class _Block:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked")
        sys.meta_path.insert(0, _Block())
    """)
    script = block + textwrap.dedent(f"""
        from gn_theory.analysis import Analysis, fit_theory
        from gn_theory.report import build_report, render_markdown
        a = Analysis.load({str(tmp_path / 'a')!r})
        t = fit_theory(a.measurement, a.decomposition)
        print(a.summary())
        md = render_markdown(build_report(a.summary_dict()))
        assert "H = G + R holds to" in md and "torch" not in sys.modules
        print("ok", t.prediction.k)
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("ok 3")
