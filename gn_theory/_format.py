"""The one copy of number and byte formatting used in messages and summaries (torch-free)."""

from __future__ import annotations

import numpy as np

__all__: list[str] = []


def fmt_bytes(n: float) -> str:
    """Format a byte count with a binary unit (``1.5 GiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - loop always returns


def fmt_values(v: np.ndarray, n: int = 6) -> str:
    """Format the first ``n`` entries of ``v`` compactly, saying how many there are in all."""
    v = np.asarray(v)
    if v.size == 0:
        return "-"
    head = ", ".join(f"{x:.4g}" for x in v.ravel()[:n])
    return head + (f", ... ({v.size} in all)" if v.size > n else "")
