"""History that tracks the question: reading flips, new and vanished contradictions, XPASS, drift,
first run, trends, per-case tables, the merge, and the terminal's answer (end to end in pytester)."""

import json
import re
import tomllib
from pathlib import Path

import dlncheck
from dlncheck.report import answer, history
from dlncheck.report.merge import merge
from dlncheck.report.sparkline import sparkline

INFO = {"group": "golden path", "if_holds": "agrees", "if_contradicted": "differs"}


def rec(nodeid, outcome="passed", holds=True, value=1.0, family="f", cause=None):
    return {
        "nodeid": nodeid,
        "family": family,
        "family_info": INFO,
        "case": nodeid,
        "outcome": outcome,
        "holds": holds,
        "golden_path": None,
        "key": "x",
        "key_value": value,
        "contradiction": {"cause": cause, "cause_text": "why"} if cause else None,
    }


def test_changes_report_reading_flips_and_vanished_contradictions(tmp_path):
    history.append(tmp_path, {"started": "r1"}, [rec("a"), rec("b", "xfailed", False, cause="c1"), rec("c")])
    rows = history.load(tmp_path)
    assert rows[1]["finding"] == "differs" and rows[1]["cause"] == "c1"
    now = [rec("a", "xfailed", False), rec("b", "passed", True), rec("c", value=1.5)]
    ch = history.changes(now, history.latest(rows, "r2"))
    names = {k: [c["record"]["nodeid"] for c in ch[k]] for k in history.KINDS}
    assert names["reading_flips"] == ["a", "b"]  # agrees -> differs, differs -> agrees
    assert names["new_contradictions"] == ["a"] and names["vanished_contradictions"] == ["b"]
    assert names["drift"] == ["c"] and not ch["first_run"]
    first = history.changes(now, {})
    assert first["first_run"] and first["compared"] == 0 and len(first["new_cases"]) == 3


def test_lines_written_before_readings_were_kept_flip_nothing():
    old = {"nodeid": "a", "outcome": "passed", "holds": True, "key": "x", "key_value": 1.0}
    ch = history.changes([rec("a", "xfailed", False)], {"a": old})
    assert ch["reading_flips"] == [] and [c["record"]["nodeid"] for c in ch["new_contradictions"]] == ["a"]


def test_trends_count_follows_and_differs_per_run_over_the_last_runs(tmp_path):
    for n in range(35):
        history.append(
            tmp_path,
            {"started": f"r{n:02d}"},
            [rec("a", holds=n % 2 == 0), rec("b", family="g"), {**rec("c", family="h"), "family_info": {}}],
        )
    rows = history.load(tmp_path)
    trend = history.trends(rows)
    assert len(trend["f"]) == history.RUNS_SHOWN == 30
    assert trend["f"][-1] == (1, 0) and trend["f"][-2] == (0, 1) and trend["g"][-1] == (1, 0)
    assert "h" not in trend  # its cases are not about the golden path
    per_case = history.by_case(rows, 3)
    assert [r["run"] for r in per_case["a"]] == ["r34", "r33", "r32"]


def test_the_file_keeps_the_last_runs_newest_in_order(tmp_path):
    """35 runs appended: the file holds the last RUNS_SHOWN (30), oldest first, each with all its
    lines; a line cut by an older appending version is dropped, no temporary file is left, and
    the merge keeps the same bound."""
    (tmp_path / history.FILE).write_text('{"truncated by a ki')
    for n in range(35):
        history.append(tmp_path, {"started": f"r{n:02d}"}, [rec("a", value=n), rec("b", value=n)])
    text = (tmp_path / history.FILE).read_text()
    rows = [json.loads(line) for line in text.splitlines()]
    assert [r["run"] for r in rows] == [f"r{n:02d}" for n in range(5, 35) for _ in "ab"]
    assert [r["key_value"] for r in rows[-2:]] == [34, 34] and [r["nodeid"] for r in rows[:2]] == ["a", "b"]
    assert history.RUNS_SHOWN == 30 and [p.name for p in tmp_path.iterdir()] == [history.FILE]
    history.append(tmp_path, {"started": "r34"}, [rec("a")])  # a run the file holds is not added twice
    assert (tmp_path / history.FILE).read_text() == text

    shard = tmp_path / "shard"
    meta = {"tier": "quick", "git_commit": "abc", "started": "s"}
    history.append(shard, meta, [rec("a")])
    (shard / "results.json").write_text(json.dumps({"meta": meta, "claims": [{**rec("a"), "duration": 1.0}]}))
    merge([shard], tmp_path / "merged", history=tmp_path / history.FILE)
    assert history.runs(history.load(tmp_path / "merged"), 99) == [f"r{n:02d}" for n in range(6, 35)] + ["s"]


