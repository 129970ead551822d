"""Every python example in README.md and docs/*.md runs as written (the one docs-test extractor).

The blocks of a page run in order in one namespace (like a notebook), in a temporary working
directory so that examples may write files; paths under ``/tmp/gn_theory_`` are redirected there.
Pages with examples that produce numbers worth checking get a check below.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(path: Path) -> list[str]:
    """The ```python code blocks of a markdown file."""
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def _pages() -> list[str]:
    pages = ["README.md"] + sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))
    return [p for p in pages if python_blocks(ROOT / p)]


def run_page(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Run the python blocks of ``page`` in one namespace inside ``tmp_path``; return the namespace."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for i, block in enumerate(python_blocks(ROOT / page)):
        block = block.replace("/tmp/gn_theory_", str(tmp_path / "gn_theory_"))
        exec(compile(block, f"{page} (python block {i + 1})", "exec"), namespace)
    return namespace


def _check_spectra(ns: dict, tmp_path: Path) -> None:
    assert ns["top"].all_converged


def _check_decomposition(ns: dict, tmp_path: Path) -> None:
    assert ns["cs"].num_classes == 4
    assert max(ns["cs"].identity_error().values()) < 1e-12


def _check_rmt(ns: dict, tmp_path: Path) -> None:
    pred = ns["pred"]
    assert set(pred.methods) >= {"iid", "additive", "bgn", "subspace", "subspace_corrected"}
    assert (tmp_path / "gn_theory_prediction.npz").exists()
    assert abs(ns["fit"].ratio / 0.4 - 1) < 0.03


#: page -> a check of the numbers its examples produce
CHECKS: dict[str, Callable[[dict, Path], None]] = {
    "docs/spectra.md": _check_spectra,
    "docs/decomposition.md": _check_decomposition,
    "docs/rmt.md": _check_rmt,
}


def test_core_pages_have_examples():
    pages = _pages()
    for page in ["README.md", "docs/index.md", "docs/operators.md", "docs/spectra.md",
                 "docs/decomposition.md", "docs/rmt.md", "docs/architecture.md"]:
        assert page in pages, f"{page} lost its python examples"
    assert len(python_blocks(ROOT / "docs" / "rmt.md")) >= 5, "docs/rmt.md lost its examples"


@pytest.mark.parametrize("page", _pages())
def test_page_examples_run(page, tmp_path, monkeypatch):
    ns = run_page(page, tmp_path, monkeypatch)
    if page in CHECKS:
        CHECKS[page](ns, tmp_path)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- test-command -->\s*```bash\n(.*?)\n```", readme, flags=re.S)
    assert m and "pytest" in m.group(1)
    assert "test-command" in (ROOT / ".ci" / "run").read_text()
