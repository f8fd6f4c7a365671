"""A case's peak resident memory, for the report and the shard measurements (Linux; None elsewhere),
and handing a finished case's free heap back to the kernel (glibc; a no-op elsewhere).

The kernel keeps each process's resident high-water mark (``VmHWM`` in ``/proc/self/status``);
writing ``5`` to ``/proc/self/clear_refs`` resets it to the current resident size (proc(5), Linux
>= 4.0). Reset before a case's setup and read after its call, it is the case's peak, the memory its
worker held meanwhile (the trajectory cache of earlier cases included) counted in.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from pathlib import Path

_STATUS, _CLEAR = Path("/proc/self/status"), Path("/proc/self/clear_refs")
COLLECT_ABOVE_GB = 1.0  # resident size above which a finished case's reference cycles are collected
_MALLOC_TRIM: Callable[[int], int] | None
try:
    _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):  # not glibc
    _MALLOC_TRIM = None


def reset() -> bool:
    """Reset this process's resident high-water mark to its resident size now; False where it cannot."""
    try:
        _CLEAR.write_text("5")
    except OSError:
        return False
    return True


def _status_gb(field: str) -> float | None:
    try:
        lines = _STATUS.read_text().splitlines()
    except OSError:
        return None
    kib = next((int(line.split()[1]) for line in lines if line.startswith(f"{field}:")), None)
    return None if kib is None else kib * 1024 / 1e9


def peak_gb() -> float | None:
    """This process's resident high-water mark since the last :func:`reset`, in GB (10^9 bytes)."""
    return _status_gb("VmHWM")


def resident_gb() -> float | None:
    """This process's resident size now, in GB."""
    return _status_gb("VmRSS")


def return_free_heap() -> bool:
    """glibc ``malloc_trim(0)``: return every free page of the heap to the kernel, holes below its
    top included (malloc(3)); False where there is no glibc."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True
