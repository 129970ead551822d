"""Analysis without torch: load saved results -> fit MP -> predict outliers -> summaries, with
``import torch`` failing in a subprocess (the laptop half of "measure on a GPU box, explain anywhere")."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from gn_theory import ggn_operator
from gn_theory.decomposition import class_structure, measure_outlier_inputs
from gn_theory.explain import predict_outliers
from gn_theory.rmt import fit_marchenko_pastur

from cases import TANH_C3_UNBALANCED

BLOCK_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked")
sys.meta_path.insert(0, Block())
"""


def _run(script: str) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(script)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return run


def test_import_loads_no_torch():
    run = _run(
        """
        import gn_theory.explain, gn_theory.rmt
        from gn_theory.rmt import OutlierPrediction, predict_outliers
        assert predict_outliers is gn_theory.explain.predict_outliers
        assert "torch" not in sys.modules
        print("ok")
        """
    )
    assert run.stdout.strip() == "ok"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A class structure and its measured outlier inputs, saved (the GPU-box half)."""
    model, data = TANH_C3_UNBALANCED.build()
    cs = class_structure(model, data)
    inputs = measure_outlier_inputs(ggn_operator(model, data), cs, num_probes=2, num_steps=20)
    root = tmp_path_factory.mktemp("measured")
    return cs, inputs, cs.save(root / "structure"), inputs.save(root / "inputs")


def test_load_fit_predict_summarise_without_torch(saved, tmp_path):
    cs, inputs, cs_path, inputs_path = saved
    pred_path = tmp_path / "prediction"
    run = _run(
        f"""
        import json, warnings
        from gn_theory.explain import predict_outliers
        from gn_theory.results import load_result
        from gn_theory.rmt import fit_marchenko_pastur
        cs = load_result({str(cs_path)!r})
        inputs = load_result({str(inputs_path)!r})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bulk = fit_marchenko_pastur(inputs.within_density, num_bootstrap=5)
        pred = predict_outliers(cs, bulk, inputs=inputs)
        text = bulk.summary().as_text() + pred.summary().as_text() + pred.table()
        pred.save({str(pred_path)!r})
        assert "torch" not in sys.modules
        print(json.dumps({{"methods": pred.methods, "predicted": pred.predicted.tolist(),
                          "params": bulk.params.tolist(), "text": text}}))
        """
    )
    got = json.loads(run.stdout)
    bulk = fit_marchenko_pastur(inputs.within_density, num_bootstrap=5)
    here = predict_outliers(cs, bulk, inputs=inputs)
    assert got["methods"] == here.methods == ["iid", "additive", "bgn", "subspace",
                                              "subspace_corrected"]
    assert got["predicted"] == here.predicted.tolist()
    assert got["params"] == bulk.params.tolist()
    assert "Marchenko-Pastur fit" in got["text"] and "Predicted outliers of G" in got["text"]
    # a fresh process loads the saved prediction by its type name alone
    run = _run(
        f"""
        from gn_theory.results import load_result
        pred = load_result({str(pred_path)!r})
        assert "torch" not in sys.modules
        print(type(pred).__name__, pred.best_method)
        """
    )
    assert run.stdout.split() == ["OutlierPrediction", here.best_method]
