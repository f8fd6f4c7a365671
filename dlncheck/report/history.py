"""``reports/history.jsonl``: the records of the last ``RUNS_SHOWN`` runs, one JSON object per
line, and what changed.

Each line is one claim record of one run, slimmed to what comparing runs needs: the outcome,
whether the prediction held, the golden-path reading (``finding``), the contradiction's root
cause and the key number. Trends and per-case tables read the last ``RUNS_SHOWN`` runs, so the
file keeps those and no more (a quick-tier run adds about 0.14 MB): each run rewrites it
atomically (:mod:`dlncheck.store.atomic`) with its own lines added and the oldest run's dropped.
:func:`load` skips a line that does not parse (a truncated one of a file appended to by older versions).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from dlncheck.report.findings import NA, A, D, golden_path
from dlncheck.store import atomic

FILE = "history.jsonl"
DRIFT_BAND = 0.05  # relative: |new - old| > 5 % of max(|old|, |new|) counts as drift
FIELDS = ("nodeid", "family", "case", "outcome", "holds", "golden_path", "key", "key_value")
RUNS_SHOWN = 30  # runs in a trend and in a case page's history table
#: what :func:`changes` reports, in the order the report lists them
KINDS = (
    "reading_flips",
    "new_contradictions",
    "vanished_contradictions",
    "xpass",
    "drift",
    "flips",
    "new_cases",
)


def line(run: dict, rec: dict) -> dict:
    """The history line of ``rec`` in the run whose meta is ``run``."""
    tag = {"run": run.get("started"), "commit": run.get("git_commit"), "status": run.get("status")}
    cause = (rec.get("contradiction") or {}).get("cause")
    return {**tag, **{k: rec.get(k) for k in FIELDS}, "finding": golden_path(rec), "cause": cause}


def append(root: Path, run: dict, records: list[dict]) -> Path:
    """Add this run's slim records to ``root/history.jsonl`` (:func:`write`; a run the file
    holds already is not added twice). The caller holds the reports folder's lock, so no other
    run writes the file between reading and replacing it."""
    return write(root, with_run(load(root), run, records))


def write(root: Path, rows: list[dict]) -> Path:
    """Write the lines of ``rows``' last ``RUNS_SHOWN`` runs, in their order, to
    ``root/history.jsonl`` atomically (readers see the old file or the new one, never a part);
    a line of no run is of none of them."""
    kept = set(runs(rows))
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows if str(r.get("run")) in kept)
    return atomic.write_text(root / FILE, text)


def load(root: Path) -> list[dict]:
    path = root / FILE
    if not path.exists():
        return []
    rows = []
    for text in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rows.append(json.loads(text))
        except ValueError:
            continue  # a line cut by a killed run
    return rows


def latest(rows: list[dict], before_run: str | None) -> dict[str, dict]:
    """Each node id's most recent record from runs other than ``before_run``."""
    last: dict[str, dict] = {}
    for row in rows:
        if row.get("run") != before_run:
            last[row["nodeid"]] = row
    return last


def _drifted(old, new) -> bool:
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (old, new)):
        return False
    return abs(new - old) > DRIFT_BAND * max(abs(old), abs(new))


def _reading_flipped(old: dict, rec: dict) -> bool:
    """Whether the golden-path reading changed (lines written before readings were kept have no
    ``finding``, and a case without a verdict either time says nothing about the question)."""
    was, now = old.get("finding"), golden_path(rec)
    return was is not None and was != now and NA not in (was, now)


def changes(records: list[dict], previous: dict[str, dict]) -> dict[str, Any]:
    """What changed against each case's previous record (``previous``: :func:`latest`).

    Returns ``{"compared": int, "band": DRIFT_BAND, "first_run": no previous record at all}``
    and, for each of ``KINDS``, a list of ``{"record": rec}`` (with ``"old": previous record``
    where there is one): ``reading_flips`` (the golden-path reading changed, e.g. SGD follows
    GD -> SGD differs), ``new_contradictions`` (xfailed now, not before), ``vanished_contradictions``
    (xfailed before, not now), ``xpass``, ``drift`` (key number beyond ``DRIFT_BAND``), ``flips``
    (outcome or whether the prediction held) and ``new_cases``."""
    found: dict[str, list[dict]] = {k: [] for k in KINDS}
    compared = 0
    for rec in records:
        if rec["outcome"] == "xpassed":
            found["xpass"].append({"record": rec})
        old = previous.get(rec["nodeid"])
        if old is None:
            found["new_cases"].append({"record": rec})
            continue
        compared += 1
        item = {"record": rec, "old": old}
        if _reading_flipped(old, rec):
            found["reading_flips"].append(item)
        if (old.get("outcome"), old.get("holds")) != (rec["outcome"], rec.get("holds")):
            found["flips"].append(item)
        was_xfailed, is_xfailed = old.get("outcome") == "xfailed", rec["outcome"] == "xfailed"
        if is_xfailed and not was_xfailed:
            found["new_contradictions"].append(item)
        if was_xfailed and not is_xfailed:
            found["vanished_contradictions"].append(item)
        if old.get("key") == rec.get("key") and _drifted(old.get("key_value"), rec.get("key_value")):
            found["drift"].append(item)
    return {"compared": compared, **found, "band": DRIFT_BAND, "first_run": not previous}


def runs(rows: list[dict], limit: int = RUNS_SHOWN) -> list[str]:
    """The last ``limit`` run ids of ``rows``, oldest first (in order of first appearance)."""
    return list(dict.fromkeys(str(r["run"]) for r in rows if r.get("run")))[-limit:]


def with_run(rows: list[dict], run: dict, records: list[dict]) -> list[dict]:
    """``rows`` and the lines of this run's ``records`` (unless ``rows`` holds them already)."""
    return rows if any(r.get("run") == run.get("started") for r in rows) else rows + [line(run, r) for r in records]


def trends(rows: list[dict], limit: int = RUNS_SHOWN) -> dict[str, list[tuple[int, int]]]:
    """{family: [(follows, differs) per run]} over the last ``limit`` runs, oldest first, for the
    families with a follows or differs reading in them (not those whose cases are not about the
    golden path); a run in which the family did not run counts (0, 0)."""
    shown = runs(rows, limit)
    index = {run: n for n, run in enumerate(shown)}
    counts: dict[str, list[Counter]] = {}
    for row in rows:
        n = index.get(str(row.get("run")))
        if n is not None:
            counts.setdefault(row["family"], [Counter() for _ in shown])[n][row.get("finding")] += 1
    series = {fam: [(c[A], c[D]) for c in per_run] for fam, per_run in sorted(counts.items())}
    return {fam: points for fam, points in series.items() if any(a or d for a, d in points)}


def by_case(rows: list[dict], limit: int = RUNS_SHOWN) -> dict[str, list[dict]]:
    """{node id: its lines in the last ``limit`` runs, newest first}: the case pages' history tables."""
    shown = set(runs(rows, limit))
    out: dict[str, list[dict]] = {}
    for row in reversed(rows):
        if row.get("run") in shown:
            out.setdefault(row["nodeid"], []).append(row)
    return out
