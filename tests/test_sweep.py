"""`dlncheck sweep`: grid validation, a 2-worker LocalCluster sweep into the cache, and claims that
then train nothing the sweep covered."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from dask.distributed import Client, LocalCluster

from dlncheck import presets
from dlncheck.store.cache import TrajectoryCache
from dlncheck.suite import cli, sweep

ROOT = Path(__file__).resolve().parents[1]
CASES = [
    "claims/test_balance.py::test_balance[saddle-lowrank-L3-time]",
    "claims/test_balance.py::test_balance[saddle-lowrank-L3-aligned]",
]
TINY = {"tier": "quick", "regimes": ["saddle"], "teachers": ["lowrank"], "depths": [3], "lr_factors": [1.0, 0.5]}


@pytest.mark.parametrize(
    "grid, field",
    [
        ({"regimes": ["saddle"], "teachers": ["lowrank"]}, "depths"),
        ({**TINY, "regimes": ["lazy"]}, "regimes"),
        ({**TINY, "depths": []}, "depths"),
        ({**TINY, "depths": [2.5]}, "depths"),
        ({**TINY, "depths": [True]}, "depths"),
        ({**TINY, "depths": [1]}, "depths"),
        ({**TINY, "lr_factors": [0.0]}, "lr_factors"),
        ({**TINY, "batch_sizes": [1000]}, "batch_sizes"),
        ({**TINY, "init_seeds": [-1]}, "init_seeds"),
        ({**TINY, "tier": "weekly"}, "tier"),
        ({**TINY, "learning_rates": [1.0]}, "learning_rates"),
    ],
)
def test_bad_grids_name_the_key(grid, field):
    with pytest.raises(ValueError, match=field):
        sweep.validate_grid(grid)


def test_grid_groups_share_everything_but_init_and_lr():
    groups = sweep.grid_experiments(sweep.validate_grid({**TINY, "init_seeds": [0, 1], "batch_sizes": [10, 30]}))
    assert len(groups) == 2 and all(len(g) == 4 for g in groups)
    base = presets.experiment("saddle", "lowrank", 3)
    assert groups[0][0] == base  # the preset itself: the claims' key
    for group in groups:
        assert len({(e.batch_size, e.depth, e.teacher) for e in group}) == 1
        assert {round(e.lr * e.steps, 6) for e in group} <= {
            round(base.lr * base.steps, 6),
            round(base.lr * base.steps + base.lr * 0.5, 6),
        }


def test_cli_reports_a_bad_grid_in_one_line(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text('regimes = ["saddle"]\nteachers = ["lowrank"]\ndepths = "two"\n')
    assert cli.main(["sweep", str(grid)]) == 2
    assert "'depths'" in capsys.readouterr().err


@pytest.mark.slow
def test_local_cluster_sweep_fills_the_cache_and_claims_train_nothing(tmp_path):
    cache_dir = tmp_path / "cache"
    grid = sweep.validate_grid(TINY)
    counts = sweep.sweep(grid, cache_dir, workers=2, progress=False)
    assert counts == {"experiments": 2, "cached": 0, "trained": 2, "failed": 0}
    assert sweep.sweep(grid, cache_dir, workers=2, progress=False) == {
        "experiments": 2,
        "cached": 2,
        "trained": 0,
        "failed": 0,
    }  # a rerun skips
    probe = TrajectoryCache(cache_dir)
    assert all(sweep.cached(probe, e) for g in sweep.grid_experiments(grid) for e in g)

    reports = tmp_path / "reports"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *CASES,
            "-q",
            "-p",
            "no:cacheprovider",
            "--reports-dir",
            str(reports),
            "--cache-dir",
            str(cache_dir),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    served = json.loads((reports / "results.json").read_text())["meta"]["trajectories"]
    assert served["computed"] == 0 and served["disk"] >= 1, served


@pytest.mark.slow
def test_a_worker_killed_mid_task_leaves_counts_that_add_up_and_a_rerun_trains_nothing(tmp_path, monkeypatch):
    """SIGKILL the worker running the only task once it has stored its first experiment: the task is
    rescheduled and its new attempt finds that experiment cached. Counts come from the cache, so
    experiments = cached + trained + failed still holds (before: trained=1, one experiment in no column),
    and a second sweep finds everything cached and writes nothing."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the workers import this checkout
    cache_dir = tmp_path / "cache"
    grid = sweep.validate_grid({**TINY, "depths": [2]})
    counts: dict = {}
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        run = threading.Thread(
            target=lambda: counts.update(
                sweep.sweep(grid, cache_dir, scheduler=cluster.scheduler_address, progress=False)
            )
        )
        run.start()
        deadline = time.monotonic() + 600
        while not list(cache_dir.glob("trajectory-*.json")):  # the preset is stored, the task goes on
            assert time.monotonic() < deadline and run.is_alive(), "the task stored nothing"
            time.sleep(0.02)
        busy = [worker for worker, keys in client.processing().items() if keys]
        assert len(busy) == 1, client.processing()
        for pid in client.run(os.getpid, workers=busy).values():
            os.kill(pid, signal.SIGKILL)
        run.join(600)
        assert not run.is_alive()
    assert counts["experiments"] == counts["cached"] + counts["trained"] + counts["failed"], counts
    assert counts == {"experiments": 2, "cached": 0, "trained": 2, "failed": 0}
    stored = {p.name: p.stat().st_mtime_ns for p in cache_dir.iterdir()}
    again = sweep.sweep(grid, cache_dir, workers=1, progress=False)
    assert again == {"experiments": 2, "cached": 2, "trained": 0, "failed": 0}
    assert {p.name: p.stat().st_mtime_ns for p in cache_dir.iterdir()} == stored  # nothing trained or written