def test_sparkline_states_its_newest_counts():
    svg = str(sparkline([(3, 1), (2, 2), (4, 0)]))
    assert svg.startswith("<svg") and svg.count("<polyline") == 2
    assert "newest: follows 4, differs 0" in svg and "last 3 runs" in svg
    assert str(sparkline([(1, 0)])).count("<circle") == 2


def test_terminal_lines_from_the_shared_answer():
    records = [rec("a"), rec("b"), rec("c", "xfailed", False, cause="c1"), rec("d", "xfailed", False, cause="c1")]
    records.append({**rec("e", "xfailed", False, cause="c2"), "family_info": {"if_contradicted": "assumption-fails"}})
    assert answer.headline(records).startswith("SGD follows GD's path in 2 of 4 comparisons, differs in 2")
    assert answer.outcome_line(records) == "5 cases: 2 passed, 3 xfailed"
    groups = answer.contradiction_groups(records)
    assert [answer.group_line(g) for g in groups] == [
        "contradiction [c1]: 2 cases (f/c, f/d)",
        "contradiction [c2]: 1 case (f/e)",
    ]


CLAIM = """
import pytest

pytestmark = pytest.mark.family("toy", group="golden path", if_holds="agrees", if_contradicted="differs")


def test_path(claim):
    claim.verdict(prediction="x == 1", observed="x = 1", holds=True, golden_path="{reading}", key="x", x=1.0)
"""


def _run(pytester, reading, reports="rep"):
    pytester.makepyfile(test_toy=CLAIM.format(reading=reading))
    return pytester.runpytest_subprocess("--reports-dir", reports, "-p", "no:cacheprovider")


def _section(html):
    return html[html.index('id="changes"') : html.index('id="cases"')]


def test_a_claim_run_twice_shows_its_reading_flip_trend_and_case_history(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(dlncheck.__file__).parents[1]))  # this checkout's dlncheck
    pytester.makeconftest('pytest_plugins = ["dlncheck.suite.plugin"]')
    first = _run(pytester, "agrees")
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(
        ["dlncheck: SGD follows GD's path in 1 of 1 comparisons, differs in 0*", "dlncheck: 1 cases: 1 passed"]
    )
    index = pytester.path / "rep" / "index.html"
    assert "First run" in _section(index.read_text(encoding="utf-8"))
    _run(pytester, "differs").assert_outcomes(passed=1)
    changes = _section(index.read_text(encoding="utf-8"))
    flip = re.search(r'<li class="reading-flip">(.*?)</li>', changes)
    assert flip and "SGD follows GD → <strong>SGD differs from GD</strong>" in flip.group(1)
    assert "newest: follows 0, differs 1" in changes and "last 2 runs" in changes
    page = next((pytester.path / "rep" / "claims").glob("*/index.html")).read_text(encoding="utf-8")
    table = page[page.index('id="history"') :]
    assert table.count("<tr><td>") == 2 and table.index("SGD differs from GD") < table.index("SGD follows GD")
    lines = (pytester.path / "rep" / history.FILE).read_text().splitlines()
    assert [json.loads(line)["finding"] for line in lines] == ["agrees", "differs"]


