"""Time and events: checkpoint grids, first times and crossings, plateau arrival and escape
levels, dwell times, escape steps and escape-window membership
(protocol 1.1 step 1, 1.2 II, 1.3; "Loss plateaus").

Time is t = lr * step. Escape windows have one definition, in the theory:
:func:`dlncheck.theory.escape_windows` (half-width 3 / (L s^{2-2/L})).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from dlncheck.theory import ArrayLike, stage_plateaus
from dlncheck.theory.escape_lag import crossing_time

if TYPE_CHECKING:
    from dlncheck.config.experiment import Experiment

ARRIVAL_RTOL = 1e-3
DWELL_RTOL = 0.05  # "on plateau k": the loss within 5% of P_k (the dwell of the regime and gauge claims)


def first_time(condition: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """inf{t_k : condition[..., k]} along the last axis; +inf where it never holds.

    ``times`` is (K,) or broadcasts against ``condition`` (per-run aligned times).
    """
    times = torch.as_tensor(times, dtype=torch.float64, device=condition.device)
    times = times.expand(condition.shape)
    idx = condition.to(torch.int8).argmax(-1, keepdim=True)
    t = times.gather(-1, idx).squeeze(-1)
    return torch.where(condition.any(-1), t, torch.full_like(t, math.inf))


def time_grid(steps: int, n_linear: int = 300, n_log: int = 120, max_points: int | None = None) -> list[int]:
    """Checkpoint steps for stagewise diagnostics: a linear grid (plateaus and escapes late in
    training) united with a log grid (early escapes), sorted, with 0 and ``steps``. When the
    grid would exceed ``max_points``, both parts shrink in proportion."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    grid = _grid(steps, n_linear, n_log)
    if max_points is not None and len(grid) > max_points:
        shrink = max_points / (n_linear + n_log)
        grid = _grid(steps, max(1, int(n_linear * shrink)), max(2, int(n_log * shrink)))
    return grid


def _grid(steps: int, n_linear: int, n_log: int) -> list[int]:
    lin = np.linspace(0, steps, n_linear + 1)
    log = np.geomspace(1, steps, n_log)
    return sorted({int(round(x)) for x in np.concatenate([lin, log, [0, steps]])})


def time_grid_for(experiment: Experiment, budget_bytes: int = 2**28) -> list[int]:
    """:func:`time_grid` for an experiment, capped so the stored weights of all runs at all
    checkpoints fit in ``budget_bytes`` (wide NTK nets with 33 runs would otherwise store
    gigabytes, and their partial products several times more)."""
    return time_grid(experiment.steps, max_points=max(16, budget_bytes // checkpoint_bytes(experiment)))


def checkpoint_bytes(experiment: Experiment) -> int:
    """Bytes of the weights of all the experiment's runs (GD and its SGD runs) at one checkpoint."""
    widths = experiment.widths
    params = sum(a * b for a, b in zip(widths[1:], widths[:-1]))
    return experiment.runs * params * torch.finfo(experiment.torch_dtype).bits // 8


def first_crossing(loss: torch.Tensor, steps: torch.Tensor, levels: ArrayLike) -> torch.Tensor:
    """(R, n_levels): the first recorded step at which loss[r] <= level (-1 if never). One level at a
    time, in bytes (a (R, T, n_levels) int copy of a nightly ensemble's per-step losses took 1.8 GB)."""
    levels = torch.as_tensor(levels, dtype=loss.dtype, device=loss.device)
    steps = steps.to(loss.device)
    out = torch.full((loss.shape[0], levels.numel()), -1, dtype=torch.long)
    for k, level in enumerate(levels):
        below = loss <= level  # (R, T)
        first = below.to(torch.uint8).argmax(dim=1)  # the first True (0 if none)
        out[:, k] = torch.where(below.any(dim=1), steps[first], -1).cpu()
    return out


def arrival_levels(s: ArrayLike, offset: float = 0.0) -> torch.Tensor:
    """Loss levels marking arrival on each visited plateau: P_k + ARRIVAL_RTOL * P_0 (+ offset)."""
    P = stage_plateaus(s)
    return P + ARRIVAL_RTOL * P[0] + offset


def escape_levels(s: ArrayLike, offset: float = 0.0) -> torch.Tensor:
    """Midpoints (P_{k-1} + P_k) / 2 between consecutive visited plateaus (+ offset)."""
    P = stage_plateaus(s)
    return 0.5 * (P[:-1] + P[1:]) + offset


def dwell_times(loss: torch.Tensor, times: torch.Tensor, levels: ArrayLike, rtol: float) -> torch.Tensor:
    """(R, n_levels): time each run's loss spends within rtol * level of each level.

    Each recorded point stands for half the interval on each side (midpoint rule)."""
    levels = torch.as_tensor(levels, dtype=loss.dtype, device=loss.device)
    t = times.to(loss.device, loss.dtype)
    dt = torch.diff(t)
    weight = torch.cat([dt[:1], dt[:-1] + dt[1:], dt[-1:]]) / 2 if len(t) > 1 else torch.zeros_like(t)
    near = (loss[:, :, None] - levels).abs() <= rtol * levels.abs()  # (R, T, n_levels)
    return (near * weight[:, None]).sum(dim=1).cpu()


def escape_steps(loss: torch.Tensor, steps: torch.Tensor, s: ArrayLike, offset: float = 0.0) -> torch.Tensor:
    """(R, n_escapes): per run, the step of each escape (midpoint crossing; -1 if never)."""
    return first_crossing(loss, steps, escape_levels(s, offset))


def escape_times(loss: torch.Tensor, times: torch.Tensor, s: ArrayLike, offset: float = 0.0) -> np.ndarray:
    """(R, n_escapes): per run, the time of each escape, the loss-midpoint crossing of
    :func:`escape_steps` linearly interpolated between the recorded losses around it (sub-step
    resolution; +inf if never). Needs only the loss, so it serves random inits as well as aligned
    ones (one escape per distinct singular value: a degenerate block escapes as one)."""
    levels = escape_levels(s, offset).tolist()
    return np.stack([crossing_time(loss, times, level) for level in levels], -1)


def in_windows(times: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """True where a time lies inside any window (n, 2); times (K,) -> (K,) bool."""
    t = times.to(torch.float64)[:, None]
    return ((t >= windows[:, 0]) & (t <= windows[:, 1])).any(-1)
