"""Power of the balance family's SGD-drift check (issue 26): theory.balance_drift.sgd_drift_check,
the function the claim calls per (init, pair), on an engine run whose SGD runs get a planted broken
balance (a shift of D_l(T)): rejected with probability >= 95% just above its minimum detectable
deviation, accepted well below its tolerance."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dlncheck import presets, train
from dlncheck.config.data import make_problem
from dlncheck.measure import balance
from dlncheck.measure.events import time_grid_for
from dlncheck.theory import balance_drift as tb
from dlncheck.theory import sgd as sgd_theory
from dlncheck.theory.gradient_noise import minibatch_factor
from tests.power import resampled_runs

SEEDS = 40


@pytest.fixture(scope="module")
def golden():
    """GD and 8 SGD runs of the aligned saddle preset (L = 2): D_1(T) per run and the GD-path prediction."""
    exp = dataclasses.replace(presets.experiment("saddle", "lowrank", 2), sgd_runs=8)
    traj = train(exp, checkpoints=time_grid_for(exp))
    problem = make_problem(exp)
    pred, quad = tb.sgd_extra_drift(
        [w[0] for w in traj.weights],
        traj.checkpoint_steps,
        problem.X,
        problem.Syx,
        exp.lr,
        minibatch_factor(exp.n_samples, exp.batch_size),
    )
    D_T = balance.balance_matrices([w[:, -1] for w in traj.weights])[0]
    return D_T, pred[0], float(quad[0]), sgd_theory.truncation_tolerance(exp)


def test_power_balance_planted_broken_balance(golden):
    D_T, pred, quad, h = golden
    base = tb.sgd_drift_check(D_T[1:], D_T[0], pred, quad, h, n_tests=1)
    assert base["holds"], base  # the golden run agrees with the first-order prediction
    direction = pred / torch.linalg.matrix_norm(pred, "fro")
    rejected = accepted = 0
    for seed in range(SEEDS):
        sgd = resampled_runs(D_T[1:], seed)
        check = tb.sgd_drift_check(sgd, D_T[0], pred, quad, h, n_tests=1)
        rejected += not tb.sgd_drift_check(sgd + 1.05 * check["mdd"] * direction, D_T[0], pred, quad, h, 1)["holds"]
        accepted += tb.sgd_drift_check(sgd + 0.1 * check["tolerance"] * direction, D_T[0], pred, quad, h, 1)["holds"]
    assert rejected >= 0.95 * SEEDS
    assert accepted >= 0.95 * SEEDS
