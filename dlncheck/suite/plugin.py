"""The claims plugin: fixtures, tiers, the case selection; registers the options
(:mod:`dlncheck.suite.options`) and the report collector.

A claim family is declared in its test module and marked on its tests (:mod:`dlncheck.suite.family`);
its measured contradictions are data beside it (:mod:`dlncheck.suite.contradictions`), applied here
for the session's tier; the tiers' sizes: :mod:`dlncheck.suite.tiers`.

Registered by the root ``conftest.py`` (``pytest_plugins = ["dlncheck.suite.plugin"]``).
The report itself lives in :mod:`dlncheck.report.collector`: each claim's record travels on
the test report's ``user_properties``, so under pytest-xdist each worker's records reach the
controller, which alone writes ``results.json``, ``index.html`` and the case pages — nothing
is clobbered, and the index holds exactly the claims that ran in this session.
"""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch

from dlncheck import presets
from dlncheck.config import validation
from dlncheck.config.threads import set_cpu_threads
from dlncheck.report.claim import Claim
from dlncheck.report.collector import (
    CACHE_KEY,
    CACHE_OUTPUT,
    CLAIM_KEY,
    ReportCollector,
    cache_stats,
    pytest_runtest_makereport,  # noqa: F401 (hook: the records)
    pytest_runtest_setup,  # noqa: F401 (hook: each case's peak memory starts at its setup)
)
from dlncheck.report.peak_memory import COLLECT_ABOVE_GB, pin_mmap_threshold, resident_gb, return_free_heap
from dlncheck.store.cache import TrajectoryCache
from dlncheck.suite import contradictions, shard, time_budget
from dlncheck.suite.options import option, pytest_addoption  # noqa: F401 (hook: the command-line options)
from dlncheck.suite.tiers import SIZES, TIERS, Tier

if TYPE_CHECKING:
    from dlncheck.config.experiment import Experiment


def _reports_root(config: pytest.Config) -> Path:
    return Path(config.rootpath, option(config, "reports_dir")).resolve()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "nightly: case runs only with --tier nightly (or weekly)")
    config.addinivalue_line(
        "markers", "family(name, question=, group=, if_holds=, if_contradicted=, results=): the test's claim family"
    )
    _load_hypothesis_profile(SIZES[option(config, "tier")])
    _check_writable(config)
    pin_mmap_threshold()  # large freed tensors go back to the kernel at once (report.peak_memory)
    try:  # one thread per process unless asked: see dlncheck.config.threads
        set_cpu_threads(option(config, "threads"))
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    Claim.svg = config.getoption("dlncheck_svg") and not config.getoption("dlncheck_no_svg")
    if not hasattr(config, "workerinput"):  # the controller, or a run without xdist, writes the report
        settings = {name: option(config, name) for name in ("tier", "device", "dtype")}
        settings["selection"] = config.getoption("keyword") or ""
        settings["shard"] = config.getoption("dlncheck_shard") or ""
        settings |= _preset_settings(TIERS[SIZES[settings["tier"]]])
        config.pluginmanager.register(ReportCollector(config, _reports_root(config), settings), "dlncheck-report")


def _preset_settings(tier: Tier) -> dict:
    """The run's sizes and seeds for the report's provenance (S, batch size, samples, teacher seeds),
    and the order of the findings grid's columns (``case_order``: regimes, then teachers)."""
    return {
        "S": tier.sgd_runs,
        "batch_size": presets.BATCH_SIZE,
        "n_samples": presets.N_SAMPLES,
        "teacher_seeds": {k: t.seed for k, t in presets.TEACHER_SPECS.items()},
        "case_order": {"regime": list(presets.REGIMES), "teacher": list(presets.TEACHERS)},
    }


def _check_writable(config: pytest.Config) -> None:
    """The report and cache folders must take files, or the run stops before any test."""

    folders = {"reports_dir": _reports_root(config)}
    if not config.getoption("dlncheck_no_cache"):
        folders["cache_dir"] = Path(config.rootpath, option(config, "cache_dir"))
    for name, folder in folders.items():
        try:
            free = validation.REPORTS_MIN_FREE if name == "reports_dir" else 0  # a full cache disk: memory only
            validation.writable_folder(f"--{name.replace('_', '-')}", folder, min_free=free)
        except ValueError as error:
            raise pytest.UsageError(str(error)) from None


