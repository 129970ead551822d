"""The python examples of docs/data_models_training.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "data_models_training.md"


def test_data_models_training_page_runs():
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:  # the blocks share one namespace, like a notebook
        exec(compile(block, str(PAGE), "exec"), namespace)
    assert namespace["log"].final_accuracy == 1.0
