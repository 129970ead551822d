"""Fort & Ganguli (2019), properties 2 and 3: gradient confinement and the transient curvature rise (FG-2, FG-3).

Real MNIST, a 2-hidden-layer ReLU MLP. FG-2: SGD (batch 32, lr 0.1; docs/theory.md 6's CPU check);
at checkpoints along training the top-C eigenvectors U_C of H (``gt.lanczos``) and the
full-batch gradient g (``H.gradient()``): f_top = ||U_C^T g||^2 / ||g||^2 (Gur-Ari et al.
2018). Full-batch GD from the same init is measured the same way for comparison (claims.md: the
result depends on the optimiser). FG-3: full-batch GD from a fresh init, lambda_max(H) every
few steps until the training loss falls below 0.1 (or the budget ends).

Criteria (fixed from claims.md before the run):

- FG-2 "gradient largely confined to the top-C Hessian subspace" (expected: high for SGD): the
  median of f_top over the SGD checkpoints in the second half of training is >= 0.5.
- FG-3 "GD transiently visits higher positive curvature before settling in flatter minima"
  (expected: lambda_max(t) rises then falls): the largest lambda_max(t) lies strictly inside the
  run, is >= 1.1 x lambda_max at the start and the last value is <= 0.9 x that peak.

Sizes (``SIZES``): ``tiny`` is the test suite's (seconds; too small to judge the claim);
``quick`` 500 digits at 7x7, width 16
(P = 1,242), FG-2 1,000 steps with 10 checkpoints, FG-3 up to 2,000 GD steps (lr 0.2) with
lambda_max every 20 steps; ``full`` 2,000 digits at 14x14, width 24, 4,000 steps, every 10 steps
(claims.md's spacing).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: python validation/<script>.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

import gn_theory as gt
from gn_theory.training import evaluate
from validation import _common as C

NAME = "fortganguli2019_training"
CLAIMS = ("FG-2", "FG-3")
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"num_samples": 100, "image_size": 7, "width": 4, "steps": 40, "checkpoints": 2,
             "gd_steps": 40, "every": 20},
    "quick": {"num_samples": 500, "image_size": 7, "width": 16, "steps": 1000,
              "checkpoints": 10, "gd_steps": 2000, "every": 20},
    "full": {"num_samples": 2000, "image_size": 14, "width": 24, "steps": 4000,
             "checkpoints": 20, "gd_steps": 4000, "every": 10},
}
SGD = {"optimizer": "sgd", "lr": 0.1, "batch_size": 32}
GD_LR = 0.2


def _snapshots(model: torch.nn.Module, ds: Any, steps: int, every: int, seed: int,
               **options: Any) -> tuple[dict[int, torch.Tensor], Any]:
    snaps = {0: C.params_vector(model)}

    def keep(step: int, num_steps: int, record: Any) -> None:
        if record is None and step % every == 0:
            snaps[step] = C.params_vector(model)

    log = C.fit(model, ds, steps=steps, seed=seed, callback=keep, **options)
    return snaps, log


def _confinement(model: torch.nn.Module, ds: Any, K: int, seed: int) -> float:
    H = gt.hessian_operator(model, ds.train, dtype=torch.float64)
    U = gt.lanczos(H, K, seed=seed, tol=1e-6).eigenvectors
    g = H.gradient().cpu().numpy()
    return float(np.sum((U.T @ g) ** 2) / max(float(g @ g), 1e-300))


def run(size: str = "quick", *, out: str | Path, seed: int = 0, device: str = "cpu") -> dict:
    cfg = SIZES[size]
    ds = C.mnist(cfg["num_samples"], image_size=cfg["image_size"], seed=seed, device=device)
    K = ds.num_classes
    every = max(cfg["steps"] // cfg["checkpoints"], 1)
    conf: dict[str, dict[int, float]] = {}
    for name, opts in (("SGD", SGD), ("GD", {"optimizer": "gd", "lr": SGD["lr"]})):
        model = C.mlp(ds, cfg["width"], seed=seed, device=device)
        snaps, _ = _snapshots(model, ds, cfg["steps"], every, seed, **opts)
        conf[name] = {}
        for t, v in sorted(snaps.items()):
            C.set_params_vector(model, v)
            conf[name][t] = _confinement(model, ds, K, seed)
    second = [f for t, f in conf["SGD"].items() if t >= cfg["steps"] / 2]
    med = float(np.median(second))
    pass2 = med >= 0.5

    model = C.mlp(ds, cfg["width"], seed=seed + 1, device=device)
    snaps, log = _snapshots(model, ds, cfg["gd_steps"], cfg["every"], seed, optimizer="gd",
                            lr=GD_LR, stop_loss=0.1, log_every=cfg["every"])
    lam, loss = {}, {}
    for t, v in sorted(snaps.items()):
        C.set_params_vector(model, v)
        H = gt.hessian_operator(model, ds.train, dtype=torch.float64)
        lam[t] = float(gt.lanczos(H, 1, seed=seed, tol=1e-6).eigenvalues[0])
        loss[t] = evaluate(model, ds.train)["loss"]
    ts = sorted(lam)
    lv = np.array([lam[t] for t in ts])
    ipk = int(np.argmax(lv))
    interior = 0 < ipk < lv.size - 1
    pass3 = interior and lv[ipk] >= 1.1 * lv[0] and lv[-1] <= 0.9 * lv[ipk]

    fig, (ax1, ax2) = C.new_figure(ncols=2, size=(10.5, 4.0))
    for name, c in conf.items():
        ax1.plot(list(c), list(c.values()), "o-", label=f"{name}")
    ax1.set_ylim(0, 1)
    ax1.set_xlabel("training step")
    ax1.set_ylabel(r"$f_{top} = \|U_C^T g\|^2 / \|g\|^2$")
    ax1.set_title(f"gradient in the top-{K} subspace of H (FG-2)")
    ax1.legend(fontsize=8)
    ax2.plot(ts, lv, "-", color="C0", label=r"$\lambda_{max}(H)$")
    ax2.set_xlabel("GD step")
    ax2.set_ylabel(r"$\lambda_{max}$", color="C0")
    ax3 = ax2.twinx()
    ax3.semilogy(ts, [loss[t] for t in ts], "--", color="C1")
    ax3.set_ylabel("training loss", color="C1")
    ax2.set_title(f"GD lr {GD_LR}: curvature along training (FG-3)")

    setting2 = (f"MNIST {cfg['num_samples']} at {cfg['image_size']}x{cfg['image_size']}, width "
                f"{cfg['width']}; SGD bs {SGD['batch_size']} lr {SGD['lr']} (GD for comparison),"
                f" {cfg['steps']} steps")
    row2 = C.claim_row(
        "FG-2", measured=f"median f_top over the second half: SGD {C.fmt(med)} (GD "
                         f"{C.fmt(np.median([f for t, f in conf['GD'].items() if t >= cfg['steps'] / 2]))})"
                         f"; SGD along training {C.fmt(list(conf['SGD'].values()))}",
        criterion="median f_top (full-batch gradient, top-C eigenvectors of H) over the SGD "
                  "checkpoints of the second half >= 0.5", passed=pass2,
        figure=f"{NAME}.png", setting=setting2, values={"confinement": conf, "median": med},
        evidence="" if pass2 else (
            f"SGD f_top along training {C.fmt(list(conf['SGD'].values()))}, GD "
            f"{C.fmt(list(conf['GD'].values()))}."))
    row3 = C.claim_row(
        "FG-3", measured=f"lambda_max from {C.fmt(lv[0])} to a peak {C.fmt(lv[ipk])} at step "
                         f"{ts[ipk]}, last {C.fmt(lv[-1])} at step {ts[-1]} (loss "
                         f"{C.fmt(loss[ts[-1]])})",
        criterion="peak of lambda_max(t) strictly inside the run, >= 1.1 x the start, last "
                  "value <= 0.9 x the peak", passed=pass3, figure=f"{NAME}.png",
        setting=f"GD lr {GD_LR}, lambda_max every {cfg['every']} steps until loss < 0.1 or "
                f"{cfg['gd_steps']} steps", values={"steps": ts, "lambda_max": lv,
                                                    "loss": [loss[t] for t in ts]},
        evidence="" if pass3 else (
            f"lambda_max {C.fmt(lv[0])} -> peak {C.fmt(lv[ipk])} (step {ts[ipk]}) -> "
            f"{C.fmt(lv[-1])}; the run {'stopped at loss < 0.1' if log.stop_reason == 'loss' else 'used the whole budget'}"
            f" (final loss {C.fmt(loss[ts[-1]])}), 2/lr = {C.fmt(2 / GD_LR)}."))
    numbers = {"script": NAME, "size": size, "config": cfg, "claims": [row2, row3]}
    C.write_outputs(NAME, out, numbers, {NAME: fig})
    return numbers


def main(argv: list[str] | None = None) -> int:
    return C.script_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
