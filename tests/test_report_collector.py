"""The collector end to end in pytester sessions: history across runs, Ctrl-C, SIGKILL, two
writers, colliding ids. Each run is a subprocess (a killed run must not kill the test)."""

import json
import os
import socket

import pytest
from test_report import links

CLAIMS = """
import os, signal
import pytest
from dlncheck.report import plots

IDS = ["a<b", "a>b", "a b"]


@pytest.mark.parametrize("k", range(3), ids=IDS)
def test_toy(claim, k):
    fig, ax = plots.figure()
    ax.plot([0, 1], [k, k])
    claim.figure(fig, f"level{os.environ.get('FIG', '')}", caption=f"level {k}")
    stop = os.environ.get("STOP_AT") == str(k)
    if stop and os.environ.get("HOW") == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if stop:
        raise KeyboardInterrupt
    x = k + float(os.environ.get("SHIFT", 0))
    assert claim.verdict(prediction="x < 2", observed=f"x = {x}", holds=x < 2, x=x), "x too big"
"""


def run(pytester, **env):
    pytester.makeconftest('pytest_plugins = ["dlncheck.suite.plugin"]')
    pytester.makepyfile(test_claims=CLAIMS)
    for k in ("STOP_AT", "HOW", "FIG", "SHIFT"):  # each run sees only its own settings
        if k in env:
            pytester._monkeypatch.setenv(k, env[k])
        else:
            pytester._monkeypatch.delenv(k, raising=False)
    return pytester.runpytest_subprocess("--reports-dir", "rep", "-p", "no:cacheprovider")


def index(pytester):
    return (pytester.path / "rep" / "index.html").read_text(encoding="utf-8")


def assert_consistent(pytester):
    """Every local link of the index and of each case page resolves."""
    rep = pytester.path / "rep"
    for link in links(index(pytester)):
        assert (rep / link).exists(), link
    for page in rep.glob("claims/*/index.html"):
        for link in links(page.read_text(encoding="utf-8")):
            assert (page.parent / link).exists(), (page, link)


def leftovers(pytester):
    rep = pytester.path / "rep"
    return [p.name for p in rep.rglob("*") if p.name.startswith(".")]


def test_colliding_ids_get_their_own_folders_and_a_second_run_shows_changes(pytester):
    run(pytester).assert_outcomes(passed=2, failed=1)
    results = json.loads((pytester.path / "rep" / "results.json").read_text())
    folders = {c["case"]: c["folder"] for c in results["claims"]}
    assert len(set(folders.values())) == 3
    for case, folder in folders.items():  # each case page shows its own figure and number
        page = (pytester.path / "rep" / "claims" / folder / "index.html").read_text()
        assert f"level {['a<b', 'a>b', 'a b'].index(case)}" in page
    assert "First run" in index(pytester) and results["meta"]["status"] == "complete"
    assert {"git_commit", "python", "torch", "numpy", "command", "started", "duration_s"} <= set(results["meta"])
    run(pytester, SHIFT="1.5").assert_outcomes(passed=1, failed=2)
    html = index(pytester)
    section = html[html.index('id="changes"') : html.index('id="cases"')]
    assert "3 cases compared" in section and "verdict flip" in section and "drift of" in section
    rows = (pytester.path / "rep" / "history.jsonl").read_text().splitlines()
    assert len(rows) == 6 and len({json.loads(r)["run"] for r in rows}) == 2
    assert leftovers(pytester) == [] and oct((pytester.path / "rep" / "index.html").stat().st_mode)[-3:] != "600"


def test_ctrl_c_leaves_an_index_marked_interrupted(pytester):
    result = run(pytester, STOP_AT="1")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    html = index(pytester)
    assert "interrupted" in html and "did not run" in html
    meta = json.loads((pytester.path / "rep" / "results.json").read_text())["meta"]
    assert meta["status"] == "interrupted" and any("a b" in n for n in meta["not_run"])
    assert_consistent(pytester)
    assert leftovers(pytester) == []


def test_sigkill_mid_run_keeps_every_link_and_the_next_run_cleans_up(pytester):
    run(pytester).assert_outcomes(passed=2, failed=1)
    result = run(pytester, STOP_AT="1", HOW="kill", FIG="new")  # new figure names
    assert result.ret != 0
    assert_consistent(pytester)
    assert "running" in index(pytester)
    assert any(n.startswith(".building-") for n in leftovers(pytester))  # killed mid-test
    run(pytester).assert_outcomes(passed=2, failed=1)
    assert_consistent(pytester)
    assert leftovers(pytester) == []


def test_running_index_is_rewritten_at_most_every_live_interval(pytester):
    """The first claim writes the running index at once; the next, seconds later, waits for
    LIVE_EVERY_S (each rewrite renders every record so far). Killed at the third claim, the index
    holds the first claim alone and every link resolves; the final report holds all."""
    from dlncheck.report.collector import LIVE_EVERY_S

    assert LIVE_EVERY_S >= 5  # far more than the toy claims take between them
    result = run(pytester, STOP_AT="2", HOW="kill")
    assert result.ret != 0
    claims = json.loads((pytester.path / "rep" / "results.json").read_text())["claims"]
    assert [c["case"] for c in claims] == ["a<b"] and "running" in index(pytester)
    assert_consistent(pytester)
    run(pytester).assert_outcomes(passed=2, failed=1)
    assert len(json.loads((pytester.path / "rep" / "results.json").read_text())["claims"]) == 3


def test_a_slow_rewrite_of_the_running_index_waits_longer():
    """The running index's rewrites take at most LIVE_SHARE of the controller's time."""
    from dlncheck.report.collector import LIVE_EVERY_S, LIVE_SHARE, live_wait

    assert live_wait(0.0) == LIVE_EVERY_S == live_wait(LIVE_EVERY_S * LIVE_SHARE)
    assert live_wait(1.0) == pytest.approx(1.0 / LIVE_SHARE) and 1.0 / LIVE_SHARE > LIVE_EVERY_S


def test_a_second_writer_is_reported_and_writes_nothing(pytester):
    rep = pytester.path / "rep"
    rep.mkdir()
    (rep / ".lock").write_text(
        json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "earlier", "command": "pytest claims"})
    )
    result = run(pytester)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*report NOT written*another pytest run*pid*--reports-dir*"])
    assert sorted(p.name for p in rep.iterdir()) == [".lock", "claims"]
    assert list((rep / "claims").iterdir()) == []
