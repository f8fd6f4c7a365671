"""Atomic file writes: an interrupted run never leaves a half-written artifact.

Each writer goes to a temporary file in the target's folder, then ``os.replace`` moves it
into place (atomic on POSIX), so readers and parallel pytest-xdist workers see either the
old file or the complete new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; published files honour the umask
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` and atomically publish the result at ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, obj: object) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def stale_temporaries(folder: Path, age_s: float = 3600.0) -> list[Path]:
    """Remove atomic-write leftovers ``.*.tmp`` older than ``age_s`` in ``folder``; return them."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        try:
            if tmp.is_file() and time.time() - tmp.stat().st_mtime > age_s:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue
    return removed


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (hex)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> str:
    """Write arrays atomically (temp file + os.replace); returns the file's SHA-256."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **cast(dict[str, Any], arrays))  # names are array names, never savez's own keywords
        return sha256(tmp)
