"""Each python example of docs/rmt.md and docs/theory.md runs on its own (a fresh namespace).

tests/test_docs.py runs a page's blocks in order in one namespace, as a notebook would; a
reader who copies one example must not meet a NameError either.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["docs/rmt.md", "docs/decomposition.md"]


def _blocks() -> list[tuple[str, int, str]]:
    out = []
    for page in PAGES:
        text = (ROOT / page).read_text()
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", text, flags=re.S)):
            out.append((page, i + 1, block))
    return out


@pytest.mark.parametrize("page, index, block", _blocks(), ids=lambda v: str(v)[:20])
def test_block_runs_alone(page, index, block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = block.replace("/tmp/gn_theory_", str(tmp_path / "gn_theory_"))
    exec(compile(code, f"{page} (python block {index}, alone)", "exec"), {"__name__": "__docs__"})
