r"""Class structure of the Gauss-Newton matrix: class means, cross-class and within-class parts.

For C-class softmax cross-entropy the output Hessian factorises as
:math:`\mathrm{diag}(p) - pp^\top = \sum_{c'} p_{c'}(e_{c'} - p)(e_{c'} - p)^\top`, so the
generalized Gauss-Newton matrix is a second moment of :math:`NC` vectors (THEORY.md section 2.1),

.. math::

    \delta_{i,c'} = \sqrt{p_{i,c'}}\, J_i^\top (e_{c'} - p_i)
                  = \sqrt{p_{i,c'}}\,\nabla_\theta \log p_{i,c'},\qquad
    G = \frac1N \sum_{i=1}^N \sum_{c'=1}^C \delta_{i,c'}\delta_{i,c'}^\top .

Grouping the samples by their true class :math:`c` (count :math:`n_c`, prior
:math:`\pi_c = n_c/N`) gives the class means and the law of total second moment
(section 2.2),

.. math::

    \delta_{c,c'} = \frac1{n_c}\sum_{i:y_i=c}\delta_{i,c'},\qquad
    G = G_{\rm cm} + G_{\rm w},\qquad
    G_{\rm cm} = \sum_c \pi_c \sum_{c'} \delta_{c,c'}\delta_{c,c'}^\top,

    G_{\rm w} = \sum_c \pi_c \sum_{c'} \frac1{n_c}\sum_{i:y_i=c}
        (\delta_{i,c'} - \delta_{c,c'})(\delta_{i,c'} - \delta_{c,c'})^\top,

and the three-level hierarchy (section 2.3) with the class-level means
:math:`\delta_c = \frac1{C-1}\sum_{c'\ne c}\delta_{c,c'}` and the cross-class deviations
:math:`\nu_{c,c'} = \delta_{c,c'} - \delta_c` (:math:`c' \ne c`),

.. math::

    G_{\rm cm} = G_0 + G_1 + G_2,\quad
    G_0 = \sum_c \pi_c\,\delta_{c,c}\delta_{c,c}^\top,\quad
    G_1 = (C-1)\sum_c \pi_c\,\delta_c\delta_c^\top,\quad
    G_2 = \sum_c \pi_c \sum_{c'\ne c} \nu_{c,c'}\nu_{c,c'}^\top .

Each low-rank part is :math:`A A^\top` for a P x r matrix of weighted means, so its nonzero
eigenvalues are those of the small Gram matrix :math:`A^\top A` (section 2.4): C^2 x C^2 for
:math:`G_{\rm cm}`, C x C for :math:`G_0, G_1`, C(C-1) x C(C-1) for :math:`G_2`. No P x P
matrix is ever formed. The within-class part is matrix-free: :math:`G_{\rm w} v = Gv - A(A^\top v)`.

Prediction (Papyan 2019, 2020): C outliers of the spectrum of G (and of H when the residual
term R is small) near the eigenvalues of :math:`G_1`, up to C(C-1) smaller "mini-outliers"
from the rest of :math:`G_{\rm cm}`, and a bulk from :math:`G_{\rm w}`.

References
----------
V. Papyan, "Measurements of three-level hierarchical structure in the outliers in the spectrum
of deepnet Hessians", ICML 2019 (arXiv:1901.08244), section 2.
V. Papyan, "Traces of class/cross-class structure pervade deep learning spectra", JMLR 2020
(arXiv:2008.11865).
S. Fort and S. Ganguli, "Emergent properties of the local geometry of neural loss
landscapes", arXiv:1910.05929 (2019).
G. Gur-Ari, D. A. Roberts and E. Dyer, "Gradient descent happens in a tiny subspace",
arXiv:1812.04754 (2018).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch.func import vjp, vmap

from . import _checks
from ._data import reduce_sum
from .exceptions import (
    DataError,
    InvalidInputError,
    MemoryBudgetError,
    NonFiniteError,
    NumericalWarning,
)
from .operators import CurvatureOperator, ggn_operator
from .results import Summary
from ._format import fmt_bytes, fmt_values as _fmt_values
from .results import Result

__all__ = [
    "class_structure",
    "ClassStructure",
    "WithinClassOperator",
    "LowRankOperator",
    "fort_ganguli",
    "FortGanguli",
    "PARTS",
    "CLASS_MEANS_MEMORY_BUDGET",
]

#: The low-rank parts whose exact nonzero eigenvalues come from a small Gram matrix.
PARTS: tuple[str, ...] = ("G_cm", "G_0", "G_1", "G_2")

#: Default budget (bytes) for the C^2 x P float64 class means (and one working copy).
CLASS_MEANS_MEMORY_BUDGET: int = 2 * 2**30

Part = Literal["G_cm", "G_0", "G_1", "G_2"]
Method = Literal["class_split", "masked", "loop"]




# =============================================================================== operators
class LowRankOperator(CurvatureOperator):
    r"""The PSD operator :math:`A A^\top = \sum_j a_j a_j^\top` from r stored vectors.

    Products cost two (r x P) matrix products, done in float64 and cast to
    the operator's dtype.

    Parameters
    ----------
    factor : torch.Tensor
        The vectors :math:`a_j` as rows, shape (r, P).
    dtype : torch.dtype
        Dtype of the products (the factor keeps its own, float64).
    kind : str
        Name of the part (``"G_cm"``, ``"G_0"``, ...).
    """

    def __init__(self, factor: torch.Tensor, dtype: torch.dtype, kind: str) -> None:
        self.kind = kind
        super().__init__(factor.shape[1], factor.device, dtype)
        self.factor = factor
        self.metadata = {"kind": kind, "rank_bound": int(factor.shape[0])}

    def _matmat_torch(self, V: torch.Tensor) -> torch.Tensor:
        A = self.factor
        return (A.T @ (A @ V.to(A.dtype))).to(V.dtype)


class WithinClassOperator(CurvatureOperator):
    r"""Matrix-free within-class part :math:`G_{\rm w} = G - G_{\rm cm}`.

    ``G_w @ V`` is one product with the GGN operator minus :math:`A(A^\top V)`,
    where the C^2 columns of A are :math:`\sqrt{\pi_c}\,\delta_{c,c'}`; the
    low-rank product is done in float64. Cost: one GGN product plus
    :math:`4 C^2 P k` flops. Built by :meth:`ClassStructure.within_operator`;
    every :mod:`gn_theory.spectra` routine runs on it.

    Parameters
    ----------
    ggn : CurvatureOperator
        The GGN operator G.
    class_mean_part : LowRankOperator
        :math:`G_{\rm cm}` as a sum of outer products.
    """

    kind = "ggn_within"

    def __init__(self, ggn: CurvatureOperator, class_mean_part: LowRankOperator) -> None:
        super().__init__(ggn.num_params, ggn.device, ggn.torch_dtype)
        self.ggn = ggn
        self.class_mean_part = class_mean_part
        self.layout = ggn.layout
        self.metadata = {**getattr(ggn, "metadata", {}), "kind": self.kind}

    def _matmat_torch(self, V: torch.Tensor) -> torch.Tensor:
        return self.ggn._apply(V) - self.class_mean_part._apply(V)


# =============================================================================== results
@dataclass
class ClassStructure(Result):
    r"""Class means of the GGN's :math:`\delta` vectors and the exact spectra of its low-rank parts.

    Built by :func:`class_structure`; see the module docstring for the
    definitions. Class indices ``c`` (true class) and logit indices ``c'``
    both run over ``0..C-1``.

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
    num_vjps : int
        Vector-Jacobian products spent on the means (a vmapped block of k
        cotangents counts k).
    seconds : float
        Wall time of the streaming pass over the data.
    skipped : list of str
        What the memory guard left out, in words (empty if nothing).
    metadata : dict
        The GGN operator's metadata and the options used.

    Notes
    -----
    After :meth:`load` the means and Gram matrices are back, so
    :meth:`eigenvalues`, :meth:`eigenvectors` and :meth:`predicted_outliers`
    work; :meth:`within_operator`, :meth:`identity_error` and
    :meth:`fort_ganguli` need products with G and say so.
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
    num_vjps: int = 0
    seconds: float = 0.0
    skipped: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)

    # not dataclass fields (no annotation): never saved
    _ggn = None
    _inputs = None

    # -- factors and Grams --------------------------------------------------------------
    def _weights(self) -> np.ndarray:
        return np.sqrt(self.priors)

    def factor(self, part: Part) -> np.ndarray:
        r"""The vectors whose outer products sum to ``part``, as rows (r, P), float64.

        ``G_cm``: :math:`\sqrt{\pi_c}\,\delta_{c,c'}` (C^2 rows, ``c * C + c'``);
        ``G_0``: :math:`\sqrt{\pi_c}\,\delta_{c,c}` (C rows);
        ``G_1``: :math:`\sqrt{(C-1)\pi_c}\,\delta_c` (C rows);
        ``G_2``: :math:`\sqrt{\pi_c}\,\nu_{c,c'}`, ``c' != c`` (C(C-1) rows).

        Parameters
        ----------
        part : {"G_cm", "G_0", "G_1", "G_2"}

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
        w = self._weights()
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

        They are the eigenvalues of the part's small Gram matrix (THEORY.md
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
            Float64, descending.

        Raises
        ------
        InvalidInputError
            Unknown part (``"G_w"`` is matrix-free: use :meth:`within_operator`
            with :func:`gn_theory.spectra.lanczos`), or skipped by the memory guard.
        """
        if part == "G_w":
            raise InvalidInputError(
                "G_w is the high-rank bulk: it has no small Gram matrix; run "
                "gn_theory.spectra.lanczos or slq on structure.within_operator()"
            )
        return self._eig(part, rtol)[0]

    def eigenvectors(
        self, part: Part, k: int | None = None, *, rtol: float | None = None
    ) -> np.ndarray:
        r"""Unit eigenvectors in parameter space of a low-rank part, for the descending eigenvalues.

        With the Gram eigenpair :math:`(\lambda, v)` of :math:`K = A^\top A`,
        :math:`u = A v/\sqrt\lambda` (never a P x P matrix).

        Parameters
        ----------
        part : {"G_cm", "G_0", "G_1", "G_2"}
        k : int, optional
            Number of leading eigenvectors (default all nonzero ones).
        rtol : float, optional
            As in :meth:`eigenvalues`.

        Returns
        -------
        numpy.ndarray
            Shape (P, k), float64, orthonormal columns.

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

    # -- predictions ------------------------------------------------------------------
    def predicted_outliers(self) -> dict[str, Any]:
        """Predicted outlier counts and locations of the spectrum of G (and of H if R is small).

        Returns
        -------
        dict
            ``num_outliers`` (C, or fewer if G_1 has lower rank) with
            ``outliers`` = eig(G_1) (level 1, the class-level means);
            ``num_mini_outliers`` (at most C(C-1)) with ``mini_outliers`` =
            the eigenvalues of G_cm after its top ``num_outliers``;
            ``class_mean_top`` = the top C eigenvalues of G_cm (the best
            prediction of the top C of G: G_cm is the whole mean part); and
            ``count_alternatives`` = (C, C - 1) (some papers report C - 1
            spikes; compare both).
        """
        C = self.num_classes
        e1 = self.eigenvalues("G_1")
        out: dict[str, Any] = {
            "num_outliers": int(e1.size),
            "outliers": e1,
            "count_alternatives": (C, C - 1),
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

    # -- products -----------------------------------------------------------------------
    def _need_ggn(self, what: str) -> CurvatureOperator:
        if self._ggn is None:
            raise InvalidInputError(
                f"{what} needs products with G, but this ClassStructure has no GGN operator "
                "(it was loaded from disk); recompute it with class_structure(model, data)"
            )
        return self._ggn

    def part_operator(self, part: Part) -> LowRankOperator:
        """A low-rank part as a matrix-free :class:`LowRankOperator` (sum of outer products).

        Parameters
        ----------
        part : {"G_cm", "G_0", "G_1", "G_2"}

        Returns
        -------
        LowRankOperator
            On the GGN operator's device and dtype (float64 on the CPU after load).

        Raises
        ------
        InvalidInputError
            Unknown or skipped part.
        """
        F = self.factor(part)
        if self._ggn is not None:
            dev, dt = self._ggn.device, self._ggn.torch_dtype
        else:
            dev, dt = torch.device("cpu"), torch.float64
        op = LowRankOperator(torch.as_tensor(F, dtype=torch.float64, device=dev), dt, part)
        if self._ggn is not None:
            op.layout = self._ggn.layout
        return op

    def ggn_operator(self) -> CurvatureOperator:
        """The GGN operator G the structure was computed from.

        Returns
        -------
        CurvatureOperator

        Raises
        ------
        InvalidInputError
            After :meth:`load` (no model/data attached).
        """
        return self._need_ggn("ggn_operator()")

    def within_operator(self) -> WithinClassOperator:
        r"""The within-class part :math:`G_{\rm w} = G - G_{\rm cm}` as a matrix-free operator.

        Returns
        -------
        WithinClassOperator
            A :class:`~gn_theory.operators.CurvatureOperator`; each product is
            one GGN product plus a rank-C^2 correction.

        Raises
        ------
        InvalidInputError
            After :meth:`load`, or if the memory guard skipped the C^2 means.
        """
        G = self._need_ggn("within_operator()")
        return WithinClassOperator(G, self.part_operator("G_cm"))

    def identity_error(self, *, num_probes: int = 4, seed: int = 0) -> dict[str, float]:
        r"""Relative errors of the two identities on random Gaussian probes V (P, k).

        * ``"G = G_cm + G_w"``: :math:`\|(G_{\rm cm} + G_{\rm w})V - GV\|_F / \|GV\|_F`.
          With :math:`G_{\rm w}` applied as :math:`G - G_{\rm cm}` this checks
          the operator plumbing and round-off, not the algebra; the tests check the
          algebra against dense matrices.
        * ``"G_cm = G_0 + G_1 + G_2"``: :math:`\|(G_0+G_1+G_2)V - G_{\rm cm}V\|_F /
          \|G_{\rm cm}V\|_F`, the hierarchy of THEORY.md section 2.3.

        Parameters
        ----------
        num_probes : int, default 4
        seed : int, default 0
            Seed of the probes (drawn on the CPU).

        Returns
        -------
        dict of str to float

        Raises
        ------
        InvalidInputError
            After :meth:`load`, or if the C^2 means were skipped.
        """
        k = _checks.check_positive_int("num_probes", num_probes)
        G = self._need_ggn("identity_error()")
        gen = torch.Generator().manual_seed(int(seed))
        V = torch.randn(self.num_params, k, generator=gen, dtype=torch.float64)
        V = V.to(device=G.device, dtype=G.torch_dtype)
        cm = self.part_operator("G_cm")
        GV = G @ V
        cmV = cm @ V
        wV = self.within_operator() @ V
        parts = sum(self.part_operator(p) @ V for p in ("G_0", "G_1", "G_2"))

        def rel(a: torch.Tensor, b: torch.Tensor) -> float:
            return float(torch.linalg.norm(a - b) / max(float(torch.linalg.norm(b)), 1e-300))

        return {"G = G_cm + G_w": rel(cmV + wV, GV), "G_cm = G_0 + G_1 + G_2": rel(parts, cmV)}

    def fort_ganguli(self, **kwargs: Any) -> FortGanguli:
        """Fort & Ganguli measurements on the same model and data; see :func:`fort_ganguli`.

        Parameters
        ----------
        **kwargs
            Passed to :func:`fort_ganguli`.

        Returns
        -------
        FortGanguli
        """
        return fort_ganguli(self, **kwargs)

    # -- reporting ----------------------------------------------------------------------
    def to_dict(self, *, include_arrays: bool = False) -> dict[str, Any]:
        """A compact JSON-serialisable dict for the CLI and reports.

        Parameters
        ----------
        include_arrays : bool, default False
            Include the means and Gram matrices as nested lists (large: C^2 P
            numbers); by default only their shapes.

        Returns
        -------
        dict
            Sizes, priors, counts, the nonzero eigenvalues of each part, the
            predicted outliers, the loss, costs and what was skipped.
        """
        if include_arrays:
            return super().to_dict()
        pred = self.predicted_outliers()
        eig = {}
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
            "num_vjps": self.num_vjps,
            "seconds": self.seconds,
            "skipped": list(self.skipped),
            "metadata": dict(self.metadata),
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
                rows.append(
                    (f"eig {p} (rank {e.size}, bound {ranks[p]})", _fmt_values(e))
                )
            except InvalidInputError:
                rows.append((f"eig {p}", "skipped"))
        pred = self.predicted_outliers()
        rows.append(("predicted outliers", f"{pred['num_outliers']} (also compare C-1 = {C - 1})"))
        if pred["num_mini_outliers"] is not None:
            rows.append(("predicted mini-outliers", f"up to {pred['num_mini_outliers']}"))
        rows.append(("VJPs / time", f"{self.num_vjps} / {self.seconds:.3g} s"))
        notes = [
            "G = G_cm + G_w and G_cm = G_0 + G_1 + G_2 with class priors pi_c = n_c/N "
            "(THEORY.md 2.2-2.3); eigenvalues are exact via the small Gram matrices.",
            "G_0, G_1, G_2 are not mutually orthogonal: their eigenvalues do not add. Compare "
            "eig(G_1) and the top C of eig(G_cm) with the top-C Ritz values of G and H.",
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


# =============================================================================== the pass
def _cotangents(p: torch.Tensor) -> torch.Tensor:
    r"""``W[c'] = sqrt(p[:, c']) (e_{c'} - p)`` for every logit c': shape (C, B, C)."""
    C = p.shape[1]
    eye = torch.eye(C, dtype=p.dtype, device=p.device)
    return p.sqrt().T[:, :, None] * (eye[:, None, :] - p[None, :, :])


def _check_probs(p: torch.Tensor, where: str) -> None:
    if not bool(torch.isfinite(p).all()):
        raise NonFiniteError(f"{where}: the softmax probabilities are not finite")


def _stream_means(
    G: Any, C: int, full: bool, method: str, chunk_size: int | None, buffer_rows: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Sums over samples of delta_{i,c'} by true class: (C, C, P) or (C, 2, P) [diag, level].

    Also returns the class counts, the summed loss (from the same forward passes) and the
    number of VJPs.
    """
    f, theta, loss = G.function, G.function.theta, G.loss
    P = theta.numel()
    rows_out = C if full else 2
    S = torch.zeros(C, rows_out, P, dtype=torch.float64, device=theta.device)
    counts = torch.zeros(C, dtype=torch.int64, device=theta.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=theta.device)
    nvjp = 0

    def reduce_cot(W: torch.Tensor, c: int) -> torch.Tensor:
        # the fallback needs only delta_{c,c} and delta_c: both linear in the cotangent
        if full:
            return W
        level = (W.sum(0) - W[c]) / (C - 1)
        return torch.stack([W[c], level])

    def probs(out: torch.Tensor, yc: torch.Tensor, where: str) -> torch.Tensor:
        nonlocal loss_sum
        out = out.detach()
        p = torch.softmax(out, dim=-1)
        _check_probs(p, where)
        loss_sum += loss.sum(out, yc).to(torch.float64)
        return p

    # class_split / loop: rows of one class are gathered across the data's batches (at most
    # buffer_rows per class) so that the cost does not depend on how the user batched the data
    pending: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in range(C)]
    pending_rows = [0] * C
    last_index = 0

    def flush(c: int, index: int) -> None:
        nonlocal nvjp
        where = f"class {c}, samples gathered from batches up to {index}"
        xc = torch.cat([a for a, _ in pending[c]])
        yc = torch.cat([b for _, b in pending[c]])
        pending[c].clear()
        pending_rows[c] = 0
        if method == "loop":
            with torch.enable_grad():
                t = theta.detach().requires_grad_(True)
                out = f(t, xc)
                W = reduce_cot(_cotangents(probs(out, yc, where)), c)
                for j in range(W.shape[0]):
                    (g,) = torch.autograd.grad(out, t, W[j], retain_graph=j < W.shape[0] - 1)
                    S[c, j] += g
        else:  # class_split: one forward per class subset, vmap over the cotangents
            out, vjp_fn = vjp(lambda t: f(t, xc), theta)
            W = reduce_cot(_cotangents(probs(out, yc, where)), c)
            S[c] += vmap(vjp_fn, chunk_size=chunk_size)(W)[0]
        nvjp += W.shape[0]

    for index, x, y in G.data:
        last_index = index
        if method == "masked":
            out, vjp_fn = vjp(lambda t: f(t, x), theta)
            p = probs(out, y, f"batch {index}")
            W = _cotangents(p)  # (C', B, C)
            present = torch.unique(y).tolist()
            cots = []
            for c in present:
                mask = (y == c).to(p.dtype)[None, :, None]
                cots.append(reduce_cot(W, c) * mask)
                counts[c] += int((y == c).sum())
            T = torch.cat(cots)  # (len(present) * rows_out, B, C)
            g = vmap(vjp_fn, chunk_size=chunk_size)(T)[0]
            nvjp += T.shape[0]
            for j, c in enumerate(present):
                S[c] += g[j * rows_out : (j + 1) * rows_out]
            continue
        for c in torch.unique(y).tolist():
            sel = y == c
            counts[c] += int(sel.sum())
            pending[c].append((x[sel], y[sel]))
            pending_rows[c] += int(sel.sum())
            if pending_rows[c] >= buffer_rows:
                flush(c, index)
    for c in range(C):
        if pending_rows[c]:
            flush(c, last_index)
    return reduce_sum(S), reduce_sum(counts), reduce_sum(loss_sum), nvjp


def _gram_maps(C: int) -> dict[str, np.ndarray]:
    r"""Linear maps T with A_part = T A_cm (rows), so K_part = T K T^T (THEORY.md 2.3-2.4).

    Rows of A_cm are :math:`\sqrt{\pi_c}\delta_{c,c'}` at ``c * C + c'``; every part
    combines rows of one class c only, so the weights pass through.
    """
    T0 = np.zeros((C, C * C))
    T1 = np.zeros((C, C * C))
    T2 = np.zeros((C * (C - 1), C * C))
    r = 0
    for c in range(C):
        T0[c, c * C + c] = 1.0
        others = [c * C + d for d in range(C) if d != c]
        T1[c, others] = 1.0 / math.sqrt(C - 1)  # sqrt(C-1) * mean over C-1 logits
        for d in range(C):
            if d == c:
                continue
            T2[r, others] = -1.0 / (C - 1)
            T2[r, c * C + d] += 1.0
            r += 1
    return {"G_0": T0, "G_1": T1, "G_2": T2}


def class_structure(
    model: torch.nn.Module,
    data: Any,
    loss: str = "cross_entropy",
    *,
    params: Any = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    empty_classes: Literal["error", "zero"] = "error",
    method: Method = "class_split",
    chunk_size: int | None = None,
    buffer_rows: int = 1024,
    max_bytes: int | None = None,
) -> ClassStructure:
    r"""Class means of the GGN's :math:`\delta` vectors and the exact spectra of its low-rank parts.

    For C-class softmax cross-entropy, computes (THEORY.md section 2) the
    :math:`C^2` class means :math:`\delta_{c,c'} = \frac1{n_c}\sum_{i:y_i=c}
    \sqrt{p_{i,c'}}\,J_i^\top(e_{c'} - p_i)` (true class c, logit c'), the C
    class-level means :math:`\delta_c = \frac1{C-1}\sum_{c'\ne c}\delta_{c,c'}`,
    the class priors :math:`\pi_c = n_c/N`, and the Gram matrices of
    :math:`G_{\rm cm} = \sum_c\pi_c\sum_{c'}\delta_{c,c'}\delta_{c,c'}^\top`
    and of its parts :math:`G_0, G_1, G_2` (module docstring), whose nonzero
    eigenvalues are exactly those of the parts. Weights: the softmax
    probabilities :math:`p_{i,c'}` (inside :math:`\delta`) and the class
    priors :math:`\pi_c`; centring: within each true class for
    :math:`G_{\rm w}`, around :math:`\delta_c` for :math:`\nu_{c,c'}`.

    Parameters
    ----------
    model : torch.nn.Module
        Classifier returning (B, C) logits; not modified (see :func:`~gn_theory.ggn_operator`).
    data : (Tensor, Tensor) or iterable of (Tensor, Tensor)
        Inputs and integer targets in [0, C); one batch or a re-iterable of
        batches (uneven batches are fine: sums are divided by the true counts).
    loss : {"cross_entropy"}, default "cross_entropy"
        Only softmax cross-entropy has this class structure.
    params : iterable of str or Tensor, optional
        Restrict to these parameters (as for the operators).
    device : str or torch.device, optional
        Where to compute (default the model's).
    dtype : torch.dtype, optional
        Precision of the forward/backward passes (default the model's); the
        means are accumulated and the Grams built in float64 whatever it is.
    empty_classes : {"error", "zero"}, default "error"
        A class with no samples: raise a :class:`~gn_theory.DataError`, or
        ("zero") give it prior 0 and zero means, so it contributes nothing to
        any part (its Gram rows are zero and its eigenvalues are dropped).
    method : {"class_split", "masked", "loop"}, default "class_split"
        How the VJPs are batched. ``"class_split"``: per batch and per class
        c present, one forward on the rows of class c and one ``vmap`` of the
        pullback over the C cotangents :math:`\sqrt{p_{:,c'}}(e_{c'} - p)`
        (c' = 0..C-1); ``"masked"``: one forward per batch and one ``vmap``
        over the (classes present) x C cotangents masked to each class;
        ``"loop"``: like ``class_split`` with one ``autograd.grad`` per
        cotangent. All give the same numbers; see Notes for costs.
    chunk_size : int, optional
        Cotangents per vmapped pass (default all at once); lower it to save memory.
    buffer_rows : int, default 1024
        ``"class_split"`` and ``"loop"``: the samples of one class are gathered
        across the data's batches until there are ``buffer_rows`` of them (or
        the data end), and their C VJPs are run then. This makes the cost
        independent of how the data are batched; the extra memory is at most
        C x ``buffer_rows`` inputs, plus C x ``buffer_rows`` x (widths) for the
        vmapped backward pass.
    max_bytes : int, optional
        Memory budget for the C^2 P float64 means, default
        :data:`CLASS_MEANS_MEMORY_BUDGET` (2 GiB; counted twice for a working
        copy). Above it the C^2 means, ``K``, ``K2`` and :math:`G_{\rm cm}` /
        :math:`G_2` / :math:`G_{\rm w}` are skipped with a
        :class:`~gn_theory.NumericalWarning` and a note in ``skipped``; only
        :math:`\delta_{c,c}` and :math:`\delta_c` (2CP numbers, 2 VJPs per
        class per batch) and :math:`G_0, G_1` remain.

    Returns
    -------
    ClassStructure

    Raises
    ------
    InvalidInputError
        ``loss`` other than ``"cross_entropy"``, a model with one output
        (C = 1), bad options.
    DataError
        Targets outside [0, C), empty data, or (``empty_classes="error"``) a
        class with no samples.
    NonFiniteError
        Non-finite logits, loss or probabilities (the batch is named).
    MemoryBudgetError
        If even the 2CP fallback exceeds ``max_bytes``.

    Notes
    -----
    Cost: one forward pass over the data to validate it (shared with the GGN
    operator's construction) and one streaming pass computing the means (and
    the loss). With ``"class_split"`` the streaming pass costs one forward
    per sample and C vector-Jacobian products per sample, run as one
    vmapped pullback of C cotangents per class per buffer of rows: the work
    of C full-data backward passes, whatever the batch size, and no
    per-sample Jacobian is formed. ``"masked"`` does (classes present) x C
    backward passes over each whole batch (up to C^2 full-data passes).
    Measured figures: ``docs/performance.md`` ("Class structure"). Memory:
    C^2 P float64 numbers for the means, C^2 x B x C for the cotangents.
    The Grams cost :math:`C^4 P` flops (:math:`C^2 P` for each of the C^2 rows).

    References
    ----------
    Papyan (2019), arXiv:1901.08244, section 2 and its code
    (github.com/deep-lab/DeepnetHessian); Papyan (2020), arXiv:2008.11865.

    Examples
    --------
    >>> import torch
    >>> from gn_theory.decomposition import class_structure
    >>> from gn_theory.data import gaussian_mixture
    >>> from gn_theory.models import mlp
    >>> X, y = gaussian_mixture(60, 5, 3, seed=0, dtype=torch.float64)
    >>> model = mlp([5, 8, 3], seed=0).double()
    >>> cs = class_structure(model, (X, y))
    >>> cs.class_means.shape, cs.class_level_means.shape
    ((3, 3, 75), (3, 75))
    >>> cs.eigenvalues("G_1").shape
    (3,)
    >>> err = cs.identity_error()
    >>> err["G_cm = G_0 + G_1 + G_2"] < 1e-12
    True
    """
    if loss != "cross_entropy":
        raise InvalidInputError(
            "class_structure needs softmax cross-entropy (loss='cross_entropy'): the class/"
            f"cross-class decomposition of G is defined through its delta vectors; got {loss!r}"
        )
    _checks.check_choice("empty_classes", empty_classes, ("error", "zero"))
    _checks.check_choice("method", method, ("class_split", "masked", "loop"))
    if chunk_size is not None:
        chunk_size = _checks.check_positive_int("chunk_size", chunk_size)
    buffer_rows = _checks.check_positive_int("buffer_rows", buffer_rows)
    budget = CLASS_MEANS_MEMORY_BUDGET if max_bytes is None else int(max_bytes)

    G = ggn_operator(model, data, loss, params=params, device=device, dtype=dtype)
    C, N, P = G.num_outputs, G.num_samples, G.num_params
    if C < 2:
        raise InvalidInputError(
            f"class_structure needs C >= 2 classes; the model has {C} output (use a 2-logit "
            "softmax for binary problems)"
        )
    skipped: list[str] = []
    full_bytes = 2 * C * C * P * 8
    full = full_bytes <= budget
    if not full:
        if 2 * 2 * C * P * 8 > budget:
            raise MemoryBudgetError(
                f"even the 2 C P = {2 * C * P} float64 class-level means need "
                f"{fmt_bytes(4 * C * P * 8)} with a working copy, more than the budget "
                f"{fmt_bytes(budget)}; pass max_bytes=..."
            )
        msg = (
            f"the C^2 P = {C * C * P} float64 class means delta_{{c,c'}} would need "
            f"{fmt_bytes(full_bytes)} (with a working copy) > budget {fmt_bytes(budget)}: "
            "computed only delta_{c,c} and the class-level means delta_c (G_0, G_1); skipped "
            "class_means, K, K2, G_cm, G_2 and within_operator(). Raise max_bytes to get them"
        )
        skipped.append(msg)
        warnings.warn(msg, NumericalWarning, stacklevel=2)

    start = time.perf_counter()
    S, counts_t, loss_sum, nvjp = _stream_means(G, C, full, method, chunk_size, buffer_rows)
    seconds = time.perf_counter() - start
    counts = counts_t.cpu().numpy().astype(np.int64)
    if int(counts.sum()) != N:  # pragma: no cover - DataSource yields what it validated
        raise DataError(f"counted {int(counts.sum())} samples by class but the data hold {N}")
    empty = np.flatnonzero(counts == 0)
    if empty.size and empty_classes == "error":
        raise DataError(
            f"classes {empty.tolist()} have no samples (counts {counts.tolist()}); their class "
            "means are undefined. Pass empty_classes='zero' to give them prior 0 and zero "
            "means, or evaluate on data covering every class"
        )

    denom = torch.as_tensor(np.maximum(counts, 1), dtype=torch.float64, device=S.device)
    means = S.div_(denom[:, None, None])  # in place: S is not needed any more
    priors = counts / N
    sw = np.sqrt(priors)
    if full:
        idx = torch.arange(C, device=S.device)
        diag = means[idx, idx]
        level = (means.sum(1) - diag) / (C - 1)
        M = means.reshape(C * C, P)
        wk = np.repeat(sw, C)
        # the one P-sized product: K = diag(w) (M M^T) diag(w); the parts' Grams follow exactly
        K = (M @ M.T).cpu().numpy() * np.outer(wk, wk)
        K = 0.5 * (K + K.T)
        maps = _gram_maps(C)
        K0, K1, K2 = (maps[p] @ K @ maps[p].T for p in ("G_0", "G_1", "G_2"))
    else:
        diag, level = means[:, 0], means[:, 1]
        K = K2 = None
        A01 = torch.cat([diag, level])  # (2C, P)
        B = (A01 @ A01.T).cpu().numpy()
        K0 = B[:C, :C] * np.outer(sw, sw)
        K1 = (C - 1) * B[C:, C:] * np.outer(sw, sw)

    result = ClassStructure(
        class_means=means.cpu().numpy() if full else None,  # no copy on the CPU
        class_level_means=level.cpu().numpy(),
        self_class_means=diag.cpu().numpy(),
        priors=priors.astype(np.float64),
        class_counts=counts,
        num_classes=int(C),
        num_samples=int(N),
        num_params=int(P),
        K=K,
        K0=K0,
        K1=K1,
        K2=K2,
        loss_value=float(loss_sum) / N,
        num_vjps=int(nvjp),
        seconds=float(seconds),
        skipped=skipped,
        metadata={
            **G.metadata,
            "method": method,
            "buffer_rows": buffer_rows,
            "empty_classes": empty_classes,
            "accumulation_dtype": "float64",
        },
    )
    result._ggn = G
    result._inputs = {
        "model": model, "data": data, "loss": loss, "params": params, "device": device,
        "dtype": dtype,
    }
    return result


# =============================================================================== Fort & Ganguli
@dataclass
class FortGanguli(Result):
    r"""Fort & Ganguli (2019) measurements: gradient confinement, eigenspace overlaps, cosines.

    Attributes
    ----------
    ks : numpy.ndarray
        The subspace sizes k, ascending.
    eigenvalues_H, eigenvalues_G : numpy.ndarray
        Top ``max(ks, C)`` eigenvalues of H and G (Lanczos), descending.
    predicted_top : numpy.ndarray
        The prediction to set against them: the top C eigenvalues of
        :math:`G_{\rm cm}` (of :math:`G_1` if the C^2 means were skipped).
    predicted_level1 : numpy.ndarray
        eig(:math:`G_1`), the class-level outliers.
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
    metadata : dict
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
    metadata: dict = field(default_factory=dict)

    def summary(self) -> Summary:
        """A text/HTML table of the measurements.

        Returns
        -------
        Summary
        """
        C = self.num_classes
        rows: list[tuple[str, str]] = [
            ("top eig H", _fmt_values(self.eigenvalues_H, 12)),
            ("top eig G", _fmt_values(self.eigenvalues_G, 12)),
            (f"predicted top {C} (G_cm)", _fmt_values(self.predicted_top, 12)),
            ("eig G_1 (level 1)", _fmt_values(self.predicted_level1, 12)),
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
        notes = [
            "Confinement f_k = ||U_k^T g||^2 / ||g||^2 (Gur-Ari et al. 2018) with U_k the top-k "
            "Lanczos eigenvectors; it depends on the optimiser: record it (THEORY.md 6).",
            f"Cosines from {self.num_cosine_samples} subsampled inputs (i != j pairs).",
        ]
        return Summary("Fort & Ganguli measurements", rows, notes)


def _subsample(G: Any, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples drawn uniformly without replacement, through the one data iterator."""
    N = G.num_samples
    gen = torch.Generator().manual_seed(int(seed))
    pick = torch.zeros(N, dtype=torch.bool)
    pick[torch.randperm(N, generator=gen)[:n]] = True
    xs, ys, start = [], [], 0
    for _, x, y in G.data:
        sel = pick[start : start + x.shape[0]].to(x.device)
        start += x.shape[0]
        if bool(sel.any()):
            xs.append(x[sel])
            ys.append(y[sel])
    return torch.cat(xs), torch.cat(ys)


def _logit_cosines(
    G: Any, C: int, max_samples: int, seed: int, max_bytes: int
) -> tuple[np.ndarray, dict[str, float], int]:
    from torch.func import jacrev

    f, theta = G.function, G.function.theta
    P = theta.numel()
    item = theta.element_size()
    budget_n = max_bytes // max(C * P * item, 1)
    n = min(int(max_samples), G.num_samples, max(2, budget_n))
    if n < min(max_samples, G.num_samples):
        warnings.warn(
            f"logit-gradient cosines: {min(max_samples, G.num_samples)} samples x C x P would "
            f"exceed {fmt_bytes(max_bytes)}; using {n} (budget allows {budget_n})",
            NumericalWarning,
            stacklevel=3,
        )
    x, y = _subsample(G, n, seed)
    J = vmap(jacrev(lambda t, xi: f(t, xi.unsqueeze(0)).squeeze(0)), in_dims=(None, 0))(theta, x)
    J = J.reshape(n * C, P).to(torch.float64)  # rows (i, k)
    J = J / torch.linalg.vector_norm(J, dim=1, keepdim=True).clamp_min(1e-300)
    cos = (J @ J.T).reshape(n, C, n, C).cpu().numpy()
    yy = y.cpu().numpy()
    not_same = ~np.eye(n, dtype=bool)
    groups = np.full((C, C, C, C), np.nan)
    sums = {k: [0.0, 0] for k in ("same_logit_same_class", "same_logit_diff_class",
                                  "diff_logit_same_class", "diff_logit_diff_class")}
    for a in range(C):
        ia = yy == a
        for b in range(C):
            ib = yy == b
            mask = np.outer(ia, ib) & not_same
            if not mask.any():
                continue
            sub = cos.transpose(1, 3, 0, 2)[:, :, mask]  # (C, C, pairs)
            groups[:, a, :, b] = sub.mean(-1)
            for k in range(C):
                for k2 in range(C):
                    key = ("same_logit" if k == k2 else "diff_logit") + (
                        "_same_class" if a == b else "_diff_class"
                    )
                    sums[key][0] += float(sub[k, k2].sum())
                    sums[key][1] += int(sub.shape[-1])
    stats = {k: (s / m if m else float("nan")) for k, (s, m) in sums.items()}
    return groups, stats, n


def _top_vectors(op: CurvatureOperator, k: int, tol: float, seed: int) -> tuple[Any, Any, Any]:
    from .spectra import lanczos

    spec = lanczos(op, k, "largest", tol=tol, seed=seed, return_eigenvectors=True)
    order = np.argsort(spec.eigenvalues)[::-1]
    U = np.asarray(spec.eigenvectors)[:, order]
    return spec.eigenvalues[order], U, spec


def fort_ganguli(
    structure: ClassStructure,
    *,
    ks: Any = None,
    tol: float = 1e-6,
    seed: int = 0,
    max_samples: int = 64,
    max_bytes: int = 2**30,
) -> FortGanguli:
    r"""Fort & Ganguli (2019) measurements on the model and data of a :class:`ClassStructure`.

    * Gradient confinement (Gur-Ari et al. 2018; THEORY.md section 6): the
      fraction :math:`f_k(g) = \|U_k^\top g\|^2/\|g\|^2` of the full-batch loss
      gradient, and of each mini-batch gradient (the data's own batches), in
      the top-k eigenspace of H and of G, for each k in ``ks``.
    * Overlaps :math:`U^\top V` between the top-C eigenvectors of H, of G and
      of :math:`G_{\rm cm}`, and subspace overlaps :math:`\|U^\top Q\|_F^2/C`
      (including Q = an orthonormal basis of span :math:`\{\delta_c\}`).
    * Cosine similarities of per-sample logit gradients
      :math:`\nabla_\theta z_k(x_i)` within vs between classes and logits, on
      a random subsample of ``max_samples`` inputs (per-sample Jacobians by
      ``vmap(jacrev)`` on the subsample only).

    Parameters
    ----------
    structure : ClassStructure
        From :func:`class_structure` (not a loaded one: products are needed).
    ks : sequence of int, optional
        Subspace sizes; default ``{1, C-1, C, 2C}`` (capped at P).
    tol : float, default 1e-6
        Lanczos tolerance for the top eigenvectors of H and G.
    seed : int, default 0
        Seed of Lanczos and of the subsample.
    max_samples : int, default 64
        Subsample size for the cosines (memory: samples x C x P numbers).
    max_bytes : int, default 1 GiB
        Budget for the per-sample Jacobians of the subsample; the subsample is
        shrunk (with a :class:`~gn_theory.NumericalWarning`) to fit.

    Returns
    -------
    FortGanguli

    Raises
    ------
    InvalidInputError
        A loaded structure, the C^2 means skipped, or bad ``ks``.

    References
    ----------
    Fort & Ganguli, arXiv:1910.05929; Gur-Ari, Roberts & Dyer, arXiv:1812.04754.
    """
    from torch.func import grad

    from .operators import hessian_operator

    G = structure._need_ggn("fort_ganguli()")
    inp = structure._inputs
    C, P = structure.num_classes, structure.num_params
    if ks is None:
        ks = sorted({1, C - 1, C, 2 * C})
    ks = sorted({_checks.check_positive_int("ks", int(k)) for k in ks})
    ks = [k for k in ks if k <= P]
    if not ks:
        raise InvalidInputError(f"no k in ks fits the dimension P = {P}")
    kmax = max(max(ks), C)
    kmax = min(kmax, P)
    H = hessian_operator(
        inp["model"], inp["data"], inp["loss"], params=inp["params"], device=inp["device"],
        dtype=inp["dtype"],
    )
    eH, UH, sH = _top_vectors(H, kmax, tol, seed)
    eG, UG, sG = _top_vectors(G, kmax, tol, seed)

    def frac(g: np.ndarray, U: np.ndarray) -> np.ndarray:
        n2 = float(g @ g)
        proj = (U.T @ g) ** 2
        return np.array([float(proj[:k].sum()) / n2 if n2 > 0 else float("nan") for k in ks])

    g_full = G.gradient().double().cpu().numpy()
    f, loss, theta = G.function, G.loss, G.function.theta
    fb_H, fb_G, sizes = [], [], []
    for _, x, y in G.data:
        gb = (grad(lambda t: loss.sum(f(t, x), y))(theta) / x.shape[0]).double().cpu().numpy()
        fb_H.append(frac(gb, UH))
        fb_G.append(frac(gb, UG))
        sizes.append(x.shape[0])

    cm_part = "G_cm" if structure.class_means is not None else "G_1"
    Ucm = structure.eigenvectors(cm_part)[:, :C]
    Q, _ = np.linalg.qr(structure.class_level_means.T)
    UHc, UGc = UH[:, :C], UG[:, :C]

    def sub(U: np.ndarray, V: np.ndarray) -> float:
        return float(np.linalg.norm(U.T @ V) ** 2 / C)

    overlaps = {
        "H-G": sub(UHc, UGc),
        "H-G_cm": sub(UHc, Ucm),
        "G-G_cm": sub(UGc, Ucm),
        "H-span(delta_c)": sub(UHc, Q),
        "G-span(delta_c)": sub(UGc, Q),
    }
    groups, stats, ncos = _logit_cosines(G, C, max_samples, seed, max_bytes)
    return FortGanguli(
        ks=np.asarray(ks, dtype=np.int64),
        eigenvalues_H=eH,
        eigenvalues_G=eG,
        predicted_top=structure.eigenvalues(cm_part)[:C],
        predicted_level1=structure.eigenvalues("G_1"),
        confinement_full_H=frac(g_full, UH),
        confinement_full_G=frac(g_full, UG),
        confinement_batches_H=np.array(fb_H),
        confinement_batches_G=np.array(fb_G),
        batch_sizes=np.asarray(sizes, dtype=np.int64),
        overlap_H_G=UHc.T @ UGc,
        overlap_H_cm=UHc.T @ Ucm,
        overlap_G_cm=UGc.T @ Ucm,
        subspace_overlaps=overlaps,
        cosine_groups=groups,
        cosine_stats=stats,
        num_cosine_samples=int(ncos),
        num_classes=int(C),
        metadata={
            "tol": tol,
            "seed": seed,
            "lanczos_H": {"matvecs": sH.matvecs, "converged": sH.num_converged},
            "lanczos_G": {"matvecs": sG.matvecs, "converged": sG.num_converged},
            "kmax": kmax,
        },
    )
