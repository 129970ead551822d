"""Sagun, Bottou & LeCun (2016), Fig. 8: the loss on the straight line between two training runs (S16-8).

From one random initial point, train (1) with full-batch gradient descent and (2) with SGD; at
several times t take the straight segment between the two parameter vectors theta_GD(t) and
theta_SGD(t) and evaluate the training loss at 21 points of it. Then from two independent random
initial points (nearly orthogonal in parameter space; both on the sphere of the first one's
radius) train two SGD runs with different data shuffles and do the same. Real MNIST (the paper's
Fig. 8 does not name its data; MNIST is the paper's main data set), 2-hidden-layer ReLU MLP,
softmax cross-entropy.

Criterion (fixed from claims.md before the run): S16-8 "straight-line interpolation of the loss
between the two trajectories is flat (same init); with different inits it still decreases,
less flat" (expected: flat profile for shared init; no large barrier for different inits).
With barrier(t) = the largest excess of the loss along the segment over the chord between its
end values, and L0 the loss at the initial point:

- shared init: barrier(t) <= 0.02 L0 at every time t ("flat");
- different inits: at the last time the whole profile lies below L0 ("it still decreases"),
  barrier(t) <= 0.5 L0 at every t ("no large barrier"), and its largest barrier is at least
  the shared-init one ("less flat").

Sizes (``SIZES``): ``tiny`` is the test suite's (seconds; too small to judge the claim);
``quick`` 500 digits at 7x7, width 16 (P =
1,242), 1,500 steps (GD lr 0.1; SGD bs 50 lr 0.1), segments at 6 times: both runs reach low
loss and diverge from each other; ``full`` 2,000 digits at 14x14, width 32, 5,000 steps.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: python validation/<script>.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from validation import _common as C

NAME = "sagun2016_interpolation"
CLAIMS = ("S16-8",)
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"num_samples": 200, "image_size": 7, "width": 8, "steps": 100},
    "quick": {"num_samples": 500, "image_size": 7, "width": 16, "steps": 1500},
    "full": {"num_samples": 2000, "image_size": 14, "width": 32, "steps": 5000},
}
LR, BATCH, POINTS = 0.1, 50, 21


def _trajectory(model: torch.nn.Module, ds: Any, times: list[int], seed: int,
                **options: Any) -> dict[int, torch.Tensor]:
    """Train and keep the parameter vector at each of ``times`` (steps done)."""
    snaps = {0: C.params_vector(model)}

    def keep(step: int, num_steps: int, record: Any) -> None:
        if record is None and step in times:
            snaps[step] = C.params_vector(model)

    C.fit(model, ds, steps=max(times), seed=seed, lr=LR, callback=keep, **options)
    return snaps


def run(size: str = "quick", *, out: str | Path, seed: int = 0, device: str = "cpu") -> dict:
    cfg = SIZES[size]
    ds = C.mnist(cfg["num_samples"], image_size=cfg["image_size"], seed=seed, device=device)
    T = cfg["steps"]
    times = sorted({0, T // 20, T // 8, T // 4, T // 2, T})
    base = C.mlp(ds, cfg["width"], seed=seed, device=device)
    theta0 = C.params_vector(base)
    radius = float(theta0.norm())

    def start(s: int) -> torch.nn.Module:
        m = C.mlp(ds, cfg["width"], seed=s, device=device)
        v = C.params_vector(m)
        C.set_params_vector(m, v * (radius / v.norm()))
        return m

    gd = _trajectory(start(seed), ds, times, seed, optimizer="gd")
    sgd = _trajectory(start(seed), ds, times, seed, optimizer="sgd", batch_size=BATCH)
    a = _trajectory(start(seed), ds, times, seed + 1, optimizer="sgd", batch_size=BATCH)
    b = _trajectory(start(seed + 7), ds, times, seed + 2, optimizer="sgd", batch_size=BATCH)
    cos0 = float(torch.dot(a[0], b[0]) / (a[0].norm() * b[0].norm()))
    L0 = float(C.segment_losses(base, theta0, theta0, ds.train, num=1)[0])
    L0b = float(C.segment_losses(base, b[0], b[0], ds.train, num=1)[0])

    probe = start(seed)
    profiles: dict[str, dict[int, np.ndarray]] = {"shared init": {}, "different inits": {}}
    for t in times:
        profiles["shared init"][t] = C.segment_losses(probe, gd[t], sgd[t], ds.train, POINTS)
        profiles["different inits"][t] = C.segment_losses(probe, a[t], b[t], ds.train, POINTS)
    bar = {k: {t: C.barrier(v) for t, v in p.items()} for k, p in profiles.items()}
    dist = {"shared init": {t: float((gd[t] - sgd[t]).norm()) for t in times},
            "different inits": {t: float((a[t] - b[t]).norm()) for t in times}}
    Lref = 0.5 * (L0 + L0b)
    flat = max(bar["shared init"].values()) <= 0.02 * L0
    decreases = float(profiles["different inits"][T].max()) < Lref
    no_large = max(bar["different inits"].values()) <= 0.5 * Lref
    less_flat = max(bar["different inits"].values()) >= max(bar["shared init"].values())
    passed = flat and decreases and no_large and less_flat

    fig, axes = C.new_figure(ncols=2, size=(10.5, 4.0))
    alpha = np.linspace(0, 1, POINTS)
    for ax, (name, prof) in zip(axes, profiles.items()):
        for j, t in enumerate(times):
            ax.plot(alpha, prof[t], "-", color=f"C{j}", label=f"step {t}")
        ax.set_xlabel("position on the segment (0: " + ("GD" if name == "shared init" else "run A")
                      + ", 1: " + ("SGD" if name == "shared init" else "run B") + ")")
        ax.set_ylabel("training loss")
        ax.set_yscale("log")
        ax.set_title(f"{name} (Sagun 2016 Fig. 8)")
        ax.legend(fontsize=7)

    mx = {k: max(v.values()) for k, v in bar.items()}
    measured = (f"largest barrier / L0: shared init {C.fmt(mx['shared init'] / L0)}, different "
                f"inits {C.fmt(mx['different inits'] / Lref)}; final profile max (different "
                f"inits) {C.fmt(profiles['different inits'][T].max())} vs L0 {C.fmt(Lref)}")
    evidence = ""
    if not passed:
        parts = []
        if not flat:
            worst = max(bar["shared init"], key=bar["shared init"].get)
            parts.append(f"shared init: barrier {C.fmt(mx['shared init'])} at step {worst} "
                         f"(> 0.02 L0 = {C.fmt(0.02 * L0)}) while GD and SGD are "
                         f"{C.fmt(dist['shared init'][worst])} apart")
        if not decreases:
            parts.append("different inits: the final profile reaches "
                         f"{C.fmt(profiles['different inits'][T].max())} >= L0")
        if not no_large:
            parts.append(f"different inits: barrier {C.fmt(mx['different inits'])} > 0.5 L0")
        if not less_flat:
            parts.append("the different-init profile is flatter than the shared-init one")
        evidence = "; ".join(parts) + "."
    row = C.claim_row(
        "S16-8", measured=measured,
        criterion="shared init: barrier <= 0.02 L0 at every time; different inits: final "
                  "profile below L0, barrier <= 0.5 L0 at every time, and largest barrier >= "
                  "the shared-init one (barrier = max excess of the loss over the chord)",
        passed=passed, figure=f"{NAME}.png", evidence=evidence,
        values={"times": times, "barrier": bar, "distance": dist, "L0": L0, "L0_other": L0b,
                "init_cosine": cos0,
                "profiles": {k: {t: v for t, v in p.items()} for k, p in profiles.items()}},
        setting=f"MNIST {cfg['num_samples']} at {cfg['image_size']}x{cfg['image_size']}, width "
                f"{cfg['width']}, GD lr {LR} vs SGD bs {BATCH} lr {LR}, {T} steps; init cosine "
                f"of the two random starts {C.fmt(cos0)}")
    numbers = {"script": NAME, "size": size, "config": cfg, "claims": [row]}
    C.write_outputs(NAME, out, numbers, {NAME: fig})
    return numbers


def main(argv: list[str] | None = None) -> int:
    return C.script_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
