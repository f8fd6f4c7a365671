"""Folders that refuse writes: a read-only cache folder, a disk that fills up mid-run (ENOSPC), and
read-only or full report folders (issue #30).

The library's TrajectoryCache keeps new entries in memory with one warning and still reads what
the folder holds; a write that fails leaves no partial file. ``pytest claims`` (the plugin),
``dlncheck run --out`` and ``dlncheck sweep`` refuse such a folder before any training instead.
A read-only mount is simulated by failing every file creation under the folder with EROFS (the
tests may run as root, whom permission bits do not stop); a full disk by writes that fail with
ENOSPC halfway, and by shutil.disk_usage reporting no free space.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dlncheck import presets
from dlncheck.config import validation
from dlncheck.engine._train import train
from dlncheck.store import atomic
from dlncheck.store.cache import TrajectoryCache
from dlncheck.suite import cli, sweep

ROOT = Path(__file__).resolve().parents[1]
READ_ONLY = """
import errno, os
from pathlib import Path

_open, _folder = os.open, Path({folder!r}).resolve()


def _read_only(path, flags, *args, **kwargs):
    target = Path(os.fsdecode(path)).resolve()
    writes = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | getattr(os, "O_TMPFILE", 0))
    if writes and (target == _folder or _folder in target.parents):
        raise OSError(errno.EROFS, "Read-only file system", os.fsdecode(path))
    return _open(path, flags, *args, **kwargs)


os.open = _read_only
"""


@pytest.fixture(scope="module")
def exps():
    return [presets.experiment("saddle", "lowrank", 2, sgd_runs=1, steps=60 + 10 * i) for i in range(2)]


def make_read_only(folder: Path) -> None:
    """From now on (this process) no file can be created under ``folder`` (EROFS)."""
    exec(READ_ONLY.format(folder=str(folder)), {})


@pytest.fixture
def restore_os_open():
    real = os.open
    yield
    os.open = real


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def same(a, b) -> bool:
    return torch.equal(a.loss, b.loss) and all(torch.equal(x, y) for x, y in zip(a.weights, b.weights))


def test_read_only_cache_folder_reads_its_entries_and_keeps_new_ones_in_memory(tmp_path, exps, restore_os_open):
    root = tmp_path / "cache"
    stored = TrajectoryCache(root, min_seconds_per_mb=0.0)(exps[0], checkpoints=3)
    before = files(root)
    make_read_only(root)
    with pytest.warns(UserWarning, match=r"takes no new entries \(Read-only file system\).*memory only") as caught:
        cache = TrajectoryCache(root, min_seconds_per_mb=0.0)
    assert len(caught) == 1
    assert same(cache(exps[0], checkpoints=3), stored) and cache.stats["disk"] == 1  # read as before
    fresh = cache(exps[1], checkpoints=3)  # no second warning: warnings are errors in this suite
    assert same(fresh, train(exps[1], checkpoints=3)) and cache.stats["memory_only"] == 1
    assert cache(exps[1], checkpoints=3) is fresh and files(root) == before


@pytest.mark.parametrize("where", ["npz", "json"])
def test_full_disk_mid_run_goes_on_in_memory_and_leaves_no_partial_file(tmp_path, exps, monkeypatch, where):
    """ENOSPC halfway through the npz (inside the zip writer) or through the json: one warning, the
    result is returned and kept in memory, no temporary, npz or json is left, nothing else is tried."""
    root = tmp_path / "cache"
    cache = TrajectoryCache(root, min_seconds_per_mb=0.0)
    attempts = []

    def half_array(member, array, *args, **kwargs):  # np.lib.format.write_array into the zip member
        attempts.append(where)
        raw = np.ascontiguousarray(array).tobytes()
        member.write(raw[: len(raw) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    def half_text(path, text):  # atomic.write_text, which write_json calls
        def write(tmp):
            attempts.append(where)
            tmp.write_text(text[: len(text) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        return atomic.atomic_write(path, write)

    if where == "npz":
        monkeypatch.setattr(np.lib.format, "write_array", half_array)
    else:
        monkeypatch.setattr(atomic, "write_text", half_text)
    with pytest.warns(UserWarning, match=r"takes no new entries \(No space left on device\)") as caught:
        first = cache(exps[0], checkpoints=3)
    assert len(caught) == 1 and same(first, train(exps[0], checkpoints=3))
    assert files(root) == []  # no .tmp, no npz without its json, no json
    second = cache(exps[1], checkpoints=3)  # memory only from now on: no write, no warning
    assert attempts == [where] and files(root) == [] and cache.stats["memory_only"] == 2
    assert cache(exps[0], checkpoints=3) is first and cache(exps[1], checkpoints=3) is second


def run_plugin(pytester, *args):
    pytester.makepyfile(test_x="def test_x():\n    raise AssertionError('no test may run')\n")
    return pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider")


@pytest.fixture
def plugin_checkout(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return pytester


@pytest.mark.parametrize("option", ["--reports-dir", "--cache-dir"])
def test_read_only_report_or_cache_folder_stops_pytest_before_any_test(plugin_checkout, option):
    folder = plugin_checkout.path / "mounted"
    folder.mkdir()
    conftest = READ_ONLY.format(folder=str(folder)) + '\npytest_plugins = ["dlncheck.suite.plugin"]\n'
    plugin_checkout.makeconftest(conftest)
    result = run_plugin(plugin_checkout, option, "mounted")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*{option}=*mounted*is invalid: the folder cannot be written (Read-only file system)*"]
    )


def test_full_report_disk_stops_pytest_before_any_test(plugin_checkout):
    conftest = (
        "import shutil\n"
        "_usage = shutil.disk_usage\n"
        "shutil.disk_usage = lambda path: _usage(path)._replace(free=4096)\n"
        'pytest_plugins = ["dlncheck.suite.plugin"]\n'
    )
    plugin_checkout.makeconftest(conftest)
    result = run_plugin(plugin_checkout)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--reports-dir=*is invalid: its disk has 0.0041 MB free, under the 16.8 MB*"])


def test_full_or_read_only_run_folder_is_refused_before_training(tmp_path, monkeypatch, capsys, restore_os_open):
    usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(path)._replace(free=0))
    assert cli.main(["run", "saddle-lowrank-L2", "--out", str(tmp_path / "full")]) == 2
    assert "--out=" in capsys.readouterr().err and not list((tmp_path / "full").iterdir())
    monkeypatch.setattr(shutil, "disk_usage", usage)
    (tmp_path / "ro").mkdir()
    make_read_only(tmp_path / "ro")
    assert cli.main(["run", "saddle-lowrank-L2", "--out", str(tmp_path / "ro")]) == 2
    assert "Read-only file system" in capsys.readouterr().err


def test_read_only_sweep_cache_is_refused_before_any_cluster_starts(tmp_path, capsys, restore_os_open):
    (tmp_path / "ro").mkdir()
    make_read_only(tmp_path / "ro")
    grid = sweep.validate_grid({"tier": "quick", "regimes": ["saddle"], "teachers": ["lowrank"], "depths": [2]})
    with pytest.raises(validation.InvalidArgument, match=r"^cache_root=.*Read-only file system"):
        sweep.sweep(grid, tmp_path / "ro", workers=1, progress=False)
    toml = tmp_path / "grid.toml"
    toml.write_text('tier = "quick"\nregimes = ["saddle"]\nteachers = ["lowrank"]\ndepths = [2]\n')
    assert cli.main(["sweep", str(toml), "--cache-dir", str(tmp_path / "ro")]) == 2
    assert "--cache-dir=" in capsys.readouterr().err
