"""ClassStructure and OutlierInputs as data: saved, loaded in a fresh object, every method that
needs no product with G giving the same answer (also with torch blocked from import)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from gn_theory import NumericalWarning, ggn_operator
from gn_theory.decomposition import class_structure, measure_outlier_inputs
from gn_theory.results import ClassStructure, OutlierInputs, Result, load_result

from cases import TANH_C3_UNBALANCED

PARTS = ("G_cm", "G_0", "G_1", "G_2")

BLOCK_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked")
sys.meta_path.insert(0, Block())
"""


@pytest.fixture(scope="module")
def measured():
    model, data = TANH_C3_UNBALANCED.build()
    return model, data, class_structure(model, data)


def answers(cs: ClassStructure) -> dict:
    """Everything a ClassStructure answers without products with G."""
    out: dict = {}
    for p in PARTS:
        out[f"factor {p}"] = cs.factor(p)
        out[f"gram {p}"] = cs.gram(p)
        out[f"eigenvalues {p}"] = cs.eigenvalues(p)
        out[f"eigenvalues rtol {p}"] = cs.eigenvalues(p, rtol=1e-6)
        out[f"eigenvectors {p}"] = cs.eigenvectors(p)
        out[f"eigenvectors k=1 {p}"] = cs.eigenvectors(p, 1)
    out["identity_error"] = cs.identity_error(num_probes=2, seed=3)
    out["class_mean_basis"] = cs.class_mean_basis()
    out["predicted_outliers"] = cs.predicted_outliers()
    out["overview"] = cs.overview()
    out["summary"] = cs.summary().as_text()
    out["html"] = cs.summary().as_html()
    out["repr"] = repr(cs)
    return out


def assert_same(a, b, where=""):
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, Result):
        assert type(a) is type(b), where
        assert_same(a._fields(), b._fields(), where)
    else:
        assert a == b or (a != a and b != b), f"{where}: {a!r} != {b!r}"


def test_class_structure_saved_and_loaded_answers_the_same(measured, tmp_path):
    _, _, cs = measured
    path = cs.save(tmp_path / "cs")
    back = ClassStructure.load(path)
    assert back is not cs and isinstance(back, ClassStructure)
    assert_same(answers(back), answers(cs))
    assert_same(back.to_dict(), cs.to_dict())
    assert back.provenance["fingerprint"] == cs.settings["fingerprint"]
    assert isinstance(load_result(tmp_path / "cs.json"), ClassStructure)


def test_class_structure_dict_round_trip_is_exact(measured):
    _, _, cs = measured
    back = ClassStructure.from_dict(json.loads(json.dumps(cs.to_dict())))
    assert_same(back._fields(), cs._fields())
    assert_same(answers(back), answers(cs))


def test_memory_guarded_structure_round_trip(tmp_path):
    model, data = TANH_C3_UNBALANCED.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumericalWarning)
        cs = class_structure(model, data, max_bytes=4 * 3 * 51 * 8)
    back = ClassStructure.load(cs.save(tmp_path / "small"))
    assert back.class_means is None and back.K is None and back.K2 is None
    assert back.skipped == cs.skipped
    for p in ("G_0", "G_1"):
        np.testing.assert_array_equal(back.eigenvalues(p), cs.eigenvalues(p))
        np.testing.assert_array_equal(back.eigenvectors(p), cs.eigenvectors(p))
    assert back.predicted_outliers()["num_mini_outliers"] is None
    assert back.summary().as_text() == cs.summary().as_text()


def test_class_structure_answers_without_torch(measured, tmp_path):
    _, _, cs = measured
    path = cs.save(tmp_path / "cs")
    script = BLOCK_TORCH + textwrap.dedent(
        f"""
        import json
        from gn_theory.results import ClassStructure
        cs = ClassStructure.load({str(path)!r})
        out = {{p: cs.eigenvalues(p).tolist() for p in ("G_cm", "G_0", "G_1", "G_2")}}
        out["vectors"] = cs.eigenvectors("G_1").tolist()
        out["basis"] = cs.class_mean_basis().tolist()
        out["identity"] = cs.identity_error()
        out["outliers"] = cs.predicted_outliers()["outliers"].tolist()
        out["summary"] = cs.summary().as_text()
        assert "torch" not in sys.modules
        print(json.dumps(out))
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    for p in PARTS:
        assert got[p] == cs.eigenvalues(p).tolist()
    assert got["vectors"] == cs.eigenvectors("G_1").tolist()
    assert got["basis"] == cs.class_mean_basis().tolist()
    assert got["identity"] == cs.identity_error()
    assert got["outliers"] == cs.predicted_outliers()["outliers"].tolist()
    assert got["summary"] == cs.summary().as_text()


# ----------------------------------------------------------------------------- OutlierInputs
@pytest.fixture(scope="module")
def inputs(measured):
    model, data, cs = measured
    return measure_outlier_inputs(ggn_operator(model, data), cs, num_probes=2, num_steps=10)


def test_outlier_inputs_save_load_round_trip(inputs, tmp_path):
    back = OutlierInputs.load(inputs.save(tmp_path / "inputs"))
    assert back is not inputs
    for name in ("observed", "within_density", "within_spectrum", "ritz"):
        a, b = getattr(inputs, name), getattr(back, name)
        assert type(a) is type(b)
        assert_same(b, a, name)
    assert back.settings == inputs.settings
    assert back.num_matvecs == inputs.num_matvecs
    assert back.summary().as_text() == inputs.summary().as_text()
    assert_same(OutlierInputs.from_dict(json.loads(json.dumps(inputs.to_dict()))), inputs)


def test_outlier_inputs_with_nothing_measured_round_trip(tmp_path):
    empty = OutlierInputs(settings={"note": "nothing"})
    back = load_result(empty.save(tmp_path / "empty"))
    assert isinstance(back, OutlierInputs)
    assert back.observed is None and back.within_density is None
    assert back.within_spectrum is None and back.ritz is None
    assert back.num_matvecs == 0 and back.settings == {"note": "nothing"}
    assert "not measured" in str(back.summary())


def test_outlier_inputs_load_without_torch(inputs, tmp_path):
    path = inputs.save(tmp_path / "inputs")
    script = BLOCK_TORCH + textwrap.dedent(
        f"""
        from gn_theory.results import load_result
        back = load_result({str(path)!r})
        print(type(back).__name__, back.observed.eigenvalues.size, back.ritz.values.size)
        print(back.summary().title)
        assert "torch" not in sys.modules
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    k = inputs.settings["k"]
    assert f"OutlierInputs {k} {inputs.ritz.values.size}" in run.stdout
    assert "Measured inputs of outlier prediction" in run.stdout
