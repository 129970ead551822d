r"""The measurements outlier prediction needs, made in one named call: :func:`measure_outlier_inputs`.

:func:`gn_theory.explain.predict_outliers` compares a class structure with a
bulk and with observed eigenvalues; it never multiplies by G. What it needs
from products with G is measured here, explicitly, and returned as an
:class:`~gn_theory.results.OutlierInputs` that saves and loads without torch:

* the top k eigenvalues of G (Lanczos), to compare the predictions with;
* the stochastic Lanczos quadrature of :math:`G_{\rm w} = G - G_{\rm cm}` (the
  empirical bulk for the ``"bgn"`` predictor and the moment-matched MP bulk);
* the top eigenpairs of :math:`G_{\rm w}` with eigenvectors (the isotropy
  diagnostic: how much of their energy lies in the class-mean span);
* Rayleigh-Ritz of G on the class-mean span (the ``"subspace"`` predictor);
* :math:`\operatorname{tr}G` exactly, the sum of the squared norms of the per-sample
  vectors :math:`\delta_{i,c'}` (one data pass), for the share of G carried by
  :math:`G_{\rm cm}`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import _checks, distributed
from ..exceptions import InvalidInputError
from ..operators import CurvatureOperator
from ..operators.lowrank import within_class_operator
from ..results import TraceEstimate, fingerprint
from ..results.structure import ClassStructure, OutlierInputs
from ..rmt import subspace_ritz
from ..spectra import lanczos, spectral_density
from ._stream import DELTA_NORMS_CHUNK_BYTES, stream_delta_norms

__all__ = ["measure_outlier_inputs"]


def measure_outlier_inputs(
    G: CurvatureOperator,
    structure: ClassStructure,
    *,
    k: int | None = None,
    num_probes: int = 2,
    num_steps: int = 80,
    num_vectors: int | None = None,
    seed: int = 0,
    exact_trace: bool = True,
    progress: bool = False,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
) -> OutlierInputs:
    r"""Measure what outlier prediction needs from products with G: top of G, bulk of G_w, Ritz values.

    Four measurements, each on the GGN operator ``G`` (docs/theory.md 5, 5b):

    1. ``observed``: :func:`gn_theory.spectra.lanczos` for the top ``k``
       eigenvalues of G (no eigenvectors);
    2. ``within_spectrum``: the top ``num_vectors`` eigenpairs of
       :math:`G_{\rm w}` (:func:`within_class_operator`) with eigenvectors
       (Lanczos, ``tol=1e-6``);
    3. ``within_density``: :func:`gn_theory.spectra.spectral_density` of
       :math:`G_{\rm w}` with those eigenpairs deflated (exact, weight 1/P)
       and ``num_probes`` probes of ``num_steps`` steps on the rest;
    4. ``ritz``: :func:`gn_theory.rmt.subspace_ritz` of G on the class-mean
       span (:meth:`ClassStructure.class_mean_basis`, r products with G);
    5. ``trace`` (``exact_trace=True``): :math:`\operatorname{tr}G =
       \frac1N\sum_{i,c'}\|\delta_{i,c'}\|^2` exactly, one pass over the data
       with the per-sample vectors formed a chunk of samples at a time.

    If the memory guard skipped the C^2 class means, only ``observed`` is
    measured (2-4 need :math:`G_{\rm cm}`) and ``settings["skipped"]`` says so.

    Parameters
    ----------
    G : CurvatureOperator
        The GGN operator of the model and data ``structure`` was measured on.
    structure : ClassStructure
        Measured or loaded.
    k : int, optional
        Outliers to look at: the top-k of G; default r, the number of nonzero
        eigenvalues of :math:`G_{\rm cm}` (C if the means were skipped).
    num_probes : int, default 2
        Probes of the deflated density of :math:`G_{\rm w}`.
    num_steps : int, default 80
        Lanczos steps per probe. Chosen from the accuracy-time curves in
        docs/performance.md: with the top eigenpairs deflated, 2 x 80 beats plain
        SLQ's 10 x 128 in Wasserstein-1 and on the log-|lambda| scale for H and G_w
        of the real-MNIST problem, with an eighth of its products.
    num_vectors : int, optional
        Top eigenvectors of :math:`G_{\rm w}` (default ``k``; at most P - 1).
    seed : int, default 0
        Seed of the Lanczos runs and of the SLQ probes (rank 0's in a data-parallel
        run: :func:`gn_theory.distributed.broadcast_seed`).
    exact_trace : bool, default True
        Measure :math:`\operatorname{tr}G` exactly (N C vector-Jacobian products,
        memory ``chunk x C x P`` numbers within 128 MiB). Without it the share of
        :math:`G_{\rm cm}` in :math:`\operatorname{tr}G` comes from the SLQ trace
        of :math:`G_{\rm w}`, with an interval from the spread of its probes.
    progress : bool, default False
        Show progress bars of the Lanczos and SLQ runs.
    checkpoint_dir : str or os.PathLike, optional
        A folder where the long runs checkpoint (atomically, rank 0): the Lanczos
        runs of G (``outlier_inputs_G_top.npz``) and of :math:`G_{
m w}`
        (``outlier_inputs_Gw_top.npz``), through :func:`~gn_theory.spectra.lanczos`'s
        ``checkpoint=``, and the density of :math:`G_{
m w}`
        (``outlier_inputs_Gw_density.npz``, a checkpoint per probe:
        :func:`~gn_theory.spectra.spectral_density`'s ``checkpoint=``). The Ritz step
        (r products) and the exact trace (one data pass) are redone. A small
        ``outlier_inputs.npz`` records what the folder's checkpoints were made for
        (G's fingerprint, a hash of the structure, the settings). Without it nothing
        is written.
    resume : bool, default False
        Continue those runs from the checkpoints in ``checkpoint_dir`` (the same
        arrays, bit for bit, as an uninterrupted run with ``checkpoint_dir``); a
        checkpoint of another model, data, structure, settings or seed is refused
        (:class:`~gn_theory.ResultFileError`).

    Returns
    -------
    OutlierInputs
        Eigenvalues and Ritz values descending; pass it to
        :func:`gn_theory.explain.predict_outliers` as ``inputs=``.

    Raises
    ------
    InvalidInputError
        Not an operator / class structure, or bad ``k``, ``num_probes``,
        ``num_steps``, ``num_vectors`` or ``seed``.
    ShapeError
        G and the structure have different dimensions.
    ResultFileError
        ``resume`` with a foreign or corrupt checkpoint.

    Notes
    -----
    Cost in products with G: about the Lanczos iterations for k (observed)
    and for ``num_vectors`` (within), ``num_probes * num_steps`` for SLQ and
    r for the Ritz step; ``OutlierInputs.num_matvecs`` adds them up.
    """
    if not isinstance(structure, ClassStructure):
        raise InvalidInputError(
            f"structure must be a ClassStructure; got {type(structure).__name__}"
        )
    structure.check_operator(G)
    if checkpoint_dir is None and resume:
        raise InvalidInputError("resume=True needs checkpoint_dir= (the folder of the "
                                "checkpoints to continue from)")

    def ck(step: str) -> dict[str, Any]:
        if checkpoint_dir is None:
            return {}
        return {"checkpoint": Path(checkpoint_dir) / f"outlier_inputs_{step}.npz",
                "resume": bool(resume)}

    seed = distributed.broadcast_seed(seed)  # rank 0's in a data-parallel run
    num_probes = _checks.check_positive_int("num_probes", num_probes)
    num_steps = _checks.check_positive_int("num_steps", num_steps)
    P = int(structure.num_params)
    full = structure.class_means is not None
    r = structure.eigenvalues("G_cm").size if full else structure.eigenvalues("G_1").size
    k = r if k is None else _checks.check_positive_int("k", k)
    if k > P:
        raise InvalidInputError(f"k = {k} exceeds the dimension P = {P}")
    nv = k if num_vectors is None else _checks.check_positive_int("num_vectors", num_vectors)
    nv = min(nv, P - 1)
    settings: dict[str, Any] = {
        "k": k,
        "num_probes": num_probes,
        "num_steps": num_steps,
        "num_vectors": nv,
        "seed": seed,
        "exact_trace": bool(exact_trace),
        "skipped": [],
    }
    fp = structure.settings.get("fingerprint") if isinstance(structure.settings, dict) else None
    if fp is not None:
        settings["fingerprint"] = fp

    # within_class_operator validates G against the structure (and needs the C^2 means)
    W = within_class_operator(G, structure) if full else None
    if checkpoint_dir is not None:
        _guard(Path(checkpoint_dir) / "outlier_inputs.npz", G, structure, settings, resume)
    observed = lanczos(
        G, k, which="largest", seed=seed, return_eigenvectors=False, progress=progress,
        **ck("G_top"),
    )
    if W is None:
        settings["skipped"].append(
            "within_density, within_spectrum and ritz: the C^2 class means were skipped by "
            "the memory guard (" + "; ".join(structure.skipped) + ")"
        )
        trace = _exact_trace(G, structure) if exact_trace else None
        return OutlierInputs(observed=observed, settings=settings, trace=trace)
    within = lanczos(
        W, nv, which="largest", seed=seed, tol=1e-6, warn=False, progress=progress,
        **ck("Gw_top"),
    )
    # the top of G_w is computed anyway: deflate it, SLQ on the rest (docs/performance.md)
    density = spectral_density(W, deflate=within, num_probes=num_probes, num_steps=num_steps,
                               seed=seed, progress=progress, **ck("Gw_density"))
    ritz = subspace_ritz(G, structure.class_mean_basis(), orthonormalize=False)
    trace = _exact_trace(G, structure) if exact_trace else None
    return OutlierInputs(
        observed=observed,
        within_density=density,
        within_spectrum=within,
        ritz=ritz,
        settings=settings,
        trace=trace,
    )


def _guard(path: Path, G: CurvatureOperator, structure: ClassStructure,
           settings: dict[str, Any], resume: bool) -> None:
    """Tie the folder's checkpoints to G, the structure and the settings (refused otherwise).

    G_w's Lanczos checkpoint carries G's fingerprint (G_w's operator key is G's), so the
    structure it was built from is recorded here: a hash of its Gram matrices and counts.
    """
    meta = {
        "estimator": "measure_outlier_inputs", "operator": distributed.operator_key(G),
        "structure": fingerprint(*(np.asarray(a) for a in (
            structure.K if structure.K is not None else np.zeros(0), structure.K1,
            structure.class_counts))),
        **{name: settings[name] for name in ("k", "num_probes", "num_steps", "num_vectors",
                                             "seed")},
    }
    if resume:
        distributed.load_checkpoint(path, meta)
    distributed.save_checkpoint(path, {}, meta)


def _exact_trace(G: CurvatureOperator, structure: ClassStructure) -> TraceEstimate:
    """tr G from the per-sample delta vectors, per true class (docs/theory.md section 3.4)."""
    sums, nvjp = stream_delta_norms(G, int(structure.num_classes))
    per_class = sums.cpu().numpy() / float(structure.num_samples)
    return TraceEstimate(
        estimate=float(per_class.sum()),
        bse=0.0,
        num_matvecs=int(nvjp),
        method="exact",
        samples=per_class,
        seed=None,
        settings={"kind": "G", "formula": "(1/N) sum_i sum_c' ||delta_{i,c'}||^2",
                  "samples": "contribution of each true class", "chunk_bytes":
                  DELTA_NORMS_CHUNK_BYTES},
    )
