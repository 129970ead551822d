"""Data-parallel runs over ``torch.distributed``: the few collective operations gn_theory uses.

When a default process group is initialised (``torch.distributed.init_process_group``,
e.g. under ``torchrun``), every rank passes its own shard of the data to the operator
factories, and every data pass reduces its per-rank sums here: products with H, G and
R, gradients, losses, the class sums and counts of the class structure are exact means
over all samples (per-rank sums all-reduced, divided by the all-reduced sample count).
Everything else (the parameters, the Krylov basis, the tridiagonal matrices, the
results) is replicated: each rank runs the same estimator on bit-identical reduced
products and draws its start and probe vectors from the same seed, which rank 0
broadcasts (:func:`broadcast_seed`), so every rank takes the same branches and holds
the same result. Only rank 0 writes files (:func:`save_result`, :func:`is_main_process`).

Without an initialised process group every function here is the identity (one
process), and nothing is communicated. Backends: ``gloo`` (CPU tensors) and ``nccl``
(CUDA tensors); this module adds no networking of its own. See ``docs/scaling.md``.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ._checks import check_seed
from .exceptions import DataError, InvalidInputError, ResultFileError
from .results import atomic_write_bytes, fingerprint

__all__ = [
    "all_gather_objects",
    "all_gather_union",
    "all_reduce_sum",
    "any_rank",
    "barrier",
    "broadcast_seed",
    "destroy_from_env",
    "init_from_env",
    "shard_range",
    "checkpoint_key",
    "checkpoint_seed",
    "check_same",
    "is_distributed",
    "is_main_process",
    "load_checkpoint",
    "operator_key",
    "rank",
    "save_checkpoint",
    "save_result",
    "world_size",
]


def is_distributed() -> bool:
    """Whether a ``torch.distributed`` default process group is initialised (with > 1 rank).

    Returns
    -------
    bool
        ``True`` inside an initialised group of two or more processes.
    """
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank in the default group (0 without one)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes in the default group (1 without one)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Whether this process is rank 0 (the one that writes files); ``True`` without a group."""
    return rank() == 0


def _comm_device(t: torch.Tensor) -> torch.device:
    """The device the backend reduces on: CUDA for NCCL, the CPU otherwise."""
    backend = str(dist.get_backend())
    if backend == "nccl" and t.device.type != "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    if backend != "nccl" and t.device.type != "cpu":
        return torch.device("cpu")
    return t.device


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a per-process partial result over all processes (a new tensor; ``t`` is untouched).

    Every rank receives bit-identical values (the backends reduce each element in one
    order and send the result to all ranks), so estimators that branch on reduced
    values take the same branches everywhere.

    Parameters
    ----------
    t : torch.Tensor
        This rank's partial sum (any shape, dtype and device the backend can reduce;
        a CUDA tensor is reduced through the CPU under gloo and a CPU tensor through
        the current CUDA device under NCCL).

    Returns
    -------
    torch.Tensor
        The sum over ranks, on ``t``'s device and dtype; ``t`` itself in one process.
    """
    if not is_distributed():
        return t
    dev = _comm_device(t)
    buf = t.detach().to(device=dev, copy=True)
    if buf.dtype == torch.bool:
        buf = buf.to(torch.int64)
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf.to(device=t.device, dtype=t.dtype)


def broadcast_seed(seed: int | None) -> int:
    """The package's seed rule (:func:`gn_theory._checks.check_seed`), agreed by all ranks.

    Rank 0 resolves ``seed`` (``None`` draws fresh entropy) and broadcasts the int; every
    rank returns rank 0's value. Broadcasting one int (8 bytes) rather than the start or
    probe vectors (P numbers each) keeps the communication independent of the model
    size: each rank then draws the same vectors from its own CPU generator. A seed given
    as an int is broadcast too, so ranks launched with different seeds still agree.

    Parameters
    ----------
    seed : int or None
        The caller's seed.

    Returns
    -------
    int
        The seed every rank uses, in [0, 2**63).
    """
    value = check_seed(seed)
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.int64)
    buf = t.to(_comm_device(t))
    dist.broadcast(buf, src=0)
    return int(buf.cpu()[0])


def check_same(value: Any, what: str) -> None:
    """Raise on every rank if ``value`` (a picklable, comparable object) differs between ranks.

    Used for what must be replicated: the model parameters' fingerprint, the selected
    parameters, the loss, the kernel. All ranks raise together, so none is left waiting
    in a collective.

    Raises
    ------
    DataError
        Naming ``what`` and the ranks whose value differs from rank 0's.
    """
    if not is_distributed():
        return
    values: list[Any] = [None] * world_size()
    dist.all_gather_object(values, value)
    differ = [r for r, v in enumerate(values) if v != values[0]]
    if differ:
        raise DataError(
            f"data-parallel run: {what} differs between ranks (ranks {differ} differ from "
            f"rank 0: {values[differ[0]]!r} vs {values[0]!r}); every rank must hold the same "
            "model, parameters and options, only the data are sharded"
        )


def all_gather_union(items: set[str]) -> set[str]:
    """The union over ranks of a set of strings (the set itself in one process)."""
    if not is_distributed():
        return set(items)
    values: list[Any] = [None] * world_size()
    dist.all_gather_object(values, sorted(items))
    out: set[str] = set()
    for v in values:
        out.update(v)
    return out


def all_gather_objects(value: Any) -> list[Any]:
    """Every rank's ``value`` (picklable), in rank order (``[value]`` in one process)."""
    if not is_distributed():
        return [value]
    values: list[Any] = [None] * world_size()
    dist.all_gather_object(values, value)
    return values


