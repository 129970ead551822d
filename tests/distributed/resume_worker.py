"""A slow SLQ or trace run that checkpoints every probe group (run and killed by test_resume.py).

``python resume_worker.py {slq|trace} CHECKPOINT``: the operator is the fixed matrix of
:func:`matrix`, each product slowed down so that the test can SIGKILL the run between
two checkpoints. Not a test module.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

import gn_theory as gt
from gn_theory.operators import DenseOperator

SLQ = {"num_probes": 6, "num_steps": 12, "seed": 21, "probes_per_checkpoint": 1}
TRACE = {"num_matvecs": 40, "block_size": 5, "seed": 8}


def matrix() -> np.ndarray:
    a = np.random.default_rng(4).standard_normal((60, 60))
    return (a + a.T) / 2


class SlowDense(DenseOperator):
    """The same products as a DenseOperator of the matrix, each after a pause."""

    def _matmat_torch(self, V: torch.Tensor) -> torch.Tensor:
        time.sleep(0.15)
        return super()._matmat_torch(V)


def main() -> None:
    which, path = sys.argv[1], sys.argv[2]
    op = SlowDense(matrix())
    if which == "slq":
        gt.slq(op, checkpoint=path, **SLQ)
    else:
        gt.trace(op, checkpoint=path, **TRACE)


if __name__ == "__main__":
    main()
