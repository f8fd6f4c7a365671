"""Run the claims tier shard by shard, as the nightly workflow does, and record what each shard costs:

    .venv/bin/python scripts/measure_shards.py --tier nightly --shards 8 --workers 2

Each shard ``pytest claims --tier T -n W --shard K/N`` runs alone, with its own fresh trajectory
cache (a CI runner starts empty), while a sampler reads its whole process tree once a second. The
memory in use is the sum of the proportional set sizes (PSS: a page shared by k processes counts
1/k in each), so the workers' shared libraries are not counted twice; the summed resident sizes
(an upper bound) and the largest single process are kept beside it, with the shard's heaviest cases (each case's own
peak, ``peak_gb`` of its record in results.json). CPU seconds are the tree's
user + system time (``getrusage(RUSAGE_CHILDREN)``), which another load on the machine slows but
does not add to. The record (one JSON object) goes to ``--out`` (default claims/shard_costs.json),
from which ``scripts/write_docs.py --shard-costs`` writes the table in docs/nightly.md and the line
in the README. ``--keep DIR`` keeps each shard's reports and log (to merge them with ``dlncheck report merge``
for the nightly report's size and contradictions); by default they go with a temporary folder.
Each row names the commit it measured (read as the shard starts, "+dirty" when dlncheck/ or claims/
differ from it); ``--append`` keeps the other shards' rows of an existing record (shards measured one
at a time, on different days).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GIB = 2**30

from dlncheck.store.atomic import write_text  # noqa: E402
from dlncheck.suite.tiers import SIZES  # noqa: E402


def _tree_memory(root: psutil.Process) -> tuple[int, int, int]:
    """(summed PSS, summed RSS, largest RSS) in bytes over ``root`` and its descendants."""
    pss = rss = largest = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0, 0
    for proc in procs:
        try:
            mem = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        pss, rss, largest = pss + mem.pss, rss + mem.rss, max(largest, mem.rss)
    return pss, rss, largest


def run_shard(command: list[str], log: Path, every: float = 1.0) -> dict[str, float | int]:
    """Run ``command`` with its output to ``log``; its peaks, wall time and CPU time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        root = psutil.Process(proc.pid)
        peak = [0, 0, 0]
        while proc.poll() is None:
            peak = [max(a, b) for a, b in zip(peak, _tree_memory(root))]
            time.sleep(every)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "exit": proc.returncode,
        "wall_s": round(time.monotonic() - start, 1),
        "cpu_s": round(cpu, 1),
        "peak_pss_gb": round(peak[0] / GIB, 2),
        "peak_rss_sum_gb": round(peak[1] / GIB, 2),
        "largest_process_gb": round(peak[2] / GIB, 2),
    }


def heaviest(results: Path, n: int = 5) -> list[list]:
    """The ``n`` cases of a shard's results.json with the largest peak memory: [[node id, GB, seconds,
    GB the worker held at the case's start]]."""
    if not results.is_file():
        return []
    claims = json.loads(results.read_text(encoding="utf-8"))["claims"]
    ranked = sorted((c for c in claims if c.get("peak_gb") is not None), key=lambda c: -c["peak_gb"])
    return [
        [c["nodeid"], round(c["peak_gb"], 2), round(c["duration"], 1), round(c.get("start_gb") or 0.0, 2)]
        for c in ranked[:n]
    ]


def _commit() -> str:
    """HEAD's short hash, with "+dirty" when the package or the claims differ from it (read as each
    shard starts: a shard runs the code its pytest imports then)."""
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    record = ":(exclude)claims/shard_costs.json"  # this script's own output
    dirty = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD", "--", "dlncheck", "claims", record])
    return (out.stdout.strip() or "unknown") + ("+dirty" if dirty.returncode else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tier", default="nightly", choices=tuple(SIZES))
    p.add_argument("--shards", type=int, default=8, help="N of --shard K/N (the nightly workflow's matrix)")
    p.add_argument("--workers", type=int, default=2, help="pytest -n per shard, as the workflow runs it")
    p.add_argument("--only", type=int, nargs="*", help="measure only these K (default: all)")
    p.add_argument("--out", type=Path, default=ROOT / "claims" / "shard_costs.json")
    p.add_argument("--keep", type=Path, help="keep each shard's reports, cache and log in this folder (to merge)")
    p.add_argument("--append", action="store_true", help="keep the other shards' rows of an existing --out record")
    args = p.parse_args(argv)
    if args.shards < 1 or args.workers < 1:
        p.error("--shards and --workers must be at least 1")
    commit = _commit()
    record = {
        "tier": args.tier,
        "shards": args.shards,
        "workers": args.workers,
        "commit": commit,
        "machine": f"{os.cpu_count()} cores, {psutil.virtual_memory().total / GIB:.0f} GiB, {platform.machine()}",
        "rows": [],
    }
    kept: list[dict] = []  # the other shards' rows of the record appended to
    if args.append and args.out.is_file():
        old = json.loads(args.out.read_text(encoding="utf-8"))
        same = {k: old.get(k) for k in ("tier", "shards", "workers", "machine")}
        if same != {k: record[k] for k in same}:
            p.error(f"--append: {args.out} was measured as {same}, not as this run; choose another --out")
        measured = set(args.only or range(1, args.shards + 1))
        kept = [{"commit": old["commit"], **row} for row in old["rows"] if row["shard"] not in measured]
    with tempfile.TemporaryDirectory(prefix="dlncheck-shards-") as scratch:
        tmp = args.keep or scratch
        for k in args.only or range(1, args.shards + 1):
            folder = Path(tmp, f"shard-{k}")
            command = [sys.executable, "-m", "pytest", "claims", "--tier", args.tier, "-n", str(args.workers)]
            command += ["--shard", f"{k}/{args.shards}", "-p", "no:cacheprovider", "-q"]
            command += ["--reports-dir", str(folder / "reports"), "--cache-dir", str(folder / "cache")]
            folder.mkdir(parents=True)
            row = {"shard": k, "commit": _commit(), **run_shard(command, Path(tmp, f"shard-{k}.log"))}
            row["heaviest"] = heaviest(folder / "reports" / "results.json")
            print(json.dumps(row), flush=True)
            record["rows"].append(row)
    measured_rows = record["rows"]
    record["rows"] = sorted(kept + measured_rows, key=lambda row: row["shard"])
    write_text(args.out, json.dumps(record, indent=1) + "\n")  # all shards or nothing
    return max(int(row["exit"]) for row in measured_rows)


if __name__ == "__main__":
    raise SystemExit(main())