def any_rank(flag: bool) -> list[int]:
    """The ranks on which ``flag`` is true (``[0]`` or ``[]`` in one process)."""
    if not is_distributed():
        return [0] if flag else []
    t = torch.zeros(world_size(), dtype=torch.int64)
    t[rank()] = int(bool(flag))
    t = all_reduce_sum(t)
    return [r for r in range(world_size()) if int(t[r])]


def barrier() -> None:
    """Wait for every rank (nothing in one process)."""
    if is_distributed():
        dist.barrier()


def init_from_env(device: str = "auto") -> bool:
    """Join the process group that ``torchrun`` describes in the environment, once.

    ``torchrun`` sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
    ``MASTER_PORT``; with ``WORLD_SIZE`` above 1 and no group yet, this initialises
    the default group from them (``init_method="env://"``): NCCL when the computation
    runs on CUDA (``device`` "cuda", "cuda:N", or "auto" with a GPU; each process then
    uses GPU ``LOCAL_RANK`` unless "cuda:N" names one), gloo otherwise.

    Parameters
    ----------
    device : str, default "auto"
        Where the computation runs (the CLI's ``--device``).

    Returns
    -------
    bool
        Whether this call initialised the group (the caller then destroys it,
        :func:`destroy_from_env`); ``False`` outside torchrun or if one exists already.
    """
    if not dist.is_available() or dist.is_initialized():
        return False
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda and device in ("auto", "cuda"):
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo", init_method="env://")
    return True


def destroy_from_env() -> None:
    """Leave the default process group, if one is initialised (nothing otherwise)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard_range(n: int) -> tuple[int, int]:
    """This rank's contiguous share ``[lo, hi)`` of ``n`` samples: ``n // W`` or one more.

    Rank r holds samples ``[r n // W, (r + 1) n // W)``: uneven by at most one when W
    does not divide n, in the data's order (so a sample drawn by its global position,
    as :func:`~gn_theory.decomposition.fort_ganguli`'s subsample, is the one a single
    process draws). ``(0, n)`` in one process.
    """
    w, r = world_size(), rank()
    return r * n // w, (r + 1) * n // w


def save_result(result: Any, path: str | Path) -> Path:
    """Save a result on rank 0 only; every rank returns the ``.json`` path after a barrier.

    Parameters
    ----------
    result : gn_theory.results.Result
        The result (identical on every rank in a data-parallel run).
    path : str or Path
        The stem (see :meth:`gn_theory.results.Result.save`).

    Returns
    -------
    Path
        The path of the ``.json`` file that rank 0 wrote.
    """
    out: Path | None = None
    if is_main_process():
        out = Path(result.save(path))
    barrier()
    if out is None:
        stem = Path(path)
        out = stem.with_suffix("") if stem.suffix in (".npz", ".json") else stem
        out = out.parent / (out.name + ".json")
    return out


#: Format tag of a checkpoint file.
CHECKPOINT_FORMAT = "gn_theory.checkpoint"


def operator_key(op: Any) -> str | None:
    """What a checkpoint is tied to: the operator's fingerprint, or a hash of a dense matrix.

    Model operators (and sums of them) carry :attr:`fingerprint` (model parameters,
    data, loss, kind, parameter selection); a dense matrix is hashed byte for byte.
    Any other operator has no key (``None``) and cannot be resumed.
    """
    fp = getattr(op, "fingerprint", None)
    if fp:
        return str(fp.get("operator", fingerprint(fp)))
    matrix = getattr(op, "matrix", None)
    if isinstance(matrix, torch.Tensor):
        return fingerprint(matrix.detach().cpu().numpy())
    return None


def checkpoint_key(op: Any, where: str, resume: bool) -> str | None:
    """:func:`operator_key` of ``op``; refused for ``resume`` when it has none.

    Parameters
    ----------
    op : CurvatureOperator
        The operator a checkpoint is written for.
    where : str
        The caller's name, for the message.
    resume : bool
        Whether the caller resumes (then a key is needed to tell checkpoints apart).

    Raises
    ------
    InvalidInputError
        ``resume`` and no key.
    """
    key = operator_key(op)
    if resume and key is None:
        raise InvalidInputError(
            f"{where}: resume=True needs an operator with a fingerprint (a model operator, a "
            f"sum of them, or a dense matrix); {type(op).__name__} has none, so a "
            "checkpoint could not be told apart from another operator's"
        )
    return key


def save_checkpoint(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write a checkpoint atomically on rank 0 (temporary file, fsync, rename); a barrier after.

    Rank 0 also reads it back (:func:`load_checkpoint`), so the other ranks need no
    shared file system.

    The file is one ``.npz`` (no pickles) holding ``arrays`` and a ``__meta__`` JSON text
    with :data:`CHECKPOINT_FORMAT` and ``meta`` (what the checkpoint is valid for).
    """
    if is_main_process():
        buf = io.BytesIO()
        header = json.dumps({"format": CHECKPOINT_FORMAT, **meta}, sort_keys=True)
        np.savez(buf, __meta__=np.array(header), **arrays)
        atomic_write_bytes(path, buf.getvalue())
    barrier()


