"""The claims plugin: options, fixtures, tiers, and the report of every claim.

Registered by the root ``conftest.py`` (``pytest_plugins = ["dlncheck.pytest_plugin"]``).
Modelled on pytest-mpl: a small class registered in ``pytest_configure`` collects one record
per claim. The record travels on the test report's ``user_properties``, so under
pytest-xdist each worker's records reach the controller, which alone writes
``results.json`` and ``index.html`` at the end — nothing is clobbered, and the index holds
exactly the claims that ran in this session.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlncheck.report.claim import Claim, jsonable

RECORD_KEY = "dlncheck_claim"
_CLAIM = pytest.StashKey[Claim]()
OPTIONS = {  # name: (default, choices, help)
    "tier": ("quick", ("quick", "nightly"),
             "quick: the CI case list (minutes on 2 cores); nightly: the full grid"),
    "device": ("auto", ("auto", "cpu", "cuda"), "compute device; auto = cuda when available"),
    "dtype": ("float64", ("float64", "float32"), "floating-point precision of the engine"),
    "reports_dir": ("reports", None, "folder for figures, tables, results.json, index.html"),
    "cache_dir": (".dlncheck-cache", None, "folder of the content-addressed trajectory cache"),
}


def pytest_addoption(parser):
    group = parser.getgroup("dlncheck", "dlncheck claims")
    for name, (default, choices, help_) in OPTIONS.items():
        group.addoption(f"--{name.replace('_', '-')}", dest=f"dlncheck_{name}", default=None,
                        choices=choices, help=f"{help_} (default {default}; ini dlncheck_{name})")
        parser.addini(f"dlncheck_{name}", help_, default=default)
    group.addoption("--no-cache", dest="dlncheck_no_cache", action="store_true",
                    help="train every experiment afresh instead of reading .dlncheck-cache")


def option(config, name: str) -> str:
    """An option's value: command line, else ini key ``dlncheck_<name>``, else the default."""
    value = config.getoption(f"dlncheck_{name}") or config.getini(f"dlncheck_{name}")
    choices = OPTIONS[name][1]
    if choices and value not in choices:
        raise pytest.UsageError(f"dlncheck_{name} = {value!r} is not one of {choices}; "
                                f"set --{name.replace('_', '-')} to one of them")
    return value


def _reports_root(config) -> Path:
    return Path(config.rootpath, option(config, "reports_dir")).resolve()


def pytest_configure(config):
    config.addinivalue_line("markers", "nightly: case runs only with --tier nightly")
    _load_hypothesis_profile(option(config, "tier"))
    _check_writable(config)
    if hasattr(config, "workerinput"):  # xdist: one intra-op thread per worker, no oversubscription
        import torch

        torch.set_num_threads(1)
    else:  # the controller, or a run without xdist, writes the report
        config.pluginmanager.register(ReportCollector(config), "dlncheck-report")


def _check_writable(config) -> None:
    """The report and cache folders must take files, or the run stops before any test."""
    from dlncheck import validation

    folders = {"reports_dir": _reports_root(config)}
    if not config.getoption("dlncheck_no_cache"):
        folders["cache_dir"] = Path(config.rootpath, option(config, "cache_dir"))
    for name, folder in folders.items():
        try:
            validation.writable_folder(f"--{name.replace('_', '-')}", folder)
        except ValueError as error:
            raise pytest.UsageError(str(error)) from None


def _load_hypothesis_profile(tier: str) -> None:
    """SciPy-style profiles: few examples in CI, many at night; never time-limited."""
    from hypothesis import HealthCheck, settings

    common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("quick", max_examples=40, **common)
    settings.register_profile("nightly", max_examples=400, **common)
    settings.load_profile(tier)


def pytest_report_header(config):
    return (f"dlncheck: tier={option(config, 'tier')} device={option(config, 'device')} "
            f"dtype={option(config, 'dtype')} reports={_reports_root(config)}")


