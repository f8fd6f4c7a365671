"""Checkpoint schedules of ``train``: the log-spaced grid, a request turned into a step table
((K,) shared by all runs, or (R, K) per run with -1 = skipped), and the events at which the step
loop stores weights (per step: the configs, runs and checkpoint indices it reaches there).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from dlncheck.config import validation as check
from dlncheck.config.experiment import Experiment
from dlncheck.engine.budget import grid_points

#: one config's ``train(checkpoints=...)``: None, a count, a list of steps or an (R, K) table
CheckpointSpec = int | Sequence[int] | np.ndarray | torch.Tensor | None


def checkpoint_grid(steps: int, count: int) -> torch.Tensor:
    """``count`` log-spaced integer steps in [0, steps], always with 0 and ``steps`` (deduplicated)."""
    if count < 2:
        raise ValueError(f"checkpoints={count} is invalid: ask for at least 2 (step 0 and the last step)")
    if not grid_points(steps, count):  # so dense that every step is one (the same grid, without drawing it)
        return torch.arange(steps + 1)
    grid = np.round(np.geomspace(1, steps, count - 1)).astype(np.int64)
    return torch.from_numpy(np.unique(np.concatenate([[0], grid, [steps]])))


def checkpoint_table(checkpoints, experiment: Experiment) -> torch.Tensor:
    check.checkpoints("checkpoints", checkpoints, experiment.steps, experiment.runs)
    if checkpoints is None:
        table = torch.tensor([0, experiment.steps])
    elif isinstance(checkpoints, (int, np.integer)):
        table = checkpoint_grid(experiment.steps, int(checkpoints))
    else:
        table = torch.as_tensor(np.asarray(checkpoints, dtype=np.int64))
    if table.ndim not in (1, 2) or (table.ndim == 2 and table.shape[0] != experiment.runs):
        raise ValueError(
            f"checkpoints of shape {tuple(table.shape)} is invalid: give a count, "
            f"a list of steps, or an (R={experiment.runs}, K) table of per-run steps"
        )
    if (table > experiment.steps).any() or (table < -1).any() or (table.ndim == 1 and (table < 0).any()):
        raise ValueError(
            f"checkpoints must lie in [0, steps={experiment.steps}] (-1 marks a skipped per-run checkpoint)"
        )
    return table


def checkpoint_events(tables: list[torch.Tensor], runs: int):
    """Sorted unique checkpoint steps, and per step a list of (config, runs, checkpoint indices)."""
    parts = []
    for c, table in enumerate(tables):
        per_run = (table if table.ndim == 2 else table.expand(runs, -1)).numpy()
        r, k = np.nonzero(per_run >= 0)
        parts.append(np.stack([per_run[r, k], np.full_like(r, c), r, k], axis=1))
    hits = np.concatenate(parts)
    hits = hits[np.lexsort((hits[:, 1], hits[:, 0]))]  # by step, then config
    steps, first = np.unique(hits[:, 0], return_index=True)
    events = []
    for block in np.split(hits, first[1:]) if len(hits) else []:
        configs, starts = np.unique(block[:, 1], return_index=True)
        events.append(
            [
                (
                    int(c),
                    torch.from_numpy(np.ascontiguousarray(rows[:, 2])),
                    torch.from_numpy(np.ascontiguousarray(rows[:, 3])),
                )
                for c, rows in zip(configs, np.split(block, starts[1:]))
            ]
        )
    return steps, events
