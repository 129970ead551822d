"""The python examples of docs/rmt.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_rmt_page_examples_run(tmp_path):
    text = (ROOT / "docs" / "rmt.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 5, "docs/rmt.md lost its examples"
    namespace: dict = {}
    for block in blocks:  # one namespace, like a notebook
        block = block.replace("/tmp/gn_theory_prediction", str(tmp_path / "prediction"))
        exec(compile(block, "docs/rmt.md", "exec"), namespace)
    pred = namespace["pred"]
    assert set(pred.methods) >= {"iid", "additive", "bgn", "subspace", "subspace_corrected"}
    assert (tmp_path / "prediction.npz").exists()
    assert abs(namespace["fit"].ratio / 0.4 - 1) < 0.03
