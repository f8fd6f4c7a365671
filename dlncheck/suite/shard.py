"""Shards: split a claims selection over N runners, balanced by measured durations.

``pytest claims --shard K/N`` keeps the K-th of N disjoint parts of the collected cases; the N
parts together are the whole selection. Assignment is the longest-processing-time rule (Graham
1969: each case, longest first, goes to the currently lightest shard; at most 4/3 of the best
makespan), over the durations committed in ``claims/durations.json`` (node id -> seconds,
written from a report by ``dlncheck report durations``); a case without a measured duration
counts as the median of its test function's measured cases, else of all (:func:`costs`). Ties
break by node id, so every runner computes the same split from the same collection.
"""

from __future__ import annotations

import heapq
import json
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path

DURATIONS_FILE = Path("claims") / "durations.json"


def parse_shard(text: str) -> tuple[int, int]:
    """'2/5' -> (2, 5); ValueError naming the option and the fix otherwise."""
    k, sep, n = str(text).partition("/")
    if not (sep and k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise ValueError(f"--shard {text!r} is invalid: write K/N with 1 <= K <= N, e.g. --shard 2/3")
    return int(k), int(n)


def costs(nodeids: Iterable[str], durations: Mapping[str, float]) -> dict[str, float]:
    """node id -> seconds: its measured duration, else the median over the measured cases of its
    test function (the node id before ``[``), else over all measured cases (1 s when none is)."""
    nodeids = sorted(set(nodeids))
    by_test: dict[str, list[float]] = {}
    for i in nodeids:
        if i in durations:
            by_test.setdefault(i.split("[")[0], []).append(float(durations[i]))
    known = [d for ds in by_test.values() for d in ds]
    default = statistics.median(known) if known else 1.0
    return {
        i: float(durations[i]) if i in durations else statistics.median(by_test.get(i.split("[")[0], [default]))
        for i in nodeids
    }


def assign(nodeids: Iterable[str], durations: Mapping[str, float], n: int) -> dict[str, int]:
    """node id -> shard (1..n) by the longest-processing-time rule over :func:`costs`."""
    cost = costs(nodeids, durations)
    nodeids = sorted(cost)
    heap = [(0.0, shard) for shard in range(1, n + 1)]
    out = {}
    for nodeid in sorted(nodeids, key=lambda i: (-cost[i], i)):
        load, shard = heapq.heappop(heap)
        out[nodeid] = shard
        heapq.heappush(heap, (load + cost[nodeid], shard))
    return out


def load_durations(path: Path) -> dict[str, float]:
    """The committed durations (empty when the file is absent)."""
    return json.loads(path.read_text()) if path.exists() else {}


def durations_from_results(results: dict) -> dict[str, float]:
    """node id -> seconds from a report's ``results.json`` content (rounded to 0.1 s)."""
    return {r["nodeid"]: round(float(r.get("duration") or 0.0), 1) for r in results["claims"]}
