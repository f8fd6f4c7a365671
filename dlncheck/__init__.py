"""dlncheck: a test-driven validation suite for deep-linear-network training dynamics.

The folders are the pipeline, each re-exporting its public names::

    config   Experiment, Teacher, Init, Ensemble; whitened data; validation
    engine   train(): every (config, run) row in one batched program -> Trajectory
    store    the trajectory cache and atomic writes
    spectra  partial products, singular values, numerical ranks, patterns
    measure  events, alignment, balance, modes, gauge, GD-vs-SGD distances, statistics
    theory   every prediction, with its derivation and source
    saddles  normal form, sampler and certification of saddle points
    report   figures, tables and index.html (imported on its own: ``import dlncheck.report``)
    suite    the pytest plugin, init ensembles, shards, sweeps and the command line

The public API, listed here and nowhere else::

    from dlncheck import Experiment, Teacher, Init, Ensemble, train, presets, spectra
    from dlncheck import Trajectory, EnsembleTrajectory, TrainingDiverged, InvalidArgument, MemoryBudgetExceeded
    from dlncheck.saddles import NormalForm, certify
"""

from __future__ import annotations

from dlncheck import config, engine, measure, presets, saddles, spectra, store, theory
from dlncheck._version import __version__
from dlncheck.config import Ensemble, Experiment, Init, InvalidArgument, Teacher
from dlncheck.engine import EnsembleTrajectory, MemoryBudgetExceeded, TrainingDiverged, Trajectory, train

__all__ = [
    "Ensemble",
    "EnsembleTrajectory",
    "Experiment",
    "Init",
    "InvalidArgument",
    "MemoryBudgetExceeded",
    "Teacher",
    "Trajectory",
    "TrainingDiverged",
    "__version__",
    "config",
    "engine",
    "measure",
    "presets",
    "saddles",
    "spectra",
    "store",
    "theory",
    "train",
]
