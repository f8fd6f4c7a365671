"""A case's peak resident memory, for the report and the shard measurements (Linux; None elsewhere),
and handing freed memory back to the kernel: a finished case's free heap, and large blocks as they are
freed (glibc; a no-op elsewhere).

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
#: allocations from this size up are mmapped, and unmapped when freed (:func:`pin_mmap_threshold`)
MMAP_THRESHOLD_BYTES = 4 * 2**20
_M_MMAP_THRESHOLD = -3  # mallopt's parameter (malloc.h)
_MALLOC_TRIM: Callable[[int], int] | None
_MALLOPT: Callable[[int, int], int] | None
try:
    _LIBC = ctypes.CDLL("libc.so.6")
    _MALLOC_TRIM, _MALLOPT = _LIBC.malloc_trim, _LIBC.mallopt
except (OSError, AttributeError):  # not glibc
    _MALLOC_TRIM = _MALLOPT = None


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


def pin_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """glibc ``mallopt(M_MMAP_THRESHOLD, threshold)``: every allocation of at least ``threshold`` bytes
    is mmapped and goes back to the kernel when freed. Left alone, glibc raises the threshold to the
    size of each mmapped block freed (up to 32 MB, mallopt(3)), so a case's later large tensors come
    from the heap, where freed memory stays resident: rank_patterns saddle-degenerate-L3-time (nightly)
    reads its 32 inits at a 5.7 GB peak, and at 1.9 GB with the threshold pinned at 4 MB, in the same
    time. False where there is no glibc."""
    if _MALLOPT is None:
        return False
    return bool(_MALLOPT(_M_MMAP_THRESHOLD, int(threshold)))
