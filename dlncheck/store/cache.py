"""Content-addressed trajectory cache: nothing is trained twice in a session or across sessions.

An entry's key hashes the Experiment, the call's keyword arguments, the package version,
engine.ENGINE_VERSION and the on-disk format (cache_format.FORMAT).
On disk each entry is ``<kind>-<key>.npz`` (arrays, byte-shuffled and deflated, loaded with
allow_pickle=False; ``cache_format``) plus ``<kind>-<key>.json`` (the spec, labels, the arrays'
layout and the npz's SHA-256), see :mod:`dlncheck.store.entries`: concurrent writers (pytest-xdist
workers, sweep workers) and killed runs never expose a partial entry, and an entry that fails to
load or verify is recomputed with a warning. A root that takes no new file (read-only, not a
folder), or that fills up mid-run (ENOSPC, quota), keeps new entries in memory only with one
warning, leaving no partial file; entries already there are still read. (``pytest claims`` and
``dlncheck sweep`` refuse an unwritable folder before any training instead.)

Only entries worth their disk space are written, and memory holds entries least-recently-used
up to a byte limit when there is a root (:mod:`dlncheck.store.policy`). Without a root
(``--no-cache``) memory is the only store and nothing is evicted.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from dlncheck._version import __version__
from dlncheck.config import validation as check
from dlncheck.config.ensemble import Ensemble
from dlncheck.config.experiment import Experiment
from dlncheck.engine._train import ENGINE_VERSION, train
from dlncheck.engine.trajectory import EnsembleTrajectory, Trajectory
from dlncheck.measure.align import AlignedCheckpoints, aligned_checkpoints
from dlncheck.measure.analysis import Analysis, analyze
from dlncheck.store import _format as cache_format
from dlncheck.store import entries
from dlncheck.store.atomic import save_npz, stale_temporaries  # noqa: F401  (save_npz: public here too)
from dlncheck.store.lazy import OnDemand, train_bytes, training_chunks
from dlncheck.store.policy import (  # noqa: F401  (ALWAYS_STORE_MB: public here too)
    ALWAYS_STORE_MB,
    MEMORY_LIMIT_GB,
    MIN_SECONDS_PER_MB,
    folder_wide,
    lazy_ensemble,
    nbytes,
    unwritable,
    worth_storing,
)

T = TypeVar("T")
ALIGNED_FIELDS = ("steps", "times", "loss", "escape_times")


class TrajectoryCache:
    """``cache(experiment, **train_kwargs) -> Trajectory`` and
    ``cache.aligned(experiment, **align_kwargs) -> AlignedCheckpoints``, memoized in memory and,
    unless root is None, on disk under root."""

    def __init__(
        self,
        root: Path | str | None = None,
        memory_limit: float | None = None,
        min_seconds_per_mb: float = MIN_SECONDS_PER_MB,
    ):
        self.root = None if root is None else Path(root)
        if memory_limit is None:
            memory_limit = float(os.environ.get("DLNCHECK_CACHE_MEMORY_GB", MEMORY_LIMIT_GB)) * 1e9
        self.memory_limit = check.finite_float("memory_limit", memory_limit, positive=True)
        self._memory: OrderedDict[str, Any] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self.min_seconds_per_mb = min_seconds_per_mb
        # where each request was served from; "memory_only": computed entries kept in memory only
        # (not worth storing, or the folder takes no new entry)
        self.stats = {"memory": 0, "disk": 0, "computed": 0, "memory_only": 0}
        self.read_only: str | None = None  # why the root takes no new entry (then reads only)
        if self.root is not None:
            reason = unwritable(self.root)
            if reason is not None:
                self._stop_writing(reason, stacklevel=3)
            else:
                stale_temporaries(self.root)  # left by a killed writer

    def key(self, kind: str, experiment: Experiment, kwargs: dict) -> str:
        spec = {
            "kind": kind,
            "experiment": experiment.to_dict(),
            "version": __version__,
            "engine": ENGINE_VERSION,
            "format": cache_format.FORMAT,
            "kwargs": {k: entries.plain(v) for k, v in sorted(kwargs.items()) if k != "progress"},
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]

    def __call__(self, experiment: Experiment, **train_kwargs) -> Trajectory:
        return self._get(
            "trajectory",
            experiment,
            train_kwargs,
            compute=lambda: train(experiment, **train_kwargs),
            encode=lambda traj: (traj.to_arrays(), {}),
            decode=lambda arrays, meta: Trajectory.from_arrays(arrays, experiment),
        )

    def ensemble(self, ensemble: Ensemble, **train_kwargs) -> EnsembleTrajectory:
        """``train(ensemble, **train_kwargs)``, each config cached under its own Experiment (so
        ``cache(ensemble.experiment(i), ...)`` hits); only the configs not cached are trained,
        together in one program. A dict ``checkpoints`` ({config: spec}) is split per config.
        An ensemble over policy.LAZY_ENSEMBLE_GB of checkpoints is served config by config
        (an :class:`OnDemand` sequence)."""
        spec = train_kwargs.get("checkpoints")
        per_config = spec if isinstance(spec, dict) else None
        shared = {k: v for k, v in train_kwargs.items() if per_config is None or k != "checkpoints"}
        kwargs = [
            shared | ({} if per_config is None or per_config.get(i) is None else {"checkpoints": per_config[i]})
            for i in range(len(ensemble))
        ]
        held = sum(train_bytes(ensemble.experiment(i), kw, "weights at checkpoints") for i, kw in enumerate(kwargs))
        if lazy_ensemble(held, self.root is not None):
            # each config from memory, from disk, else trained alone: configs are independent, so it is
            # the trajectory the whole program gives, under the same key; only what the caller keeps is held
            return EnsembleTrajectory(
                ensemble, OnDemand(len(ensemble), lambda i: self(ensemble.experiment(i), **kwargs[i]))
            )
        keys = [self.key("trajectory", ensemble.experiment(i), kw) for i, kw in enumerate(kwargs)]
        found = []
        for i, key in enumerate(keys):
            traj = self._recall(key)
            self.stats["memory"] += traj is not None
            if traj is None:
                traj = self._lookup(key, ensemble.experiment(i))
                self.stats["disk" if traj is not None else "computed"] += 1
            found.append(traj)
        missing = [i for i, traj in enumerate(found) if traj is None]
        if missing:
            start = time.perf_counter()
            trained: list[Trajectory] = []
            for part in training_chunks(missing, [train_bytes(ensemble.experiment(i), kwargs[i]) for i in missing]):
                if per_config is not None:
                    train_kwargs = train_kwargs | {"checkpoints": {j: per_config.get(i) for j, i in enumerate(part)}}
                trained += train(ensemble.subset(part), **train_kwargs)
            seconds = (time.perf_counter() - start) / len(missing)  # each config's share
            for i, traj in zip(missing, trained):
                found[i] = traj
                self._keep("trajectory", keys[i], ensemble.experiment(i), kwargs[i], traj.to_arrays(), {}, seconds)
        for key, traj in zip(keys, found):
            self._remember(key, traj)
        return EnsembleTrajectory(ensemble, found)

    def analysis(self, experiment: Experiment, trajectory: Trajectory | None = None, **train_kwargs) -> Analysis:
        """:func:`dlncheck.measure.analysis.analyze` of ``self(experiment, **train_kwargs)``, stored beside
        that trajectory (kind "analysis", same key inputs), so the SVDs run once per trajectory.
        ``trajectory``: that trajectory when the caller holds it (e.g. a config of
        :meth:`ensemble`), so it is not fetched again (an entry too cheap to store on disk and
        evicted from memory would train a second time, alone)."""
        return self._get(
            "analysis",
            experiment,
            train_kwargs,
            compute=lambda: analyze(trajectory if trajectory is not None else self(experiment, **train_kwargs)),
            encode=lambda a: (a.to_arrays(), {}),
            decode=lambda arrays, meta: Analysis.from_arrays(arrays, experiment.teacher, experiment.device),
        )

    def _lookup(self, key: str, experiment: Experiment) -> Trajectory | None:
        if self.root is None:
            return None
        return entries.read(
            self.root, "trajectory", key, lambda arrays, meta: Trajectory.from_arrays(arrays, experiment)
        )

    def aligned(self, experiment: Experiment, **align_kwargs) -> AlignedCheckpoints:
        def encode(a: AlignedCheckpoints):
            arrays = {name: getattr(a, name).cpu().numpy() for name in ALIGNED_FIELDS}
            arrays |= {f"weights_{l}": w.cpu().numpy() for l, w in enumerate(a.weights)}
            arrays |= a.trajectory.to_arrays(prefix="trajectory_")
            return arrays, {"labels": a.labels, "kinds": a.kinds, "windows": a.windows, "window": a.window}

        def decode(arrays, meta) -> AlignedCheckpoints:
            fields = {name: torch.from_numpy(arrays[name]) for name in ALIGNED_FIELDS}
            traj = Trajectory.from_arrays(arrays, experiment, prefix="trajectory_")
            return AlignedCheckpoints(
                **fields,
                labels=meta["labels"],
                kinds=meta["kinds"],
                weights=[
                    torch.from_numpy(arrays[f"weights_{l}"]).to(experiment.device) for l in range(experiment.depth)
                ],
                windows=[tuple(w) for w in meta["windows"]],
                window=meta["window"],
                trajectory=traj,
            )

        return self._get(
            "aligned",
            experiment,
            align_kwargs,
            compute=lambda: aligned_checkpoints(experiment, **align_kwargs),
            encode=encode,
            decode=decode,
        )

    def contains(self, kind: str, experiment: Experiment, kwargs: dict) -> bool:
        """Whether an entry for (kind, experiment, kwargs) is in memory or on disk (not verified)."""
        key = self.key(kind, experiment, kwargs)
        return key in self._memory or (
            self.root is not None and all(p.exists() for p in entries.paths(self.root, kind, key))
        )

    def _get(
        self,
        kind: str,
        experiment: Experiment,
        kwargs: dict,
        compute: Callable[[], T],
        encode: Callable[[T], tuple[dict[str, np.ndarray], dict]],
        decode: Callable[[dict[str, np.ndarray], dict], T],
    ) -> T:
        key = self.key(kind, experiment, kwargs)
        value = self._recall(key)
        if value is not None:
            self.stats["memory"] += 1
            return value
        value = entries.read(self.root, kind, key, decode) if self.root is not None else None
        self.stats["disk" if value is not None else "computed"] += 1
        if value is None:
            start = time.perf_counter()
            value = compute()
            self._keep(kind, key, experiment, kwargs, *encode(value), time.perf_counter() - start)
        self._remember(key, value)
        return value

    def _recall(self, key: str) -> Any:
        """The in-memory value (marked most recently used), or None."""
        if key not in self._memory:
            return None
        self._memory.move_to_end(key)
        return self._memory[key]

    def _remember(self, key: str, value) -> None:
        """Keep a value in memory; with a disk root, evict least recently used ones beyond memory_limit."""
        self._memory[key] = value
        self._memory.move_to_end(key)
        self._sizes[key] = nbytes(value)
        if self.root is None:
            return
        total = sum(self._sizes.values())
        while total > self.memory_limit and len(self._memory) > 1:
            old, _ = self._memory.popitem(last=False)
            total -= self._sizes.pop(old)

    def _keep(self, kind, key, experiment, kwargs, arrays, meta, seconds) -> None:
        """Store on disk when there is a root and the entry is :func:`worth_storing`; a failed
        store warns and the value stays in memory."""
        if self.root is None:
            return
        size = sum(a.nbytes for a in arrays.values())
        if self.read_only is not None or not worth_storing(size, seconds, self.min_seconds_per_mb):
            self.stats["memory_only"] += 1
            return
        try:
            entries.write(self.root, kind, key, experiment.to_dict(), kwargs, arrays, meta)
        except OSError as error:
            self.stats["memory_only"] += 1
            if folder_wide(error):  # full disk, quota, read-only: no further write is tried
                self._stop_writing(error.strerror or str(error), stacklevel=5)
                return
            warnings.warn(
                f"cache entry {kind}-{key} could not be stored under {self.root} ({error}); keeping it in memory only",
                stacklevel=4,
            )

    def _stop_writing(self, reason: str, stacklevel: int) -> None:
        """From now on keep new entries in memory only (and say so once); entries on disk are still read."""
        self.read_only = reason
        warnings.warn(
            f"cache folder {self.root} takes no new entries ({reason}): entries already there are read, "
            "new ones are kept in memory only for this session",
            stacklevel=stacklevel,
        )
