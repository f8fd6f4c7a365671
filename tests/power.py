"""Shared pieces of the power tests (tests/test_power_<family>.py, issue 26 item 1).

A golden trajectory is a small engine run (a saddle preset, run 0 = GD, runs 1..S = SGD) on which
GD and SGD agree; each power test plants one deviation of a stated size in its SGD runs (or in the
reading the family's check takes from them) and calls the family's own check function.

Rejection rates over seeds: SEEDS Monte Carlo draws of the SGD runs' noise, Gaussian with the
standard deviation the golden engine run measures. An estimated rate p_hat of a true rate >= 0.95
lies below MC_FLOOR = 0.95 - 3 sqrt(0.95 x 0.05 / SEEDS) with probability < 0.2 % (normal
approximation to the binomial), the Monte Carlo margin of every "rejects at the mdd" assertion.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch

from dlncheck import presets, train
from dlncheck.theory.power import POWER

SEEDS = 400
MC_FLOOR = POWER - 3 * math.sqrt(POWER * (1 - POWER) / SEEDS)


@functools.cache
def golden(teacher: str = "lowrank", depth: int = 2, checkpoints: int = 120):
    """(experiment, trajectory) of the saddle preset, aligned init: GD and S SGD runs from one init."""
    exp = presets.experiment("saddle", teacher, depth=depth)
    return exp, train(exp, checkpoints=checkpoints)


def rejection_rate(rejects: Callable[[np.random.Generator], bool], seeds: int = SEEDS) -> float:
    """Fraction of ``seeds`` independent draws (numpy Generator seeded 0..seeds-1) the check rejects."""
    return float(np.mean([bool(rejects(np.random.default_rng(seed))) for seed in range(seeds)]))


def resampled_runs(values: torch.Tensor, seed: int) -> torch.Tensor:
    """SGD runs' values (S, ...) with their deviations from the run mean drawn again: permuted over
    runs and sign-flipped (same mean, same covariance scale), seeded by ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    dev = values - values.mean(0)
    signs = torch.randint(0, 2, (values.shape[0],) + (1,) * (values.ndim - 1), generator=gen, dtype=values.dtype)
    return values.mean(0) + (signs * 2 - 1) * dev[torch.randperm(values.shape[0], generator=gen)]
