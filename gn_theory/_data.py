"""The one place where gn_theory iterates over data.

Every full-data quantity (operator products, class means, gradients) is a sum
over batches divided by the total number of samples ``N``. :class:`DataSource`
normalises what users pass as ``data`` (an ``(inputs, targets)`` pair or any
re-iterable of such pairs, e.g. a ``DataLoader``), moves each batch to the
compute device/dtype, and checks every pass: :class:`DataChecksum` fingerprints the
samples on the way (sample count and an order-invariant checksum, a few integer
operations per input byte on the device), the first complete pass (the operators'
validation pass) becomes the reference, and a later pass that saw other samples
raises :class:`~gn_theory.DataError` with the likely cause (one-shot iterables,
shuffling with ``drop_last``, sampling with replacement, random augmentation, data
changed after the build), never a product of other data. Passes are bounded
(``len()``, else ``max_batches``), so an endless stream is refused, never read
forever. :func:`reduce_sum` is the single reduction point: under ``torch.distributed``
it all-reduces over the ranks (:mod:`gn_theory.distributed`), each reading its own shard;
later passes are checked per rank against that rank's first pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from .distributed import all_gather_union, all_reduce_sum
from .exceptions import DataError

__all__: list[str] = []


#: Default bound on the batches of one pass over data without a ``len()``: a stream that
#: has not ended by then is refused as endless (``max_batches=`` of the operators).
MAX_UNSIZED_BATCHES: int = 10_000


def _is_pair(obj: Any) -> bool:
    return (
        isinstance(obj, (tuple, list))
        and len(obj) == 2
        and isinstance(obj[0], torch.Tensor)
        and isinstance(obj[1], torch.Tensor)
    )


_ONE_SHOT = (
    "operators read the data once per product, so pass a list of batches, a DataLoader "
    "over a map-style Dataset, or an iterable whose __iter__ starts a new pass each time"
)


def _one_shot_reason(data: Any) -> str | None:
    """Why ``data`` cannot be read twice (checked without consuming it), or None."""
    if isinstance(data, torch.utils.data.DataLoader):
        ds = data.dataset
        if isinstance(ds, torch.utils.data.IterableDataset) and iter(ds) is iter(ds):
            return (
                f"data is a DataLoader over a one-shot {type(ds).__name__}: its __iter__ "
                "returns the same iterator every time (a wrapped generator?)"
            )
        return None  # a DataLoader's own __iter__ starts a new pass (and maybe workers)
    if iter(data) is data:
        return "data is a one-shot iterator (e.g. a generator)"
    if iter(data) is iter(data):
        return (
            f"data ({type(data).__name__}) is a one-shot iterable: its __iter__ returns the "
            "same iterator every time (a shared generator?)"
        )
    return None


class DataSource:
    """A re-iterable view of the user's data on a given device and dtype, checked every pass.

    Parameters
    ----------
    data : tuple of (Tensor, Tensor) or iterable of such tuples
        One full batch, or a re-iterable of batches (list, ``DataLoader``).
    device : torch.device
        Device that batches are moved to.
    dtype : torch.dtype
        Floating dtype that floating-point inputs (and float targets) are cast to.
    max_batches : int, optional
        Bound on the batches of one pass over data without ``len()`` (default
        :data:`MAX_UNSIZED_BATCHES`); data with a ``len()`` may yield at most that
        many batches.

    Attributes
    ----------
    reference : DataChecksum or None
        The checksum of the first complete pass (the operators' validation pass).
        Every later complete pass is compared with it, and a pass that differs
        (other samples, another count) raises :class:`~gn_theory.DataError` naming
        the likely cause, so a product is never computed from other data than the
        operator was built from.

    Raises
    ------
    DataError
        If ``data`` is neither a pair of tensors nor a re-iterable of pairs, or if it
        is one-shot (a generator, an object whose ``__iter__`` hands out one shared
        iterator, a DataLoader over such an IterableDataset).
    """

    def __init__(
        self, data: Any, device: torch.device, dtype: torch.dtype, *, max_batches: int | None = None
    ) -> None:
        if _is_pair(data):
            self._batches: Any = [tuple(data)]
        elif isinstance(data, torch.Tensor):
            raise DataError(
                "data must be an (inputs, targets) pair of tensors or an iterable of such "
                "pairs; got a single tensor (the targets are missing)"
            )
        elif isinstance(data, Iterable):
            if not isinstance(data, (list, tuple)):
                reason = _one_shot_reason(data)
                if reason is not None:
                    raise DataError(f"{reason}; {_ONE_SHOT}")
            self._batches = data
        else:
            raise DataError(
                "data must be an (inputs, targets) pair of tensors or an iterable of such "
                f"pairs (e.g. a DataLoader); got {type(data).__name__}"
            )
        self.device = device
        self.dtype = dtype
        self.max_batches = MAX_UNSIZED_BATCHES if max_batches is None else int(max_batches)
        self.num_samples: int | None = None
        self.reference: DataChecksum | None = None
        self._signature: PassSignature | None = None

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
        return self._move(index, "inputs", x), self._move(index, "targets", y)

    def _move(self, index: int, what: str, t: torch.Tensor) -> torch.Tensor:
        t = t.detach()  # products are not differentiated through the data
        try:
            if t.is_floating_point():
                return t.to(device=self.device, dtype=self.dtype, non_blocking=True)
            return t.to(device=self.device, non_blocking=True)
        except Exception as exc:  # e.g. meta tensors, a device this process cannot reach
            text = " ".join(str(exc).split())
            raise DataError(
                f"batch {index}: cannot move the {what} of shape {tuple(t.shape)} and dtype "
                f"{t.dtype} from {t.device} to {self.device}: {type(exc).__name__}: {text}"
            ) from exc

    def _batch_limit(self) -> tuple[int, str]:
        try:
            n = len(self._batches)
        except TypeError:
            return self.max_batches, (
                f"the data has no len() and yielded more than max_batches={self.max_batches} "
                "batches without ending: an endless stream (an IterableDataset that never "
                "stops?) has no mean loss. Pass finite data (e.g. a list of batches taken with "
                "itertools.islice), give it a __len__, or raise max_batches=..."
            )
        return n, (
            f"the data yielded more batches than its len() = {n}: an endless or "
            "mis-sized iterable has no mean loss; make len() the number of batches"
        )

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """Yield ``(batch_index, inputs, targets)`` on the compute device.

        The first complete pass computes the exact :class:`DataChecksum` (the
        fingerprint, :attr:`reference`) and a :class:`PassSignature`; every later
        pass computes only the cheap signature and is compared with the first.
        """
        first = self.reference is None
        checksum = DataChecksum() if first else None
        signature = PassSignature()
        limit, too_many = self._batch_limit()
        ref = self._signature
        for index, batch in enumerate(self._batches):
            if index >= limit:
                raise DataError(too_many)
            x, y = self._convert(index, batch)
            if x.shape[0] == 0:
                continue
            if checksum is not None:
                checksum.update(x, y)
            signature.update(x, y)
            if ref is not None and signature.num_samples > ref.num_samples:
                raise DataError(
                    f"the data held {ref.num_samples} samples when the operator was built but "
                    f"at least {signature.num_samples} on this pass: {_GREW}"
                )
            yield index, x, y
        if ref is None:
            self.reference = checksum
            self._signature = signature
        else:
            _compare(ref, signature)


_GREW = (
    "data appended or removed after the build, or a sampler that draws another number of "
    "samples each pass. The operator is the mean over the samples it was built from; build a "
    "new operator for new data"
)


def _compare(ref: PassSignature, now: PassSignature) -> None:
    """Raise DataError, naming the likely cause, if a pass saw other samples than ``ref``."""
    if now.num_samples == 0 and ref.num_samples > 0:
        raise DataError(
            f"the data yielded 0 samples on this pass but {ref.num_samples} when the operator "
            "was built: it is a one-shot iterable (a generator, or an object whose __iter__ "
            "drains a shared iterator, or a DataLoader over an IterableDataset wrapping a "
            f"generator) that the constructor's validation pass used up; {_ONE_SHOT}"
        )
    if now.num_samples != ref.num_samples:
        raise DataError(
            f"the data held {ref.num_samples} samples when the operator was built but "
            f"{now.num_samples} on this pass: {_GREW}"
        )
    if not now.matches(ref):
        raise DataError(
            f"the samples of this pass differ from the samples the operator was built from "
            f"(the same count, {now.num_samples}, but other values): a DataLoader with "
            "shuffle=True and drop_last=True, a sampler with replacement, random augmentation "
            "in the dataset, or data modified in place after the build. The operator is the "
            "mean loss over one fixed set of samples: use drop_last=False (shuffling alone is "
            "fine), sample without replacement, no augmentation, or materialise one draw "
            "(data = list(loader))"
        )


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
        zero = torch.zeros((), dtype=torch.int64)
        sums = torch.stack([
            zero if self._sum is None else self._sum.cpu(),
            zero if self._sum_sq is None else self._sum_sq.cpu(),
            torch.tensor(self.num_samples, dtype=torch.int64),
        ])
        total, total_sq, count = (int(v) for v in reduce_sum(sums))  # one collective
        return {
            "num_samples": count,
            "sum": total,
            "sum_sq": total_sq,
            "layouts": sorted(all_gather_union(self._layouts)),
        }


class PassSignature:
    """A cheap, order-invariant signature of one pass, to check every pass against the first.

    The sample count and per-sample layouts; exact hashes (as in :class:`DataChecksum`)
    of the targets and of integer inputs (token ids, both small); and for floating
    inputs, the sums over samples of two fixed random projections of each sample and of
    their squares, in float64. A projection costs two multiply-adds per input entry
    (one small matrix product), against the exact checksum's integer operations per
    byte, so checking a pass adds a few percent of a forward pass at most. Float sums
    depend on the order of summation only by round-off, so they are compared with a
    tolerance of 1000 units of round-off of the inputs' dtype: shuffling alone passes;
    other samples (``drop_last`` with shuffling, sampling with replacement, random
    augmentation, data edited in place) do not.
    """

    _directions: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}

    def __init__(self) -> None:
        self.num_samples = 0
        self._layouts: set[str] = set()
        self._exact: torch.Tensor | None = None
        self._proj: torch.Tensor | None = None  # (3, 2): sum h, sum h^2, sum |h|
        self._eps = 0.0

    @classmethod
    def _basis(cls, dim: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        key = (dim, dtype, device)
        if key not in cls._directions:
            g = torch.Generator(device="cpu").manual_seed(dim)
            cls._directions[key] = torch.randn(dim, 2, generator=g).to(device=device, dtype=dtype)
        return cls._directions[key]

    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add the samples of one batch."""
        b = x.shape[0]
        h = _row_hashes(y)
        if not x.is_floating_point():
            h = (h * 65537 + _row_hashes(x)) % _PRIME
        s = h.sum()
        self._exact = s if self._exact is None else self._exact + s
        if x.is_floating_point():
            flat = x.reshape(b, -1)
            if flat.dtype not in (torch.float32, torch.float64):
                flat = flat.float()  # half precision: project in float32
            proj = (flat @ self._basis(flat.shape[1], flat.dtype, flat.device)).double()
            stats = torch.stack([proj.sum(0), (proj * proj).sum(0), proj.abs().sum(0)])
            self._proj = stats if self._proj is None else self._proj + stats
            self._eps = float(torch.finfo(flat.dtype).eps)
        self.num_samples += int(b)
        self._layouts.add(
            f"{tuple(x.shape[1:])}:{x.dtype}|{tuple(y.shape[1:])}:{y.dtype}".replace("torch.", "")
        )

    def matches(self, other: PassSignature) -> bool:
        """Whether two passes saw the same samples (up to order and round-off)."""
        if self.num_samples != other.num_samples or self._layouts != other._layouts:
            return False
        # local on purpose: each rank checks its own shard against its own first pass
        # (stricter than a check of the sums, and no collective that a rank could skip)
        a = None if self._exact is None else int(self._exact)
        b = None if other._exact is None else int(other._exact)
        if a != b or (self._proj is None) != (other._proj is None):
            return False
        if self._proj is None or other._proj is None:
            return True
        p, q = self._proj.cpu(), other._proj.cpu()
        tol = 1000 * max(self._eps, other._eps)
        scale_sum = torch.maximum(p[2], q[2]).clamp_min(1e-300)
        scale_sq = torch.maximum(p[1], q[1]).clamp_min(1e-300)
        return bool(((p[0] - q[0]).abs() <= tol * scale_sum).all()) and bool(
            ((p[1] - q[1]).abs() <= tol * scale_sq).all()
        )


def reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a per-process partial result across processes.

    This is the single reduction point of every full-data quantity. In a
    single process it returns ``t`` unchanged; when a ``torch.distributed``
    process group is initialised it all-reduces (sum) over the ranks, each of
    which read its own shard (:func:`gn_theory.distributed.all_reduce_sum`).
    """
    return all_reduce_sum(t)
