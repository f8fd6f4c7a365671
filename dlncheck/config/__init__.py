"""Configuration and data: what to train (Experiment, Teacher, Init, Ensemble), the data (whitened
or anisotropic teacher data, the digits: :mod:`.datasets`) and the initial weights it defines,
argument validation, and CPU threads.

Stage 1 of the pipeline: Experiment/Ensemble -> engine.train -> Trajectory -> measure -> theory -> report.
"""

from __future__ import annotations

from dlncheck.config.data import Problem, init_weights, make_problem
from dlncheck.config.ensemble import Ensemble
from dlncheck.config.experiment import Experiment, Init, Teacher
from dlncheck.config.threads import cpu_threads, set_cpu_threads
from dlncheck.config.validation import InvalidArgument

__all__ = [
    "Ensemble",
    "Experiment",
    "Init",
    "InvalidArgument",
    "Problem",
    "Teacher",
    "cpu_threads",
    "init_weights",
    "make_problem",
    "set_cpu_threads",
]