def test_merge_keeps_history_as_one_run_with_its_changes_and_trend(tmp_path):
    """Two shards of one run and last night's history: the merged history tags the shards' lines
    as one run, its page lists the reading flip against last night, its trend has 2 runs."""
    last_night = tmp_path / "last-night"
    history.append(last_night, {"started": "r0"}, [rec("a"), rec("b")])
    shards = []
    for n, (record, started) in enumerate(((rec("a", "xfailed", False, cause="c1"), "s1"), (rec("b"), "s2"))):
        shard = tmp_path / f"shard{n}"
        shard.mkdir()
        meta = {"tier": "quick", "git_commit": "abc", "started": started}
        (shard / "results.json").write_text(json.dumps({"meta": meta, "claims": [{**record, "duration": 1.0}]}))
        history.append(shard, meta, [record])
        shards.append(shard)
    index = merge(shards, tmp_path / "merged", history=last_night / history.FILE)
    rows = history.load(tmp_path / "merged")
    assert [r["run"] for r in rows] == ["r0", "r0", "s1", "s1"]
    html = index.read_text(encoding="utf-8")
    changes = html[html.index('id="changes"') : html.index('id="cases"')]
    assert re.search(r'<li class="reading-flip">.*f/a.*SGD follows GD → <strong>SGD differs from GD', changes)
    assert re.search(r'<li class="new-contradiction">.*f/a.*cause <code>c1</code>', changes)
    assert "last 2 runs" in changes and "newest: follows 1, differs 1" in changes


CONTRADICTED = """
import pytest

pytestmark = pytest.mark.family("toy", group="golden path", if_holds="agrees", if_contradicted="differs")


@pytest.mark.parametrize("x", [1, 2, 3], ids=["a", "b", "c"])
def test_level(claim, x):
    holds = claim.verdict(prediction="x == 1", observed=f"x = {x}", holds=x == 1, x=float(x))
    assert holds, f"x = {x}"
"""
TOML = """
[causes]
too-big = "x grows with the case"

[kinds]
too-big = "genuine"

[[case]]
test = "test_level"
id = "{id}"
cause = "too-big"
reason = "x = {{x:.0f}}"
bands = {{ x = 0.5 }}
numbers.quick = {{ x = {x} }}
"""


def test_the_session_ends_with_the_answer_and_one_line_per_contradiction_cause(pytester, monkeypatch):
    """As the claims run with the project's addopts: the headline, one line per cause, the report's
    path last; the xfail reasons only with -rx."""
    monkeypatch.setenv("PYTHONPATH", str(Path(dlncheck.__file__).parents[1]))
    pytester.makeconftest('pytest_plugins = ["dlncheck.suite.plugin"]')
    pytester.makepyfile(test_toy=CONTRADICTED)
    (pytester.path / "contradictions").mkdir()
    case_c = "[[case]]" + TOML.split("[[case]]")[1].format(id="c", x=3)
    (pytester.path / "contradictions" / "toy.toml").write_text(TOML.format(id="b", x=2) + case_c)
    addopts = tomllib.loads((Path(dlncheck.__file__).parents[1] / "pyproject.toml").read_text())["tool"]["pytest"][
        "ini_options"
    ]["addopts"]
    result = pytester.runpytest_subprocess(*addopts.split(), "--reports-dir", "rep", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, xfailed=2)
    tail = [line for line in result.outlines if line.startswith("dlncheck")][-4:]
    assert tail == [
        "dlncheck: SGD follows GD's path in 1 of 3 comparisons, differs in 2; 3 cases in all.",
        "dlncheck: 3 cases: 1 passed, 2 xfailed",
        "dlncheck: contradiction [too-big]: 2 cases (toy/b, toy/c)",
        f"dlncheck report: {pytester.path / 'rep' / 'index.html'}  (full xfail reasons: pytest -rx)",
    ]
    assert not any(line.startswith("XFAIL") for line in result.outlines)
    verbose = pytester.runpytest_subprocess(*addopts.split(), "-rx", "--reports-dir", "rep", "-p", "no:cacheprovider")
    assert sum(line.startswith("XFAIL") for line in verbose.outlines) == 2
