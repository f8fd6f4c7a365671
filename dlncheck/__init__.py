"""dlncheck: a test-driven validation suite for deep-linear-network training dynamics.

Public API (names fixed by DESIGN.md)::

    from dlncheck import Experiment, Teacher, Init, train, presets, spectra
    from dlncheck.saddles import NormalForm, certify

Every analysis subject has its own module (``spectra``, ``events``, ``balance``, ``modes``,
``gauge``, ``stagewise``, ``compare``, ``calibration``, ``stats``, ``theory``); they are
imported here explicitly. ``dlncheck.report`` (matplotlib, Jinja2) and ``dlncheck.cli`` are
imported on their own: ``import dlncheck.report``.
"""
from __future__ import annotations

from . import (
    align,
    atomic,
    balance,
    cache,
    calibration,
    compare,
    data,
    engine,
    events,
    experiment,
    gauge,
    modes,
    presets,
    saddles,
    spectra,
    stagewise,
    stats,
    theory,
)
from ._version import __version__
from .engine import TrainingDiverged, Trajectory, train
from .experiment import Ensemble, Experiment, Init, Teacher
from .trajectory import EnsembleTrajectory

__all__ = [
    "Ensemble", "EnsembleTrajectory", "Experiment", "Init", "Teacher", "Trajectory", "TrainingDiverged",
    "__version__", "align", "atomic", "balance", "cache", "calibration", "compare", "data", "engine", "events",
    "experiment", "gauge", "modes", "presets", "saddles", "spectra", "stagewise", "stats", "theory", "train",
]
