r"""Class structure results: :class:`ClassStructure`, :class:`FortGanguli`, :class:`OutlierInputs`.

Data only (numpy): no model, operator or tensor is kept, so every method here
works on a result loaded from disk, without torch. The measurements that make
them live in :mod:`gn_theory.decomposition`.

For C-class softmax cross-entropy the generalized Gauss-Newton matrix is a
second moment of the :math:`NC` vectors
:math:`\delta_{i,c'} = \sqrt{p_{i,c'}}\,J_i^\top(e_{c'} - p_i)` (docs/theory.md
section 2.1). With the class means :math:`\delta_{c,c'}` (true class c, logit
c'), the class-level means :math:`\delta_c = \frac1{C-1}\sum_{c'\ne c}
\delta_{c,c'}`, the deviations :math:`\nu_{c,c'} = \delta_{c,c'} - \delta_c`
and the priors :math:`\pi_c = n_c/N` (sections 2.2-2.3),

.. math::

    G = G_{\rm cm} + G_{\rm w},\qquad
    G_{\rm cm} = \sum_c \pi_c \sum_{c'} \delta_{c,c'}\delta_{c,c'}^\top
               = G_0 + G_1 + G_2,

    G_0 = \sum_c \pi_c\,\delta_{c,c}\delta_{c,c}^\top,\quad
    G_1 = (C-1)\sum_c \pi_c\,\delta_c\delta_c^\top,\quad
    G_2 = \sum_c \pi_c \sum_{c'\ne c} \nu_{c,c'}\nu_{c,c'}^\top .

Each low-rank part is :math:`A^\top A` for an r x P factor A of weighted
means, so its nonzero eigenvalues are those of the small Gram matrix
:math:`A A^\top` (section 2.4). Eigenvalues are always **descending** (largest
first), with eigenvector columns matching.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .. import _checks
from .._format import fmt_values
from ..exceptions import InvalidInputError, ShapeError
from ._base import Result
from ._summary import Summary

if TYPE_CHECKING:  # annotations only: these results live in other modules
    from ..rmt import RitzResult
    from .spectra import SpectralDensity, Spectrum, TraceEstimate

__all__ = ["ClassStructure", "FortGanguli", "OutlierInputs", "PARTS", "Part"]

#: The low-rank parts whose exact nonzero eigenvalues come from a small Gram matrix.
PARTS: tuple[str, ...] = ("G_cm", "G_0", "G_1", "G_2")

Part = Literal["G_cm", "G_0", "G_1", "G_2"]


# =============================================================================== ClassStructure
@dataclass
class ClassStructure(Result):
    r"""Class means of the GGN's :math:`\delta` vectors and the exact spectra of its low-rank parts.

    Measured by :func:`gn_theory.decomposition.class_structure`; see the module
    docstring for the definitions. Class indices ``c`` (true class) and logit
    indices ``c'`` both run over ``0..C-1``. Data only: every method works after
    :meth:`load`, without torch. What needs products with G takes the GGN
    operator explicitly: :func:`gn_theory.decomposition.within_class_operator`,
    :func:`~gn_theory.decomposition.part_operator`,
    :func:`~gn_theory.decomposition.identity_error`,
    :func:`~gn_theory.decomposition.fort_ganguli`.

    Attributes
    ----------
    class_means : numpy.ndarray or None
        :math:`\delta_{c,c'}`, shape (C, C, P): ``class_means[c, c']`` is the
        mean over the samples of class c of :math:`\delta_{i,c'}`. ``None`` if
        skipped by the memory guard (see :attr:`skipped`).
    class_level_means : numpy.ndarray
        :math:`\delta_c = \frac1{C-1}\sum_{c'\ne c}\delta_{c,c'}`, shape (C, P).
    self_class_means : numpy.ndarray
        :math:`\delta_{c,c}`, shape (C, P) (the diagonal of ``class_means``,
        kept also when the full means are skipped).
    priors : numpy.ndarray
        :math:`\pi_c = n_c/N`, shape (C,).
    class_counts : numpy.ndarray
        :math:`n_c`, shape (C,), int64.
    num_classes, num_samples, num_params : int
        C, N, P.
    K : numpy.ndarray or None
        Gram matrix of :math:`G_{\rm cm}`, (C^2, C^2), rows/columns ordered
        ``c * C + c'``: :math:`K_{(c,c'),(d,d')} = \sqrt{\pi_c\pi_d}\langle
        \delta_{c,c'}, \delta_{d,d'}\rangle`.
    K0 : numpy.ndarray
        Gram matrix of :math:`G_0`, (C, C).
    K1 : numpy.ndarray
        Gram matrix of :math:`G_1`, (C, C), including the factor C - 1.
    K2 : numpy.ndarray or None
        Gram matrix of :math:`G_2`, (C(C-1), C(C-1)), pairs ``(c, c')`` with
        ``c' != c`` in lexicographic order.
    loss_value : float
        Mean loss at the parameters.
    num_matvecs : int
        Vector-Jacobian products spent on the means (a vmapped block of k
        cotangents counts k).
    seconds : float
        Wall time of the streaming pass over the data.
    skipped : list of str
        What the memory guard left out, in words (empty if nothing).
    settings : dict
        The GGN operator's settings and the options used.
    """

    class_means: np.ndarray | None
    class_level_means: np.ndarray
    self_class_means: np.ndarray
    priors: np.ndarray
    class_counts: np.ndarray
    num_classes: int
    num_samples: int
    num_params: int
    K: np.ndarray | None
    K0: np.ndarray
    K1: np.ndarray
    K2: np.ndarray | None
    loss_value: float = float("nan")
    num_matvecs: int = 0
    seconds: float = 0.0
    skipped: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    # -- factors and Grams --------------------------------------------------------------
    def factor(self, part: Part) -> np.ndarray:
        r"""The vectors whose outer products sum to ``part``, as rows (r, P), float64.

        ``G_cm``: :math:`\sqrt{\pi_c}\,\delta_{c,c'}` (C^2 rows, ``c * C + c'``);
        ``G_0``: :math:`\sqrt{\pi_c}\,\delta_{c,c}` (C rows);
        ``G_1``: :math:`\sqrt{(C-1)\pi_c}\,\delta_c` (C rows);
        ``G_2``: :math:`\sqrt{\pi_c}\,\nu_{c,c'}`, ``c' != c`` (C(C-1) rows).

        Parameters
        ----------
        part : {"G_cm", "G_0", "G_1", "G_2"}
            Which part of G.

        Returns
        -------
        numpy.ndarray
            Shape (r, P); ``part = F.T @ F``.

        Raises
        ------
        InvalidInputError
            Unknown part, or a part whose means the memory guard skipped.
        """
        _checks.check_choice("part", part, PARTS)
        C, P = self.num_classes, self.num_params
        w = np.sqrt(self.priors)
        if part == "G_0":
            return w[:, None] * self.self_class_means
        if part == "G_1":
            return math.sqrt(C - 1) * w[:, None] * self.class_level_means
        if self.class_means is None:
            raise InvalidInputError(
                f"{part} needs the C^2 class means delta_{{c,c'}}, which were skipped: "
                + "; ".join(self.skipped)
            )
        if part == "G_cm":
            return (w[:, None, None] * self.class_means).reshape(C * C, P)
        nu = self.class_means - self.class_level_means[:, None, :]
        off = ~np.eye(C, dtype=bool)
        return (w[:, None, None] * nu)[off].reshape(C * (C - 1), P)

    def gram(self, part: Part) -> np.ndarray:
        """The small Gram matrix of ``part`` (``K``, ``K0``, ``K1`` or ``K2``).

        Parameters
        ----------
        part : {"G_cm", "G_0", "G_1", "G_2"}
            Which part of G.

        Returns
        -------
        numpy.ndarray
            Square, symmetric PSD, float64.

        Raises
        ------
        InvalidInputError
            Unknown part, or skipped by the memory guard.
        """
        _checks.check_choice("part", part, PARTS)
        K = {"G_cm": self.K, "G_0": self.K0, "G_1": self.K1, "G_2": self.K2}[part]
        if K is None:
            raise InvalidInputError(
                f"the Gram matrix of {part} was skipped: " + "; ".join(self.skipped)
            )
        return K

    def _eig(self, part: Part, rtol: float | None) -> tuple[np.ndarray, np.ndarray]:
        K = self.gram(part)
        w, V = np.linalg.eigh(0.5 * (K + K.T))
        order = np.argsort(w)[::-1]
        w, V = w[order], V[:, order]
        top = max(float(w[0]), 0.0) if w.size else 0.0
        tol = (10 * K.shape[0] * np.finfo(np.float64).eps if rtol is None else rtol) * top
        keep = w > tol
        return w[keep], V[:, keep]

    def eigenvalues(self, part: Part, *, rtol: float | None = None) -> np.ndarray:
        """Exact nonzero eigenvalues of a low-rank part, descending.

        They are the eigenvalues of the part's small Gram matrix (docs/theory.md
        section 2.4) above ``rtol`` times the largest.

        Parameters
        ----------
        part : {"G_cm", "G_0", "G_1", "G_2"}
            Which part of G.
        rtol : float, optional
            Relative cut-off for "nonzero"; default ``10 * size * eps``.

        Returns
        -------
        numpy.ndarray
            Float64, descending (largest first).

        Raises
        ------
        InvalidInputError
            Unknown part (``"G_w"`` is matrix-free: run
            :func:`gn_theory.spectra.lanczos` on
            :func:`gn_theory.decomposition.within_class_operator`), or skipped
            by the memory guard.
        """
        if part == "G_w":
            raise InvalidInputError(
                "G_w is the high-rank bulk: it has no small Gram matrix; run "
                "gn_theory.spectra.lanczos or slq on "
                "gn_theory.decomposition.within_class_operator(G, structure)"
            )
        return self._eig(part, rtol)[0]

    def eigenvectors(
        self, part: Part, k: int | None = None, *, rtol: float | None = None
    ) -> np.ndarray:
        r"""Unit eigenvectors in parameter space of a low-rank part, for the descending eigenvalues.

        With the Gram eigenpair :math:`(\lambda, v)` of :math:`K = A A^\top`,
        :math:`u = A^\top v/\sqrt\lambda` (never a P x P matrix).

        Parameters
        ----------
        part : {"G_cm", "G_0", "G_1", "G_2"}
            Which part of G.
        k : int, optional
            Number of leading eigenvectors (default all nonzero ones).
        rtol : float, optional
            As in :meth:`eigenvalues`.

        Returns
        -------
        numpy.ndarray
            Shape (P, k), float64, orthonormal columns, column j for the j-th
            largest eigenvalue.

        Raises
        ------
        InvalidInputError
            Unknown or skipped part, or ``k`` larger than the rank.
        """
        w, V = self._eig(part, rtol)
        if k is not None:
            k = _checks.check_positive_int("k", k)
            if k > w.size:
                raise InvalidInputError(f"{part} has {w.size} nonzero eigenvalues; asked for {k}")
            w, V = w[:k], V[:, :k]
        F = self.factor(part)
        return (F.T @ V) / np.sqrt(w)

    def class_mean_basis(self) -> np.ndarray:
        r"""An orthonormal basis of the class-mean span :math:`{\rm span}\{\delta_{c,c'}\}`, (P, r).

        The left singular vectors of the :math:`G_{\rm cm}` factor for its r
        nonzero eigenvalues, in descending order of them, so that
        :math:`Q^\top G_{\rm cm} Q` is diagonal and descending. It is the basis
        of the ``"subspace"`` predictor and of the isotropy diagnostic.

        Returns
        -------
        numpy.ndarray
            Shape (P, r), float64, orthonormal columns.

        Raises
        ------
        InvalidInputError
            If the C^2 means were skipped by the memory guard.
        """
        r = self.eigenvalues("G_cm").size
        F = np.asarray(self.factor("G_cm"), dtype=np.float64)
        return np.linalg.svd(F.T, full_matrices=False)[0][:, :r]

    def check_operator(self, op: Any, *, name: str = "G") -> None:
        """Check that an operator was built on the model and data this structure was measured on.

        Compares the dimension, and where both sides recorded one, the fingerprints
        of the model parameters, the parameter selection and (at equal dtypes: the
        checksum is taken after conversion) the data. Needs no product with the
        operator and no torch.

        Parameters
        ----------
        op : CurvatureOperator
            H or G of ``gn_theory.hessian_operator`` / ``ggn_operator``.
        name : str, default "G"
            How messages call the operator.

        Raises
        ------
        InvalidInputError
            ``op`` is not an operator, or its fingerprint shows another model state,
            parameter selection or data set.
        ShapeError
            Its dimension is not :attr:`num_params`.
        """
        P = getattr(op, "num_params", None)
        if not isinstance(P, (int, np.integer)) or not hasattr(op, "torch_dtype"):
            raise InvalidInputError(
                f"{name} must be a CurvatureOperator (gn_theory.ggn_operator or "
                f"hessian_operator); got {type(op).__name__}"
            )
        if int(P) != self.num_params:
            raise ShapeError(
                f"{name} has dimension {int(P)} but the class structure has P = "
                f"{self.num_params} parameters: they come from different models or parameter "
                "selections"
            )
        mine, theirs = getattr(op, "fingerprint", None), self.settings.get("fingerprint")
        if not isinstance(mine, dict) or not isinstance(theirs, dict):
            return  # nothing recorded on one side: the dimension check is all there is
        keys = ["model", "params"]
        if getattr(op, "metadata", {}).get("dtype") == self.settings.get("dtype"):
            keys.append("data")  # the data checksum is taken after conversion to the dtype
        differ = [k for k in keys if k in mine and k in theirs and mine[k] != theirs[k]]
        if differ:
            what = {"model": "model parameters", "params": "parameter selection", "data": "data"}
            raise InvalidInputError(
                f"{name} and the class structure were not built from the same "
                + " and ".join(what[k] for k in differ)
                + f" (their fingerprints differ); rebuild {name} on the model and data the "
                "structure was measured on"
            )

    def identity_error(self, *, num_probes: int = 4, seed: int = 0) -> dict[str, float]:
        r"""Relative error of the hierarchy :math:`G_{\rm cm} = G_0 + G_1 + G_2` on random probes.

        :math:`\|(G_0+G_1+G_2)V - G_{\rm cm}V\|_F / \|G_{\rm cm}V\|_F` for a
        Gaussian V of shape (P, ``num_probes``), each part applied through its
        stored factor (docs/theory.md section 2.3). Needs no product with G, so it
        works after :meth:`load`; :func:`gn_theory.decomposition.identity_error`
        adds :math:`G = G_{\rm cm} + G_{\rm w}`, which needs the GGN operator.

        Parameters
        ----------
        num_probes : int, default 4
            Columns of V.
        seed : int, default 0
            Seed of the probes (``numpy.random.default_rng``).

        Returns
        -------
        dict of str to float
            ``{"G_cm = G_0 + G_1 + G_2": error}``.

        Raises
        ------
        InvalidInputError
            Bad ``num_probes`` or ``seed``, or the C^2 means were skipped.
        """
        k = _checks.check_positive_int("num_probes", num_probes)
        rng = np.random.default_rng(_checks.check_seed(seed))
        V = rng.standard_normal((self.num_params, k))

        def apply(part: Part) -> np.ndarray:
            F = self.factor(part)
            return F.T @ (F @ V)

        cm = apply("G_cm")
        parts = apply("G_0") + apply("G_1") + apply("G_2")
        err = float(np.linalg.norm(parts - cm) / max(float(np.linalg.norm(cm)), 1e-300))
        return {"G_cm = G_0 + G_1 + G_2": err}

    # -- predictions ------------------------------------------------------------------
    def predicted_outliers(self) -> dict[str, Any]:
        r"""What the class structure alone says about the outliers of G: a count and lower bounds.

        Papyan's picture (docs/theory.md section 2.3) predicts C outliers (level 1)
        and up to C(C-1) mini-outliers (level 2). Where they sit needs a model of
        the within-class part (:func:`gn_theory.explain.predict_outliers`); the
        structure alone only bounds them from below: :math:`G_{\rm w}` and
        :math:`G_0 + G_2` are positive semi-definite, so
        :math:`\lambda_k(G) \ge \lambda_k(G_{\rm cm}) \ge \lambda_k(G_1)` for every k
        (Weyl). Whether the measured spectrum has that many outliers is
        :func:`gn_theory.rmt.count_outliers`'s question.

        Returns
        -------
        dict
            ``num_outliers`` (C, or fewer if G_1 has lower rank) with
            ``outliers`` = eig(G_1) (the level-1 eigenvalues, descending: lower
            bounds, not positions); ``class_mean_top`` = the top C eigenvalues of
            G_cm (the tighter lower bounds on the top C of G);
            ``num_mini_outliers`` (at most C(C-1)) with ``mini_outliers`` = the
            eigenvalues of G_cm after its top ``num_outliers``;
            ``count_alternatives`` = (C, C - 1) (some papers report C - 1
            spikes; compare both); ``positions`` = ``"lower bounds"`` (a reminder
            that none of these is where G's outliers sit).
        """
        C = self.num_classes
        e1 = self.eigenvalues("G_1")
        out: dict[str, Any] = {
            "num_outliers": int(e1.size),
            "outliers": e1,
            "count_alternatives": (C, C - 1),
            "positions": "lower bounds",
        }
        if self.K is not None:
            ecm = self.eigenvalues("G_cm")
            out["class_mean_top"] = ecm[:C]
            out["mini_outliers"] = ecm[e1.size :][: C * (C - 1)]
            out["num_mini_outliers"] = int(out["mini_outliers"].size)
        else:
            out["class_mean_top"] = None
            out["mini_outliers"] = None
            out["num_mini_outliers"] = None
        return out

    # -- reporting ----------------------------------------------------------------------
    def overview(self) -> dict[str, Any]:
        """A compact JSON-serialisable view for the CLI and reports (no means, no Grams).

        :meth:`to_dict` is the exact, complete round trip; this is the small
        summary of it.

        Returns
        -------
        dict
            Sizes, priors, counts, the nonzero eigenvalues of each part
            (descending; ``None`` if skipped), the predicted outliers, the
            shapes of the means, the loss, costs, what was skipped and the
            settings.
        """
        pred = self.predicted_outliers()
        eig: dict[str, Any] = {}
        for p in PARTS:
            try:
                eig[p] = self.eigenvalues(p).tolist()
            except InvalidInputError:
                eig[p] = None
        return {
            "type": type(self).__name__,
            "num_classes": self.num_classes,
            "num_samples": self.num_samples,
            "num_params": self.num_params,
            "priors": self.priors.tolist(),
            "class_counts": self.class_counts.tolist(),
            "eigenvalues": eig,
            "predicted_outliers": {
                k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in pred.items()
            },
            "shapes": {
                "class_means": None if self.class_means is None else list(self.class_means.shape),
                "class_level_means": list(self.class_level_means.shape),
            },
            "loss_value": self.loss_value,
            "num_matvecs": self.num_matvecs,
            "seconds": self.seconds,
            "skipped": list(self.skipped),
            "settings": dict(self.settings),
        }

    def summary(self) -> Summary:
        """A text/HTML table of the class structure with numbered notes.

        Returns
        -------
        Summary
            ``print(s)``, ``s.as_text()``, ``s.as_html()``.
        """
        C = self.num_classes
        rows: list[tuple[str, str]] = [
            ("classes C", str(C)),
            ("samples N", str(self.num_samples)),
            ("parameters P", str(self.num_params)),
            ("class counts n_c", ", ".join(str(int(n)) for n in self.class_counts)),
            ("mean loss", f"{self.loss_value:.6g}"),
        ]
        ranks = {"G_cm": C * C, "G_0": C, "G_1": C, "G_2": C * (C - 2)}
        for p in PARTS:
            try:
                e = self.eigenvalues(p)
                rows.append((f"eig {p} (rank {e.size}, bound {ranks[p]})", fmt_values(e)))
            except InvalidInputError:
                rows.append((f"eig {p}", "skipped"))
        pred = self.predicted_outliers()
        rows.append(("outliers claimed (level 1)",
                     f"{pred['num_outliers']} (also compare C-1 = {C - 1}); positions not predicted"))
        bound = pred["class_mean_top"] if pred["class_mean_top"] is not None else pred["outliers"]
        rows.append((f"lower bounds on the top {bound.size} of G", fmt_values(bound)))
        if pred["num_mini_outliers"] is not None:
            rows.append(("mini-outliers claimed (level 2)", f"up to {pred['num_mini_outliers']}"))
        rows.append(("VJPs / time", f"{self.num_matvecs} / {self.seconds:.3g} s"))
        src = "G_cm" if pred["class_mean_top"] is not None else "G_1"
        notes = [
            "G = G_cm + G_w and G_cm = G_0 + G_1 + G_2 with class priors pi_c = n_c/N "
            "(docs/theory.md 2.2-2.3); eigenvalues are exact via the small Gram matrices, descending.",
            "G_0, G_1, G_2 are not mutually orthogonal: their eigenvalues do not add. Compare "
            "eig(G_1) and the top C of eig(G_cm) with the top-C Ritz values of G and H.",
            f"The structure alone does not place the outliers: G_w and G_0 + G_2 are PSD, so "
            f"eig_k(G) >= eig_k(G_cm) >= eig_k(G_1); the lower bounds shown are eig({src}). "
            "Their positions come from gn_theory.explain.predict_outliers (with a model of G_w), "
            "their count in a measured spectrum from gn_theory.rmt.count_outliers.",
        ]
        if np.any(self.class_counts == 0):
            empty = [int(c) for c in np.flatnonzero(self.class_counts == 0)]
            notes.append(f"classes {empty} have no samples; they get prior 0 and zero means.")
        notes += list(self.skipped)
        return Summary("Class structure of the GGN (softmax cross-entropy)", rows, notes)

    def __repr__(self) -> str:
        return (
            f"ClassStructure(C={self.num_classes}, N={self.num_samples}, P={self.num_params}, "
            f"full_means={self.class_means is not None})"
        )


# =============================================================================== Fort & Ganguli
@dataclass
class FortGanguli(Result):
    r"""Fort & Ganguli (2019) measurements: gradient confinement, eigenspace overlaps, cosines.

    Measured by :func:`gn_theory.decomposition.fort_ganguli`.

    Attributes
    ----------
    ks : numpy.ndarray
        The subspace sizes k, ascending.
    eigenvalues_H, eigenvalues_G : numpy.ndarray
        Top ``max(ks, C)`` eigenvalues of H and G (Lanczos), descending.
    predicted_top : numpy.ndarray
        The prediction to set against them: the top C eigenvalues of
        :math:`G_{\rm cm}` (of :math:`G_1` if the C^2 means were skipped), descending.
    predicted_level1 : numpy.ndarray
        eig(:math:`G_1`), the class-level outliers, descending.
    confinement_full_H, confinement_full_G : numpy.ndarray
        :math:`f_k(g) = \|U_k^\top g\|^2 / \|g\|^2` for the full-batch loss
        gradient g and the top-k eigenvectors U_k of H (of G), shape (len(ks),).
    confinement_batches_H, confinement_batches_G : numpy.ndarray
        The same for the gradient of each mini-batch of the data as given
        (the mean loss over that batch), shape (num_batches, len(ks)).
    batch_sizes : numpy.ndarray
        Samples per mini-batch.
    overlap_H_G, overlap_H_cm, overlap_G_cm : numpy.ndarray
        :math:`U^\top V` between the top-C eigenvectors of H, of G and of
        :math:`G_{\rm cm}` (from its Gram), shape (C, C); squared entries are
        the squared cosines between eigenvectors.
    subspace_overlaps : dict
        :math:`\|U^\top Q\|_F^2 / C` for each pair (1 = same span), including
        the span of the class-level means :math:`\{\delta_c\}`.
    cosine_groups : numpy.ndarray
        Mean cosine similarity of per-sample logit gradients
        :math:`\nabla_\theta z_k(x_i)` and :math:`\nabla_\theta z_{k'}(x_j)`,
        :math:`i\neq j`, over a subsample, grouped by (logit k, class of i,
        logit k', class of j): shape (C, C, C, C); NaN where a group is empty.
    cosine_stats : dict
        Averages over the groups: same logit / same class, same logit /
        different class, different logit / same class, different logit /
        different class.
    num_cosine_samples : int
        Size of the subsample for the cosines.
    num_classes : int
        C.
    num_matvecs : int
        Products with H and G spent by the two Lanczos runs.
    settings : dict
        Lanczos settings and convergence, seeds.
    """

    ks: np.ndarray
    eigenvalues_H: np.ndarray
    eigenvalues_G: np.ndarray
    predicted_top: np.ndarray
    predicted_level1: np.ndarray
    confinement_full_H: np.ndarray
    confinement_full_G: np.ndarray
    confinement_batches_H: np.ndarray
    confinement_batches_G: np.ndarray
    batch_sizes: np.ndarray
    overlap_H_G: np.ndarray
    overlap_H_cm: np.ndarray
    overlap_G_cm: np.ndarray
    subspace_overlaps: dict
    cosine_groups: np.ndarray
    cosine_stats: dict
    num_cosine_samples: int
    num_classes: int
    num_matvecs: int = 0
    settings: dict = field(default_factory=dict)

    def summary(self) -> Summary:
        """A text/HTML table of the measurements.

        Returns
        -------
        Summary
            ``print(s)``, ``s.as_text()``, ``s.as_html()``.
        """
        C = self.num_classes
        rows: list[tuple[str, str]] = [
            ("top eig H", fmt_values(self.eigenvalues_H, 12)),
            ("top eig G", fmt_values(self.eigenvalues_G, 12)),
            (f"predicted top {C} (G_cm)", fmt_values(self.predicted_top, 12)),
            ("eig G_1 (level 1)", fmt_values(self.predicted_level1, 12)),
        ]
        for j, k in enumerate(self.ks):
            bh = self.confinement_batches_H[:, j]
            bg = self.confinement_batches_G[:, j]
            rows.append(
                (
                    f"grad in top-{int(k)} (H | G)",
                    f"full {self.confinement_full_H[j]:.3f} | {self.confinement_full_G[j]:.3f};"
                    f" batches mean {bh.mean():.3f} | {bg.mean():.3f}",
                )
            )
        for name, v in self.subspace_overlaps.items():
            rows.append((f"overlap {name}", f"{v:.3f}"))
        for name, v in self.cosine_stats.items():
            rows.append((f"cosine {name}", f"{v:.3f}"))
        rows.append(("products with H and G", str(self.num_matvecs)))
        notes = [
            "Confinement f_k = ||U_k^T g||^2 / ||g||^2 (Gur-Ari et al. 2018) with U_k the top-k "
            "Lanczos eigenvectors; it depends on the optimiser: record it (docs/theory.md 6).",
            f"Cosines from {self.num_cosine_samples} subsampled inputs (i != j pairs).",
            "Eigenvalues are descending (largest first).",
        ]
        return Summary("Fort & Ganguli measurements", rows, notes)


# =============================================================================== outlier inputs
@dataclass
class OutlierInputs(Result):
    r"""The measured inputs of outlier prediction: top of G, bulk of :math:`G_{\rm w}`, Ritz values.

    Measured by :func:`gn_theory.decomposition.measure_outlier_inputs` (the
    products with G live there); consumed by :func:`gn_theory.explain.predict_outliers`,
    which compares and never measures. Any field may be ``None`` (not measured).

    Attributes
    ----------
    observed : Spectrum or None
        The top eigenvalues of G (Lanczos), descending.
    within_density : SpectralDensity or None
        The stochastic Lanczos quadrature of the within-class part
        :math:`G_{\rm w} = G - G_{\rm cm}`.
    within_spectrum : Spectrum or None
        The top eigenpairs of :math:`G_{\rm w}`, with eigenvectors, descending
        (for the isotropy diagnostic).
    ritz : RitzResult or None
        Rayleigh-Ritz of G on the class-mean span (the ``"subspace"`` predictor),
        Ritz values descending.
    settings : dict
        The options of the measurement (k, probes, steps, seed, ...).
    trace : TraceEstimate or None
        :math:`\operatorname{tr}G`, exact (``method="exact"``, ``bse`` 0): the sum
        of the squared norms of the per-sample vectors :math:`\delta_{i,c'}` over
        N, from one data pass (docs/theory.md section 3.4); ``samples`` holds each
        true class's contribution (they add up to the estimate). Its
        ``num_matvecs`` counts its N C vector-Jacobian products (not products with
        G, so :attr:`num_matvecs` leaves them out).
    """

    observed: Spectrum | None = None
    within_density: SpectralDensity | None = None
    within_spectrum: Spectrum | None = None
    ritz: RitzResult | None = None
    settings: dict = field(default_factory=dict)
    trace: TraceEstimate | None = None

    @property
    def num_matvecs(self) -> int:
        """Operator-vector products spent by the measurements that are present."""
        total = 0
        # the exact trace spends vector-Jacobian products, not products with G: trace.num_matvecs
        for part in (self.observed, self.within_density, self.within_spectrum, self.ritz):
            if part is not None:
                total += int(getattr(part, "num_matvecs", 0) or 0)
        return total

    def summary(self) -> Summary:
        """A text/HTML table of what was measured.

        Returns
        -------
        Summary
            ``print(s)``, ``s.as_text()``, ``s.as_html()``.
        """

        def top(values: Any) -> str:
            return fmt_values(np.asarray(values, dtype=float))

        rows: list[tuple[str, str]] = []
        rows.append(
            ("top of G", "not measured" if self.observed is None else top(self.observed.eigenvalues))
        )
        if self.within_density is None:
            rows.append(("SLQ of G_w", "not measured"))
        else:
            nodes = np.atleast_2d(np.asarray(self.within_density.nodes))
            rows.append(("SLQ of G_w", f"{nodes.shape[0]} probes x {nodes.shape[1]} nodes"))
        if self.within_spectrum is None:
            rows.append(("top of G_w", "not measured"))
        else:
            rows.append(("top of G_w", top(self.within_spectrum.eigenvalues)))
        rows.append(
            ("Ritz values of G on span(delta_{c,c'})",
             "not measured" if self.ritz is None else top(self.ritz.values))
        )
        rows.append(
            ("tr G", "not measured" if self.trace is None
             else f"{self.trace.estimate:.6g} ({self.trace.method})")
        )
        rows.append(("operator products", str(self.num_matvecs)))
        for key in sorted(self.settings):  # sorted: a loaded result prints the same table
            if key not in ("fingerprint", "skipped"):
                rows.append((f"setting {key}", str(self.settings[key])))
        fp = self.settings.get("fingerprint")
        if isinstance(fp, dict) and "operator" in fp:
            rows.append(("fingerprint of G", str(fp["operator"])))
        notes = [
            "Eigenvalues and Ritz values are descending (largest first).",
            "Pass this to gn_theory.explain.predict_outliers(structure, inputs=...), which "
            "compares and never measures.",
        ]
        notes += [str(n) for n in self.settings.get("skipped", [])]
        return Summary("Measured inputs of outlier prediction", rows, notes)
