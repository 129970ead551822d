r"""Low-rank operators: sums of outer products, and the within-class part :math:`G - A^\top A`.

:class:`LowRankOperator` is :math:`A^\top A = \sum_j a_j a_j^\top` for r stored
rows :math:`a_j` (one product costs two r x P matrix products). The parts
:math:`G_{\rm cm}, G_0, G_1, G_2` of a :class:`~gn_theory.results.ClassStructure`
are such operators (:func:`part_operator`). The within-class part
:math:`G_{\rm w} = G - G_{\rm cm}` (docs/theory.md section 2.2) is high-rank and
matrix-free: one product with the GGN operator minus :math:`A^\top(A V)`
(:func:`within_class_operator`, :class:`WithinClassOperator`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import _checks, _checks_torch
from ..exceptions import InvalidInputError, ShapeError
from ..results import fingerprint
from ..results.structure import PARTS, ClassStructure, Part
from ._base import CurvatureOperator

__all__ = ["LowRankOperator", "WithinClassOperator", "part_operator", "within_class_operator"]


class LowRankOperator(CurvatureOperator):
    r"""The PSD operator :math:`A^\top A = \sum_j a_j a_j^\top` from r stored vectors.

    Products cost two (r x P) matrix products (:math:`4 r P k` flops for k
    columns), done in float64 whatever the operator's dtype and cast back.

    Parameters
    ----------
    factor : torch.Tensor or numpy.ndarray
        The vectors :math:`a_j` as rows, shape (r, P); kept in float64.
    device : str or torch.device, optional
        Where to keep the factor and compute (default the factor's own; the CPU
        for numpy arrays).
    dtype : torch.dtype, default torch.float64
        Dtype of the products.
    name : str, default "low_rank"
        What the operator is (``"G_cm"``, ``"G_0"``, ...), recorded as
        :attr:`part` and in ``settings``.

    Raises
    ------
    ShapeError
        If ``factor`` is not 2-D.
    DTypeError
        If ``dtype`` is not a floating torch dtype.

    Examples
    --------
    >>> import torch
    >>> A = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]], dtype=torch.float64)
    >>> op = LowRankOperator(A, name="demo")
    >>> (op @ torch.ones(3, dtype=torch.float64)).tolist()
    [1.0, 4.0, 0.0]
    """

    kind = "low_rank"

    def __init__(
        self,
        factor: torch.Tensor | np.ndarray,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float64,
        name: str = "low_rank",
    ) -> None:
        F = torch.as_tensor(factor)
        if F.ndim != 2:
            raise ShapeError(f"factor must have shape (r, P); got {tuple(F.shape)}")
        dtype = _checks_torch.check_float_dtype(dtype)
        F = F.to(device=F.device if device is None else device, dtype=torch.float64)
        super().__init__(int(F.shape[1]), F.device, dtype)
        self.factor = F
        self.part = str(name)
        self.metadata.update({"part": self.part, "rank_bound": int(F.shape[0])})

    def _matmat_torch(self, V: torch.Tensor) -> torch.Tensor:
        A = self.factor
        return (A.T @ (A @ V.to(A.dtype))).to(V.dtype)


class WithinClassOperator(CurvatureOperator):
    r"""Matrix-free within-class part :math:`G_{\rm w} = G - G_{\rm cm}`.

    ``G_w @ V`` is one product with the GGN operator minus :math:`A^\top(A V)`,
    where the C^2 rows of A are :math:`\sqrt{\pi_c}\,\delta_{c,c'}`; the
    low-rank product is done in float64. Cost: one GGN product plus
    :math:`4 C^2 P k` flops. Built by :func:`within_class_operator`; every
    :mod:`gn_theory.spectra` routine runs on it. Its product count is its own;
    the products also count on the GGN operator.

    Parameters
    ----------
    ggn : CurvatureOperator
        The GGN operator G.
    class_mean_part : LowRankOperator
        :math:`G_{\rm cm}` as a sum of outer products, on G's device and dtype.
    """

    kind = "ggn_within"

    def __init__(self, ggn: CurvatureOperator, class_mean_part: LowRankOperator) -> None:
        super().__init__(ggn.num_params, ggn.device, ggn.torch_dtype)
        self.ggn = ggn
        self.class_mean_part = class_mean_part
        self.layout = ggn.layout
        self.metadata = {**ggn.metadata, "kind": self.kind}
        self._fingerprint: dict[str, Any] | None = None

    @property
    def fingerprint(self) -> dict[str, Any] | None:
        """G's fingerprint tied to the class-mean factor (``None`` if G has none); computed once.

        A checkpoint of a run on :math:`G_{\rm w}` is then refused for G itself or for
        another class structure. ``metadata["fingerprint"]`` stays G's (provenance).
        """
        if self._fingerprint is None:
            base = self.ggn.fingerprint
            if not base:
                return None
            key = str(base.get("operator", fingerprint(base)))
            part = fingerprint(self.class_mean_part.factor.detach().cpu().numpy())
            self._fingerprint = {**base, "within_of": key, "class_mean_factor": part,
                                 "operator": fingerprint("ggn_within", key, part)}
        return dict(self._fingerprint)

    def _matmat_torch(self, V: torch.Tensor) -> torch.Tensor:
        return self.ggn._apply(V) - self.class_mean_part._apply(V)


def part_operator(
    structure: ClassStructure,
    part: Part,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
) -> LowRankOperator:
    r"""A low-rank part of G as a matrix-free :class:`LowRankOperator` (sum of outer products).

    The rows are :meth:`ClassStructure.factor`: ``part = F.T @ F``. Needs no
    model: it works on a loaded structure.

    Parameters
    ----------
    structure : ClassStructure
        From :func:`gn_theory.decomposition.class_structure` (or loaded).
    part : {"G_cm", "G_0", "G_1", "G_2"}
        Which part of G.
    device : str or torch.device, optional
        Where to compute (default the CPU).
    dtype : torch.dtype, default torch.float64
        Dtype of the products (pass the GGN operator's to combine them).

    Returns
    -------
    LowRankOperator
        Shape (P, P), rank at most the number of rows of the factor.

    Raises
    ------
    InvalidInputError
        Not a ClassStructure, an unknown part, or a part whose means the memory
        guard skipped.
    """
    if not isinstance(structure, ClassStructure):
        raise InvalidInputError(
            f"structure must be a ClassStructure; got {type(structure).__name__}"
        )
    _checks.check_choice("part", part, PARTS)
    F = structure.factor(part)
    return LowRankOperator(F, device=device, dtype=dtype, name=part)


def within_class_operator(G: CurvatureOperator, structure: ClassStructure) -> WithinClassOperator:
    r"""The within-class part :math:`G_{\rm w} = G - G_{\rm cm}` as a matrix-free operator.

    Parameters
    ----------
    G : CurvatureOperator
        The GGN operator of the model and data that ``structure`` was measured
        on (``gn_theory.ggn_operator(model, data)``).
    structure : ClassStructure
        Its class structure (measured, or loaded from disk).

    Returns
    -------
    WithinClassOperator
        A :class:`~gn_theory.operators.CurvatureOperator` on G's device and
        dtype; each product is one GGN product plus a rank-C^2 correction.

    Raises
    ------
    InvalidInputError
        ``G`` not a CurvatureOperator or ``structure`` not a ClassStructure, G's
        fingerprint showing another model state, parameter selection or data set
        (:meth:`ClassStructure.check_operator`), or the C^2 class means skipped
        by the memory guard.
    ShapeError
        If G's dimension is not the structure's number of parameters.

    Examples
    --------
    >>> import torch
    >>> from gn_theory import ggn_operator
    >>> from gn_theory.decomposition import class_structure, within_class_operator
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Linear(3, 2).double()
    >>> X, y = torch.randn(10, 3, dtype=torch.float64), torch.arange(10) % 2
    >>> cs = class_structure(model, (X, y))
    >>> Gw = within_class_operator(ggn_operator(model, (X, y)), cs)
    >>> Gw.shape
    (8, 8)
    """
    if not isinstance(structure, ClassStructure):
        raise InvalidInputError(
            f"structure must be a ClassStructure; got {type(structure).__name__}"
        )
    structure.check_operator(G)
    cm = part_operator(structure, "G_cm", device=G.device, dtype=G.torch_dtype)
    cm.layout = G.layout
    return WithinClassOperator(G, cm)
