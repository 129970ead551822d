"""The python examples of docs/decomposition.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_decomposition_page_examples_run(tmp_path):
    text = (ROOT / "docs" / "decomposition.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "docs/decomposition.md has no python example"
    namespace: dict = {}
    for block in blocks:
        block = block.replace("/tmp/gn_theory_cs", str(tmp_path / "cs"))
        exec(compile(block, "docs/decomposition.md", "exec"), namespace)
    assert namespace["cs"].num_classes == 4
    assert max(namespace["cs"].identity_error().values()) < 1e-12
