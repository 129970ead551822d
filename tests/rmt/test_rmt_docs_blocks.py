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


def _theory_sections() -> set[str]:
    text = (ROOT / "docs" / "theory.md").read_text()
    found = set(re.findall(r"^##+ (\d+[ab]?)\.", text, flags=re.M))
    found |= set(re.findall(r"^\*\*(\d+\.\d+) ", text, flags=re.M))
    return found


def test_theory_citations_name_existing_sections():
    """Every "docs/theory.md 4.5"-style citation in the package, docs, tests and validation resolves."""
    sections = _theory_sections()
    assert {"0", "2.3", "3.4", "4.5", "4.6", "5a", "5b", "9"} <= sections
    cite = re.compile(r"theory(?:\.md|\]\(theory\.md\))\s*(?:§|sections?\s)?\s*(\d+(?:\.\d+)?[ab]?)")
    bad = []
    for folder in ("gn_theory", "docs", "tests", "validation"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in (".py", ".md") or ".venv" in path.parts:
                continue
            for m in cite.finditer(path.read_text(errors="replace")):
                if m.group(1) not in sections and m.group(1).split(".")[0] not in sections:
                    bad.append(f"{path.relative_to(ROOT)}: {m.group(0)}")
                elif "." in m.group(1) and m.group(1) not in sections:
                    bad.append(f"{path.relative_to(ROOT)}: {m.group(0)}")
    assert not bad, bad
