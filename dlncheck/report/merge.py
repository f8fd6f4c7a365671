"""``dlncheck report merge SHARD_DIR... --out DIR``: one report from the reports of N shards.

Each shard folder holds ``results.json`` (meta + one record per claim) and the claims' folders
its records link to. The merge refuses shards of different tiers or commits, or shards that ran
the same case twice; it copies every claim folder, unites the history lines (each shard's own run
tagged as one merged run, started when the first shard started; the last ``history.RUNS_SHOWN``
runs kept), and writes one
``results.json`` and ``index.html`` through the same renderer as a single run. The output is
built in a temporary folder beside ``--out`` and swapped in at the end (nothing half-written is
left behind), and merging the same shards again gives the same records.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from dlncheck.report import history as hist
from dlncheck.report.history import FILE as HISTORY
from dlncheck.report.html import write_report

JUNIT = "junit.xml"


def _load(shard: Path) -> dict:
    path = shard / "results.json"
    if not path.is_file():
        raise ValueError(
            f"shard {shard} has no results.json: pass the reports folder of a finished `pytest claims --shard K/N` run"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def _identity(meta: dict) -> tuple[str, str]:
    provenance = meta.get("provenance", {})
    return meta.get("tier", ""), provenance.get("commit", meta.get("commit", ""))


def merged_meta(metas: list[dict], shards: list[Path]) -> dict:
    """The first shard's meta, after checking every shard has the same tier and commit."""
    first = _identity(metas[0])
    for meta, shard in zip(metas[1:], shards[1:]):
        if _identity(meta) != first:
            tier, commit = _identity(meta)
            raise ValueError(
                f"shard {shard} is tier {tier!r} at commit {commit!r} but {shards[0]} is tier "
                f"{first[0]!r} at commit {first[1]!r}: merge shards of one run only"
            )
    return {**metas[0], "shard": "", "merged_from": len(shards)}


def merged_records(results: list[dict], shards: list[Path]) -> list[dict]:
    """Every shard's records; a case present in two shards is an error (overlapping shards)."""
    seen: dict[str, Path] = {}
    records = []
    for result, shard in zip(results, shards):
        for record in result["claims"]:
            if record["nodeid"] in seen:
                raise ValueError(
                    f"case {record['nodeid']} ran in both {seen[record['nodeid']]} and {shard}: "
                    "shards must be disjoint (use the same --shard N for every runner)"
                )
            seen[record["nodeid"]] = shard
            records.append(record)
    return sorted(records, key=lambda r: r["nodeid"])


def _copy_artifacts(records: list[dict], shards_of: dict[str, Path], out: Path) -> None:
    for record in records:
        folders = {Path(a["path"]).parent for a in record.get("artifacts", [])}
        for folder in folders:
            source = shards_of[record["nodeid"]] / folder
            if source.is_dir():
                shutil.copytree(source, out / folder, dirs_exist_ok=True)


def _history_lines(paths: list[Path]) -> list[str]:
    """The lines of every history file, each once, in order of first appearance."""
    lines: dict[str, None] = {}
    for path in paths:
        if path.is_file():
            lines.update(dict.fromkeys(line for line in path.read_text(encoding="utf-8").splitlines() if line))
    return list(lines)


def _retagged(path: Path, shard_run: str | None, run: str | None) -> list[str]:
    """The lines of a shard's history file, its own run's lines tagged as the merged ``run`` (every
    shard started at its own time: the trends count the merged run once)."""
    if not path.is_file():
        return []
    out = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(text)
        except ValueError:
            continue  # a line cut by a killed run
        if row.get("run") == shard_run:
            text = json.dumps({**row, "run": run}, sort_keys=True)
        out.append(text)
    return out


def merge(shards: list[Path], out: Path, history: Path | None = None) -> Path:
    """Merge the shard folders into ``out`` (with the lines of an earlier ``history`` file, e.g. the
    previous night's, first); returns the path of the merged index.html."""

    shards = [Path(s) for s in shards]
    if not shards:
        raise ValueError("no shard folders given: pass the reports folder of every shard")
    out = Path(out)
    if any(out.resolve() == s.resolve() for s in shards):
        raise ValueError(f"--out {out} is one of the shards: write the merged report to a new folder")
    results = [_load(s) for s in shards]
    meta = merged_meta([r["meta"] for r in results], shards)
    records = merged_records(results, shards)
    shards_of = {r["nodeid"]: s for result, s in zip(results, shards) for r in result["claims"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{out.name}-merge-", dir=out.parent))
    try:
        _copy_artifacts(records, shards_of, build)
        earlier = _history_lines([Path(history)] if history else [])
        run = min((r["meta"].get("started") or "" for r in results), default="") or None
        lines = list(
            dict.fromkeys(
                earlier
                + [t for r, s in zip(results, shards) for t in _retagged(s / HISTORY, r["meta"].get("started"), run)]
            )
        )
        rows = [json.loads(line) for line in lines]
        hist.write(build, rows)
        previous = hist.latest(rows, run)
        for number, shard in enumerate(shards, 1):
            if (shard / JUNIT).is_file():
                shutil.copyfile(shard / JUNIT, build / f"junit-shard{number}.xml")
        changes = hist.changes(records, previous)
        _, index = write_report(records, build, {**meta, "started": run}, changes=changes, history=rows)
        old = out.with_name(f".{out.name}-old")
        shutil.rmtree(old, ignore_errors=True)
        if out.exists():
            out.rename(old)
        build.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return out / index.name
