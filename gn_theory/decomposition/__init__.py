r"""Class structure of the Gauss-Newton matrix: class means, cross-class and within-class parts.

For C-class softmax cross-entropy the output Hessian factorises as
:math:`\mathrm{diag}(p) - pp^\top = \sum_{c'} p_{c'}(e_{c'} - p)(e_{c'} - p)^\top`, so the
generalized Gauss-Newton matrix is a second moment of :math:`NC` vectors (docs/theory.md section 2.1),

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
matrix is ever formed. The within-class part is matrix-free: :math:`G_{\rm w} v = Gv - A(A^\top v)`
(:func:`within_class_operator`).

Prediction (Papyan 2019, 2020): C outliers of the spectrum of G (and of H when the residual
term R is small) near the eigenvalues of :math:`G_1`, up to C(C-1) smaller "mini-outliers"
from the rest of :math:`G_{\rm cm}`, and a bulk from :math:`G_{\rm w}`.

Layout: measurement here (torch), results in :mod:`gn_theory.results` (numpy only).

* :func:`class_structure` (``class_structure.py``, streaming pass in ``_stream.py``)
  measures a :class:`~gn_theory.results.ClassStructure`: data only, every method of
  which works after ``load()`` without torch;
* :func:`within_class_operator`, :func:`part_operator` (``gn_theory/operators/lowrank.py``)
  and :func:`identity_error` take the GGN operator and a structure explicitly;
* :func:`fort_ganguli` (``fort_ganguli.py``) takes the model, data, H, G and a structure
  and returns a :class:`~gn_theory.results.FortGanguli`;
* :func:`measure_outlier_inputs` (``outlier_inputs.py``) makes the products with G that
  outlier prediction needs and returns an :class:`~gn_theory.results.OutlierInputs`.

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

from ..operators.lowrank import (
    LowRankOperator,
    WithinClassOperator,
    part_operator,
    within_class_operator,
)
from ..results.structure import PARTS, ClassStructure, FortGanguli, OutlierInputs
from .class_structure import CLASS_MEANS_MEMORY_BUDGET, class_structure, identity_error
from .fort_ganguli import fort_ganguli
from .outlier_inputs import measure_outlier_inputs

__all__ = [
    # measurement
    "class_structure",
    "fort_ganguli",
    "measure_outlier_inputs",
    # products with G, given the GGN operator and a class structure
    "within_class_operator",
    "part_operator",
    "identity_error",
    "WithinClassOperator",
    "LowRankOperator",
    # results (defined in gn_theory.results, torch-free)
    "ClassStructure",
    "FortGanguli",
    "OutlierInputs",
    # constants
    "PARTS",
    "CLASS_MEANS_MEMORY_BUDGET",
]
