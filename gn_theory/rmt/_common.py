"""What the modules of :mod:`gn_theory.rmt` share: the model list, parameter checks, fit constants.

Internal: the one place the rmt modules import shared private helpers from
(besides :mod:`gn_theory._checks`). Torch-free.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterator, Literal, get_args

import numpy as np

from .._checks import check_alpha, check_choice, check_positive_float

__all__: list[str] = []

#: The spiked models with closed forms (parametrisations: :mod:`gn_theory.rmt._bbp`).
BBPModel = Literal["multiplicative", "additive", "information_plus_noise", "wigner"]
BBP_MODELS: tuple[str, ...] = get_args(BBPModel)
#: The spiked models whose bulk is Marchenko-Pastur (all but Wigner's semicircle).
MPModel = Literal["multiplicative", "additive", "information_plus_noise"]
MP_MODELS: tuple[str, ...] = get_args(MPModel)

#: Eigenvalues above this multiple of the fitted upper edge are outliers (docs/theory.md 4.5 step 8).
EDGE_FACTOR = 1.05
#: Fewest nonzero bulk eigenvalues a fit accepts (more than the two parameters).
MIN_BULK = 3


def check_model(model: Any) -> str:
    """Return ``model`` if it is one of :data:`BBP_MODELS`."""
    return check_choice("model", model, BBP_MODELS)


def check_ratio_scale(ratio: Any, scale: Any) -> tuple[float, float]:
    """``(ratio, scale)`` as floats, both finite and > 0 (gamma = p/n and sigma^2)."""
    return (
        check_positive_float("ratio (gamma = p/n)", ratio),
        check_positive_float("scale (sigma^2, the population variance)", scale),
    )


class FitResultMixin:
    """What the fit results share: a default level ``alpha`` and rows of estimates with intervals.

    The class using it has ``alpha``, ``params``, ``bse`` and ``conf_int(alpha)``.
    """

    alpha: float
    params: np.ndarray
    bse: np.ndarray

    def conf_int(self, alpha: float | None = None) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _level(self, alpha: float | None) -> float:
        """``alpha`` checked, or the result's default level."""
        return self.alpha if alpha is None else check_alpha(alpha)

    def _estimate_rows(self, labels: dict[int, str], alpha: float | None) -> list[tuple[str, str]]:
        """One summary row ``value +- se (se)   95% CI [lo, hi]`` per ``{index: label}``."""
        a = self._level(alpha)
        ci = self.conf_int(a)
        pct = f"{100 * (1 - a):g}% CI"
        return [
            (label, f"{self.params[i]:.6g} +- {self.bse[i]:.3g} (se)   "
                    f"{pct} [{ci[i, 0]:.6g}, {ci[i, 1]:.6g}]")
            for i, label in labels.items()
        ]


class UnpacksMixin:
    """Tuple unpacking of the fields named in ``_unpacks`` (these results were NamedTuples)."""

    _unpacks: ClassVar[tuple[str, ...]] = ()

    def __iter__(self) -> Iterator[Any]:
        return iter(tuple(getattr(self, name) for name in self._unpacks))
