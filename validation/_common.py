"""Shared harness of the validation scripts: arguments and outputs.

The outlier rule is the package's own (:func:`gn_theory.outliers`), never a copy here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gn_theory.results import atomic_write_bytes

ROOT = Path(__file__).resolve().parent


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", default=str(ROOT / "out"), help="folder for the figure and JSON")
    p.add_argument("--quick", action="store_true", help="tiny sizes (used by the test suite)")
    p.add_argument("--seed", type=int, default=0)
    return p


def save(name: str, out: str, numbers: dict[str, Any], fig=None) -> Path:
    """Write ``<out>/<name>.json`` (and ``.png``) atomically; return the JSON path."""
    folder = Path(out)
    path = atomic_write_bytes(folder / f"{name}.json", json.dumps(numbers, indent=2).encode())
    if fig is not None:
        import io

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        atomic_write_bytes(folder / f"{name}.png", buf.getvalue())
    return path