def load_checkpoint(path: str | Path, meta: dict[str, Any]) -> dict[str, np.ndarray] | None:
    """Read a checkpoint written by :func:`save_checkpoint`, refused unless it matches ``meta``.

    Parameters
    ----------
    path : str or Path
        The checkpoint file; a missing file gives ``None`` (nothing to resume).
    meta : dict
        What the run needs it to be valid for (operator key, settings, seed...):
        every entry must equal the checkpoint's.

    Returns
    -------
    dict of str to numpy.ndarray or None
        The arrays.

    Raises
    ------
    ResultFileError
        A truncated or corrupt file, not a gn_theory checkpoint, or one written for
        another operator (model, data), other settings or another seed (naming which).
    """
    if is_distributed():  # rank 0 reads (no shared file system needed) and tells every rank
        box: list[Any] = [None]
        if is_main_process():
            try:
                box[0] = ("ok", _read_checkpoint(Path(path), meta))
            except ResultFileError as exc:
                box[0] = ("error", str(exc))
        dist.broadcast_object_list(box, src=0)
        kind, value = box[0]
        if kind == "error":
            raise ResultFileError(value)
        return value
    return _read_checkpoint(Path(path), meta)


def _read_checkpoint(path: Path, meta: dict[str, Any]) -> dict[str, np.ndarray] | None:
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        header = json.loads(str(arrays.pop("__meta__")))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ResultFileError(
            f"{path}: not a readable checkpoint (truncated or corrupt: {type(exc).__name__}: "
            f"{exc}); delete it to start afresh"
        ) from exc
    if header.get("format") != CHECKPOINT_FORMAT:
        raise ResultFileError(f"{path}: not a gn_theory checkpoint")
    differ = [k for k, v in meta.items() if header.get(k) != json.loads(json.dumps(v))]
    if differ:
        what = "; ".join(f"{k}: checkpoint {header.get(k)!r}, this run {meta[k]!r}" for k in differ)
        raise ResultFileError(
            f"{path}: the checkpoint was written by another run ({what}); resume only with the "
            "same operator (model, data, loss), settings and seed, or delete it"
        )
    return arrays


def checkpoint_seed(path: str | Path) -> int | None:
    """The seed recorded in a checkpoint (``None`` if there is none, or it is unreadable).

    ``resume=True`` with ``seed=None`` continues with this seed; a corrupt file is
    reported by :func:`load_checkpoint` afterwards.
    """
    seed = None
    if is_main_process():
        try:
            with np.load(path, allow_pickle=False) as z:
                seed = json.loads(str(z["__meta__"])).get("seed")
        except Exception:  # missing or corrupt: load_checkpoint names the problem
            seed = None
    if is_distributed():  # rank 0's file, told to every rank
        box: list[Any] = [seed]
        dist.broadcast_object_list(box, src=0)
        seed = box[0]
    return None if seed is None else int(seed)
