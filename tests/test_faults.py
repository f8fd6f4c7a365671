"""Faults around the engine: cache entries that lie, folders that refuse writes, stale
temporaries, report/cache folders checked at pytest start, machine-independent preset keys."""

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dlncheck import presets
from dlncheck.store import _format as cache_format
from dlncheck.store.cache import TrajectoryCache


@pytest.fixture(scope="module")
def exp():
    return presets.experiment("saddle", "lowrank", 2, sgd_runs=1, steps=200)


def test_presets_are_identical_under_one_and_two_threads():
    """The NTK presets' lr and steps come from kernel bounds at init: computed in float64 under one
    thread and rounded, so every field (and the cache key) is the same whatever the thread count."""
    before = torch.get_num_threads()
    try:
        specs = {}
        for n in (1, 2):
            torch.set_num_threads(n)
            specs[n] = [presets.experiment(*case, sgd_runs=32) for case in presets.cases()]
    finally:
        torch.set_num_threads(before)
    assert specs[1] == specs[2]
    assert [e.key() for e in specs[1]] == [e.key() for e in specs[2]]
    assert all(float(f"{e.lr:.6g}") == e.lr for e in specs[1])


def _read(npz):
    return cache_format.read(npz, json.loads(npz.with_suffix(".json").read_text())["layout"])


def _rewrite(npz, arrays):
    """Store damaged arrays in the cache's own format, with a matching checksum and layout."""
    digest, layout = cache_format.write(npz, arrays)
    spec = npz.with_suffix(".json")
    meta = json.loads(spec.read_text())
    spec.write_text(json.dumps(meta | {"sha256": digest, "layout": layout}))


@pytest.mark.parametrize("damage", ["nan-weights", "nan-loss", "wrong-shape", "missing-layer"])
def test_entry_with_matching_checksum_but_bad_arrays_is_recomputed(tmp_path, exp, damage):
    good = TrajectoryCache(tmp_path)(exp, checkpoints=3)
    npz = next(tmp_path.glob("trajectory-*.npz"))
    arrays = _read(npz)
    if damage == "nan-weights":
        arrays["weights_1"][0, -1, 0, 0] = np.nan
    elif damage == "nan-loss":
        arrays["loss"][0, 3] = np.nan
    elif damage == "wrong-shape":
        arrays["weights_0"] = arrays["weights_0"][:, :, :2]
    else:
        del arrays["initial_1"]
    _rewrite(npz, arrays)
    with pytest.warns(UserWarning, match="unreadable"):
        again = TrajectoryCache(tmp_path)(exp, checkpoints=3)
    assert torch.equal(again.loss, good.loss) and torch.equal(again.weights[1], good.weights[1])


@pytest.mark.filterwarnings("ignore:cache entry .* is unreadable")
@pytest.mark.parametrize("fault", ["file-as-folder", "folder-as-npz"])
def test_failed_store_warns_and_keeps_the_result_in_memory(tmp_path, exp, fault):
    root = tmp_path / "cache"
    if fault == "file-as-folder":  # no folder at all: said once, when the cache opens
        root.write_text("not a folder")
        with pytest.warns(UserWarning, match="takes no new entries .*memory only"):
            cache = TrajectoryCache(root)
        traj = cache(exp, checkpoints=3)
    else:  # one entry's path is blocked: said for that entry
        TrajectoryCache(root)(exp, checkpoints=3)
        npz = next(root.glob("trajectory-*.npz"))
        npz.unlink()
        npz.mkdir()
        cache = TrajectoryCache(root)
        with pytest.warns(UserWarning, match="memory only"):
            traj = cache(exp, checkpoints=3)
    assert cache(exp, checkpoints=3) is traj and torch.isfinite(traj.loss).all()


def test_stale_temporaries_are_removed_fresh_ones_kept(tmp_path, exp):
    stale, fresh = tmp_path / ".trajectory-x.npz.abc.tmp", tmp_path / ".trajectory-y.npz.def.tmp"
    for path in (stale, fresh):
        path.write_bytes(b"partial")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    TrajectoryCache(tmp_path)
    assert not stale.exists() and fresh.exists()  # a fresh one may belong to a live xdist worker


@pytest.fixture
def this_checkout(monkeypatch):
    """Subprocess pytest runs import dlncheck from this checkout, not an installed copy."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))


@pytest.mark.parametrize("option", ["--reports-dir", "--cache-dir"])
def test_unwritable_report_or_cache_folder_is_a_usage_error(pytester, option, this_checkout):
    pytester.makeconftest('pytest_plugins = ["dlncheck.suite.plugin"]')
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    (pytester.path / "blocker").write_text("a file where the folder should be")
    result = pytester.runpytest_subprocess(option, "blocker/sub", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{option}=*blocker*is invalid: the folder cannot be written*"])


def test_os_error_in_a_claim_is_recorded_as_error_not_failed(pytester, this_checkout):
    pytester.makeconftest('pytest_plugins = ["dlncheck.suite.plugin"]')
    pytester.makepyfile(
        test_claim="""
def test_disk(claim):
    raise PermissionError(13, "Permission denied", "reports/x.png")

def test_science(claim):
    assert 1 == 2
"""
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider")
    records = json.loads((pytester.path / "reports" / "results.json").read_text())["claims"]
    outcomes = {r["case"]: r["outcome"] for r in records}
    assert outcomes == {"test_disk": "error", "test_science": "failed"}
