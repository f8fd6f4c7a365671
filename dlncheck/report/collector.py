"""The claims report collector: records per claim, a consistent reports folder, the session report.

Modelled on pytest-mpl. :func:`pytest_runtest_makereport` (every process, xdist workers too)
stamps one JSON record per claim test onto the report's ``user_properties``; the
:class:`ReportCollector` (the controller, or a plain run) receives them, writes the case page
into the claim's building folder, swaps it in, and rewrites ``index.html`` marked *running*
(at most every ``LIVE_EVERY_S`` seconds, and then at most ``LIVE_SHARE`` of the controller's time: each
rewrite renders every record so far), so a killed
run leaves an index whose links all resolve and which says it did not finish. At the
end it writes the final report (*complete*, or *interrupted* with the cases that did not run),
appends ``history.jsonl`` and shows what changed since each case's previous run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dlncheck.report import answer, history, peak_memory, provenance, store
from dlncheck.report.claim import Claim, folder_name, jsonable
from dlncheck.report.contradiction import judge
from dlncheck.report.fmt import clean
from dlncheck.report.html import CASE_PAGE, render_case, write_report
from dlncheck.store import atomic

RECORD_KEY = "dlncheck_claim"
CLAIM_KEY = pytest.StashKey[Claim]()
CONTRADICTION_KEY = pytest.StashKey[dict]()  # the case's measured contradiction (dlncheck.suite.contradictions)
START_GB_KEY = pytest.StashKey[float | None]()  # the worker's resident memory at the case's setup


def _record(item, report, claim: Claim | None) -> dict:
    params = (
        {k: jsonable(v) for k, v in item.callspec.params.items() if isinstance(v, (int, float, str, bool))}
        if hasattr(item, "callspec")
        else {}
    )
    verdict = (claim.verdict_record if claim else None) or {}
    mark = item.get_closest_marker("family")
    entry = item.stash.get(CONTRADICTION_KEY, None)
    return {
        "nodeid": item.nodeid,
        # the family as the suite declares it (dlncheck.suite.family); a test without the mark: its module
        "family": mark.args[0] if mark else Path(str(item.path)).stem.removeprefix("test_"),
        "family_info": jsonable(mark.kwargs) if mark else {},
        "case": item.callspec.id if hasattr(item, "callspec") else item.name,
        "params": params,
        "folder": folder_name(item.nodeid),
        "building": claim.dir.name if claim else None,
        **{k: verdict.get(k) for k in ("prediction", "observed", "holds", "reason", "golden_path", "key", "key_value")},
        "exploratory": verdict.get("exploratory", False),
        "numbers": verdict.get("numbers", {}),
        "contradiction": judge(entry, verdict.get("numbers", {})) if entry else None,
        "artifacts": claim.artifacts if claim else [],
        "outcome": _outcome(report),
        "message": _message(report),
        "duration": report.duration,
        "peak_gb": peak_memory.peak_gb(),
        "start_gb": item.stash.get(START_GB_KEY, None),  # of the peak, what the worker held before the case
    }


def _message(report) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else (str(report.longrepr) if report.longrepr else "")
    if hasattr(report, "wasxfail"):
        return f"{report.wasxfail}\n{text}".strip()
    return text if (report.failed or report.skipped) else ""


def _outcome(report) -> str:
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.when != "call" and report.failed:
        return "error"
    return report.outcome


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Start the case's peak memory (:mod:`dlncheck.report.peak_memory`) at its setup, and note what
    the worker holds then (the peak's part that earlier cases left: the trajectory cache)."""
    peak_memory.reset()
    item.stash[START_GB_KEY] = peak_memory.resident_gb()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Stamp the real outcome (and failure message) into the claim's record."""
    outcome = yield
    report = outcome.get_result()
    if "claim" not in getattr(item, "fixturenames", ()):
        return
    if (
        report.when == "call"
        or (report.when == "setup" and not report.passed)
        or (report.when == "teardown" and report.failed)
    ):
        record = _record(item, report, item.stash.get(CLAIM_KEY, None))
        if report.failed and call.excinfo is not None and call.excinfo.errisinstance(OSError):
            record["outcome"] = "error"  # infrastructure (disk, folder), not a scientific failure
        report.user_properties.append((RECORD_KEY, json.dumps(record)))


