"""dlncheck.theory.escape_lag against independent references: per-sample loops and autograd for the
noise trace, an exact enumeration of reshuffled epochs for the drift, theory.sgd's balance drift,
a closed form of the decoupled L = 2 lag, the engine's own SGD for the lag, and power tests of the
checks (a planted lag of the wrong sign or of 3x the size, a wrong slope, must fail)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from dlncheck import Experiment, Init, Teacher, train
from dlncheck.config.data import init_weights, make_problem
from dlncheck.measure import events, lr_sweep
from dlncheck.theory import escape_lag as el
from dlncheck.theory import sgd
from dlncheck.theory.gradient_noise import minibatch_factor
from dlncheck.theory.mode_dynamics import ESCAPE_FRACTION


def _net(depth, dims, batch=(), seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*batch, dims[l + 1], dims[l], generator=g, dtype=torch.float64) for l in range(depth)]


def _per_sample_trace(W, X, Y):
    """(1/n) sum_i ||g_i - g||^2 by an explicit loop over samples and layers (autograd per sample)."""
    n, total, grads = X.shape[1], 0.0, []
    W = [w if w.requires_grad else w.clone().requires_grad_(True) for w in W]
    for i in range(n):
        P = W[0]
        for w in W[1:]:
            P = w @ P
        loss = 0.5 * (P @ X[:, i] - Y[:, i]).square().sum()
        grads.append(torch.autograd.grad(loss, W, create_graph=True))
    mean = [sum(g[l] for g in grads) / n for l in range(len(W))]
    for g in grads:
        total = total + sum((g[l] - mean[l]).square().sum() for l in range(len(W)))
    return total / n


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_noise_trace_and_gradient_match_per_sample_loop_and_autograd(depth):
    dims = [3, 5, 4, 6, 2][: depth + 1]
    W = _net(depth, dims, seed=depth)
    g = torch.Generator().manual_seed(10 + depth)
    X, Y = (
        torch.randn(dims[0], 7, generator=g, dtype=torch.float64),
        torch.randn(dims[-1], 7, generator=g, dtype=torch.float64),
    )
    ref = float(_per_sample_trace(W, X, Y).detach())
    assert el.noise_trace(W, X, Y) == pytest.approx(ref, rel=1e-12)
    Wr = [w.clone().requires_grad_(True) for w in W]
    auto = torch.autograd.grad(_per_sample_trace(Wr, X, Y), Wr)
    dW, G, R = el.noise_trace_grad(W, X, Y)
    for a, b in zip(dW, auto):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-11, atol=1e-11 * float(b.abs().max()))
    P = W[0]
    for w in W[1:]:
        P = w @ P
    np.testing.assert_allclose(R, (P @ X - Y).numpy(), atol=1e-12)
    batched = el.noise_trace([torch.stack([w, 2 * w]) for w in W], X, Y)  # leading batch axes
    assert batched[0] == pytest.approx(ref, rel=1e-12)


def _sgd_epoch(W, X, Y, order, B, lr):
    W = [w.copy() for w in W]
    for k in range(len(order) // B):
        idx = list(order[k * B : (k + 1) * B])
        _, G, _ = el.noise_trace_grad(W, X[:, idx], Y[:, idx])
        W = [w - lr * g for w, g in zip(W, G)]
    return W


def test_epoch_drift_matches_exact_enumeration_of_shuffles():
    """Item 1: E over all 720 orders of one reshuffled epoch (n = 6, B = 2, m = 3) minus GD's 3 steps
    equals -(lr^2 m c_B / 4) grad tr Sigma up to O(lr^3): the ratio tends to 1 linearly in lr."""
    rng = np.random.default_rng(0)
    n, B, dims = 6, 2, [2, 3, 2]
    X, Y = rng.standard_normal((dims[0], n)), rng.standard_normal((dims[-1], n))
    W = [rng.standard_normal((dims[l + 1], dims[l])) * 0.7 for l in range(2)]
    m, c_B = n // B, minibatch_factor(n, B)
    pred = [-m * c_B / 4 * d for d in el.noise_trace_grad(W, X, Y)[0]]
    errors = []
    for lr in (0.01, 0.005):
        gd = W
        for _ in range(m):
            gd = [w - lr * g for w, g in zip(gd, el.noise_trace_grad(gd, X, Y)[1])]
        ends = [_sgd_epoch(W, X, Y, order, B, lr) for order in itertools.permutations(range(n))]
        mean = [np.mean([e[l] for e in ends], axis=0) for l in range(2)]
        diff = np.concatenate([((mu - g) / lr**2).ravel() for mu, g in zip(mean, gd)])
        target = np.concatenate([p.ravel() for p in pred])
        errors.append(np.abs(diff - target).max() / np.abs(target).max())
    assert errors[1] < 0.6 * errors[0] and errors[1] < 0.1, errors


def test_balance_part_of_the_drift_is_theory_sgd_item_1():
    """dD_l/dt along -grad R, R = (lr c_B / 4) tr Sigma, equals lr c_B C_l of theory.sgd (two derivations)."""
    exp = Experiment(Teacher(3, 3, (2.0, 1.0), seed=4), 3, 4, Init("gaussian", 0.5, seed=2), 0.02, 10, 2, 6, 0)
    p, W = make_problem(exp), init_weights(exp)
    lr, c_B = exp.lr, minibatch_factor(exp.n_samples, exp.batch_size)
    V = [-lr * c_B / 4 * torch.from_numpy(d) for d in el.noise_trace_grad(W, p.X, p.Y)[0]]
    C = sgd.drift_covariance(W, p.X, p.Syx)
    for l in range(len(W) - 1):
        dD = V[l + 1].T @ W[l + 1] + W[l + 1].T @ V[l + 1] - V[l] @ W[l].T - W[l] @ V[l].T
        torch.testing.assert_close(dD, lr * c_B * C[l], rtol=1e-10, atol=1e-12)


def test_decoupled_l2_lag_matches_closed_form():
    """Item 3: inputs x = +-sqrt(d) e_k make the fourth moments diagonal (c_kk = d - 1), an aligned
    L = 2 mode then obeys du/dt = 2u (s - u)(1 - 2 kappa s + 6 kappa u) with kappa = strength (d - 1),
    so the lag to first order is kappa [ln(f/(1-f)) - ln(u0/(s-u0)) + 3 ln((1-f) s / (s - u0))]."""
    d, s, a0, lr, strength = 3, 2.0, 1e-3, 5e-4, 1e-3
    X = math.sqrt(d) * np.concatenate([np.eye(d), -np.eye(d)], axis=1)
    M = np.diag([s, 0.0, 0.0])
    W0 = [np.diag([a0, 0.0, 0.0])] * 2
    losses = el.mean_paths(X, M @ X, W0, lr, 20000, strength, stop_below=0.5 * s**2 / 2 * 0.5)
    times = lr * np.arange(losses.shape[-1])
    level = float(el.escape_levels([s])[0])
    lag = el.crossing_time(losses[1], times, level) - el.crossing_time(losses[0], times, level)
    f, u0, kappa = ESCAPE_FRACTION, a0**2, strength * (d - 1)
    closed = kappa * (math.log(f / (1 - f)) - math.log(u0 / (s - u0)) + 3 * math.log((1 - f) * s / (s - u0)))
    assert lag == pytest.approx(closed, rel=0.02)
    assert lag > 0  # the sign: the regulariser slows the escape


def test_crossing_time_interpolates_and_marks_never():
    t = np.arange(5.0)
    v = np.array([[4.0, 3.0, 1.0, 0.5, 0.2], [0.1, 0.1, 0.1, 0.1, 0.1], [4.0, 4.0, 4.0, 4.0, 4.0]])
    got = el.crossing_time(v, t, 2.0)
    assert got[0] == pytest.approx(1.5) and got[1] == 0.0 and math.isinf(got[2])
    loss = torch.tensor([[10.0, 8, 5, 2, 1.5, 1, 0.4, 0.1]], dtype=torch.float64)
    np.testing.assert_allclose(events.escape_times(loss, 0.5 * torch.arange(8.0), [4.0, 2.0, 1.0]), [[0.75, 2.0, 3.25]])


def test_predicted_lag_agrees_with_engine_sgd_monte_carlo():
    """The lag of the engine's reshuffled SGD (400 runs, one small init, n = 6, B = 2: c_B = 0.4) against
    predicted_lags: |mean - p| <= 4 s.e. + h |p| (h = lr lambda_max), with the lag resolved (p > 6 s.e.).
    First order: at lr = 0.02 (h = 0.12) the same comparison is off by up to 18% (0.91x and 1.18x),
    at lr = 0.01 by 9%, here (lr = 0.005) by under 4%."""
    exp = Experiment(Teacher(3, 3, (3.0, 1.0), seed=1), 2, 4, Init("gaussian", 0.02, seed=3), 0.005, 3600, 2, 6, 400)
    pred = el.predicted_lags([exp])
    traj = train(exp)
    t = events.escape_times(traj.loss, traj.times, exp.teacher.s)
    lags = t[1:] - t[:1]
    mean, se = lags.mean(0), lags.std(0, ddof=1) / math.sqrt(lags.shape[0])
    h = sgd.truncation_tolerance(exp)
    np.testing.assert_allclose(pred["gd"][0], t[0], atol=1e-9)  # the theory's GD path is the engine's
    assert (pred["lag"][0] > 6 * se).all(), (pred["lag"], se)
    assert (np.abs(mean - pred["lag"][0]) <= 4 * se + h * np.abs(pred["lag"][0])).all(), (mean, pred["lag"], se, h)


def _draws(p, sd, K=24, S=8, seed=0):
    return np.random.default_rng(seed).normal(np.asarray(p)[:, None], sd, size=(K, S))


def test_lag_checks_hold_for_the_truth_and_have_power():
    """Planted lags: the true mean passes; the wrong sign or 3x the size fails the same checks."""
    p, sd, h = np.full(24, 0.01), 0.002, 0.2
    ok = el.lag_checks(_draws(p, sd), p, h)
    assert ok["size"].all() and ok["sign"].all()
    wrong_sign = el.lag_checks(_draws(-p, sd), p, h)
    assert not wrong_sign["sign"].any() and not wrong_sign["size"].any()
    triple = el.lag_checks(_draws(3 * p, sd), p, h)
    assert not triple["size"].any()
    with pytest.raises(ValueError, match="one each"):
        el.lag_checks(_draws(p, sd), p[:3], h)


def test_slope_check_has_power():
    """A lag linear in lr c_B passes [lo - b, hi + b] around 1; a quadratic or a constant one fails."""
    x = np.array([minibatch_factor(60, B) * 0.01 * f for B in (10, 30) for f in lr_sweep.LR_FRACTIONS])
    rng = np.random.default_rng(1)
    b = el.slope_band(0.2)
    for power, holds in ((1.0, True), (2.0, False), (0.0, False)):
        values = (x**power)[:, None, None] * (1 + 0.05 * rng.standard_normal((len(x), 8, 1)))
        fit = lr_sweep.fit_loglog(x, values)
        assert (fit.lo - b <= 1 <= fit.hi + b) == holds, (power, fit)
    with pytest.raises(ValueError, match="lambda_max"):
        el.slope_band(1.0)