def pytest_collection_modifyitems(config, items):
    """In the quick tier, cases marked ``nightly`` are deselected (not run, not reported)."""
    if option(config, "tier") == "nightly":
        return
    keep = [item for item in items if item.get_closest_marker("nightly") is None]
    dropped = [item for item in items if item.get_closest_marker("nightly") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


# ----------------------------------------------------------------------- case helpers
def contradicted(reason: str):
    """Mark a case whose data contradict the theory's prediction, as measured.

    The assertion stays as the theory states it; the strict xfail (AssertionError only) keeps
    the suite green while the report shows the case as ``xfailed`` with ``reason``, and turns
    into a failure the day the data start to agree (XPASS), so the table gets revisited.
    """
    return pytest.mark.xfail(strict=True, raises=AssertionError,
                             reason=f"data contradict the prediction: {reason}")


def preset_cases(quick_depths=(2, 3), regimes=None, contradictions: dict[str, str] | None = None):
    """``pytest.param(regime, teacher, depth)`` for every preset, id ``saddle-lowrank-L3``.

    Depths outside ``quick_depths`` run only in the nightly tier; ids listed in
    ``contradictions`` carry :func:`contradicted` with the measured reason.
    """
    from dlncheck import presets

    contradictions = contradictions or {}
    params = []
    for regime, teacher, depth in presets.cases("nightly"):
        if regimes is not None and regime not in regimes:
            continue
        cid = presets.case_id(regime, teacher, depth)
        marks = [] if depth in quick_depths else [pytest.mark.nightly]
        if cid in contradictions:
            marks.append(contradicted(contradictions[cid]))
        params.append(pytest.param(regime, teacher, depth, id=cid, marks=marks))
    return params


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def tier(pytestconfig) -> str:
    """'quick' or 'nightly': changes case lists and sizes, never assertions."""
    return option(pytestconfig, "tier")


@pytest.fixture(scope="session")
def device(pytestconfig):
    """The torch device of the run (``--device``; auto = cuda when available)."""
    import torch

    name = option(pytestconfig, "device")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError("--device cuda was asked for but torch.cuda.is_available() is "
                                "False; use --device cpu (or auto)")
    return torch.device(name)


@pytest.fixture(scope="session")
def dtype(pytestconfig):
    """The torch floating dtype of the run (``--dtype``)."""
    import torch

    return getattr(torch, option(pytestconfig, "dtype"))


@pytest.fixture(scope="session")
def preset(tier, device, dtype):
    """``preset(regime, teacher, depth, **overrides)``: the preset Experiment of this session's
    tier, dtype (``--dtype``) and device (``--device``); overrides replace any other field."""
    from dlncheck import presets

    def build(regime: str, teacher: str, depth: int, **overrides):
        settings = {"dtype": str(dtype).removeprefix("torch."), "device": str(device)} | overrides
        return presets.experiment(regime, teacher, depth, tier=tier, **settings)

    return build


@pytest.fixture(scope="session")
def reports_dir(pytestconfig) -> Path:
    return _reports_root(pytestconfig)


@pytest.fixture(scope="session")
def trajectory_cache(pytestconfig):
    """Content-addressed trajectories shared by all claims (``--no-cache`` keeps memory only)."""
    from dlncheck.cache import TrajectoryCache

    if pytestconfig.getoption("dlncheck_no_cache"):
        return TrajectoryCache(None)
    return TrajectoryCache(Path(pytestconfig.rootpath, option(pytestconfig, "cache_dir")))


@pytest.fixture
def claim(request, reports_dir) -> Claim:
    """This test's report folder and recorder: ``figure``, ``table``, ``verdict``."""
    record = Claim(request.node.nodeid, reports_dir)
    request.node.stash[_CLAIM] = record
    return record


# ----------------------------------------------------------------------------- records
def _record(item, report, claim: Claim | None) -> dict:
    params = {}
    if hasattr(item, "callspec"):
        params = {k: jsonable(v) if isinstance(v, (int, float, str, bool)) else str(v)
                  for k, v in item.callspec.params.items()}
    verdict = (claim.verdict_record if claim else None) or {}
    module = Path(str(item.path)).stem
    return {
        "nodeid": item.nodeid,
        "family": module.removeprefix("test_"),
        "case": item.callspec.id if hasattr(item, "callspec") else item.name,
        "params": params,
        "prediction": verdict.get("prediction"),
        "observed": verdict.get("observed"),
        "holds": verdict.get("holds"),
        "exploratory": verdict.get("exploratory", False),
        "numbers": verdict.get("numbers", {}),
        "artifacts": claim.artifacts if claim else [],
        "outcome": _outcome(report),
        "message": _message(report),
        "duration": report.duration,
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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Stamp the real outcome (and failure message) into the claim's record."""
    outcome = yield
    report = outcome.get_result()
    if "claim" not in getattr(item, "fixturenames", ()):
        return
    if report.when == "call" or (report.when == "setup" and not report.passed) \
            or (report.when == "teardown" and report.failed):
        record = _record(item, report, item.stash.get(_CLAIM, None))
        if report.failed and call.excinfo is not None and call.excinfo.errisinstance(OSError):
            record["outcome"] = "error"   # infrastructure (disk, folder), not a scientific failure
        report.user_properties.append((RECORD_KEY, json.dumps(record)))


class ReportCollector:
    """Runs in the controller: gathers claim records and writes the session report."""

    def __init__(self, config):
        self.config = config
        self.records: dict[str, dict] = {}

    def pytest_runtest_logreport(self, report):
        for key, value in report.user_properties:
            if key == RECORD_KEY:
                record = json.loads(value)
                previous = self.records.get(record["nodeid"])
                if previous is not None:  # a teardown error keeps the call's artifacts
                    record["artifacts"] = record["artifacts"] or previous["artifacts"]
                    record["duration"] += previous["duration"]
                self.records[record["nodeid"]] = record

    def pytest_sessionfinish(self, session):
        if not self.records:  # e.g. `pytest tests`: leave the last claims report alone
            return
        from dlncheck.report.html import write_report

        meta = {"tier": option(self.config, "tier"), "device": option(self.config, "device"),
                "dtype": option(self.config, "dtype"),
                "selection": self.config.getoption("keyword") or ""}
        _, index = write_report(list(self.records.values()), _reports_root(self.config), meta)
        self.index = index

    def pytest_terminal_summary(self, terminalreporter):
        if getattr(self, "index", None):
            terminalreporter.write_line(f"dlncheck report: {self.index}")