CACHE_KEY = pytest.StashKey[object]()  # the session's TrajectoryCache (set by the plugin's fixture)
CACHE_OUTPUT = "dlncheck_cache_stats"  # an xdist worker's cache statistics, for the controller
#: the running index is rewritten at most this often: rewriting it after every claim rendered all
#: records so far each time, quadratic in the claims (28 s of a 370 s quick claims run, py-spy)
LIVE_EVERY_S = 10.0
#: ... and waits at least 1 / LIVE_SHARE times as long as the last rewrite took: the controller shares
#: the cores with the workers, and a rewrite's cost grows with the records (:func:`live_wait`)
LIVE_SHARE = 0.02


def live_wait(write_seconds: float) -> float:
    """Seconds before the running index is rewritten again, after a rewrite that took ``write_seconds``:
    LIVE_EVERY_S, or longer so that rewriting takes at most LIVE_SHARE of the controller's time."""
    return max(LIVE_EVERY_S, write_seconds / LIVE_SHARE)


def cache_stats(config) -> dict[str, int]:
    """Where this process's trajectory requests were served from (memory, disk, computed)."""
    cache = config.stash.get(CACHE_KEY, None)
    return dict(cache.stats) if cache is not None else {}


class ReportCollector:
    """Runs in the controller: gathers claim records and keeps the reports folder consistent."""

    def __init__(self, config, root: Path, settings: dict):
        self.config, self.root = config, root
        self.records: dict[str, dict] = {}
        self.collected: list[str] = []
        self.reported: set[str] = set()
        self.settings, self.started = settings, datetime.now(UTC)
        self.meta: dict = {}  # provenance, gathered when the first claim reports (not for `pytest tests`)
        self.lock = store.Lock(
            root, {"started": self.started.isoformat(timespec="seconds"), "command": " ".join(sys.argv)}
        )
        self.conflict: dict | None = None
        self.index: Path | None = None
        self.trajectories: dict[str, int] = {}  # cache statistics summed over the workers
        self.written_at: float | None = None  # monotonic time of the last running index
        self.live_every = LIVE_EVERY_S  # seconds until the next running index may be written
        self.history: list[dict] = []  # the earlier runs' history lines, read when the lock is taken
        self.past: dict[str, list[dict]] = {}  # each case's lines of the last earlier runs, newest first

    def _count(self, stats: dict[str, int]) -> None:
        for key, value in stats.items():
            self.trajectories[key] = self.trajectories.get(key, 0) + value

    @pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: absent without xdist
    def pytest_testnodedown(self, node, error):
        self._count(json.loads(getattr(node, "workeroutput", {}).get(CACHE_OUTPUT, "{}")))

    # -- what is expected to run
    def pytest_collection_finish(self, session):
        self.collected = [item.nodeid for item in session.items]

    @pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: absent without xdist
    def pytest_xdist_node_collection_finished(self, node, ids):
        self.collected = self.collected or list(ids)

    # -- one record at a time
    def _take_lock(self) -> bool:
        if not self.lock.held and self.conflict is None:
            self.conflict = self.lock.acquire()
            if self.conflict is None:
                store.clean_stale(self.root)
                self.history = history.load(self.root)
                self.past = history.by_case(self.history, history.RUNS_SHOWN - 1)
                self.meta = provenance.collect(Path(self.config.rootpath), self.settings, started=self.started) | {
                    "pid": os.getpid()
                }
        return self.lock.held

    def pytest_runtest_logreport(self, report):
        self.reported.add(report.nodeid)
        for key, value in report.user_properties:
            if key == RECORD_KEY:
                self._receive(clean(json.loads(value)))

    def _receive(self, record: dict) -> None:
        claims = self.root / "claims"
        if not self._take_lock():
            if record.get("building"):
                store.discard(claims, record["building"])
            return
        previous = self.records.get(record["nodeid"])
        if previous is not None:  # a teardown error keeps the call's artifacts
            record["artifacts"] = record["artifacts"] or previous["artifacts"]
            record["duration"] += previous["duration"]
        self.records[record["nodeid"]] = record

        building = record.pop("building", None)
        target = claims / building if building and (claims / building).is_dir() else claims / record["folder"]
        if target.is_dir():
            past = [history.line(self.meta, record), *self.past.get(record["nodeid"], [])]
            atomic.write_text(target / CASE_PAGE, render_case(record, self.root, self.meta, past))
        if building:
            store.swap_in(claims, building, record["folder"])
        # Links stay valid between rewrites: the index on disk shows only records written before,
        # and only a repeat of one of those (``previous``) replaces a folder it links to.
        now = time.monotonic()
        if previous is not None or self.written_at is None or now - self.written_at >= self.live_every:
            running = {**self.meta, "status": "running", "not_run": self._not_run()}
            write_report(list(self.records.values()), self.root, running, case_pages=False)
            self.written_at = time.monotonic()
            self.live_every = live_wait(self.written_at - now)

    def _not_run(self) -> list[str]:
        return [n for n in self.collected if n not in self.reported]

    # -- the end
    def pytest_sessionfinish(self, session, exitstatus):
        if self.conflict is not None:
            session.exitstatus = session.exitstatus or pytest.ExitCode.TESTS_FAILED
            return
        if not self.records:  # e.g. `pytest tests`: leave the last claims report alone
            return

        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or bool(session.shouldstop) and bool(self._not_run())
        meta = provenance.finish(self.meta, "interrupted" if interrupted else "complete")
        meta["not_run"] = self._not_run() if interrupted else []
        self._count(cache_stats(self.config))  # a run without xdist
        meta["trajectories"] = self.trajectories
        records = list(self.records.values())
        changes = history.changes(records, history.latest(self.history, meta["started"]))
        lines = history.with_run(self.history, meta, records)
        _, self.index = write_report(records, self.root, meta, changes=changes, case_pages=False, history=lines)
        history.append(self.root, meta, records)
        store.clean_stale(self.root, finished=os.getpid())  # a test stopped by Ctrl-C
        self.lock.release()

    def pytest_unconfigure(self, config):
        self.lock.release()

    def pytest_terminal_summary(self, terminalreporter):
        if self.conflict is not None:
            terminalreporter.write_line(
                f"dlncheck report NOT written: {self.root} is being written by another pytest run "
                f"(pid {self.conflict.get('pid')}, started {self.conflict.get('started', '?')}, "
                f"command {self.conflict.get('command', '?')!r}); rerun when it has finished, or "
                "pass --reports-dir <another folder>",
                red=True,
            )
        elif self.index:
            for rec in self.records.values():
                c = rec.get("contradiction") or {}
                if rec["outcome"] == "xfailed" and c.get("changed"):
                    terminalreporter.write_line(
                        f"dlncheck: contradiction changed: {rec['nodeid']}: "
                        + ", ".join(f"{k} {was:.4g} -> {now:.4g}" for k, (was, now) in c["moved"].items())
                        + f" (now: {c['statement']})",
                        yellow=True,
                    )
            records = list(self.records.values())
            terminalreporter.write_line(f"dlncheck: {answer.headline(records)}", bold=True)
            terminalreporter.write_line(f"dlncheck: {answer.outcome_line(records)}")
            for group in answer.contradiction_groups(records):
                terminalreporter.write_line(f"dlncheck: {answer.group_line(group)}")
            terminalreporter.write_line(f"dlncheck report: {self.index}  (full xfail reasons: pytest -rx)")
