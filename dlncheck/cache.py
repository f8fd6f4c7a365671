"""Content-addressed trajectory cache: nothing is trained twice in a session or across sessions.

An entry's key hashes the Experiment, the call's keyword arguments, the package version and
engine.ENGINE_VERSION.
On disk each entry is ``<kind>-<key>.npz`` (arrays, loaded with allow_pickle=False) plus
``<kind>-<key>.json`` (the spec, labels and the npz's SHA-256); both are written to a temp file
and moved into place with os.replace, so concurrent pytest-xdist workers and interrupted runs
never expose a partial entry. An entry that fails to load or verify is recomputed with a warning.
"""
from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from . import __version__
from . import validation as check
from .align import AlignedCheckpoints, aligned_checkpoints
from .engine import ENGINE_VERSION, Trajectory, train
from .experiment import Experiment
from .io import atomic_path, write_json

TRAJECTORY_FIELDS = ("steps", "times", "loss", "checkpoint_steps")
ALIGNED_FIELDS = ("steps", "times", "loss", "escape_times")


def _plain(value):
    """JSON-able form of a keyword argument (tensors and arrays become lists)."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return np.asarray(value.cpu() if isinstance(value, torch.Tensor) else value).tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def trajectory_arrays(traj: Trajectory, prefix: str = "") -> dict[str, np.ndarray]:
    """A Trajectory as named NumPy arrays (weights_l, initial_l per layer) for np.savez."""
    arrays = {f"{prefix}{name}": getattr(traj, name) for name in TRAJECTORY_FIELDS}
    arrays |= {f"{prefix}weights_{l}": w for l, w in enumerate(traj.weights)}
    arrays |= {f"{prefix}initial_{l}": w for l, w in enumerate(traj.initial_weights)}
    return {k: v.cpu().numpy() for k, v in arrays.items()}


def _trajectory_from(arrays, experiment: Experiment, prefix: str = "") -> Trajectory:
    check.decoded_trajectory(arrays, experiment, prefix)   # shapes and finiteness, else recompute
    def t(name):
        return torch.from_numpy(arrays[prefix + name]).to(experiment.device)
    L = experiment.depth
    return Trajectory(experiment, *(t(name) for name in TRAJECTORY_FIELDS),
                      [t(f"weights_{l}") for l in range(L)], [t(f"initial_{l}") for l in range(L)])


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> str:
    """Write arrays atomically (temp file + os.replace); returns the file's SHA-256."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        return _sha256(tmp)


class TrajectoryCache:
    """``cache(experiment, **train_kwargs) -> Trajectory`` and
    ``cache.aligned(experiment, **align_kwargs) -> AlignedCheckpoints``, memoized in memory and,
    unless root is None, on disk under root."""

    def __init__(self, root: Path | str | None = None):
        self.root = None if root is None else Path(root)
        self._memory: dict[str, object] = {}
        if self.root is not None and self.root.is_dir():
            check.stale_temporaries(self.root)   # left by a killed writer

    def key(self, kind: str, experiment: Experiment, kwargs: dict) -> str:
        spec = {"kind": kind, "experiment": experiment.to_dict(), "version": __version__,
                "engine": ENGINE_VERSION,
                "kwargs": {k: _plain(v) for k, v in sorted(kwargs.items()) if k != "progress"}}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]

    def __call__(self, experiment: Experiment, **train_kwargs) -> Trajectory:
        return self._get("trajectory", experiment, train_kwargs,
                         compute=lambda: train(experiment, **train_kwargs),
                         encode=lambda traj: (trajectory_arrays(traj), {}),
                         decode=lambda arrays, meta: _trajectory_from(arrays, experiment))

    def aligned(self, experiment: Experiment, **align_kwargs) -> AlignedCheckpoints:
        def encode(a: AlignedCheckpoints):
            arrays = {name: getattr(a, name).cpu().numpy() for name in ALIGNED_FIELDS}
            arrays |= {f"weights_{l}": w.cpu().numpy() for l, w in enumerate(a.weights)}
            arrays |= trajectory_arrays(a.trajectory, prefix="trajectory_")
            return arrays, {"labels": a.labels, "kinds": a.kinds, "windows": a.windows, "window": a.window}

        def decode(arrays, meta) -> AlignedCheckpoints:
            fields = {name: torch.from_numpy(arrays[name]) for name in ALIGNED_FIELDS}
            traj = _trajectory_from(arrays, experiment, prefix="trajectory_")
            return AlignedCheckpoints(
                **fields, labels=meta["labels"], kinds=meta["kinds"],
                weights=[torch.from_numpy(arrays[f"weights_{l}"]).to(experiment.device)
                         for l in range(experiment.depth)],
                windows=[tuple(w) for w in meta["windows"]], window=meta["window"], trajectory=traj)

        return self._get("aligned", experiment, align_kwargs,
                         compute=lambda: aligned_checkpoints(experiment, **align_kwargs),
                         encode=encode, decode=decode)

    def _get(self, kind, experiment, kwargs, compute, encode, decode):
        key = self.key(kind, experiment, kwargs)
        if key in self._memory:
            return self._memory[key]
        value = self._load(kind, key, experiment, decode) if self.root is not None else None
        if value is None:
            value = compute()
            if self.root is not None:
                try:
                    self._store(kind, key, experiment, kwargs, *encode(value))
                except OSError as error:
                    warnings.warn(f"cache entry {kind}-{key} could not be stored under {self.root} "
                                  f"({error}); keeping it in memory only", stacklevel=3)
        self._memory[key] = value
        return value

    def _paths(self, kind: str, key: str) -> tuple[Path, Path]:
        return self.root / f"{kind}-{key}.npz", self.root / f"{kind}-{key}.json"

    def _store(self, kind, key, experiment, kwargs, arrays, meta) -> None:
        npz, spec = self._paths(kind, key)
        digest = save_npz(npz, arrays)
        write_json(spec, {"kind": kind, "key": key, "version": __version__, "sha256": digest,
                          "experiment": experiment.to_dict(),
                          "kwargs": {k: _plain(v) for k, v in kwargs.items() if k != "progress"},
                          "meta": meta})

    def _load(self, kind, key, experiment, decode):
        npz, spec = self._paths(kind, key)
        if not (npz.exists() and spec.exists()):
            return None
        try:
            meta = json.loads(spec.read_text())
            if meta["key"] != key or meta["sha256"] != _sha256(npz):
                raise ValueError("checksum or key mismatch")
            with np.load(npz, allow_pickle=False) as arrays:
                return decode({name: arrays[name] for name in arrays.files}, meta["meta"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as error:
            warnings.warn(f"cache entry {npz.name} is unreadable ({error}); recomputing it", stacklevel=3)
            return None
