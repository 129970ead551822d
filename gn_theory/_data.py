"""The one place where gn_theory iterates over data.

Every full-data quantity (operator products, class means, gradients) is a sum
over batches divided by the total number of samples ``N``. :class:`DataSource`
normalises what users pass as ``data`` (an ``(inputs, targets)`` pair or any
re-iterable of such pairs, e.g. a ``DataLoader``), moves each batch to the
compute device/dtype, and validates it once. :func:`reduce_sum` is the single
reduction point, so that a data-parallel run only has to all-reduce there.
:class:`DataChecksum` fingerprints the samples during a pass that is made anyway
(the operators' validation pass), so provenance costs no extra read of the data.
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


#: Modulus of the per-sample hashes: a prime below 2**31, so sums of hashes and of
#: their squares (reduced) stay exact in int64 for up to 2**32 samples.
_PRIME = 2**31 - 1
#: Bytes of a sample hashed per vectorised step (bounds the int64 working copy).
_CHUNK_BYTES = 2**14


def _row_hashes(t: torch.Tensor) -> torch.Tensor:
    """Hash of the bytes of each sample (row) of ``t``: int64 of shape (b,) in [0, _PRIME).

    ``h = sum_j w_j byte_j mod p`` with position weights ``w_j`` in [1, 65521]: a change
    of one byte always changes the hash, and the weights make it depend on where in
    the sample a byte sits. Computed on ``t``'s device, no host copy.
    """
    b = t.shape[0]
    raw = t.detach()
    if raw.dtype == torch.bool:
        raw = raw.to(torch.uint8)
    raw = raw.contiguous().reshape(b, -1)
    octets = raw.view(torch.uint8)  # (b, bytes per sample)
    h = torch.zeros(b, dtype=torch.int64, device=t.device)
    for start in range(0, octets.shape[1], _CHUNK_BYTES):
        block = octets[:, start : start + _CHUNK_BYTES].to(torch.int64)
        j = torch.arange(start, start + block.shape[1], dtype=torch.int64, device=t.device)
        w = (j * 40503 + 12345) % 65521 + 1
        h = (h + (block * w).sum(dim=1)) % _PRIME
    return h


class DataChecksum:
    """An order-invariant checksum of the (inputs, targets) samples seen in one pass.

    Each sample gets a hash of its input and target bytes; the checksum is the
    sample count, the sum of the hashes and the sum of their squares (mod a prime),
    plus the per-sample shapes and dtypes. It does not depend on how the samples
    are batched or ordered (the mean-loss operators do not either), and changes
    when any byte of any sample does. It is cheap next to a forward pass: a few
    integer operations per input byte, on the batch's device.
    """

    def __init__(self) -> None:
        self.num_samples = 0
        self._sum: torch.Tensor | None = None
        self._sum_sq: torch.Tensor | None = None
        self._layouts: set[str] = set()

    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add the samples of one batch (``x`` and ``y`` share the leading dimension)."""
        h = (_row_hashes(x) * 65537 + _row_hashes(y)) % _PRIME
        s, s2 = h.sum(), (h * h % _PRIME).sum()
        self._sum = s if self._sum is None else self._sum + s
        self._sum_sq = s2 if self._sum_sq is None else self._sum_sq + s2
        self.num_samples += int(x.shape[0])
        self._layouts.add(
            f"{tuple(x.shape[1:])}:{x.dtype}|{tuple(y.shape[1:])}:{y.dtype}".replace("torch.", "")
        )

    def value(self) -> dict[str, Any]:
        """The checksum as JSON-able values (reduced across processes)."""
        total = 0 if self._sum is None else int(reduce_sum(self._sum))
        total_sq = 0 if self._sum_sq is None else int(reduce_sum(self._sum_sq))
        return {
            "num_samples": self.num_samples,
            "sum": total,
            "sum_sq": total_sq,
            "layouts": sorted(self._layouts),
        }


def reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a per-process partial result across processes.

    This is the single reduction point of every full-data quantity. In a
    single process it returns ``t`` unchanged. Under ``torch.distributed``
    (not yet enabled by the public API) it would all-reduce here.
    """
    return t
