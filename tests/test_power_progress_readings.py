"""Power of the matched-progress readings of the balance and parameter-space families (issue 25
item 1): on a random small init of the saddle preset (engine runs, GD and 8 SGD runs), each SGD run
read at the step where it matches GD's progress (dlncheck.measure.progress_exact) and the prediction
taken from GD's path up to GD's matched checkpoint, as the claims' ``-progress`` cases do. A
deviation planted in the SGD runs' reading is rejected with probability >= 95% just above the
check's minimum detectable deviation and accepted well below its tolerance (deviations of the runs
redrawn per seed, tests/power.py)."""

from __future__ import annotations

import functools

import torch

from dlncheck import presets, train
from dlncheck.config.data import make_problem
from dlncheck.measure import balance, compare, progress_exact
from dlncheck.measure.events import time_grid_for
from dlncheck.suite import init_ensembles
from dlncheck.theory import balance_drift as tb
from dlncheck.theory import sgd, tolerances
from dlncheck.theory.gradient_noise import minibatch_factor
from tests.power import resampled_runs

SEEDS = 40


class _NoCache:
    def ensemble(self, ensemble, **kwargs):
        return train(ensemble, **kwargs)


@functools.cache
def _matched():
    """(experiment, first-pass trajectory, exact matched point) of one Gaussian small init, L = 2."""
    aligned = presets.experiment("saddle", "lowrank", 2, sgd_runs=8)
    ens = init_ensembles.case_ensemble(aligned, init_ensembles.Sizes(saddle=2, other=1, check_sgd_runs=8))
    ens = ens.subset([1])  # gaussian#0
    coarse = list(train(ens, checkpoints=time_grid_for(ens.base)))
    s = aligned.teacher.s[: aligned.teacher.rank]
    point = progress_exact.exact_matched_ends(_NoCache(), ens, coarse, [0], s)[0]
    return ens.experiment(0), coarse[0], point


def test_power_balance_progress_reading():
    exp, traj, point = _matched()
    k, problem = point.index, make_problem(exp)
    pred, quad = tb.sgd_extra_drift(
        [w[0, : k + 1] for w in traj.weights],
        traj.checkpoint_steps[: k + 1],
        problem.X,
        problem.Syx,
        exp.lr,
        minibatch_factor(exp.n_samples, exp.batch_size),
    )
    pred, quad, h = pred[0], float(quad[0]), sgd.truncation_tolerance(exp)
    D = balance.balance_matrices(point.weights)[0]  # (R, d, d) at the matched steps
    assert tb.sgd_drift_check(D[1:], D[0], pred, quad, h, n_tests=1)["holds"]  # the golden reading agrees
    direction = pred / torch.linalg.matrix_norm(pred, "fro")
    rejected = accepted = 0
    for seed in range(SEEDS):
        runs = resampled_runs(D[1:], seed)
        check = tb.sgd_drift_check(runs, D[0], pred, quad, h, n_tests=1)
        rejected += not tb.sgd_drift_check(runs + 1.05 * check["mdd"] * direction, D[0], pred, quad, h, 1)["holds"]
        accepted += tb.sgd_drift_check(runs + 0.1 * check["tolerance"] * direction, D[0], pred, quad, h, 1)["holds"]
    assert rejected >= 0.95 * SEEDS
    assert accepted >= 0.95 * SEEDS


def _planted(point, target: float, seed: int) -> list[torch.Tensor]:
    """The matched point's weights with the SGD runs' mean displacement from GD replaced by ``target``
    ||theta_GD|| along the measured mean direction; their deviations about the mean redrawn."""
    flat = torch.cat([w.flatten(1) for w in point.weights], dim=1)  # (R, P)
    delta = flat[1:] - flat[:1]
    u = delta.mean(0) / delta.mean(0).norm()
    runs = resampled_runs(delta, seed) - delta.mean(0) + target * flat[0].norm() * u + flat[:1]
    theta = torch.cat([flat[:1], runs])
    sizes = [w[0].numel() for w in point.weights]
    return [t.reshape(-1, *w.shape[1:]) for t, w in zip(theta.split(sizes, dim=1), point.weights)]


def test_power_parameter_space_progress_reading():
    exp, traj, point = _matched()
    offsets = sgd.ensemble_offsets([exp], at_steps=[int(point.steps[0])])[0]
    gd_norm = float(compare.theta_norm([w[:1] for w in point.weights])[0])
    p = tolerances.split_distance(offsets["a2_gd"], offsets["a2_sgd"], gd_norm)
    h, z = sgd.truncation_tolerance(exp), tolerances.bonferroni_z(1)

    def check(weights):
        m, spread = compare.mean_displacement(weights)
        return tolerances.offset_check(m, p, spread, exp.sgd_runs, h, z)

    golden = check(point.weights)
    rejected = accepted = 0
    for seed in range(SEEDS):
        rejected += not check(_planted(point, p + 1.05 * golden["mdd"], seed))["holds"]
        accepted += check(_planted(point, p + 0.1 * golden["tolerance"], seed))["holds"]
    assert rejected >= 0.95 * SEEDS
    assert accepted >= 0.95 * SEEDS
