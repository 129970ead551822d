"""The one place where gn_theory iterates over data.

Every full-data quantity (operator products, class means, gradients) is a sum
over batches divided by the total number of samples ``N``. :class:`DataSource`
normalises what users pass as ``data`` (an ``(inputs, targets)`` pair or any
re-iterable of such pairs, e.g. a ``DataLoader``), moves each batch to the
compute device/dtype, and validates it once. :func:`reduce_sum` is the single
reduction point, so that a data-parallel run only has to all-reduce there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from .exceptions import DataError

__all__: list[str] = []


def _is_pair(obj: Any) -> bool:
    return (
        isinstance(obj, (tuple, list))
        and len(obj) == 2
        and isinstance(obj[0], torch.Tensor)
        and isinstance(obj[1], torch.Tensor)
    )


class DataSource:
    """A re-iterable view of the user's data on a given device and dtype.

    Parameters
    ----------
    data : tuple of (Tensor, Tensor) or iterable of such tuples
        One full batch, or a re-iterable of batches (list, ``DataLoader``).
    device : torch.device
        Device that batches are moved to.
    dtype : torch.dtype
        Floating dtype that floating-point inputs (and float targets) are cast to.

    Raises
    ------
    DataError
        If ``data`` is neither a pair of tensors nor a re-iterable of pairs, or
        if it is a one-shot iterator (a generator), which cannot be read twice.
    """

    def __init__(self, data: Any, device: torch.device, dtype: torch.dtype) -> None:
        if _is_pair(data):
            self._batches: Iterable[Any] = [tuple(data)]
        elif isinstance(data, torch.Tensor):
            raise DataError(
                "data must be an (inputs, targets) pair of tensors or an iterable of such "
                "pairs; got a single tensor (the targets are missing)"
            )
        elif isinstance(data, Iterable):
            if iter(data) is data:
                raise DataError(
                    "data is a one-shot iterator (e.g. a generator); operators read the "
                    "data once per product, so pass a list of batches or a DataLoader"
                )
            self._batches = data
        else:
            raise DataError(
                "data must be an (inputs, targets) pair of tensors or an iterable of such "
                f"pairs (e.g. a DataLoader); got {type(data).__name__}"
            )
        self.device = device
        self.dtype = dtype
        self.num_samples: int | None = None

    def _convert(self, index: int, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not _is_pair(batch):
            what = type(batch).__name__
            if isinstance(batch, (tuple, list)):
                what = f"{what} of length {len(batch)}"
            raise DataError(f"batch {index} must be an (inputs, targets) pair of tensors; got {what}")
        x, y = batch
        if x.ndim == 0 or y.ndim == 0:
            raise DataError(
                f"batch {index}: inputs and targets need a leading batch dimension; got "
                f"shapes {tuple(x.shape)} and {tuple(y.shape)}"
            )
        if x.shape[0] != y.shape[0]:
            raise DataError(
                f"batch {index}: inputs hold {x.shape[0]} samples but targets hold {y.shape[0]}"
            )
        if x.is_floating_point():
            x = x.to(device=self.device, dtype=self.dtype, non_blocking=True)
        else:
            x = x.to(device=self.device, non_blocking=True)
        if y.is_floating_point():
            y = y.to(device=self.device, dtype=self.dtype, non_blocking=True)
        else:
            y = y.to(device=self.device, non_blocking=True)
        return x, y

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """Yield ``(batch_index, inputs, targets)`` on the compute device."""
        for index, batch in enumerate(self._batches):
            x, y = self._convert(index, batch)
            if x.shape[0] == 0:
                continue
            yield index, x, y


def reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a per-process partial result across processes.

    This is the single reduction point of every full-data quantity. In a
    single process it returns ``t`` unchanged. Under ``torch.distributed``
    (not yet enabled by the public API) it would all-reduce here.
    """
    return t
