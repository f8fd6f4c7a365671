"""The engine: ``train()`` steps GD and every SGD run of every config in one batched program.

Stage 2 of the pipeline. Internals: ``_train`` (train(): checks, budget, backend),
``_step_loop`` (the batched program over segments), ``_checkpoints`` (checkpoint schedules),
``_batches`` (data orders and batch moments), ``_torch_path`` (the reference PyTorch step),
``_fused`` (the C kernel of ``csrc/``), ``_divergence`` (the loss bound, TrainingDiverged);
``budget`` sizes a request before any allocation; ``trajectory`` holds what a run returns.
"""

from __future__ import annotations

from dlncheck.engine._checkpoints import checkpoint_grid
from dlncheck.engine._divergence import TrainingDiverged
from dlncheck.engine._train import ENGINE_VERSION, train
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
