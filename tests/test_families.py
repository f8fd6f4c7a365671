"""Claim families as declared objects and contradictions as data (dlncheck.suite.family,
dlncheck.suite.contradictions), end to end in small pytest sessions: a brand-new family reaches the
report with no edit to dlncheck/report, its contradictions apply in their tier only, and a
contradiction whose tracked number moves beyond its band is reported as changed."""

import json

import pytest

from dlncheck.report.contradiction import judge, render
from dlncheck.suite import contradictions

NEW_FAMILY = """
import pytest

from dlncheck.report.claim import Prediction
from dlncheck.suite.family import Family

FAMILY = Family(
    "brand_new",
    question="does a family nobody has seen reach the findings?",
    group="golden path",
    if_holds="agrees",
    if_contradicted="differs",
    predictions={"toy": Prediction("x == 1", "a toy theory")},
    results=((r"\\[one\\]", "the toy result"),),
)
pytestmark = FAMILY.mark


@pytest.mark.parametrize("x", [1, 2, pytest.param(3, marks=pytest.mark.nightly)], ids=["one", "two", "three"])
def test_toy(claim, x):
    row = FAMILY.predictions["toy"]
    holds = claim.verdict(prediction=row.prediction, reason=row.reason, observed=f"x = {x}", holds=x == 1, x=x)
    assert holds, f"x = {x}, expected 1"
"""

CONTRADICTIONS = """
[causes]
toy-offset = "the toy is off by one"

[kinds]
toy-offset = "genuine"

[[case]]
test = "test_toy"
id = "two"
cause = "toy-offset"
reason = "x = {x} instead of 1"
bands = { x = 0.1 }
numbers.quick = { x = RECORDED }
numbers.nightly = { x = 2 }

[[case]]
test = "test_toy"
id = "three"
cause = "toy-offset"
reason = "x = {x} instead of 1"
bands = { x = 0.1 }
numbers.nightly = { x = 3 }
"""


def new_family(pytester, recorded=2):
    pytester.makeconftest('pytest_plugins = ["dlncheck.suite.plugin"]')
    pytester.makepyfile(test_brand_new=NEW_FAMILY)
    (pytester.path / "contradictions").mkdir()
    (pytester.path / "contradictions" / "brand_new.toml").write_text(CONTRADICTIONS.replace("RECORDED", str(recorded)))


def run(pytester, *args):
    return pytester.runpytest_subprocess("--reports-dir", "rep", "-p", "no:cacheprovider", *args)


def results(pytester):
    return json.loads((pytester.path / "rep" / "results.json").read_text())


def test_a_brand_new_family_reaches_the_report_with_no_edit_to_it(pytester):
    """Its test module and contradictions file are all a new family needs: the records carry its
    name and declaration from the mark, the findings grid and the summary show it, its
    contradiction is a strict xfail with the rendered reason and cause."""
    new_family(pytester)
    run(pytester).assert_outcomes(passed=1, xfailed=1)
    data = results(pytester)
    records = {r["case"]: r for r in data["claims"]}
    assert {r["family"] for r in records.values()} == {"brand_new"}
    info = records["one"]["family_info"]
    assert info["question"] == "does a family nobody has seen reach the findings?" and info["group"] == "golden path"
    assert records["two"]["outcome"] == "xfailed"
    assert records["two"]["message"].startswith("data contradict the prediction: x = 2 instead of 1")
    assert "cause toy-offset, genuine: the toy is off by one" in records["two"]["message"]
    c = records["two"]["contradiction"]
    assert (c["statement"], c["cause"], c["kind"], c["changed"]) == (
        "x = 2 instead of 1",
        "toy-offset",
        "genuine",
        False,
    )
    html = (pytester.path / "rep" / "index.html").read_text()
    grid = html[html.index('class="grid"') : html.index('id="contradictions"')]
    assert "brand_new" in grid and "does a family nobody has seen reach the findings?" in grid
    assert "golden path" in grid  # its group
    assert 'aria-label="brand_new: SGD follows GD 1' in html  # its bar reads its golden-path reading
    assert "the toy result: reproduces" in html
    kinds = html[html.index('id="contradiction-kinds"') :]
    assert kinds.startswith(
        'id="contradiction-kinds">1 measured contradiction: 1 genuine. Kinds: <strong>genuine</strong>'
    )
    assert "toy-offset <small>(1, genuine)</small>" in html