def _load_hypothesis_profile(tier: str) -> None:
    """SciPy-style profiles: few examples in CI, many at night; never time-limited."""
    from hypothesis import HealthCheck, settings

    common: dict[str, Any] = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    # CI: the same examples every run (derandomized) and no example database written to disk
    settings.register_profile("quick", max_examples=40, derandomize=True, database=None, **common)
    settings.register_profile("nightly", max_examples=400, **common)
    settings.load_profile(tier)


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"dlncheck: tier={option(config, 'tier')} device={option(config, 'device')} "
        f"dtype={option(config, 'dtype')} reports={_reports_root(config)}"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In the quick tier, cases marked ``nightly`` are deselected (not run, not reported); in the
    nightly tier, the cases over its time budget (:func:`dlncheck.suite.time_budget.weekly_only`:
    they run with ``--tier weekly``); a case its family's contradictions file lists for the
    session's sizes becomes a strict xfail; with ``--shard K/N`` only the K-th part of what remains
    is kept."""
    tier = option(config, "tier")
    durations = shard.load_durations(Path(config.rootpath, shard.DURATIONS_FILE))
    if tier == "quick":
        _deselect(config, items, lambda item: item.get_closest_marker("nightly") is not None)
    elif tier == "nightly":
        weekly = time_budget.weekly_only([item.nodeid for item in items], durations)
        _deselect(config, items, lambda item: item.nodeid in weekly)
    try:
        contradictions.apply(items, SIZES[tier])
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    if config.getoption("dlncheck_shard"):
        try:
            k, n = shard.parse_shard(config.getoption("dlncheck_shard"))
        except ValueError as error:
            raise pytest.UsageError(str(error)) from None
        owner = shard.assign([item.nodeid for item in items], durations, n)
        _deselect(config, items, lambda item: owner[item.nodeid] != k)


def _deselect(config: pytest.Config, items: list[pytest.Item], drop) -> None:
    dropped = [item for item in items if drop(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not drop(item)]


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def tier(pytestconfig: pytest.Config) -> str:
    """'quick' or 'nightly' (also for ``--tier weekly``, which runs the nightly sizes): changes case
    lists and sizes, never assertions."""
    return SIZES[option(pytestconfig, "tier")]


@pytest.fixture(scope="session")
def sizes(tier: str) -> Tier:
    """The session tier's sizes: ``sizes.sgd_runs``, ``sizes.depths``, ``sizes.ensembles`` (init ensembles)."""
    return TIERS[tier]


@pytest.fixture(scope="session")
def device(pytestconfig: pytest.Config) -> str:
    """The compute device name of the run (``--device``; auto = cuda when available)."""

    name = option(pytestconfig, "device")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError(
            "--device cuda was asked for but torch.cuda.is_available() is False; use --device cpu (or auto)"
        )
    return name


@pytest.fixture(scope="session")
def dtype(pytestconfig: pytest.Config) -> str:
    """The floating dtype name of the run (``--dtype``): "float64" or "float32"."""
    return option(pytestconfig, "dtype")


@pytest.fixture(scope="session")
def preset(sizes: Tier, device: str, dtype: str) -> Callable[..., Experiment]:
    """``preset(regime, teacher, depth, **overrides)``: the preset Experiment with this session's
    S (the tier's ``sgd_runs``), dtype (``--dtype``) and device (``--device``); overrides replace any field."""

    def build(regime: str, teacher: str, depth: int, **overrides: Any) -> Experiment:
        settings: dict[str, Any] = {"sgd_runs": sizes.sgd_runs, "dtype": dtype, "device": device} | overrides
        return presets.experiment(regime, teacher, depth, **settings)

    return build


@pytest.fixture(scope="session")
def reports_dir(pytestconfig: pytest.Config) -> Path:
    return _reports_root(pytestconfig)


@pytest.fixture(scope="session")
def trajectory_cache(pytestconfig: pytest.Config) -> TrajectoryCache:
    """Content-addressed trajectories shared by all claims (``--no-cache`` keeps memory only)."""

    root = (
        None
        if pytestconfig.getoption("dlncheck_no_cache")
        else Path(pytestconfig.rootpath, option(pytestconfig, "cache_dir"))
    )
    cache = pytestconfig.stash[CACHE_KEY] = TrajectoryCache(root)
    return cache


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection and imports left (modules, test items, hypothesis) goes to the collector's
    permanent generation (``gc.freeze``), so each case's collection in :func:`pytest_runtest_teardown`
    scans only the objects cases created since."""
    gc.collect()
    gc.freeze()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Hand a finished case's memory back before the next: drop the post-mortem references pytest
    keeps to the last failure (``sys.last_traceback`` holds the frames of a failed or strict-xfailed
    claim, with its ensembles' trajectories), collect reference cycles once the worker holds more than
    COLLECT_ABOVE_GB (it scans what cases created: :func:`pytest_collection_finish` froze the rest), and
    return the heap's free pages to the kernel (glibc ``malloc_trim``): freed tensors otherwise stay
    resident in the worker and count in every later case's memory (measured after one nightly digits
    case: 3.6 GB resident, 2.4 GB after both, the trajectory cache's 2 GB included)."""
    if getattr(sys, "last_value", None) is not None:
        sys.last_type = sys.last_value = sys.last_traceback = None
        gc.collect()
    elif (resident_gb() or 0.0) > COLLECT_ABOVE_GB:
        gc.collect()
    return_free_heap()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """An xdist worker hands its cache statistics to the controller."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput[CACHE_OUTPUT] = json.dumps(cache_stats(session.config))


@pytest.fixture
def claim(request: pytest.FixtureRequest, reports_dir: Path) -> Claim:
    """This test's report folder and recorder: ``figure``, ``table``, ``verdict``."""
    record = Claim(request.node.nodeid, reports_dir)
    request.node.stash[CLAIM_KEY] = record
    return record
