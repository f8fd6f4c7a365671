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
--update``). Those are whole nightly runs where there is one: a case's duration depends on which case
trains the ensembles it shares, and per-shard durations had put 89.6 min of one nightly run's case time
at 71.6 min, the ensembles' cost left on cases the split had moved to weekly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

WALL_MINUTES = 45.0  # the nightly tier's wall-time target on the reference machine
#: collection, worker start-up and the final report, outside any case's duration: a whole nightly run
#: at 66287a1 took 0.7 min more than its summed case time over its two workers
OVERHEAD_MINUTES = 1.0
WORKERS = 2  # pytest-xdist workers of the nightly run (-n 2, one per core)
#: share of the workers' time the kept cases may fill. That run filled it all (summed case time over
#: workers x (wall - overhead): 1.0, its durations taken under the same contention); the 10 % left is for
#: run-to-run variation and for a kept case that now trains an ensemble a moved case used to train
PACKING = 0.9


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
