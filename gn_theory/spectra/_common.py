"""Plumbing shared by the spectral estimators (one copy each).

The operator description stored in a result's ``settings``, the torch
generator built from the package's one seed rule, the progress bar, the basis
precision and the symmetry tolerances.
"""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm

from .._checks import check_seed
from ..exceptions import InvalidInputError
from ..operators import CurvatureOperator

__all__: list[str] = []

#: Relative asymmetry accepted by default, by operator precision.
SYMMETRY_RTOL = {torch.float64: 1e-8, torch.float32: 1e-3, torch.float16: 5e-2}


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float64`` -> ``"float64"``."""
    return str(dtype).replace("torch.", "")


def operator_settings(op: CurvatureOperator) -> dict[str, Any]:
    """The operator's description (kind, model, loss, ...) plus P, dtype and device."""
    settings = op.settings  # a copy of the operator's metadata (with its fingerprint)
    settings.setdefault("kind", op.kind)
    settings["num_params"] = op.num_params
    settings["dtype"] = dtype_name(op.torch_dtype)
    settings["device"] = str(op.device)
    return settings


def generator(seed: int | None) -> tuple[torch.Generator, int]:
    """A CPU torch generator seeded by :func:`gn_theory._checks.check_seed`, and the seed."""
    seed = check_seed(seed)
    return torch.Generator().manual_seed(seed), seed


def progress_bar(progress: bool, total: int, desc: str) -> Any:
    """A tqdm bar counting products, or ``None`` when ``progress`` is false."""
    if not progress:
        return None
    return tqdm(total=total, desc=desc, unit="matvec")


def basis_dtype(op: CurvatureOperator, dtype: torch.dtype | None) -> torch.dtype:
    """The Krylov basis precision: ``dtype`` (float32 or float64) or the operator's."""
    if dtype is None:
        return op.torch_dtype
    if dtype not in (torch.float32, torch.float64):
        raise InvalidInputError(f"dtype must be torch.float32 or torch.float64; got {dtype}")
    return dtype
