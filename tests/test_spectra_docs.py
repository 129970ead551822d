"""The python examples of docs/spectra.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_spectra_page_examples_run(tmp_path, monkeypatch):
    text = (ROOT / "docs" / "spectra.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "docs/spectra.md has no python example"
    namespace: dict = {}
    for block in blocks:
        block = block.replace("/tmp/gn_theory_top", str(tmp_path / "top"))
        exec(compile(block, "docs/spectra.md", "exec"), namespace)
    assert namespace["top"].all_converged
