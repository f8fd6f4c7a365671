"""Loss-aligned and escape-aligned checkpoints: compare runs at the same stage, not the same step.

Events per run, from its full-data loss (first step at which loss <= level):
- "plateau k": arrival on plateau k, level P_k + ARRIVAL_RTOL * P_0, with P_k the plateaus the
  loss visits (:func:`dlncheck.theory.stage_plateaus`, equal singular values merged);
- "escape k": the k-th significant drop, level (P_{k-1} + P_k) / 2 (midpoint crossing);
- "window": points at escape k +- offsets in [-Delta, Delta] (escape-centred windows, Delta
  from :func:`dlncheck.theory.escape_halfwidth`, the project's one window definition).
The event levels and crossings are computed in :mod:`dlncheck.measure.events` (protocol 1.1 step 1.2).

Weights exactly at those per-run steps take two passes: a loss-only pass finds the steps, a
second pass checkpoints each run at its own steps. The engine is deterministic, so the second
pass reproduces the first pass's losses bit for bit (checked).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dlncheck.config.data import make_problem
from dlncheck.config.experiment import Experiment
from dlncheck.engine._train import Trajectory, train
from dlncheck.measure.events import arrival_levels, escape_steps, first_crossing
from dlncheck.theory import escape_halfwidth


@dataclass
class AlignedCheckpoints:
    """K aligned points per run. steps/times/loss: (R, K) (-1 / NaN where a run never got there);
    weights: list of L tensors (R, K, d_l, d_{l-1}); escape_times: (R, n_escapes);
    windows: GD's escape windows [(t - Delta, t + Delta), ...]."""

    steps: torch.Tensor
    times: torch.Tensor
    labels: list[str]
    kinds: list[str]
    weights: list[torch.Tensor]
    loss: torch.Tensor
    escape_times: torch.Tensor
    windows: list[tuple[float, float]]
    window: float
    trajectory: Trajectory


def check_reproduced(first: torch.Tensor, second: torch.Tensor) -> None:
    """Raise unless a second, checkpointing pass reproduced the first pass's losses bit for bit
    (the two-pass readings rest on it)."""
    if not torch.equal(second, first):
        raise RuntimeError(
            "the checkpointing pass did not reproduce the first pass's losses; "
            "per-run steps would be wrong (is the engine deterministic on this device?)"
        )


def _events(arrive: torch.Tensor, escape: torch.Tensor, offsets: list[int], n_steps: int):
    """Columns (per-run steps), labels and kinds of all events, sorted by GD's step."""
    events = []  # (per-run steps, label, kind)
    for k in range(arrive.shape[1]):
        events.append((arrive[:, k], f"plateau {k}", "plateau"))
        if k == escape.shape[1]:
            break
        esc = escape[:, k]
        for off in offsets:
            if off == 0:
                events.append((esc, f"escape {k + 1}", "escape"))
            else:
                shifted = torch.where(esc >= 0, (esc + off).clamp(0, n_steps), -1)
                events.append((shifted, f"escape {k + 1} {off:+d} steps", "window"))
    columns, labels, kinds = zip(*events)
    table = torch.stack(columns, dim=1)
    gd = torch.where(table[0] >= 0, table[0], n_steps + 1)
    order = sorted(range(len(labels)), key=lambda j: int(gd[j]))  # GD's time order (stable)
    return table[:, order], [labels[j] for j in order], [kinds[j] for j in order]


def aligned_checkpoints(
    experiment: Experiment, window: float | None = None, points_per_window: int = 2, progress: bool = False
) -> AlignedCheckpoints:
    """Checkpoints of every run at its own plateau arrivals, escapes and escape windows.

    window: Delta in time units (default: the theory's escape half-width 3 / (L s^{2-2/L}) of the
    first stage to escape, the largest s, whose window is the narrowest, so every window point
    lies inside its own escape's window); points_per_window: window points on each side."""
    if points_per_window < 0:
        raise ValueError(f"points_per_window={points_per_window} is invalid: use >= 0")
    offset = make_problem(experiment).loss_offset
    s = experiment.teacher.s
    first = train(experiment, checkpoints=[0], progress=progress)
    arrive = first_crossing(first.loss, first.steps, arrival_levels(s, offset))
    escape = escape_steps(first.loss, first.steps, s, offset)
    lr = experiment.lr
    gd_escapes = [lr * int(e) for e in escape[0] if e >= 0]
    if window is None:
        window = float(escape_halfwidth(float(s[0]), experiment.depth)[0])
    if not window >= 0:
        raise ValueError(f"window={window!r} is invalid: use a time span Delta >= 0")
    n = points_per_window
    offsets = sorted({round(window / lr * j / n) for j in range(-n, n + 1)} if n else {0})
    table, labels, kinds = _events(arrive, escape, offsets, experiment.steps)

    second = train(experiment, checkpoints=table, progress=progress)
    check_reproduced(first.loss, second.loss)
    reached = table >= 0
    loss = torch.where(reached, second.loss.cpu().gather(1, table.clamp_min(0)), float("nan"))
    times = torch.where(reached, lr * table.double(), float("nan"))
    escape_times = torch.where(escape >= 0, lr * escape.double(), float("nan"))
    windows = [(t - window, t + window) for t in gd_escapes]
    return AlignedCheckpoints(table, times, labels, kinds, second.weights, loss, escape_times, windows, window, second)
