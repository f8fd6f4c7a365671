"""What the trajectory cache keeps: which entries go to disk, how much memory holds, and whether
its folder takes files at all.

Disk: only entries worth their space are written (:func:`worth_storing`): an entry must have
cost at least MIN_SECONDS_PER_MB of compute per MB of raw arrays, else it stays in memory only
and the next session recomputes it. The 128-wide NTK trajectories train at 4-9 ms per MB of
checkpoints, faster than a read from disk; the long saddle runs take 95-290 ms per MB
(docs/cache.md).
Memory: with a disk root, entries are kept least-recently-used up to ``memory_limit`` bytes
(default MEMORY_LIMIT_GB, or $DLNCHECK_CACHE_MEMORY_GB), sized by :func:`nbytes`: a nightly
worker that memoized every 32-init ensemble it touched grew to 11 GB and starved a 24 GB machine
running two workers. An evicted entry comes back from disk, or (not worth storing) is recomputed
cheaply. An ensemble over LAZY_ENSEMBLE_GB of checkpoints is served config by config
(:func:`lazy_ensemble`), so no claim holds all of it at once; the configs missing from the cache
train in programs of at most TRAIN_CHUNK_GB (configs are independent: the same trajectories).
Folder: :func:`unwritable` says why a folder refuses a new file (read-only, full, not a folder),
probed rather than guessed, so a cache on such a folder keeps its new entries in memory with one
warning instead of failing the run.
"""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

import numpy as np
import torch

#: errors after which no further write is tried: the folder is full or refuses writes as a whole
FOLDER_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}

#: compute seconds an entry must have cost per MB of raw arrays to be stored: 4x a read's cost
#: (file read, SHA-256, inflate, un-shuffle and checks: 11-12 ms per raw MB at load 4 on the
#: 2-core machine), and the price that keeps the quick claims run's cache under 500 MB (docs/cache.md)
MIN_SECONDS_PER_MB = 0.05
#: entries up to this size are always stored (reading them costs milliseconds)
ALWAYS_STORE_MB = 1.0
#: bytes (in GB) of entries a process keeps in memory, least-recently-used ($DLNCHECK_CACHE_MEMORY_GB overrides):
#: each of a nightly run's two workers held 2.4 GB between cases at 2.0 and 1.45 GB at 1.0 (issue #30:
#: 7 GB for a shard's two workers; its shard 6/8 peaked at 7.22 GB with 1.0)
MEMORY_LIMIT_GB = 0.5
#: an ensemble whose checkpoints take more bytes than this is served config by config (each trained
#: alone when first read), so a claim holds one config's trajectory at a time: the nightly ntk L4
#: ensemble (8 inits x 33 runs x 52 checkpoints of 128-wide layers) is 3.7 GB at once, 0.46 GB a config
LAZY_ENSEMBLE_GB = 1.0
#: the configs an ensemble trains are split into programs of at most this many bytes while they run
#: (engine.budget's estimate, the per-step loss record included): the nightly saddle L4 random-init
#: ensemble (32 inits x 33 runs, 105k steps, loss every step) peaked at 5.3 GB as one program
TRAIN_CHUNK_GB = 0.5


def worth_storing(size_bytes: int, seconds: float, min_seconds_per_mb: float = MIN_SECONDS_PER_MB) -> bool:
    """Whether an entry of ``size_bytes`` raw bytes that took ``seconds`` to compute goes to disk:
    small, or at least ``min_seconds_per_mb`` of compute per MB."""
    megabytes = size_bytes / 1e6
    return megabytes <= ALWAYS_STORE_MB or seconds >= megabytes * min_seconds_per_mb


def nbytes(value, depth: int = 3) -> int:
    """Bytes held by the tensors and arrays of a cached value (its fields, lists and dicts, ``depth`` deep)."""
    if isinstance(value, torch.Tensor):
        return value.element_size() * value.nelement()
    if isinstance(value, np.ndarray):
        return value.nbytes
    if depth == 0:
        return 0
    if isinstance(value, dict):
        return sum(nbytes(v, depth - 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v, depth - 1) for v in value)
    fields = getattr(value, "__dict__", None)
    return nbytes(fields, depth - 1) if fields else 0


def unwritable(root: Path) -> str | None:
    """None when ``root`` exists (or can be created) and takes a new file, else the reason."""
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as error:
        return error.strerror or str(error)
    return None


def folder_wide(error: OSError) -> bool:
    """Whether ``error`` says the whole folder refuses writes (full disk, quota, read-only)."""
    return error.errno in FOLDER_ERRNOS


def lazy_ensemble(estimated_bytes: float, has_root: bool) -> bool:
    """Whether an ensemble of ``estimated_bytes`` of checkpoints is served config by config: above
    LAZY_ENSEMBLE_GB, and only with a disk root (without one memory is the only store and nothing
    is evicted, so serving configs one by one would hold as much)."""
    return has_root and estimated_bytes > LAZY_ENSEMBLE_GB * 1e9
