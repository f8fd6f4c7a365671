"""The engine: ``train()`` steps GD and every SGD run of every config in one batched program.

Stage 2 of the pipeline. Internals: ``_train`` (the step loop), ``_batches`` (data orders and
batch moments), ``_fused`` (the C kernel of ``csrc/``); ``budget`` sizes a request before any
allocation; ``trajectory`` holds what a run returns.
"""

from __future__ import annotations

from dlncheck.engine._train import ENGINE_VERSION, TrainingDiverged, checkpoint_grid, train
from dlncheck.engine.budget import MemoryBudgetExceeded
from dlncheck.engine.trajectory import EnsembleTrajectory, Trajectory

__all__ = [
    "ENGINE_VERSION",
    "EnsembleTrajectory",
    "MemoryBudgetExceeded",
    "Trajectory",
    "TrainingDiverged",
    "checkpoint_grid",
    "train",
]
