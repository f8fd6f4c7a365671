"""Sweeps: train a grid of preset experiments into the trajectory cache, on a Dask cluster.

A grid (TOML) crosses regimes x teachers x depths x init seeds x lr factors x batch sizes::

    tier = "nightly"                 # preset sizes (SGD runs); default "nightly"
    regimes = ["saddle", "ntk"]      # presets.REGIMES
    teachers = ["lowrank"]           # presets.TEACHERS
    depths = [2, 3]
    init_seeds = [0, 1]              # optional: seeds of the preset's init (default: [0])
    lr_factors = [1.0, 0.5]          # optional: lr = factor x preset lr, steps / factor (same time)
    batch_sizes = [10, 30]           # optional: default the preset's batch size

Every experiment is trained as the claims read it, ``cache(experiment,
checkpoints=time_grid_for(experiment))``, and each preset (lr factor 1, the preset's batch) also
trains the init ensembles the claims run (:mod:`dlncheck.suite.init_ensembles`: the pattern claims'
ensemble with its analysis, and the assumption checks' ensemble), so a later ``pytest claims``
finds them in the cache instead of training. One Dask task per group of experiments that share
everything but the init seed and lr (the configs an ensemble trains together); a failed task is
retried once and then reported with its experiments; what the cache already holds is skipped.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import tomllib
from pathlib import Path

from dlncheck import presets
from dlncheck.config import validation as check
from dlncheck.config.experiment import Experiment
from dlncheck.config.threads import set_cpu_threads
from dlncheck.measure.events import time_grid_for
from dlncheck.store.cache import TrajectoryCache
from dlncheck.suite import init_ensembles
from dlncheck.suite.tiers import TIERS, Tier

GRID_KEYS = {  # key: (type of each item, required)
    "tier": (str, False),
    "regimes": (str, True),
    "teachers": (str, True),
    "depths": (int, True),
    "init_seeds": (int, False),
    "lr_factors": (float, False),
    "batch_sizes": (int, False),
}


def _items(grid: dict, key: str, kind: type, choices=None) -> list:
    values = grid[key]
    if not isinstance(values, list) or not values:
        raise ValueError(f"grid key {key!r} = {values!r} is invalid: give a non-empty list, e.g. {key} = [...]")
    for v in values:
        ok = (
            isinstance(v, (int, float)) and not isinstance(v, bool)
            if kind is float
            else isinstance(v, kind) and not isinstance(v, bool)
        )
        if not ok or (choices is not None and v not in choices):
            allowed = f"one of {choices}" if choices else f"a {kind.__name__}"
            raise ValueError(f"grid key {key!r} holds {v!r}: each item must be {allowed}")
    return values


def load_grid(path: str | Path) -> dict:
    """Read and validate a grid TOML; unknown keys and bad values raise ValueError naming the key."""
    with open(path, "rb") as f:
        try:
            grid = tomllib.load(f)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{path}: not valid TOML ({error}); see the format in dlncheck.suite.sweep") from None
    return validate_grid(grid)


def validate_grid(grid: dict) -> dict:
    """The grid with defaults filled in; ValueError naming the key and the fix otherwise."""
    unknown = sorted(set(grid) - set(GRID_KEYS))
    if unknown:
        raise ValueError(f"grid keys {unknown} are unknown: use only {sorted(GRID_KEYS)}")
    missing = [k for k, (_, required) in GRID_KEYS.items() if required and k not in grid]
    if missing:
        raise ValueError(f"grid keys {missing} are missing: every grid names regimes, teachers and depths")
    tier = grid.get("tier", "nightly")
    if tier not in TIERS:
        raise ValueError(f"grid key 'tier' = {tier!r} is invalid: choose one of {tuple(TIERS)}")
    out = {
        "tier": tier,
        "regimes": _items(grid, "regimes", str, presets.REGIMES),
        "teachers": _items(grid, "teachers", str, presets.TEACHERS),
        "depths": _items(grid, "depths", int),
        "init_seeds": _items(grid, "init_seeds", int) if "init_seeds" in grid else [0],
        "lr_factors": _items(grid, "lr_factors", float) if "lr_factors" in grid else [1.0],
        "batch_sizes": _items(grid, "batch_sizes", int) if "batch_sizes" in grid else [presets.BATCH_SIZE],
    }
    if any(d < 2 for d in out["depths"]):
        raise ValueError(f"grid key 'depths' = {out['depths']} is invalid: presets need depth >= 2")
    if any(s < 0 for s in out["init_seeds"]):
        raise ValueError(f"grid key 'init_seeds' = {out['init_seeds']} is invalid: seeds are >= 0")
    if any(not (0 < f <= 1e3 and math.isfinite(f)) for f in out["lr_factors"]):
        raise ValueError(f"grid key 'lr_factors' = {out['lr_factors']} is invalid: use finite factors in (0, 1e3]")
    if any(not 1 <= b <= presets.N_SAMPLES for b in out["batch_sizes"]):
        raise ValueError(
            f"grid key 'batch_sizes' = {out['batch_sizes']} is invalid: "
            f"use 1 <= batch size <= n_samples = {presets.N_SAMPLES}"
        )
    return out


def grid_experiments(grid: dict) -> list[list[Experiment]]:
    """The grid's experiments, grouped: one group per (regime, teacher, depth, batch size), holding
    every (init seed, lr factor) config of that group (what one ensemble trains together), the
    preset's own config (seed 0, factor 1) first when the grid holds it."""
    groups = []
    for regime, teacher, depth, batch in itertools.product(
        grid["regimes"], grid["teachers"], grid["depths"], grid["batch_sizes"]
    ):
        base = presets.experiment(regime, teacher, depth, TIERS[grid["tier"]].sgd_runs, batch_size=batch)
        group = []
        for seed, factor in itertools.product(grid["init_seeds"], grid["lr_factors"]):
            init = dataclasses.replace(base.init, seed=seed)
            lr, steps = base.lr * factor, max(1, round(base.steps / factor))
            group.append(
                base
                if (seed, factor) == (base.init.seed, 1.0)
                else dataclasses.replace(base, init=init, lr=lr, steps=steps)
            )
        groups.append(sorted(group, key=lambda e: e != base))
    return groups


