"""The nightly tier's time budget: the costliest cases run weekly, chosen from durations alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from dlncheck.suite import shard, time_budget

ROOT = Path(__file__).resolve().parents[1]


@given(st.dictionaries(st.text("abc[]", min_size=1, max_size=6), st.floats(0, 100), max_size=30), st.floats(0, 500))
def test_the_cheapest_cases_fill_the_budget_and_the_rest_run_weekly(durations, budget):
    over = time_budget.weekly_only(durations, durations, budget)
    kept = set(durations) - over
    assert sum(durations[i] for i in kept) <= budget + 1e-9  # summed in another order than the rule's
    if over:  # nothing moved that a kept case outweighs, and the cheapest moved one does not fit
        assert max((durations[i] for i in kept), default=0.0) <= min(durations[i] for i in over)
        assert sum(durations[i] for i in kept) + min(durations[i] for i in over) > budget - 1e-9


def test_the_budget_is_the_stated_wall_time_on_the_workers():
    assert time_budget.budget_seconds() == 2 * (45 - 1) * 60 * 0.9


def test_a_case_without_a_measured_duration_runs_weekly_until_measured():
    over = time_budget.weekly_only(["a", "b", "c"], {"a": 1.0, "b": 2.0}, budget=10.0)
    assert over == {"c"}
    assert time_budget.weekly_only(["a", "b", "c"], {}, budget=10.0) == set()  # nothing measured: no split


def test_an_unmeasured_case_costs_its_test_functions_median():
    cost = shard.costs(
        ["t::a[1]", "t::a[2]", "t::a[3]", "t::a[4]", "u::b"], {"t::a[1]": 2.0, "t::a[2]": 10.0, "t::a[3]": 4.0}
    )
    assert cost["t::a[4]"] == 4.0 and cost["u::b"] == 4.0  # its test's median; no sibling: all cases' median


def test_the_committed_durations_put_the_nightly_selection_within_its_budget():
    """The real collection of the nightly sizes (--tier weekly) with claims/durations.json: what
    nightly keeps is measured and fits the budget; the rest runs weekly only."""
    collected = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "claims",
            "--tier",
            "weekly",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    nodeids = [line for line in collected.splitlines() if "::" in line]
    durations = json.loads((ROOT / shard.DURATIONS_FILE).read_text())
    over = time_budget.weekly_only(nodeids, durations)
    assert 0 < len(over) < len(nodeids)
    assert all(i in durations for i in nodeids if i not in over)
    assert sum(durations[i] for i in nodeids if i not in over) <= time_budget.budget_seconds()
