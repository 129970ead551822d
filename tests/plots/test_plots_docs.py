"""The python examples of docs/plots.md run as written (torch-free) and write their figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "plots.md"


def _blocks() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) >= 2, "docs/plots.md lost its examples"
    return blocks


def test_plots_page_examples_run(tmp_path):
    namespace: dict = {}
    for block in _blocks():  # one namespace, like a notebook
        block = block.replace("/tmp/gn_theory_plots", str(tmp_path / "figures"))
        exec(compile(block, "docs/plots.md", "exec"), namespace)
    written = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    assert written == ["counts.png", "linear.png", "overview.png", "scaling.png"]
    assert all((tmp_path / "figures" / name).stat().st_size > 5_000 for name in written)
    assert len(namespace["fig"].axes) == 3
    assert abs(namespace["fit"].ratio / 0.4 - 1) < 0.05
    assert namespace["fit"].outliers.size == 3


def test_plots_page_examples_need_no_torch(tmp_path):
    code = "\n".join(b.replace("/tmp/gn_theory_plots", str(tmp_path)) for b in _blocks())
    script = (
        "import sys\n"
        "class BlockTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked')\n"
        "sys.meta_path.insert(0, BlockTorch())\n"
        "import matplotlib\n"
        "matplotlib.use('Agg')\n" + code + "\nassert 'torch' not in sys.modules\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
