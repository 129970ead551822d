"""Memory budgets: refuse an allocation that cannot fit, before making it (torch-free at import).

One rule, :func:`check_memory`, called before the few large allocations of the package
(the Krylov basis of ``lanczos``, the SLQ bases, the deflation basis of
``spectral_density``, dense exports, the class means of ``class_structure``). The budget
it checks against is, in order:

1. the call's ``max_memory=`` argument (bytes, or a string such as ``"4GiB"``);
2. a budget set for a block of calls (:func:`budget_scope`; the CLI's ``--max-memory``);
3. the environment variable ``GN_THEORY_MAX_MEMORY`` (same forms);
4. the memory available where the allocation happens: on the CPU ``MemAvailable`` of
   ``/proc/meminfo`` (lowered to what a cgroup memory limit leaves, in a container), on a
   CUDA device the free memory (``torch.cuda.mem_get_info``) plus what torch's caching
   allocator holds unused. Where neither is known, nothing is checked.

So an impossible request fails at once with a :class:`~gn_theory.MemoryBudgetError` that
names the bytes needed, the budget and the option that avoids it, instead of an
out-of-memory kill after hours. See ``docs/scaling.md`` ("Memory per rank").
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._format import fmt_bytes
from .exceptions import InvalidInputError, MemoryBudgetError

__all__ = [
    "ENV_VAR",
    "parse_memory",
    "available_memory",
    "resolve_budget",
    "check_memory",
    "budget_scope",
]

#: The environment variable holding the default budget (bytes, or e.g. ``"4GiB"``).
ENV_VAR = "GN_THEORY_MAX_MEMORY"

_UNITS = {
    "": 1, "b": 1,
    "k": 2**10, "kib": 2**10, "kb": 10**3,
    "m": 2**20, "mib": 2**20, "mb": 10**6,
    "g": 2**30, "gib": 2**30, "gb": 10**9,
    "t": 2**40, "tib": 2**40, "tb": 10**12,
}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)(?:[eE]([+-]?\d+))?\s*([a-zA-Z]*)\s*$")

#: (budget in bytes, where it came from) set by :func:`budget_scope`, or None.
_SCOPE: contextvars.ContextVar[tuple[int, str] | None] = contextvars.ContextVar(
    "gn_theory_memory_budget", default=None
)


def parse_memory(value: Any, what: str = "max_memory") -> int:
    """A memory size in bytes from an int or a string (``"4GiB"``, ``"512 MB"``, ``"1e9"``).

    Units (case-insensitive): ``B``; ``KiB``, ``MiB``, ``GiB``, ``TiB`` and the short ``K``,
    ``M``, ``G``, ``T`` are powers of 1024; ``kB``, ``MB``, ``GB``, ``TB`` powers of 1000.

    Parameters
    ----------
    value : int or str
        The size; must be positive.
    what : str, default "max_memory"
        Its name, for the message.

    Returns
    -------
    int
        Bytes (> 0).

    Raises
    ------
    InvalidInputError
        Not a positive int or a size string with a known unit.
    """
    if isinstance(value, bool):
        raise InvalidInputError(f"{what} must be a number of bytes or a size such as '4GiB'; "
                                f"got {value!r}")
    if isinstance(value, str):
        m = _PATTERN.match(value)
        unit = m.group(3).lower() if m else None
        if m is None or unit not in _UNITS:
            raise InvalidInputError(
                f"{what}: cannot read {value!r} as a memory size; give bytes (4000000000) or a "
                "number and a unit: '512MiB', '4GiB', '1.5GB' (KiB/MiB/GiB/TiB or K/M/G/T: "
                "powers of 1024; kB/MB/GB/TB: powers of 1000)"
            )
        number = float(m.group(1)) * 10.0 ** int(m.group(2) or 0)
        nbytes = int(number * _UNITS[unit])
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidInputError(f"{what} must be a number of bytes or a size such as "
                                    f"'4GiB'; got {type(value).__name__}") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise InvalidInputError(f"{what} must be a finite number of bytes; got {value!r}")
        nbytes = int(number)
    if nbytes <= 0:
        raise InvalidInputError(f"{what} must be positive; got {value!r}")
    return nbytes


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_room() -> int | None:
    """Bytes a cgroup memory limit still leaves (v2, then v1), page cache counted as free."""
    for limit, usage, stat, key in (
        ("memory.max", "memory.current", "memory.stat", "inactive_file"),
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes", "memory/memory.stat",
         "total_inactive_file"),
    ):
        base = Path("/sys/fs/cgroup")
        cap = _read_int(base / limit)
        used = _read_int(base / usage)
        if cap is None or used is None or cap >= 2**60:  # "max" or no limit
            continue
        cache = 0
        try:
            for line in (base / stat).read_text().splitlines():
                name, _, num = line.partition(" ")
                if name == key and num.strip().isdigit():
                    cache = int(num)
        except OSError:
            pass
        return max(0, cap - max(0, used - cache))
    return None


def _host_available() -> int | None:
    avail = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        avail = None
    room = _cgroup_room()
    if room is not None:
        avail = room if avail is None else min(avail, room)
    return avail


def available_memory(device: Any = None) -> int | None:
    """Bytes an allocation on ``device`` may take now, or ``None`` if that is unknowable.

    Parameters
    ----------
    device : str or torch.device, optional
        ``None`` or a CPU device: the host (``MemAvailable`` of ``/proc/meminfo``, lowered
        to a cgroup limit's room). A CUDA device: its free memory plus what torch's caching
        allocator holds but does not use. Any other device (or a system without
        ``/proc/meminfo``): ``None``.

    Returns
    -------
    int or None
    """
    kind = "cpu" if device is None else str(getattr(device, "type", device)).split(":")[0]
    if kind == "cpu":
        return _host_available()
    if kind == "cuda":
        torch = sys.modules.get("torch")
        if torch is None or not torch.cuda.is_available():
            return None
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free) + max(0, int(cached))
    return None


def resolve_budget(max_memory: Any = None, device: Any = None) -> tuple[int | None, str]:
    """The budget (bytes, or None: unknown) and where it came from, in the module's order.

    Parameters
    ----------
    max_memory : int or str, optional
        The caller's explicit budget.
    device : str or torch.device, optional
        Where the allocation happens (for the available memory).

    Returns
    -------
    (int or None, str)

    Raises
    ------
    InvalidInputError
        A bad ``max_memory`` or ``GN_THEORY_MAX_MEMORY``.
    """
    if max_memory is not None:
        return parse_memory(max_memory), f"max_memory={max_memory!r}"
    scoped = _SCOPE.get()
    if scoped is not None:
        return scoped
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return parse_memory(env, f"the environment variable {ENV_VAR}"), f"{ENV_VAR}={env}"
    where = "cpu" if device is None else str(device)
    avail = available_memory(device)
    if avail is None:
        return None, f"unknown on {where}"
    source = "MemAvailable" if where == "cpu" else "torch.cuda.mem_get_info"
    return avail, f"the memory available on {where} ({source})"


def check_memory(
    nbytes: int, what: str, *, fix: str, max_memory: Any = None, device: Any = None
) -> None:
    """Raise before allocating ``nbytes`` if they exceed the budget (see the module).

    Parameters
    ----------
    nbytes : int
        The bytes the allocation needs.
    what : str
        What is allocated, e.g. ``"lanczos: the Krylov basis (46 x 10,000 float64)"``.
    fix : str
        The options that avoid it, e.g. ``"a smaller basis_size"``.
    max_memory : int or str, optional
        The caller's explicit budget.
    device : str or torch.device, optional
        Where the allocation happens.

    Raises
    ------
    MemoryBudgetError
        Naming ``what``, the bytes needed, the budget and its source, and ``fix``.
    InvalidInputError
        A bad ``max_memory`` or ``GN_THEORY_MAX_MEMORY``.
    """
    budget, source = resolve_budget(max_memory, device)
    if budget is None or nbytes <= budget:
        return
    raise MemoryBudgetError(
        f"{what} needs {fmt_bytes(nbytes)} ({int(nbytes):,} bytes), more than the memory "
        f"budget of {fmt_bytes(budget)} ({source}); to fit, use {fix}; or raise the budget "
        f"(max_memory=..., the CLI's --max-memory, or {ENV_VAR})"
    )


@contextlib.contextmanager
def budget_scope(max_memory: Any, source: str = "max_memory") -> Iterator[None]:
    """Within the block, ``max_memory`` is the default budget of every check (None: no change).

    Parameters
    ----------
    max_memory : int or str or None
        The budget.
    source : str, default "max_memory"
        How messages name it (the CLI passes ``"--max-memory"``).

    Raises
    ------
    InvalidInputError
        A bad ``max_memory``.
    """
    if max_memory is None:
        yield
        return
    token = _SCOPE.set((parse_memory(max_memory, source), f"{source}={max_memory}"))
    try:
        yield
    finally:
        _SCOPE.reset(token)
