r"""Curvature operators: the Hessian H, its Gauss-Newton term G and R = H - G.

For a model :math:`f(x;\theta)` with selected parameters :math:`\theta\in\mathbb R^P`
and a loss averaged over all :math:`N` samples,

.. math::

    L(\theta) = \frac1N \sum_{i=1}^N \ell(f(x_i;\theta), y_i),\qquad
    H = \nabla^2_\theta L = G + R,

    G = \frac1N\sum_i J_i^\top \nabla^2_f\ell_i\, J_i,\qquad
    R = \frac1N\sum_i\sum_c \frac{\partial\ell_i}{\partial f_{i,c}}\,\nabla^2_\theta f_{i,c},

with :math:`J_i = \partial f(x_i;\theta)/\partial\theta`. For softmax
cross-entropy :math:`\nabla^2_f\ell = \mathrm{diag}(p) - pp^\top`; for ``"mse"``
(:math:`\ell = \tfrac12\|f-y\|^2`) it is the identity.

Every operator is a :class:`CurvatureOperator`: a
:class:`scipy.sparse.linalg.LinearOperator` whose products are computed in
torch on the operator's device. ``op @ V`` with a tensor ``V`` of shape (P,) or
(P, k) never leaves the device; ``op.matvec(x)`` with a numpy array is a thin
adapter around the same kernel.

Layout: :mod:`._base` (the interface, sums, dense and scipy wrappers),
:mod:`._model` (the data loop shared by model operators), and one module per
kind, each writing one batch kernel: :mod:`.hessian`, :mod:`.ggn`,
:mod:`.residual`.
"""

from __future__ import annotations

from ._base import DENSE_MEMORY_BUDGET, CurvatureOperator, DenseOperator, as_operator
from ._model import ModelCurvatureOperator
from .ggn import GGNOperator, ggn_operator
from .hessian import HessianOperator, hessian_operator
from .residual import ResidualOperator, residual_operator

__all__ = [
    # factories: operators of a model's mean loss over a dataset
    "hessian_operator",
    "ggn_operator",
    "residual_operator",
    # the interface, and wrappers for matrices and scipy operators
    "CurvatureOperator",
    "DenseOperator",
    "as_operator",
    "DENSE_MEMORY_BUDGET",
    # the classes the factories return (for isinstance checks and subclassing)
    "ModelCurvatureOperator",
    "HessianOperator",
    "GGNOperator",
    "ResidualOperator",
]
