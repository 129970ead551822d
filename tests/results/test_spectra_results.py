"""Spectral results (Spectrum, SpectralDensity, TraceEstimate, Outliers) as data, without torch.

Exact to_dict/from_dict and save/load round trips (arrays bit for bit), summaries,
the descending order, the interval shape, and the one spectrum-like coercion.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from gn_theory.exceptions import InvalidInputError, ShapeError
from gn_theory.results import (
    Outliers,
    SpectralDensity,
    Spectrum,
    Summary,
    TraceEstimate,
    load_result,
)
from gn_theory.results.spectra import SpectralMeasure, spectral_measure


def make_spectrum() -> Spectrum:
    rng = np.random.default_rng(0)
    vecs, _ = np.linalg.qr(rng.standard_normal((7, 3)))
    return Spectrum(
        eigenvalues=np.array([5.0, 1.0 / 3.0, -2.5]),
        eigenvectors=vecs,
        residual_norms=np.array([1e-12, 3e-9, 0.1]),
        converged=np.array([True, True, False]),
        num_matvecs=42,
        which="both",
        method="lanczos",
        num_params=7,
        seed=11,
        settings={"kind": "hessian", "tol": 1e-8, "block_size": 1, "lengths": [1, 2]},
    )


def make_density() -> SpectralDensity:
    rng = np.random.default_rng(1)
    nodes = -np.sort(-rng.standard_normal((3, 5)), axis=1)
    weights = rng.uniform(0.1, 1.0, (3, 5))
    weights[2, 3:] = 0.0
    nodes[2, 3:] = nodes[2, 2]
    weights /= weights.sum(axis=1, keepdims=True)
    return SpectralDensity(
        nodes=nodes,
        weights=weights,
        num_params=50,
        num_steps=5,
        num_probes=3,
        bounds=np.array([nodes.min() - 0.1, nodes.max() + 0.1]),
        num_matvecs=15,
        seed=3,
        settings={"kind": "ggn", "probes": "rademacher", "reorthogonalize": False,
                  "lengths": [5, 5, 3]},
    )


def make_trace() -> TraceEstimate:
    samples = np.random.default_rng(2).standard_normal(10) + 7.0
    return TraceEstimate(
        estimate=float(samples.mean()),
        bse=float(samples.std(ddof=1) / np.sqrt(10)),
        num_matvecs=10,
        method="hutch++",
        samples=samples,
        seed=None,
        settings={"kind": "dense", "probes": "gaussian"},
    )


def make_outliers() -> Outliers:
    return Outliers(
        count=2,
        values=np.array([12.0, 9.0]),
        threshold=float(np.sqrt(9.0)),
        method="gap",
        side="positive",
        gap_ratios=np.array([1.2, 9.0, 1.01]),
        bulk_edge=1.0,
        settings={"max_outliers": 50, "min_ratio": 2.0, "edge": None},
    )


MAKERS = {
    "Spectrum": make_spectrum,
    "SpectralDensity": make_density,
    "TraceEstimate": make_trace,
    "Outliers": make_outliers,
}


def assert_identical(a, b):
    assert type(a) is type(b)
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert isinstance(y, np.ndarray) and x.dtype == y.dtype and x.shape == y.shape
            assert x.tobytes() == y.tobytes(), f.name  # bit for bit
        elif isinstance(x, float) and np.isnan(x):
            assert isinstance(y, float) and np.isnan(y), f.name
        else:
            assert type(x) is type(y) and x == y, f.name


@pytest.mark.parametrize("name", list(MAKERS))
def test_dict_round_trip_is_exact(name):
    obj = MAKERS[name]()
    d = obj.to_dict()
    assert d["type"] == name
    assert_identical(obj, type(obj).from_dict(d))
    assert_identical(obj, type(obj).from_dict(json.loads(json.dumps(d))))


@pytest.mark.parametrize("name", list(MAKERS))
def test_save_load_round_trip_is_exact(name, tmp_path):
    obj = MAKERS[name]()
    path = obj.save(tmp_path / "run_0.1")
    assert path.name == "run_0.1.json"
    assert_identical(obj, type(obj).load(path))
    assert_identical(obj, load_result(tmp_path / "run_0.1"))


def test_eigenvectors_none_round_trip(tmp_path):
    s = dataclasses.replace(make_spectrum(), eigenvectors=None)
    assert_identical(s, Spectrum.load(s.save(tmp_path / "s")))


@pytest.mark.parametrize("name", list(MAKERS))
def test_summary_is_a_table(name):
    obj = MAKERS[name]()
    s = obj.summary()
    assert isinstance(s, Summary)
    text = str(s)
    assert text == s.as_text() and len(s.rows) >= 4
    assert "<table>" in s.as_html() and obj._repr_html_() == s.as_html()


def test_summary_contents():
    s = str(make_spectrum().summary())
    assert "lanczos (both)" in s and "2 of 3" in s
    assert "did not converge" in s and "negative" in s and "descending" in s
    d = str(make_density().summary())
    assert "3 x 5" in d and "stopped early" in d and "ghost" in d
    t = str(make_trace().summary())
    assert "95% interval" in t and "deflated" in t
    o = make_outliers().summary()
    assert "12, 9" in str(o) and "largest gap ratio" in str(o)
    none = dataclasses.replace(make_outliers(), count=0, values=np.zeros(0))
    assert "no gap ratio reached min_ratio=2.0" in str(none.summary())


def test_spectrum_order_helpers():
    s = make_spectrum()
    assert s.largest(2).tolist() == [5.0, 1.0 / 3.0]
    assert s.smallest(2).tolist() == [-2.5, 1.0 / 3.0]
    assert len(s) == 3 and s.num_converged == 2 and not s.all_converged
    assert "num_matvecs=42" in repr(s)


def test_trace_conf_int_shape_and_params():
    t = make_trace()
    ci = t.conf_int()
    assert ci.shape == (1, 2) and ci[0, 0] < t.estimate < ci[0, 1]
    np.testing.assert_allclose(ci[0].mean(), t.estimate)
    np.testing.assert_allclose(ci[0, 1] - t.estimate, 1.959963984540054 * t.bse)
    assert t.params.tolist() == [t.estimate] and t.param_names == ["trace"]
    with pytest.raises(InvalidInputError, match="alpha"):
        t.conf_int(1.5)


def test_density_from_eigenvalues_is_descending():
    d = SpectralDensity.from_eigenvalues([2.0, -1.0, 5.0], source="test")
    assert d.nodes.tolist() == [[5.0, 2.0, -1.0]]
    assert d.spectral_range == (-1.0, 5.0)
    assert d.settings == {"method": "exact", "source": "test"}
    assert d.moment(1) == pytest.approx(2.0)
    assert d.wasserstein(make_spectrum()) >= 0.0
    assert d.wasserstein(d) == 0.0


def test_spectral_measure():
    m = spectral_measure([1.0, 3.0, 2.0])
    assert isinstance(m, SpectralMeasure) and not m.weighted
    assert m.values.tolist() == [3.0, 2.0, 1.0] and m.num_params == 3
    np.testing.assert_allclose(m.weights, 1 / 3)
    m = spectral_measure(make_spectrum())
    assert m.values.tolist() == [5.0, 1.0 / 3.0, -2.5]
    d = make_density()
    m = spectral_measure(d)
    assert m.weighted and m.num_params == 50 and m.values.size == 13  # zero weights dropped
    assert np.all(np.diff(m.values) <= 0) and m.weights.sum() == pytest.approx(1.0)
    assert spectral_measure(3.0).values.tolist() == [3.0]
    with pytest.raises(InvalidInputError, match="non-finite"):
        spectral_measure([1.0, np.inf])
    with pytest.raises(InvalidInputError, match="non-finite"):
        spectral_measure(dataclasses.replace(make_density(), nodes=np.full((3, 5), np.nan)))
    with pytest.raises(ShapeError):
        spectral_measure(np.ones((2, 2)))
    with pytest.raises(InvalidInputError, match="empty"):
        spectral_measure([])
    with pytest.raises(InvalidInputError):
        spectral_measure(None)
    bad = dataclasses.replace(d, weights=-d.weights)
    with pytest.raises(InvalidInputError, match=">= 0"):
        spectral_measure(bad)


def test_spectral_results_without_torch(tmp_path):
    """Build, save, load, summarise and coerce spectral results with torch blocked."""
    script = textwrap.dedent(
        f"""
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked")

        sys.meta_path.insert(0, Block())
        import numpy as np
        from gn_theory.results import SpectralDensity, load_result
        d = SpectralDensity.from_eigenvalues(np.arange(5.0))
        back = load_result(d.save({str(tmp_path / "d")!r}))
        print(back.nodes[0].tolist(), back.summary().title)
        assert "torch" not in sys.modules
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "[4.0, 3.0, 2.0, 1.0, 0.0] Spectral density" in out.stdout