@pytest.mark.parametrize(
    "tier, outcome", [("quick", {"passed": 1, "xfailed": 1}), ("nightly", {"passed": 1, "xfailed": 2})]
)
def test_a_contradiction_applies_in_its_tiers_only(pytester, tier, outcome):
    """``numbers.<tier>`` says where the data contradict the prediction: case three is contradicted in
    the nightly tier only (and runs only there)."""
    new_family(pytester)
    run(pytester, "--tier", tier).assert_outcomes(**outcome)


def test_a_contradiction_whose_number_moved_is_reported_as_changed(pytester):
    """Recorded x = 5 +- 10%, measured 2: still a strict xfail, but no longer as recorded."""
    new_family(pytester, recorded=5)
    result = run(pytester)
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*contradiction changed*test_toy?two?*x 5 -> 2*"])
    c = {r["case"]: r for r in results(pytester)["claims"]}["two"]["contradiction"]
    assert c["changed"] and c["moved"] == {"x": [5, 2]}
    assert (c["statement"], c["recorded_statement"]) == ("x = 2 instead of 1", "x = 5 instead of 1")
    html = (pytester.path / "rep" / "index.html").read_text()
    contradictions = html[html.index('id="contradictions"') : html.index('id="changes"')]
    assert "x = 2 instead of 1 <strong>changed:</strong> <code>x</code> 5 → 2" in contradictions


def test_record_rewrites_the_run_tiers_numbers(pytester):
    """scripts/record_contradictions.py: the quick run's numbers replace the recorded quick ones; the
    nightly line and everything else in the file stay as they were."""
    new_family(pytester, recorded=5)
    run(pytester)
    path = pytester.path / "contradictions" / "brand_new.toml"
    before = path.read_text()
    out = contradictions.record(results(pytester), pytester.path)
    assert out["updated"] == ["brand_new: test_toy[two]"] and out["changed"] == ["brand_new: test_toy[two]"]
    assert path.read_text() == before.replace("numbers.quick = { x = 5 }", "numbers.quick = { x = 2 }")


def test_a_malformed_contradictions_file_stops_the_run_naming_the_fix(pytester):
    new_family(pytester)
    path = pytester.path / "contradictions" / "brand_new.toml"
    path.write_text(
        path.read_text().replace('cause = "toy-offset"\nreason = "x = {x} instead of 1"', 'cause = "typo"', 1)
    )
    result = run(pytester)
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*brand_new.toml*test_toy?two?*missing*reason*"])


def test_a_cause_without_a_kind_stops_the_run_naming_the_fix(pytester):
    new_family(pytester)
    path = pytester.path / "contradictions" / "brand_new.toml"
    path.write_text(path.read_text().replace('toy-offset = "genuine"', 'toy-offset = "unlucky"', 1))
    result = run(pytester)
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*brand_new.toml*[[]kinds[]]*one kind of*unknown kinds ?'unlucky'?*"])


def test_render_and_judge():
    assert render("{a:.2f} of {b} ({c})", {"a": 0.5, "b": "x"}) == "0.50 of x (?)"
    assert render("{a:.2f}", {"a": "nan"}) == "nan"
    entry = {"reason": "{n}/{m}", "numbers": {"n": 6, "m": 8}, "bands": {"n": 0.2}}
    assert judge(entry, {"n": 6, "m": 8})["changed"] is False
    moved = judge(entry, {"n": 0, "m": 8})
    assert moved["changed"] and moved["moved"] == {"n": [6, 0]} and moved["statement"] == "0/8"
    assert judge(entry, {"m": 8})["statement"] == "6/8"  # a number the run lacks keeps its recorded value
