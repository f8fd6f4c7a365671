"""The claims plugin: options, fixtures, tiers; registers the report collector.

Registered by the root ``conftest.py`` (``pytest_plugins = ["dlncheck.pytest_plugin"]``).
The report itself lives in :mod:`dlncheck.report.collector`: each claim's record travels on
the test report's ``user_properties``, so under pytest-xdist each worker's records reach the
controller, which alone writes ``results.json``, ``index.html`` and the case pages — nothing
is clobbered, and the index holds exactly the claims that ran in this session.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from dlncheck.report.claim import Claim
from dlncheck.report.collector import (
    CLAIM_KEY,
    ReportCollector,
    pytest_runtest_makereport,  # noqa: F401 (hook: the records)
)

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
    group.addoption("--no-svg", dest="dlncheck_no_svg", action="store_true",
                    help="write each figure as PNG + thumbnail only, no SVG (saves about a third "
                         "of the figure-writing time)")


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
    Claim.svg = not config.getoption("dlncheck_no_svg")
    if hasattr(config, "workerinput"):  # xdist: one intra-op thread per worker, no oversubscription
        import torch

        torch.set_num_threads(1)
    else:  # the controller, or a run without xdist, writes the report
        settings = {name: option(config, name) for name in ("tier", "device", "dtype")}
        settings["selection"] = config.getoption("keyword") or ""
        config.pluginmanager.register(ReportCollector(config, _reports_root(config), settings),
                                      "dlncheck-report")


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
    request.node.stash[CLAIM_KEY] = record
    return record
