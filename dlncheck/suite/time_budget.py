"""The nightly tier's time budget: its costliest cases run weekly instead.

The nightly tier must finish within WALL_MINUTES on the 2-core reference machine with ``-n
WORKERS`` (issues #25 and #28 of the project). Its cases are kept cheapest first, by the durations
committed in ``claims/durations.json``, while their summed time fits

    budget = WORKERS x (WALL_MINUTES - OVERHEAD_MINUTES) x 60 s x PACKING;

the rest run only in the weekly tier (``--tier weekly``: the nightly sizes, every case). A case
without a measured duration runs weekly until a weekly run has measured it: in a cold-cache nightly
run, 93 unmeasured cases took 0.05 to 190 times their test function's median (median 1.9, one in
ten above 12), so no estimate stands in for a measurement here (``--shard`` still balances by the median,
:func:`dlncheck.suite.shard.costs`). The split is by measured cost alone, never by outcome, and it
follows ``durations.json`` as that file is updated from full runs (``dlncheck report durations
--update``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

WALL_MINUTES = 45.0  # the nightly tier's wall-time target on the reference machine
OVERHEAD_MINUTES = 5.0  # collection, worker start-up and the report, outside any case's duration
WORKERS = 2  # pytest-xdist workers of the nightly run (-n 2, one per core)
PACKING = 0.9  # share of the workers' time spent in cases: xdist's load balancing leaves a tail


def budget_seconds() -> float:
    """The summed case time the nightly tier may take."""
    return WORKERS * (WALL_MINUTES - OVERHEAD_MINUTES) * 60.0 * PACKING


def weekly_only(nodeids: Iterable[str], durations: Mapping[str, float], budget: float | None = None) -> set[str]:
    """The cases that run weekly only: those without a measured duration, and those over the budget
    (default :func:`budget_seconds`) when the measured ones are taken cheapest first (ties by node
    id) until the next would exceed it. None while nothing is measured (no durations at all)."""
    budget = budget_seconds() if budget is None else budget
    nodeids = set(nodeids)
    if not durations:  # nothing measured yet (no durations file): no split to make
        return set()
    cost = {i: float(durations[i]) for i in nodeids if i in durations}
    kept = 0.0
    over = nodeids - set(cost)
    for nodeid in sorted(cost, key=lambda i: (cost[i], i)):
        if kept + cost[nodeid] > budget:  # it and every costlier case
            over |= {i for i in cost if (cost[i], i) >= (cost[nodeid], nodeid)}
            break
        kept += cost[nodeid]
    return over
