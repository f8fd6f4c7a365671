"""Where a run's numbers come from: code version, packages, settings, command, time."""

from __future__ import annotations

import platform
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import torch


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _command(argv: list[str]) -> str:
    """The command line as typed: ``python -m pytest ...`` rather than pytest's ``__main__.py``."""
    if argv and Path(argv[0]).name == "__main__.py":
        argv = ["python", "-m", Path(argv[0]).parent.name, *argv[1:]]
    return shlex.join(argv)


def _device(asked: str | None) -> str | None:
    """``auto`` resolved the way the ``device`` fixture resolves it."""
    if asked != "auto":
        return asked
    return f"auto ({'cuda' if torch.cuda.is_available() else 'cpu'})"


def collect(root: Path, settings: dict, argv: list[str] | None = None, started: datetime | None = None) -> dict:
    """Provenance at the start of a run: git commit and dirty flag of ``root``, versions of
    Python/torch/numpy/dlncheck, the run's ``settings`` (as the suite gives them: device, dtype,
    sizes and seeds, ...), the command line and the start time (UTC, default now)."""
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    started = started or datetime.now(UTC)
    return {
        **settings,
        "device": _device(settings.get("device")),
        "git_commit": commit,
        "git_dirty": bool(status) if status is not None else None,
        "python": platform.python_version(),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "dlncheck": _version("dlncheck"),
        "platform": platform.platform(),
        "command": _command(sys.argv if argv is None else argv),
        "started": started.isoformat(timespec="seconds"),
        "started_ts": started.timestamp(),
    }


def finish(meta: dict, status: str) -> dict:
    """``meta`` with the end time, duration in seconds and the run's status."""
    now = datetime.now(UTC)
    return {
        **meta,
        "status": status,
        "finished": now.isoformat(timespec="seconds"),
        "duration_s": round(now.timestamp() - meta.get("started_ts", now.timestamp()), 1),
    }
