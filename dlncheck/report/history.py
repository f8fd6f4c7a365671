"""``reports/history.jsonl``: every run's records, one JSON object per line, and what changed.

Each line is one claim record of one run, slimmed to what comparing runs needs. A run killed
while appending leaves at most one truncated last line, which :func:`load` skips.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

FILE = "history.jsonl"
DRIFT_BAND = 0.05  # relative: |new - old| > 5 % of max(|old|, |new|) counts as drift
FIELDS = ("nodeid", "family", "case", "outcome", "holds", "golden_path", "key", "key_value")


def append(root: Path, run: dict, records: list[dict]) -> Path:
    """Append this run's slim records in one ``write`` (O_APPEND: lines of concurrent writers
    do not interleave within a line)."""
    path = root / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = {"run": run.get("started"), "commit": run.get("git_commit"), "status": run.get("status")}
    text = "".join(json.dumps({**tag, **{k: r.get(k) for k in FIELDS}}, sort_keys=True) + "\n" for r in records)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    return path


def load(root: Path) -> list[dict]:
    path = root / FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rows.append(json.loads(line))
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


def changes(records: list[dict], previous: dict[str, dict]) -> dict[str, Any]:
    """What changed against each case's previous record: verdict flips (outcome or holds),
    new contradictions (xfailed now, not before), XPASS, key-metric drift beyond
    ``DRIFT_BAND``, and cases never seen before.

    Returns ``{"compared": int, "band": DRIFT_BAND}`` and, for each of "flips",
    "new_contradictions", "xpass", "drift" and "new_cases", a list of ``{"record": rec}``
    (with ``"old": previous record`` where there is one)."""
    found: dict[str, list[dict]] = {k: [] for k in ("flips", "new_contradictions", "xpass", "drift", "new_cases")}
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
        if (old.get("outcome"), old.get("holds")) != (rec["outcome"], rec.get("holds")):
            found["flips"].append(item)
        if rec["outcome"] == "xfailed" and old.get("outcome") != "xfailed":
            found["new_contradictions"].append(item)
        if old.get("key") == rec.get("key") and _drifted(old.get("key_value"), rec.get("key_value")):
            found["drift"].append(item)
    return {"compared": compared, **found, "band": DRIFT_BAND}
