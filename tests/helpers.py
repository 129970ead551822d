"""One helper comparing any operator with a dense reference (curvlinops' ``compare_matmat`` idea).

``compare_matmat(op, dense)`` multiplies ``op`` by the same random vectors and matrices
through every input path a user has (torch vector and matrix, numpy vector and matrix,
scipy's ``matvec``/``matmat`` and ``op @ ndarray``) and compares each with ``dense @ v``
in float64. On failure it reports the largest mismatching entries.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from gn_theory.operators import DenseOperator

__all__ = ["compare_matmat", "allclose_report", "Interrupted", "InterruptingOperator",
           "kill_after_first_checkpoint"]


def allclose_report(actual: Any, expected: Any, *, rtol: float, atol: float = 0.0, what: str = "") -> None:
    """Assert ``actual`` is close to ``expected``; the message lists the worst entries."""
    a = np.asarray(actual.detach().cpu() if isinstance(actual, torch.Tensor) else actual, dtype=np.float64)
    e = np.asarray(expected.detach().cpu() if isinstance(expected, torch.Tensor) else expected, dtype=np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != expected {e.shape}"
    scale = max(float(np.max(np.abs(e))) if e.size else 0.0, 1e-300)
    err = np.abs(a - e)
    bad = err > atol + rtol * scale
    if bad.any():
        idx = np.argsort(err.ravel())[::-1][:5]
        rows = ", ".join(
            f"{np.unravel_index(i, a.shape)}: {a.ravel()[i]:.6g} vs {e.ravel()[i]:.6g}" for i in idx
        )
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {a.size} entries differ (max relative error "
            f"{err.max() / scale:.3g} > rtol {rtol:g}); worst {rows}"
        )


def compare_matmat(op: Any, dense: Any, *, rtol: float = 1e-10, num_cols: int = 3, seed: int = 0) -> None:
    """Compare ``op`` with the dense matrix ``dense`` over every product path.

    Parameters
    ----------
    op : CurvatureOperator
        The operator under test (torch ``@`` and scipy ``matvec``/``matmat``).
    dense : torch.Tensor or numpy.ndarray
        Its (P, P) reference.
    rtol : float
        Tolerance relative to the largest entry of the reference product.
    num_cols : int
        Columns of the matrix inputs.
    seed : int
        Seed of the random inputs.
    """
    D = torch.as_tensor(np.asarray(dense) if not isinstance(dense, torch.Tensor) else dense)
    D = D.detach().to(torch.float64).cpu()
    P = D.shape[0]
    assert tuple(op.shape) == (P, P), f"operator shape {op.shape} != reference {(P, P)}"
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(P, generator=g, dtype=torch.float64)
    V = torch.randn(P, num_cols, generator=g, dtype=torch.float64)
    dtype = getattr(op, "torch_dtype", torch.float64)
    device = getattr(op, "device", torch.device("cpu"))
    ref_v, ref_V = D @ v, D @ V
    # torch paths, on the operator's device and dtype
    allclose_report((op @ v.to(device, dtype)).cpu(), ref_v, rtol=rtol, what="op @ torch vector")
    allclose_report((op @ V.to(device, dtype)).cpu(), ref_V, rtol=rtol, what="op @ torch matrix")
    # numpy / scipy paths
    vn, Vn = v.numpy(), V.numpy()
    allclose_report(op @ vn, ref_v, rtol=rtol, what="op @ numpy vector")
    allclose_report(op @ Vn, ref_V, rtol=rtol, what="op @ numpy matrix")
    allclose_report(op.matvec(vn), ref_v, rtol=rtol, what="scipy matvec")
    allclose_report(op.matmat(Vn), ref_V, rtol=rtol, what="scipy matmat")


class Interrupted(Exception):
    """Raised by :class:`InterruptingOperator` when its product budget is spent."""


class InterruptingOperator(DenseOperator):
    """A DenseOperator whose products stop (:class:`Interrupted`) once ``budget`` columns were multiplied.

    Stands in for a run killed part way (the resume tests interrupt at every stage with it).
    """

    def __init__(self, matrix: np.ndarray, budget: int) -> None:
        super().__init__(matrix)
        self.budget = budget

    def _matmat_torch(self, V: torch.Tensor) -> torch.Tensor:
        self.budget -= V.shape[1]
        if self.budget < 0:
            raise Interrupted
        return super()._matmat_torch(V)


def kill_after_first_checkpoint(args: list[str], progress: Callable[[], int],
                                timeout: float = 240.0) -> int:
    """Run ``python *args`` and SIGKILL it once ``progress()`` reports a checkpointed unit.

    ``progress`` reads the checkpoint file (0 until the first atomic write). Returns what it
    reports after the kill: the units the killed run had saved.
    """
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, *args], env=env)
    try:
        deadline = time.monotonic() + timeout
        while progress() < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    return progress()
