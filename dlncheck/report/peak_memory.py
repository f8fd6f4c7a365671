"""A case's peak resident memory, for the report and the shard measurements (Linux; None elsewhere).

The kernel keeps each process's resident high-water mark (``VmHWM`` in ``/proc/self/status``);
writing ``5`` to ``/proc/self/clear_refs`` resets it to the current resident size (proc(5), Linux
>= 4.0). Reset before a case's setup and read after its call, it is the case's peak, the memory its
worker held meanwhile (the trajectory cache of earlier cases included) counted in.
"""

from __future__ import annotations

from pathlib import Path

_STATUS, _CLEAR = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def reset() -> bool:
    """Reset this process's resident high-water mark to its resident size now; False where it cannot."""
    try:
        _CLEAR.write_text("5")
    except OSError:
        return False
    return True


def peak_gb() -> float | None:
    """This process's resident high-water mark since the last :func:`reset`, in GB (10^9 bytes)."""
    try:
        lines = _STATUS.read_text().splitlines()
    except OSError:
        return None
    kib = next((int(line.split()[1]) for line in lines if line.startswith("VmHWM:")), None)
    return None if kib is None else kib * 1024 / 1e9
