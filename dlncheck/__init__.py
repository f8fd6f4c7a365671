"""dlncheck: a test-driven validation suite for deep-linear-network training dynamics.

Public API (names fixed by DESIGN.md)::

    from dlncheck import Experiment, Teacher, Init, train, presets, spectra
    from dlncheck.saddles import NormalForm, certify

Submodules are imported lazily so that ``import dlncheck`` stays cheap and a
missing optional piece never breaks the rest.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_ATTRS = {
    "Experiment": "dlncheck.experiment",
    "Teacher": "dlncheck.experiment",
    "Init": "dlncheck.experiment",
    "train": "dlncheck.engine",
    "Trajectory": "dlncheck.engine",
    "TrainingDiverged": "dlncheck.engine",
    "Ensemble": "dlncheck.experiment",
    "EnsembleTrajectory": "dlncheck.trajectory",
}
_SUBMODULES = {
    "align", "calibration", "compare", "data", "diagnostics", "engine", "experiment",
    "presets", "saddles", "spectra", "stats", "theory", "cache", "report",
}

__all__ = sorted(set(_ATTRS) | _SUBMODULES)


def __getattr__(name: str):
    if name in _ATTRS:
        return getattr(importlib.import_module(_ATTRS[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"dlncheck.{name}")
    raise AttributeError(f"module 'dlncheck' has no attribute {name!r}")
