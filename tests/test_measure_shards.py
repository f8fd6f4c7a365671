"""scripts/measure_shards.py: a shard's peak memory is the whole process tree's, children included."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("measure_shards", ROOT / "scripts" / "measure_shards.py")
measure_shards = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(measure_shards)

# A parent that starts a child holding 300 MiB of touched memory for a second, then exits 3.
TREE = (
    "import subprocess, sys; "
    "subprocess.run([sys.executable, '-c', "
    "'import time; b = bytearray(300 * 2**20); time.sleep(1.5)']); sys.exit(3)"
)


def test_a_child_s_memory_is_counted_and_the_exit_status_kept(tmp_path):
    row = measure_shards.run_shard([sys.executable, "-c", TREE], tmp_path / "log", every=0.1)
    assert row["exit"] == 3
    assert 0.29 <= row["largest_process_gb"] <= 0.45  # the child, not the parent
    assert row["peak_pss_gb"] >= 0.29 and row["peak_rss_sum_gb"] >= row["peak_pss_gb"]
    assert row["wall_s"] >= 1.5 and row["cpu_s"] > 0


def test_heaviest_cases_come_from_the_records_peaks(tmp_path):
    claims = [{"nodeid": f"c{k}", "peak_gb": p, "duration": 1.0} for k, p in enumerate([0.5, None, 3.25, 1.0])]
    claims[2]["start_gb"] = 2.0  # a record from before start_gb was kept has none: 0
    (tmp_path / "results.json").write_text(json.dumps({"claims": claims}))
    assert measure_shards.heaviest(tmp_path / "results.json", n=2) == [["c2", 3.25, 1.0, 2.0], ["c3", 1.0, 1.0, 0.0]]
    assert measure_shards.heaviest(tmp_path / "absent.json") == []


def test_append_keeps_the_other_shards_rows_with_their_commits(tmp_path, monkeypatch):
    fake = {"exit": 0, "wall_s": 1.0, "cpu_s": 1.0, "peak_pss_gb": 1.0, "peak_rss_sum_gb": 1.0}
    monkeypatch.setattr(measure_shards, "run_shard", lambda command, log: dict(fake, largest_process_gb=1.0))
    monkeypatch.setattr(measure_shards, "_commit", lambda: "new1234")
    out = tmp_path / "costs.json"
    args = ["--shards", "4", "--only", "3", "--out", str(out), "--keep", str(tmp_path / "keep"), "--append"]
    assert measure_shards.main(args) == 0  # no record yet: just this shard
    record = json.loads(out.read_text())
    old = dict(record, commit="old5678", rows=[dict(record["rows"][0], shard=k, exit=1) for k in (1, 3)])
    old["rows"][0].pop("commit")
    out.write_text(json.dumps(old))
    args[args.index("--keep") + 1] = str(tmp_path / "keep2")
    assert measure_shards.main(args) == 0  # the exit of the shard measured, not of the kept rows
    rows = json.loads(out.read_text())["rows"]
    assert [(r["shard"], r["commit"], r["exit"]) for r in rows] == [(1, "old5678", 1), (3, "new1234", 0)]
    out.write_text(json.dumps(old | {"workers": 4}))
    with pytest.raises(SystemExit):
        measure_shards.main(args)
