"""Large ensembles in pieces: missing configs train in programs of at most policy.TRAIN_CHUNK_GB
(configs are independent, so the trajectories are the one-program ones), and an ensemble over
policy.LAZY_ENSEMBLE_GB of checkpoints is served config by config (:class:`OnDemand`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from dlncheck.config.experiment import Experiment
from dlncheck.engine.budget import estimate_bytes
from dlncheck.store import policy

T = TypeVar("T")


def train_bytes(experiment: Experiment, train_kwargs: dict, part: str | None = None) -> int:
    """Bytes ``train(experiment, **train_kwargs)`` holds while it runs (engine.budget's estimate): all
    parts, or the one named ``part`` (e.g. "weights at checkpoints", what its trajectory keeps)."""
    parts = estimate_bytes(experiment, train_kwargs.get("checkpoints"), train_kwargs.get("loss_every", 1))
    return parts[part][0] if part is not None else sum(size for size, _ in parts.values())


def training_chunks(configs: list[int], sizes: list[int]) -> list[list[int]]:
    """``configs`` in consecutive groups, each trained as one program: a group grows while its summed
    ``sizes`` (train_bytes) stay within policy.TRAIN_CHUNK_GB, and holds at least one config."""
    groups: list[list[int]] = []
    held = 0.0
    for config, size in zip(configs, sizes):
        if not groups or held + size > policy.TRAIN_CHUNK_GB * 1e9:
            groups.append([])
            held = 0.0
        groups[-1].append(config)
        held += size
    return groups


class OnDemand(Sequence[T]):
    """A sequence of ``length`` items built when read: ``[i]`` is ``fetch(i)``, kept by nobody but the
    caller (the trajectory cache's config-by-config ensembles, :meth:`TrajectoryCache.ensemble`)."""

    def __init__(self, length: int, fetch: Callable[[int], T]):
        self.length, self.fetch = length, fetch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(self.length)[i]]
        return self.fetch(range(self.length)[i])  # negative indices; IndexError past the end
