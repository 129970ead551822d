"""The ``gn-theory`` command line (also ``python -m gn_theory``).

This module only parses arguments, calls library functions, prints and writes
files, and maps errors to exit codes; it holds no logic the library lacks.

Commands
--------
``demo`` (the default)
    The main job on an embedded default: train a small MLP on a generated
    Gaussian mixture, build H, G and R = H - G, print their top eigenvalues,
    the check H = G + R and the rank of G against its bound N (C - 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import torch

from .exceptions import GnTheoryError

__all__ = ["main", "run_demo"]


def run_demo(
    *,
    num_samples: int = 240,
    num_features: int = 10,
    num_classes: int = 4,
    width: int = 16,
    steps: int = 300,
    top: int = 8,
    seed: int = 0,
) -> dict:
    """Run the embedded end-to-end example and return its numbers.

    Parameters
    ----------
    num_samples, num_features, num_classes : int
        Size of the generated Gaussian-mixture problem.
    width : int
        Width of both hidden layers of the ReLU MLP.
    steps : int
        Full-batch gradient-descent steps before measuring.
    top : int
        How many of the largest eigenvalues to report.
    seed : int
        Seed of data and initialisation.

    Returns
    -------
    dict
        Problem sizes, training loss, top eigenvalues of H, G, R, the
        smallest of H, the relative error of H = G + R, and rank(G).
    """
    from . import ggn_operator, hessian_operator, residual_operator
    from .data import gaussian_mixture
    from .models import mlp, train

    X, y = gaussian_mixture(num_samples, num_features, num_classes, seed=seed)
    model = mlp([num_features, width, width, num_classes], seed=seed)
    losses = train(model, (X, y), steps=steps, lr=0.1, momentum=0.9)
    data = (X.double(), y)
    ops = {
        "H": hessian_operator(model, data, dtype=torch.float64),
        "G": ggn_operator(model, data, dtype=torch.float64),
        "R": residual_operator(model, data, dtype=torch.float64),
    }
    dense = {k: op.to_dense() for k, op in ops.items()}
    evals = {k: torch.linalg.eigvalsh(m) for k, m in dense.items()}
    identity = float((dense["H"] - dense["G"] - dense["R"]).norm() / dense["H"].norm())
    g = evals["G"]
    rank_g = int((g > 1e-10 * g.max()).sum())
    return {
        "num_samples": num_samples,
        "num_classes": num_classes,
        "num_params": ops["H"].num_params,
        "final_loss": losses[-1],
        "top_eigenvalues": {k: v.flip(0)[:top].tolist() for k, v in evals.items()},
        "min_eigenvalue_H": float(evals["H"][0]),
        "identity_error": identity,
        "rank_G": rank_g,
        "rank_bound": min(ops["H"].num_params, num_samples * (num_classes - 1)),
    }


def _print_demo(res: dict) -> None:
    print(
        f"gn_theory demo: ReLU MLP with P = {res['num_params']} parameters on a "
        f"{res['num_classes']}-class Gaussian mixture, N = {res['num_samples']} "
        f"(train loss {res['final_loss']:.4f})"
    )
    print(f"top {len(res['top_eigenvalues']['H'])} eigenvalues (float64, dense):")
    for name in ("H", "G", "R"):
        vals = "  ".join(f"{v: .4e}" for v in res["top_eigenvalues"][name])
        print(f"  {name}: {vals}")
    print(f"  smallest eigenvalue of H: {res['min_eigenvalue_H']:.4e}")
    print(f"check H = G + R: ||H - (G + R)|| / ||H|| = {res['identity_error']:.2e}")
    print(f"rank G = {res['rank_G']} <= min(P, N (C - 1)) = {res['rank_bound']}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``gn-theory``; returns the process exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for bad input, 1 for other gn_theory errors.
    """
    parser = argparse.ArgumentParser(prog="gn-theory", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="end-to-end example on an embedded default (default)")
    demo.add_argument("--samples", type=int, default=240)
    demo.add_argument("--classes", type=int, default=4)
    demo.add_argument("--width", type=int, default=16)
    demo.add_argument("--steps", type=int, default=300)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--json", metavar="FILE", help="also write the numbers to FILE (atomically)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv) or ["demo"])
    try:
        if args.command in (None, "demo"):
            res = run_demo(
                num_samples=args.samples,
                num_classes=args.classes,
                width=args.width,
                steps=args.steps,
                seed=args.seed,
            )
            _print_demo(res)
            if args.json:
                from .results._store import atomic_write_bytes

                atomic_write_bytes(args.json, json.dumps(res, indent=2).encode())
        return 0
    except GnTheoryError as exc:
        print(f"gn-theory: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
