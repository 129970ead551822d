"""Private torch-free validators shared by the public entry points (one message style).

Tensor validators live in :mod:`gn_theory._checks_torch`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .exceptions import InvalidInputError

__all__: list[str] = []


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise InvalidInputError."""
    if value not in choices:
        raise InvalidInputError(
            f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}"
        )
    return value


def check_positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` as int if it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidInputError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}; got {value}")
    return int(value)


def check_nonneg_int(name: str, value: Any) -> int:
    """Return ``value`` as int if it is an integer >= 0."""
    return check_positive_int(name, value, minimum=0)


def check_alpha(alpha: Any) -> float:
    """Return ``alpha`` as float if it lies in (0, 1) (a significance level)."""
    try:
        a = float(alpha)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"alpha must be a number in (0, 1); got {alpha!r}") from exc
    if not 0.0 < a < 1.0:
        raise InvalidInputError(f"alpha must be in (0, 1); got {alpha!r}")
    return a


def check_seed(seed: Any) -> int:
    """Return ``seed`` as an int in [0, 2**63); ``None`` draws one from fresh OS entropy.

    The one seed rule of the package: torch generators (``torch.Generator().manual_seed``)
    and numpy generators (``numpy.random.default_rng``) are both seeded with the int
    returned here, and results record it so that a run can be replayed.
    """
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InvalidInputError(f"seed must be an integer or None; got {seed!r}")
    if not 0 <= int(seed) < 2**63:
        raise InvalidInputError(f"seed must be an integer in [0, 2**63); got {seed}")
    return int(seed)
