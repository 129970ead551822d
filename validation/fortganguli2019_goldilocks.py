"""Fort & Ganguli (2019), property 4 and the random-energy-model analogy: the Goldilocks zone and
probability freezing (FG-4, FG-8).

Real MNIST, a 2-hidden-layer ReLU MLP at initialisation, every parameter scaled by r in
logspace(-1, 1, 9) (r = 1 is the default initialisation).

FG-4: at each r the exact Hessian (``gt.eigh``): tr H / ||H||_F (excess positive curvature),
the fraction of positive eigenvalues and lambda_max; then training restricted to a random
d-dimensional affine subspace theta = theta_0 + M w (M with orthonormal columns, w trained from
0 by Adam through ``gn_theory.training.train`` on a wrapper module whose only parameter is w).
FG-8: at r = 1 the last layer (the logits) scaled by s; sigma_z = standard deviation of the
logits (per-sample mean removed) against the mean largest softmax probability, with iid Gaussian
logits (the random energy model) as the reference.

Criteria (fixed from claims.md before the run):

- FG-4 "training succeeds in low-dimensional random hyperplanes if they cross a Goldilocks
  zone of higher-than-average curvature" (expected: non-monotone in r, peak near the standard
  init scale): tr H / ||H||_F is largest at an r strictly inside the range and within [1/3, 3],
  and so is the final training accuracy of the subspace runs.
- FG-8 "probabilities freeze (REM analogy)" (expected: freezing once sigma_z >~ sqrt(2 ln C)):
  the sigma_z at which the mean largest probability crosses 1/2 lies within a factor 2 of
  sqrt(2 ln C).

Sizes (``SIZES``): ``tiny`` is the test suite's (seconds; too small to judge the claim);
``quick`` 300 digits at 7x7,
width 16 (P = 1,242), 9 scales, d = 50, 500 Adam steps (lr 0.01), 16 logit scales; ``full``
1,000 digits at 7x7, width 32, 9 scales, d = 200, 2,000 steps.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: python validation/<script>.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

import gn_theory as gt
from gn_theory.exceptions import NonFiniteError
from gn_theory.training import evaluate
from validation import _common as C

NAME = "fortganguli2019_goldilocks"
CLAIMS = ("FG-4", "FG-8")
SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"num_samples": 100, "width": 4, "scales": 5, "dim": 5, "steps": 30},
    "quick": {"num_samples": 300, "width": 16, "scales": 9, "dim": 50, "steps": 500},
    "full": {"num_samples": 1000, "width": 32, "scales": 9, "dim": 200, "steps": 2000},
}


class Subspace(torch.nn.Module):
    """``base`` with parameters ``theta0 + M w``; ``w`` (zeros at the start) is the only parameter."""

    def __init__(self, base: torch.nn.Module, theta0: torch.Tensor, M: torch.Tensor) -> None:
        super().__init__()
        self._base = [base]  # a list: the base's own parameters are not ours
        self.register_buffer("theta0", theta0)
        self.register_buffer("M", M)
        self.w = torch.nn.Parameter(torch.zeros(M.shape[1], dtype=M.dtype, device=M.device))
        self._shapes = [(n, p.shape, p.numel()) for n, p in base.named_parameters()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.theta0 + self.M @ self.w
        params, i = {}, 0
        for name, shape, n in self._shapes:
            params[name] = theta[i:i + n].view(shape)
            i += n
        return torch.func.functional_call(self._base[0], params, (x,))


def _mean_max_prob(logits: torch.Tensor) -> float:
    return float(torch.softmax(logits, dim=1).max(dim=1).values.mean())


def run(size: str = "quick", *, out: str | Path, seed: int = 0, device: str = "cpu") -> dict:
    cfg = SIZES[size]
    ds = C.mnist(cfg["num_samples"], image_size=7, seed=seed, device=device)
    K = ds.num_classes
    rs = np.logspace(-1, 1, cfg["scales"])
    base = C.mlp(ds, cfg["width"], seed=seed, device=device)
    theta_hat = C.params_vector(base)
    P = theta_hat.numel()
    g = torch.Generator().manual_seed(seed)
    M = torch.linalg.qr(torch.randn(P, cfg["dim"], generator=g, dtype=theta_hat.dtype))[0]
    rows = []
    for r in rs:
        C.set_params_vector(base, theta_hat * float(r))
        ev = C.dense_eigenvalues(base, ds.train)
        sub = Subspace(base, theta_hat * float(r), M.to(theta_hat.device))
        try:
            log = gt.training.train(sub, ds.train, optimizer="adam", lr=0.01,
                                    steps=cfg["steps"], batch_size=50, seed=seed)
            acc = float(log.accuracy[-1])
        except NonFiniteError:
            acc = float("nan")
        rows.append({"r": float(r), "trace_over_frobenius": float(ev.sum() / np.linalg.norm(ev)),
                     "positive_fraction": float(np.mean(ev > 1e-12 * ev[0])),
                     "lambda_max": float(ev[0]), "subspace_accuracy": acc,
                     "init_loss": evaluate(base, ds.train)["loss"]})
    tf = np.array([x["trace_over_frobenius"] for x in rows])
    acc = np.nan_to_num(np.array([x["subspace_accuracy"] for x in rows]), nan=0.0)

    def inside(i: int) -> bool:
        return 0 < i < len(rs) - 1 and 1 / 3 <= rs[i] <= 3

    i_tf, i_acc = int(np.argmax(tf)), int(np.argmax(acc))
    pass4 = inside(i_tf) and inside(i_acc)

    # FG-8: logit scale at the default init
    C.set_params_vector(base, theta_hat)
    last = [m for m in base.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        feats = base[:-1](ds.train_inputs)
        z0 = last(feats)
    ss = np.logspace(-1, 2, 16)
    sig, mp = [], []
    for s in ss:
        z = z0 * float(s)
        zc = z - z.mean(dim=1, keepdim=True)
        sig.append(float(zc.std()))
        mp.append(_mean_max_prob(z))
    gen = torch.Generator().manual_seed(seed)
    rem_sig = np.logspace(-1, 1.3, 40)
    zz = torch.randn(4000, K, generator=gen, dtype=torch.float64)
    rem = [_mean_max_prob(zz * float(s)) for s in rem_sig]
    crit = math.sqrt(2 * math.log(K))

    def crossing(x: Any, y: Any) -> float:
        x, y = np.asarray(x), np.asarray(y)
        j = np.flatnonzero((y[:-1] < 0.5) & (y[1:] >= 0.5))
        if not j.size:
            return float("nan")
        j = int(j[0])
        lx = np.interp(0.5, [y[j], y[j + 1]], np.log([x[j], x[j + 1]]))
        return float(np.exp(lx))

    s_half, s_rem = crossing(sig, mp), crossing(rem_sig, rem)
    pass8 = bool(np.isfinite(s_half) and crit / 2 <= s_half <= 2 * crit)

    fig, axes = C.new_figure(ncols=3, size=(14.5, 4.0))
    axes[0].semilogx(rs, tf, "o-", label=r"tr H / $\|H\|_F$")
    axes[0].set_xlabel("init scale r (1 = default)")
    axes[0].set_ylabel(r"tr H / $\|H\|_F$")
    ax0b = axes[0].twinx()
    ax0b.semilogx(rs, [x["positive_fraction"] for x in rows], "s--", color="C1")
    ax0b.set_ylabel("fraction of positive eigenvalues", color="C1")
    axes[0].set_title("curvature at init (FG-4)")
    axes[1].semilogx(rs, acc, "o-")
    axes[1].axhline(1 / K, color="0.6", ls=":", label="chance")
    axes[1].set_xlabel("init scale r")
    axes[1].set_ylabel(f"train accuracy, {cfg['dim']}-dim random subspace")
    axes[1].legend(fontsize=8)
    axes[2].semilogx(sig, mp, "o-", label="MLP logits (scaled last layer)")
    axes[2].semilogx(rem_sig, rem, "-", color="0.5", label="iid Gaussian logits (REM)")
    axes[2].axvline(crit, color="C3", ls=":", label=r"$\sqrt{2\ln C}$")
    axes[2].axhline(0.5, color="0.8", lw=0.8)
    axes[2].set_xlabel(r"logit std $\sigma_z$")
    axes[2].set_ylabel("mean largest probability")
    axes[2].set_title("probability freezing (FG-8)")
    axes[2].legend(fontsize=7)

    setting = (f"MNIST {cfg['num_samples']} at 7x7, width {cfg['width']} (P = {P}), init "
               f"scaled by r in logspace(-1, 1, {cfg['scales']}); subspace d = {cfg['dim']}, "
               f"Adam lr 0.01 bs 50, {cfg['steps']} steps")
    row4 = C.claim_row(
        "FG-4", measured=f"tr H/||H||_F {C.fmt(tf)} peaks at r = {C.fmt(rs[i_tf])}; subspace "
                         f"accuracy {C.fmt(acc)} peaks at r = {C.fmt(rs[i_acc])}",
        criterion="the maxima over r of tr H/||H||_F and of the subspace-training accuracy are "
                  "both strictly inside the range and within r in [1/3, 3]",
        passed=pass4, figure=f"{NAME}.png", setting=setting,
        values={"r": rs, "rows": rows},
        evidence="" if pass4 else (
            f"tr H/||H||_F peaks at r = {C.fmt(rs[i_tf])}, subspace accuracy at r = "
            f"{C.fmt(rs[i_acc])} (range {C.fmt(rs[0])}-{C.fmt(rs[-1])}); fraction of positive "
            f"eigenvalues {C.fmt([x['positive_fraction'] for x in rows])}."))
    row8 = C.claim_row(
        "FG-8", measured=f"mean max-prob crosses 1/2 at sigma_z = {C.fmt(s_half)} (iid Gaussian "
                         f"logits: {C.fmt(s_rem)}); sqrt(2 ln C) = {C.fmt(crit)}",
        criterion="the crossing sigma_z lies in [sqrt(2 ln C)/2, 2 sqrt(2 ln C)]",
        passed=pass8, figure=f"{NAME}.png",
        setting=f"default init, last layer scaled by s in logspace(-1, 2, {ss.size})",
        values={"sigma_z": sig, "mean_max_prob": mp, "crossing": s_half, "rem_crossing": s_rem,
                "criterion_value": crit},
        evidence="" if pass8 else (
            f"crossing at sigma_z = {C.fmt(s_half)} vs the window {C.fmt(crit / 2)}-"
            f"{C.fmt(2 * crit)}; iid Gaussian logits cross at {C.fmt(s_rem)}."))
    numbers = {"script": NAME, "size": size, "config": cfg, "rows": rows,
               "claims": [row4, row8]}
    C.write_outputs(NAME, out, numbers, {NAME: fig})
    return numbers


def main(argv: list[str] | None = None) -> int:
    return C.script_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    raise SystemExit(main())
