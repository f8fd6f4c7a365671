"""theory.assumptions against independent NumPy references: the bottleneck's least loss (reduced-rank
regression on the raw samples), the aligned anisotropic horizon (1 / lambda_r) and the learning times
of a known path."""

import numpy as np
import pytest
import torch

from dlncheck.config.data import input_spectrum, make_problem
from dlncheck.config.experiment import Experiment, Init, Teacher
from dlncheck.theory import assumptions, trap

TEACHER = Teacher(5, 4, (3.0, 2.0, 1.0), seed=4)


def experiment(**kw):
    return Experiment(TEACHER, 2, 2, Init("gaussian", 0.1), 0.05, 10, 8, 40, 1, **kw)


@pytest.mark.parametrize("options", [{}, {"input_condition": 30.0, "input_basis": "random", "label_noise": 0.2}])
@pytest.mark.parametrize("width", [1, 2])
def test_bottleneck_loss_is_the_least_loss_of_a_rank_w_map(options, width):
    p = make_problem(experiment(**options))
    X, Y = p.X.numpy(), p.Y.numpy()
    n = X.shape[1]
    Sxx, Syx = X @ X.T / n, Y @ X.T / n
    w, V = np.linalg.eigh(Sxx)
    Rinv = V @ np.diag(w**-0.5) @ V.T
    U, s, Vh = np.linalg.svd(Syx @ Rinv)
    A, B = U[:, :width] * s[:width], Vh[:width] @ Rinv
    best = A @ B  # reduced-rank regression (Izenman 1975)
    least = 0.5 * np.mean(np.sum((Y - best @ X) ** 2, axis=0))
    assert assumptions.bottleneck_loss(p, width) == pytest.approx(least, rel=1e-10, abs=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(20):  # no random rank-w map does better
        other = (A + 0.05 * rng.standard_normal(A.shape)) @ (B + 0.05 * rng.standard_normal(B.shape))
        assert 0.5 * np.mean(np.sum((Y - other @ X) ** 2, axis=0)) >= least - 1e-12


def test_horizon_of_aligned_inputs_is_one_over_lambda_r():
    exp = experiment(input_condition=10.0)
    lam, _ = input_spectrum(exp)
    factor = assumptions.horizon_factor(make_problem(exp), TEACHER.s, TEACHER.rank)
    assert factor == pytest.approx(1 / float(lam[TEACHER.rank - 1]), rel=1e-10)
    assert assumptions.horizon_factor(make_problem(experiment()), TEACHER.s, TEACHER.rank) == pytest.approx(1.0)


def test_learning_times_of_a_known_path():
    p = make_problem(experiment(input_condition=10.0, input_basis="random"))
    U, s, V = assumptions.target_modes(p)
    root_inv = torch.linalg.inv(p.root)
    times = torch.linspace(0, 10, 101, dtype=torch.float64)
    reach = torch.tensor([2.0, 7.0, 5.0], dtype=torch.float64)  # mode j reaches s'_j at t = 2 reach_j
    u = (times[:, None] / (2 * reach)).clamp(max=1.0) * s[:3]  # u_j(t): half of s'_j at t = reach_j
    W = torch.einsum("ij,kj,aj->kia", U[:, :3], u, V[:, :3]) @ root_inv
    t = assumptions.learning_times(W, times, p, 3)
    np.testing.assert_allclose(t, reach.numpy(), atol=0.1 + 1e-9)
    assert np.isnan(assumptions.learning_times(W[:10], times[:10], p, 3)).all()
    runs = torch.stack([W, W.roll(5, 0)])  # two runs, the second 5 checkpoints late (wrapped: at the start too)
    both = assumptions.learning_times(runs, times, p, 3)
    assert both.shape == (2, 3)
    np.testing.assert_array_equal(both[0], t)
    np.testing.assert_allclose(both[1], [0.0, 0.0, 0.0])  # the wrapped end, past every mode's half, sits first


def test_settling_margin_is_the_trap_margin_on_whitened_data_and_one_over_lambda_longer_when_aligned():
    """settling_margin (theory.assumptions item 6): theory.trap.settling_margin of the smallest mode on
    whitened data; on inputs aligned with the teacher each mode's rate carries lambda_k (its input
    variance along v_k), so the slowest of the three is the smallest of L lambda_k s_k^{2-2/L}."""
    for depth in (2, 3, 4):
        whitened = assumptions.settling_margin(make_problem(experiment()), 3, depth)
        assert whitened == pytest.approx(trap.settling_margin(float(TEACHER.s[2]), depth), rel=1e-10)
        exp = experiment(input_condition=10.0)
        lam = input_spectrum(exp)[0][:3].numpy()
        slowest = min(depth * l * s ** (2 - 2 / depth) for l, s in zip(lam, TEACHER.s.tolist()))
        margin = assumptions.settling_margin(make_problem(exp), 3, depth)
        assert margin == pytest.approx(trap.settling_efolds(depth) / slowest, rel=1e-8)


@pytest.mark.parametrize(
    "options, decouple",
    [({}, True), ({"input_condition": 10.0}, True), ({"input_condition": 10.0, "input_basis": "random"}, False)],
)
def test_modes_decouple_and_target_coefficients(options, decouple):
    """Whitened and aligned inputs decouple (Sxx and T^T T commute), rotated ones do not; the target
    coefficients of the least-squares map itself are diag(s') (NumPy SVD of Syx Sxx^-1/2)."""
    p = make_problem(experiment(**options))
    assert assumptions.modes_decouple(p) is decouple
    X, Y = p.X.numpy(), p.Y.numpy()
    n = X.shape[1]
    w, V = np.linalg.eigh(X @ X.T / n)
    s = np.linalg.svd((Y @ X.T / n) @ V @ np.diag(w**-0.5) @ V.T, compute_uv=False)[:3]
    C = assumptions.target_coefficients(p.least_squares[None], p, 3)[0].numpy()
    np.testing.assert_allclose(C, np.diag(s), atol=1e-10 * s[0])


@pytest.mark.parametrize(
    "options, width, vanishes",
    [
        ({}, 3, True),
        ({"input_condition": 10.0, "input_basis": "random"}, 3, True),
        ({}, 2, False),  # the teacher's rank 3 above the bottleneck
        ({"label_noise": 0.2}, 3, False),
    ],
)
def test_noise_vanishes_where_the_best_rank_w_map_fits_every_sample(options, width, vanishes):
    """noise_vanishes (theory.assumptions item 6) against the raw samples: the per-sample residuals of the
    reduced-rank regression's map (NumPy) all vanish exactly where it says the noise does."""
    p = make_problem(experiment(**options))
    X, Y = p.X.numpy(), p.Y.numpy()
    n = X.shape[1]
    w, V = np.linalg.eigh(X @ X.T / n)
    Rinv = V @ np.diag(w**-0.5) @ V.T
    U, s, Vh = np.linalg.svd((Y @ X.T / n) @ Rinv)
    residual = Y - (U[:, :width] * s[:width]) @ Vh[:width] @ Rinv @ X
    assert bool(np.abs(residual).max() <= 1e-10 * np.abs(Y).max()) is vanishes
    assert assumptions.noise_vanishes(p, width) is vanishes
