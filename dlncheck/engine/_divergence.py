"""Divergence: a run whose full-data loss turns non-finite or exceeds DIVERGENCE_FACTOR x
max(initial loss, 1) stops ``train`` with TrainingDiverged naming the run, its step and lr.

The step loop checks every step's loss at the end of each segment; a segment is at most
DIVERGENCE_WINDOW steps, and at most CHECK_ELEMENTS weight entries stepped, long.
"""

from __future__ import annotations

import numpy as np
import torch

DIVERGENCE_FACTOR = 1e6  # a run diverges when its loss exceeds this times max(initial loss, 1)
DIVERGENCE_WINDOW = 256  # every step's loss is checked at least this often (steps) ...
CHECK_ELEMENTS = 2**21  # ... and at least every this many weight entries stepped (big nets)


class TrainingDiverged(RuntimeError):
    """A run's loss became non-finite or grew past the divergence bound."""

    def __init__(self, run: int, step: int, lr: float, loss: float = float("nan"), config: int | None = None):
        self.run, self.step, self.lr, self.loss, self.config = run, step, lr, loss, config
        kind = "GD" if run == 0 else "SGD"
        where = "" if config is None else f"config {config}, "
        super().__init__(
            f"{where}run {run} ({kind}) diverged at step {step} with lr={lr:g} "
            f"(loss {loss:.3g}); lower lr (GD on this loss is stable for "
            f"lr < 2 / (largest Hessian eigenvalue)) or use a smaller init scale"
        )


def check_divergence(residual, record, offset, bound, lrs, R, rows) -> None:
    """Raise TrainingDiverged for the first loss (every step of a segment, recorded or not) that
    is non-finite or > bound; column j of ``residual`` is the program's row ``rows[j]``.

    Weights need no check of their own: a NaN or inf entry in any layer makes every entry of the
    end-to-end product non-finite (IEEE: NaN * 0 = NaN, inf * 0 = NaN), so the loss before the
    next step, or the final loss after the last, is non-finite at that step."""
    loss = 0.5 * residual.square() + offset
    bad = ~torch.isfinite(loss) | (loss > bound[torch.from_numpy(rows)])
    if bad.any():
        i, j = (int(v) for v in torch.nonzero(bad)[0])
        _diverged(int(rows[j]), int(record[i]), lrs, R, float(loss[i, j]))


def _diverged(row: int, step: int, lrs: np.ndarray, R: int, loss: float = float("nan")):
    configs = len(lrs) // R
    raise TrainingDiverged(row % R, step, float(lrs[row]), loss, row // R if configs > 1 else None)
