"""The claims' command-line options (``--tier``, ``--device``, ...) and their ini keys ``dlncheck_<name>``:
declared for pytest (:func:`pytest_addoption`, a hook the plugin registers) and read with :func:`option`."""

from __future__ import annotations

import pytest

from dlncheck.suite.tiers import SIZES

OPTIONS = {  # name: (default, choices, help)
    "tier": (
        "quick",
        tuple(SIZES),
        "quick: the CI case list (minutes on 2 cores); nightly: the full grid within its time budget; "
        "weekly: the full grid, every case",
    ),
    "device": ("auto", ("auto", "cpu", "cuda"), "compute device; auto = cuda when available"),
    "dtype": ("float64", ("float64", "float32"), "floating-point precision of the engine"),
    "reports_dir": ("reports", None, "folder for figures, tables, results.json, index.html"),
    "cache_dir": (".dlncheck-cache", None, "folder of the content-addressed trajectory cache"),
    "threads": ("auto", None, "torch CPU threads per process; auto = $DLNCHECK_THREADS or 1"),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dlncheck", "dlncheck claims")
    for name, (default, choices, help_) in OPTIONS.items():
        group.addoption(
            f"--{name.replace('_', '-')}",
            dest=f"dlncheck_{name}",
            default=None,
            choices=choices,
            help=f"{help_} (default {default}; ini dlncheck_{name})",
        )
        parser.addini(f"dlncheck_{name}", help_, default=default)
    group.addoption(
        "--no-cache",
        dest="dlncheck_no_cache",
        action="store_true",
        help="train every experiment afresh instead of reading .dlncheck-cache",
    )
    group.addoption(
        "--shard",
        dest="dlncheck_shard",
        default=None,
        metavar="K/N",
        help="run only the K-th of N disjoint, duration-balanced parts of the selection "
        "(durations from claims/durations.json); merge shard reports with "
        "`dlncheck report merge`",
    )
    group.addoption(
        "--svg",
        dest="dlncheck_svg",
        action="store_true",
        help="also write each figure as SVG (for papers; about doubles the "
        "figure-writing time). Default: WebP + thumbnail only",
    )
    group.addoption(
        "--no-svg",
        dest="dlncheck_no_svg",
        action="store_true",
        help="WebP + thumbnail only (the default; kept for old command lines)",
    )


def option(config: pytest.Config, name: str) -> str:
    """An option's value: command line, else ini key ``dlncheck_<name>``, else the default."""
    value = config.getoption(f"dlncheck_{name}") or config.getini(f"dlncheck_{name}")
    choices = OPTIONS[name][1]
    if choices and value not in choices:
        raise pytest.UsageError(
            f"dlncheck_{name} = {value!r} is not one of {choices}; set --{name.replace('_', '-')} to one of them"
        )
    return value