def train_into_cache(cache: TrajectoryCache, experiment: Experiment):
    """Train (or read) ``experiment`` exactly as the claims read it."""
    return cache(experiment, checkpoints=time_grid_for(experiment))


def cached(cache: TrajectoryCache, experiment: Experiment) -> bool:
    """Whether the cache already holds the claims' entry for ``experiment``."""
    return cache.contains("trajectory", experiment, {"checkpoints": time_grid_for(experiment)})


def train_init_ensembles(cache: TrajectoryCache, preset: Experiment, tier: Tier) -> None:
    """The init ensembles the claims run for ``preset`` in ``tier`` (pattern claims with their
    analysis, assumption checks), trained into ``cache``."""

    _, runs = init_ensembles.case_runs(preset, "random", tier.ensembles, cache)
    _, trajectories = init_ensembles.case_trajectories(preset, "random", tier.ensembles, cache)
    for _ in (*runs, *trajectories):  # a large ensemble is served config by config: read each one
        pass


def run_group(cache_root: str, specs: list[dict], tier: str) -> int:
    """Dask task: train every experiment of a group into the cache at ``cache_root`` (and, for the
    group's preset, the claims' init ensembles); returns how many experiments this attempt trained
    (the sweep counts from the cache instead). Specs travel as plain dicts (no pickled objects of ours)."""

    set_cpu_threads(1)
    cache = TrajectoryCache(Path(cache_root), min_seconds_per_mb=0.0)  # a sweep fills the cache: store everything
    trained = 0
    for n, spec in enumerate(specs):
        experiment = Experiment.from_dict(spec)
        if not cached(cache, experiment):
            train_into_cache(cache, experiment)
            trained += 1
        if n == 0:  # the group's preset: grid_experiments puts it first
            train_init_ensembles(cache, experiment, TIERS[tier])
    return trained


def sweep(
    grid: dict, cache_root: str | Path, scheduler: str | None = None, workers: int = 2, progress: bool = True
) -> dict[str, int]:
    """Train the grid into ``cache_root`` on a Dask cluster (a LocalCluster of ``workers``
    single-threaded processes unless ``scheduler`` names an existing one, whose workers must see
    ``cache_root`` on a shared filesystem). Returns counts: experiments = cached (before the sweep)
    + trained (in the cache after their task) + failed (task failed after its retry, or entry not
    stored), however often tasks were retried or rescheduled from lost workers. An unwritable
    ``cache_root`` is refused before any training."""
    from dask.distributed import Client, LocalCluster, as_completed
    from tqdm.auto import tqdm

    cache_root = str(check.writable_folder("cache_root", cache_root).resolve())  # before any training
    probe = TrajectoryCache(Path(cache_root))
    groups = grid_experiments(grid)
    before = [[cached(probe, e) for e in g] for g in groups]  # what the cache holds already
    counts = {"experiments": sum(len(g) for g in groups), "cached": sum(map(sum, before)), "trained": 0, "failed": 0}
    cluster = (
        None
        if scheduler
        else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    )
    with Client(scheduler or cluster) as client:
        futures = {  # every group's task skips what the cache holds (its init ensembles included)
            client.submit(run_group, cache_root, [e.to_dict() for e in g], grid["tier"], retries=1, pure=False): i
            for i, g in enumerate(groups)
        }
        for future in tqdm(as_completed(futures), total=len(futures), desc="sweep", disable=not progress):
            group, was = groups[futures[future]], before[futures[future]]
            new = [e for e, hit in zip(group, was) if not hit]
            try:
                future.result()
                error = None
            except Exception as caught:  # reported with its experiments, the rest of the grid goes on
                error = f"sweep task failed after one retry: {type(caught).__name__}: {caught}"
            # counted from the cache itself, not from what a task returned: an attempt that trained
            # some experiments on a worker that then died is followed by one that finds them cached
            stored = [e for e in new if error is None and cached(probe, e)]
            counts["trained"] += len(stored)
            counts["failed"] += len(new) - len(stored)
            missing = [e for e in new if e not in stored]
            if missing:
                names = ", ".join(f"{e.key()} (lr={e.lr:g}, seed={e.init.seed})" for e in missing)
                print(f"{error or 'sweep task finished but left entries out of the cache'}; experiments {names}")
    if cluster is not None:
        cluster.close()
    return counts
