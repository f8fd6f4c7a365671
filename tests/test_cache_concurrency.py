"""Two processes write the same cache entries at once while a third reads, and one writer is
killed with SIGKILL in the middle of an entry (issue #30).

Both writers start together (a start file) and walk the same experiments, so they train and
store the same entries at the same moments; the killed one dies either halfway through an npz
(leaving a hidden temporary) or between an entry's npz and its json (an npz with no json yet).
The reader loads every entry it finds with warnings as errors (an "unreadable" entry would be one)
and compares it with its own fresh training. At the end every entry is complete and equal to a
fresh training, or absent; no npz lacks its json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dlncheck import presets
from dlncheck.engine._train import train
from dlncheck.store import entries
from dlncheck.store.cache import TrajectoryCache

ROOT = Path(__file__).resolve().parents[1]
N = 6
SETUP = f"""
import json, os, signal, sys, time, warnings
from pathlib import Path
import numpy as np
import torch
from dlncheck import presets
from dlncheck.engine._train import train
from dlncheck.store import entries
from dlncheck.store.cache import TrajectoryCache

torch.set_num_threads(1)
root = Path(sys.argv[1])
EXPS = [presets.experiment("saddle", "lowrank", 2, sgd_runs=2, steps=300 + 30 * i) for i in range({N})]
KW = {{"checkpoints": 4}}
"""
WRITER = (
    SETUP
    + """
mode, kill_at = sys.argv[2], int(sys.argv[3])
written = []
if mode != "none":  # the killed writer never reads: it trains and writes every entry, so it reaches its
    entries.read = lambda *args, **kwargs: None  # kill whether or not the other writer got there first


def die():
    os.kill(os.getpid(), signal.SIGKILL)


if mode == "mid-npz":  # halfway through the npz's first array of entry kill_at
    write_entry, write_array = entries.write, np.lib.format.write_array

    def counting(*args, **kwargs):
        written.append(1)
        return write_entry(*args, **kwargs)

    def half(member, array, *args, **kwargs):
        if len(written) == kill_at + 1:
            member.write(np.ascontiguousarray(array).tobytes()[: array.nbytes // 2])
            die()
        return write_array(member, array, *args, **kwargs)

    entries.write, np.lib.format.write_array = counting, half
elif mode == "before-json":  # entry kill_at's npz is in place, its json not yet
    write_json = entries.write_json

    def json_or_die(*args, **kwargs):
        written.append(1)
        if len(written) == kill_at + 1:
            die()
        return write_json(*args, **kwargs)

    entries.write_json = json_or_die
(root / f"ready-{os.getpid()}").touch()
while not (root / "go").exists():
    time.sleep(0.01)
for exp in EXPS:
    TrajectoryCache(root, min_seconds_per_mb=0.0)(exp, **KW)  # a fresh cache: reads or trains and writes
"""
)
READER = (
    SETUP
    + """
warnings.simplefilter("error")  # an unreadable entry (a checksum that does not match) raises
fresh = [train(exp, **KW) for exp in EXPS]
cache = TrajectoryCache(root)
keys = [cache.key("trajectory", exp, KW) for exp in EXPS]
(root / f"ready-{os.getpid()}").touch()
reads = 0
while not (root / "done").exists():
    for exp, key, ref in zip(EXPS, keys, fresh):
        traj = entries.read(root, "trajectory", key, lambda arrays, meta, exp=exp: type(ref).from_arrays(arrays, exp))
        if traj is not None:
            reads += 1
            same = torch.equal(traj.loss, ref.loss) and all(torch.equal(a, b) for a, b in zip(traj.weights, ref.weights))
            assert same, f"entry {key} differs from a fresh training"
    time.sleep(0.005)
print(json.dumps({"reads": reads}))
"""
)


def start(script: str, *args: str) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.parametrize("kill", ["mid-npz", "before-json"])
def test_two_writers_one_killed_and_a_reader_see_complete_entries_or_none(tmp_path, kill):
    root = tmp_path / "cache"
    root.mkdir()
    procs = {"writer": start(WRITER, str(root), "none", "0"), "killed": start(WRITER, str(root), kill, "2")}
    procs["reader"] = start(READER, str(root))
    wait_for(lambda: len(list(root.glob("ready-*"))) == 3, 300, "three processes to start")
    (root / "go").touch()
    try:
        results = {name: procs[name].communicate(timeout=300) for name in ("writer", "killed")}
    finally:
        (root / "done").touch()
        out, err = procs["reader"].communicate(timeout=300)
    assert procs["writer"].returncode == 0, results["writer"][1][-3000:]
    assert procs["killed"].returncode == -signal.SIGKILL, results["killed"][1][-3000:]
    assert procs["reader"].returncode == 0, err[-3000:]
    assert json.loads(out)["reads"] > 0

    cache = TrajectoryCache(root)  # warnings are errors in this suite: an unreadable entry fails here
    exps = [presets.experiment("saddle", "lowrank", 2, sgd_runs=2, steps=300 + 30 * i) for i in range(N)]
    complete = 0
    for exp in exps:
        npz, spec = entries.paths(root, "trajectory", cache.key("trajectory", exp, {"checkpoints": 4}))
        assert spec.exists() or not npz.exists(), f"{npz.name} has no json"
        if spec.exists():
            complete += 1
            traj, ref = cache(exp, checkpoints=4), train(exp, checkpoints=4)
            assert torch.equal(traj.loss, ref.loss) and all(
                torch.equal(a, b) for a, b in zip(traj.weights, ref.weights)
            )
    assert cache.stats["disk"] == complete == N  # the surviving writer completed every entry
    assert all(p.name.startswith((".trajectory-", "trajectory-", "ready-", "go", "done")) for p in root.iterdir())
