"""The claims plugin end to end: a tiny pytest session with a passing and a failing claim."""

import json
import sys

import pytest

CLAIMS = """
import pandas as pd
import pytest
from dlncheck.report import plots


@pytest.mark.parametrize("x", [1, 2, pytest.param(3, marks=pytest.mark.nightly)],
                         ids=["one", "<script>alert(1)</script>", "three"])
def test_toy(claim, x):
    fig, ax = plots.figure()
    plots.band(ax, [0, 1], [x, x], [x - 1, x - 1], [x + 1, x + 1], label="SGD")
    claim.figure(fig, "level", caption="a flat line")
    claim.table(pd.DataFrame({"t": [0, 1], "x": [x, x]}), "level")
    holds = claim.verdict(prediction="x == 1", observed=f"x = {x}", holds=x == 1, x=x)
    assert holds, f"x = {x}, expected 1"


def test_plain_test_is_not_a_claim():
    assert True
"""


def run(pytester, *args):
    pytester.makeconftest('pytest_plugins = ["dlncheck.suite.plugin"]')
    pytester.makepyfile(test_claims=CLAIMS)
    return pytester.runpytest_subprocess("--reports-dir", "rep", "-p", "no:cacheprovider", *args)


def load(pytester):
    results = json.loads((pytester.path / "rep" / "results.json").read_text())
    return {c["case"]: c for c in results["claims"]}, (pytester.path / "rep" / "index.html").read_text()


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_report_records_real_outcomes_and_artifacts(pytester, xdist):
    result = run(pytester, *xdist)
    result.assert_outcomes(passed=2, failed=1)
    claims, html = load(pytester)
    assert set(claims) == {"one", "<script>alert(1)</script>"}  # nightly case deselected
    good, bad = claims["one"], claims["<script>alert(1)</script>"]
    assert good["outcome"] == "passed" and good["holds"] is True and good["family"] == "claims"
    assert bad["outcome"] == "failed" and bad["holds"] is False and "x = 2" in bad["message"]
    assert bad["numbers"] == {"x": 2} and bad["params"] == {"x": 2}
    if sys.platform.startswith("linux"):  # the case's peak and what its worker held at its start
        assert 0 < good["start_gb"] <= good["peak_gb"]
    for rec in (good, bad):  # a failing claim still shows its figure and table
        kinds = sorted(a["kind"] for a in rec["artifacts"])
        assert kinds == ["figure", "table"]
        for a in rec["artifacts"]:
            assert (pytester.path / "rep" / a["path"]).stat().st_size > 0
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert not list((pytester.path / "rep").rglob("*.tmp"))


def test_nightly_tier_runs_nightly_cases_and_k_leaves_no_stale_entries(pytester):
    run(pytester, "--tier", "nightly").assert_outcomes(passed=2, failed=2)
    assert len(load(pytester)[0]) == 3
    run(pytester, "-k", "one").assert_outcomes(passed=1)
    claims, html = load(pytester)
    assert list(claims) == ["one"] and "alert" not in html


def test_nightly_leaves_the_cases_over_its_time_budget_to_the_weekly_tier(pytester):
    """A case whose measured duration alone exceeds the nightly time budget is deselected there and
    runs with --tier weekly (the same sizes, every case)."""
    from dlncheck.suite import time_budget

    (pytester.path / "claims").mkdir()
    durations = {f"test_claims.py::test_toy[{case}]": 1.0 for case in ("one", "<script>alert(1)</script>")}
    durations |= {"test_claims.py::test_plain_test_is_not_a_claim": 1.0}
    durations["test_claims.py::test_toy[three]"] = time_budget.budget_seconds()  # with the others: over
    (pytester.path / "claims" / "durations.json").write_text(json.dumps(durations))
    run(pytester, "--tier", "nightly").assert_outcomes(passed=2, failed=1, deselected=1)
    assert set(load(pytester)[0]) == {"one", "<script>alert(1)</script>"}
    run(pytester, "--tier", "weekly").assert_outcomes(passed=2, failed=2)
    claims = load(pytester)[0]
    assert set(claims) == {"one", "<script>alert(1)</script>", "three"}
    assert json.loads((pytester.path / "rep" / "results.json").read_text())["meta"]["tier"] == "weekly"


def test_a_run_without_claims_keeps_the_last_report(pytester):
    run(pytester, "-k", "one")
    before = (pytester.path / "rep" / "index.html").read_text()
    run(pytester, "-k", "plain").assert_outcomes(passed=1)
    assert (pytester.path / "rep" / "index.html").read_text() == before


def test_bad_option_value_is_a_usage_error(pytester):
    pytester.makeconftest('pytest_plugins = ["dlncheck.suite.plugin"]')
    pytester.makeini("[pytest]\ndlncheck_tier = monthly\n")
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*dlncheck_tier*monthly*--tier*"])


def test_a_failed_claim_does_not_hold_its_data_into_the_next_case(pytester):
    """pytest keeps the last failure's frames in sys.last_traceback for post-mortem use; the plugin
    drops them at teardown, so a strict-xfailed claim's arrays are freed before the next case."""
    pytester.makeconftest('pytest_plugins = ["dlncheck.suite.plugin"]')
    pytester.makepyfile(
        test_memory="""
import weakref
import pytest

class Trajectories:
    pass

REFS = []

@pytest.mark.xfail(strict=True, raises=AssertionError, reason="measured contradiction")
def test_contradicted():
    data = Trajectories()
    REFS.append(weakref.ref(data))
    assert False, "the data disagree"

def test_next_case():
    assert REFS[0]() is None, "the contradicted case's data are still alive"
"""
    )
    result = pytester.runpytest_subprocess("--reports-dir", "rep", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, xfailed=1)


def test_collection_leaves_its_objects_to_the_permanent_generation(pytester):
    """Per-case collections scan only what cases create: what collection and imports left is frozen
    (gc.freeze) once collection finishes, and a cycle a case makes is still collected."""
    pytester.makeconftest('pytest_plugins = ["dlncheck.suite.plugin"]')
    pytester.makepyfile(
        test_gc="""
import gc
import weakref

class Node:
    pass

def test_frozen_then_cycles_still_collected():
    assert gc.get_freeze_count() > 1000
    a, b = Node(), Node()
    a.other, b.other = b, a
    ref = weakref.ref(a)
    del a, b
    gc.collect()
    assert ref() is None
"""
    )
    result = pytester.runpytest_subprocess("--reports-dir", "rep", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
