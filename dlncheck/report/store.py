"""The reports folder as a consistent store: folder swaps, stale leftovers, one writer at a time.

A claim builds ``claims/.building-<pid>-<name>``; :func:`swap_in` renames the published
``claims/<name>`` to ``claims/.old-<pid>-<name>``, the building folder to ``claims/<name>``, and
removes the old one, so a link into ``claims/<name>`` never sees half a folder. A process killed
between the two renames leaves ``.old-*`` without its published folder: :func:`clean_stale`
(run when a session takes the lock) renames it back and removes what dead processes left.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

from dlncheck.report.claim import BUILDING

OLD = ".old-"
LOCK = ".lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(name: str, prefix: str) -> tuple[int | None, str]:
    """``.building-123-x`` -> (123, "x"); (None, "") when the name is not of that kind."""
    if not name.startswith(prefix):
        return None, ""
    pid, _, rest = name[len(prefix) :].partition("-")
    return (int(pid), rest) if pid.isdigit() and rest else (None, "")


def swap_in(claims: Path, building: str, final: str) -> bool:
    """Publish ``claims/<building>`` as ``claims/<final>``; False when nothing was built."""
    src, dst = claims / building, claims / final
    if not src.is_dir():
        return False
    old = claims / f"{OLD}{os.getpid()}-{final}"
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)
    return True


def discard(claims: Path, building: str) -> None:
    shutil.rmtree(claims / building, ignore_errors=True)


def clean_stale(root: Path, finished: int | None = None) -> list[str]:
    """Restore folders a killed swap left aside; remove dead processes' building folders (and
    those of process ``finished``: this run, at its end) and old temporary files. Returns the
    names it touched."""
    touched = []
    claims = root / "claims"
    for entry in sorted(claims.iterdir()) if claims.is_dir() else []:
        for prefix in (OLD, BUILDING):
            pid, final = _owner(entry.name, prefix)
            if pid is None or (pid != finished and _alive(pid)):
                continue
            if prefix == OLD and not (claims / final).exists():
                os.replace(entry, claims / final)
            else:
                shutil.rmtree(entry, ignore_errors=True)
            touched.append(entry.name)
    for tmp in root.rglob(".*.tmp"):
        if tmp.is_file() and time.time() - tmp.stat().st_mtime > 60:
            tmp.unlink(missing_ok=True)
            touched.append(tmp.name)
    return touched


class Lock:
    """``<root>/.lock``: which pytest run writes this reports folder. A lock whose process is
    gone (same host) is stale and taken over; a live one is a conflict the caller reports."""

    def __init__(self, root: Path, info: dict):
        self.path = root / LOCK
        self.info = {"pid": os.getpid(), "host": socket.gethostname(), **info}
        self.held = False

    def holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def acquire(self) -> dict | None:
        """Take the lock; return None on success, else the live holder's info."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                other = self.holder() or {}
                same_host = other.get("host") == self.info["host"]
                if isinstance(other.get("pid"), int) and same_host and not _alive(other["pid"]):
                    self.path.unlink(missing_ok=True)  # stale: its run was killed
                    continue
                if not other and time.time() - self.path.stat().st_mtime > 5:
                    self.path.unlink(missing_ok=True)  # unreadable and old: a killed writer
                    continue
                return other or {"pid": "?", "note": "lock file being written"}
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.info, f)
            self.held = True
            return None
        return self.holder() or {"pid": "?"}

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
