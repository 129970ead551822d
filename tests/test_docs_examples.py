"""The python examples in README.md and the core docs pages run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", "docs/index.md", "docs/operators.md"]


def python_blocks(path: Path) -> list[str]:
    """The ```python code blocks of a markdown file."""
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page):
    blocks = python_blocks(ROOT / page)
    assert blocks, f"{page} has no python example"
    namespace: dict = {}
    for block in blocks:  # blocks of one page share a namespace, like a notebook
        exec(compile(block, f"{page}", "exec"), namespace)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- test-command -->\s*```bash\n(.*?)\n```", readme, flags=re.S)
    assert m and "pytest" in m.group(1)
    assert "test-command" in (ROOT / ".ci" / "run").read_text()
