"""dlncheck.theory.sgd, dlncheck.theory.saddle_curvature and dlncheck.measure.lr_sweep against independent
references: per-sample loops, the engine's own SGD (Monte-Carlo over shuffles), autograd Hessians."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from dlncheck import (
    Experiment,
    Init,
    Teacher,
    train,
)
from dlncheck.config.data import init_weights, make_problem
from dlncheck.config.experiment import random_orthogonal
from dlncheck.measure import lr_sweep
from dlncheck.measure.balance import balance_matrices
from dlncheck.saddles.certify import dense_eigenvalues, hessian, loss_function
from dlncheck.theory import saddle_curvature as sc
from dlncheck.theory import sgd, sgd_drift
from dlncheck.theory.gradient_noise import minibatch_factor


def tiny(**kw) -> Experiment:
    spec = {
        "teacher": Teacher(3, 3, (2.0, 1.0), seed=4),
        "depth": 2,
        "width": 4,
        "init": Init("gaussian", 0.4, seed=2),
        "lr": 0.02,
        "steps": 60,
        "batch_size": 2,
        "n_samples": 6,
        "sgd_runs": 0,
    }
    return Experiment(**spec | kw)


def test_minibatch_factor_matches_enumeration_of_batches():
    rng = np.random.default_rng(0)
    n, B = 6, 2
    x = rng.standard_normal(n)
    means = [x[list(b)].mean() for b in itertools.combinations(range(n), B)]
    assert np.var(means) == pytest.approx(minibatch_factor(n, B) * np.var(x), rel=1e-12)
    assert minibatch_factor(n, n) == 0 and minibatch_factor(n, 1) == 1
    with pytest.raises(ValueError, match="batch_size"):
        minibatch_factor(6, 7)


def test_drift_covariance_matches_per_sample_loop():
    exp = tiny(depth=3)
    p = make_problem(exp)
    W = init_weights(exp)
    got = sgd.drift_covariance(W, p.X, p.Syx)
    n = exp.n_samples
    E = W[2] @ W[1] @ W[0] - p.Syx
    per = [E @ (p.X[:, i : i + 1] @ p.X[:, i : i + 1].T - torch.eye(3, dtype=torch.float64)) for i in range(n)]
    grads = [[(W[2] @ W[1]).T @ d, W[2].T @ d @ W[0].T, d @ (W[1] @ W[0]).T] for d in per]  # dG_l per sample
    for l in range(2):
        ref = sum(g[l + 1].T @ g[l + 1] - g[l] @ g[l].T for g in grads) / n
        torch.testing.assert_close(got[l], ref, rtol=1e-12, atol=1e-12)


def test_gd_path_matches_engine_gd_run():
    exp = tiny(depth=3)
    p = make_problem(exp)
    W, _ = sgd.gd_path_drift(p.X, p.Syx, init_weights(exp), exp.lr, exp.steps, chunk=7)
    ref = train(exp).weights
    for w, r in zip(W, ref):
        torch.testing.assert_close(w, r[0, -1], rtol=1e-11, atol=1e-12)


def test_ensemble_offsets_equal_one_config_at_a_time(monkeypatch):
    """The batched GD-path program (one step loop for all inits) equals predicted_offsets per init."""
    from dlncheck import Ensemble

    ens = Ensemble(
        tiny(depth=3, sgd_runs=2), [Init("gaussian", 0.4, seed=s) for s in range(3)] + [Init("balanced", 0.3, seed=0)]
    )
    got = sgd.ensemble_offsets(ens)
    assert len(got) == len(ens)
    for i, g in enumerate(got):
        ref = sgd.predicted_offsets(ens.experiment(i))
        for key in ("a2_gd", "a2_sgd", "d_gd", "d_extra", "u"):
            np.testing.assert_allclose(g[key], ref[key], rtol=1e-12, atol=1e-14, err_msg=key)
        np.testing.assert_allclose(g["offsets"], ref["offsets"], rtol=1e-12, atol=1e-14)
    exp = ens.base
    p, w0 = make_problem(exp), [init_weights(e) for e in ens.experiments]
    Wb, Sb = sgd.gd_path_drift(p.X, p.Syx, [torch.stack(ws) for ws in zip(*w0)], exp.lr, exp.steps, chunk=9)
    for i, w in enumerate(w0):  # the batched path against one unbatched path per init
        Wi, Si = sgd.gd_path_drift(p.X, p.Syx, w, exp.lr, exp.steps, chunk=7)
        for a, b in zip(Wb + Sb, Wi + Si):
            torch.testing.assert_close(a[i], b, rtol=1e-12, atol=1e-14)
    monkeypatch.setattr(sgd_drift, "CHUNK_BYTES", 8 * max(exp.widths[1:-1]) ** 2)  # inits in halves down to one
    Wh, Sh = sgd.gd_path_drift(p.X, p.Syx, [torch.stack(ws) for ws in zip(*w0)], exp.lr, exp.steps)
    for a, b in zip(Wb + Sb, Wh + Sh):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert sgd.ensemble_offsets([]) == []
    with pytest.raises(ValueError, match="more than their init"):
        sgd.ensemble_offsets([tiny(depth=3), tiny(depth=3, lr=0.01)])


@pytest.mark.parametrize("halved", [False, True])
def test_path_drift_stops_equal_shorter_runs(halved, monkeypatch):
    """Per-element stops (one program to the largest) equal a separate run of each element's own
    length, also with the inits in halves (CHUNK_BYTES below one step of them all);
    ensemble_offsets(at_steps=...) equals the offsets of experiments that many steps long."""
    from dlncheck import Ensemble

    ens = Ensemble(tiny(depth=3, sgd_runs=2), [Init("gaussian", 0.4, seed=s) for s in range(3)])
    exp = ens.base
    if halved:
        monkeypatch.setattr(sgd_drift, "CHUNK_BYTES", 8 * max(exp.widths[1:-1]) ** 2)
    p, w0 = make_problem(exp), [init_weights(e) for e in ens.experiments]
    stops = torch.tensor([exp.steps, exp.steps // 3, 0])
    Wb, Sb = sgd.gd_path_drift(p.X, p.Syx, [torch.stack(ws) for ws in zip(*w0)], exp.lr, exp.steps, 5, stops=stops)
    for i, w in enumerate(w0):
        Wi, Si = sgd.gd_path_drift(p.X, p.Syx, w, exp.lr, int(stops[i]), chunk=7)
        for a, b in zip(Wb + Sb, Wi + Si):
            torch.testing.assert_close(a[i], b, rtol=1e-12, atol=1e-14)
    got = sgd.ensemble_offsets(ens, at_steps=[exp.steps // 3, exp.steps // 2, exp.steps])
    for g, n, e in zip(got, [exp.steps // 3, exp.steps // 2, exp.steps], ens.experiments):
        ref = sgd.predicted_offsets(dataclasses.replace(e, steps=n))
        np.testing.assert_allclose(g["a2_sgd"], ref["a2_sgd"], rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="stops"):
        sgd.gd_path_drift(p.X, p.Syx, w0[0], exp.lr, exp.steps, stops=torch.tensor(exp.steps + 1))
    with pytest.raises(ValueError, match="one step count per config"):
        sgd.ensemble_offsets(ens, at_steps=[1])


def test_expected_drift_matches_monte_carlo_over_shuffles():
    """E[D^SGD(T)] - D^GD(T) from 3000 engine SGD runs (epoch-wise shuffles) vs c_B lr^2 sum C_l.
    Tolerance: 4 Monte-Carlo standard errors + h max|prediction|, h = lr lambda_max: the neglected terms
    are O(lr) relative to the drift matrix as a whole (not to each of its entries)."""
    exp = tiny(sgd_runs=3000, lr=0.01, steps=120)
    p = make_problem(exp)
    _, S = sgd.gd_path_drift(p.X, p.Syx, init_weights(exp), exp.lr, exp.steps)
    pred = minibatch_factor(exp.n_samples, exp.batch_size) * S[0]
    traj = train(exp)
    D = balance_matrices([w[:, -1] for w in traj.weights])[0]
    diff = D[1:] - D[:1]
    mc, se = diff.mean(0), diff.std(0) / diff.shape[0] ** 0.5
    h = exp.lr * float(torch.linalg.matrix_norm(dense_hessian_at(init_weights(exp), p.Syx), ord=2))
    assert pred.abs().max() > 10 * se.max(), "test too weak: the drift is not resolved by the Monte-Carlo"
    assert ((mc - pred).abs() <= 4 * se + h * pred.abs().max()).all(), (mc, pred, se, h)


def dense_hessian_at(W, M):
    theta, f = loss_function(W, M)
    return hessian(f)(theta)


def test_layer_split_solves_the_constraints():
    rng = np.random.default_rng(1)
    d, u = rng.normal(0, 0.3, (3, 5)), rng.uniform(0.2, 3.0, 5)
    a2 = sc_split = sgd.layer_split(d, u)
    np.testing.assert_allclose(np.diff(a2, axis=0), d, atol=1e-12)
    np.testing.assert_allclose(np.prod(a2, axis=0), u**2, rtol=1e-12)
    assert (sc_split > 0).all()
    d2 = rng.normal(0, 0.5, (1, 4))
    u2 = rng.uniform(0.5, 2, 4)
    closed = (-d2 + np.sqrt(d2**2 + 4 * u2**2)) / 2  # L = 2: a_1^2
    np.testing.assert_allclose(sgd.layer_split(d2, u2)[0], closed[0], rtol=1e-12)


def test_split_offsets_sum_over_intervals():
    a2_gd = np.ones((3, 2))
    a2_sgd = np.array([[1.1, 1.0], [1.0, 0.9], [0.9, 1.2]])
    off = sgd.split_log_offsets(a2_sgd, a2_gd)
    np.testing.assert_allclose(off[0, 2], 0.5 * np.log(a2_sgd).sum(0))
    np.testing.assert_allclose(off[1, 1], 0.5 * np.log(a2_sgd[1]))
    assert np.isnan(off[2, 0]).all()


def decoupled_point(L, k, s, seed, widths_hidden=6, balanced=False):
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    t = Teacher(4, 4, tuple(s), seed=seed)
    frames = [t.V] + [random_orthogonal(widths_hidden, g) for _ in range(L - 1)] + [t.U]
    a = np.empty((L, 4))
    for m in range(4):
        base = s[m] ** (1 / L) if m < k else 0.08
        a[:, m] = base * (
            1 + (0.1 if m >= k else 0.02) * (rng.standard_normal() if balanced else rng.standard_normal(L))
        )
    W = [frames[l + 1][:, :4] @ torch.diag(torch.tensor(a[l])) @ frames[l][:, :4].T for l in range(L)]
    return t, a, W


@pytest.mark.parametrize("L, k, seed", [(2, 0, 0), (2, 2, 1), (3, 1, 2), (3, 2, 3), (4, 1, 4), (4, 3, 5)])
def test_decoupled_lambda_min_equals_dense_hessian(L, k, seed):
    s = [3.0, 2.0, 1.5, 1.0]
    t, a, W = decoupled_point(L, k, s, seed)
    theta, f = loss_function(W, t.M)
    ev = dense_eigenvalues(f, theta)
    assert sc.decoupled_lambda_min(s, a, free_hidden=True) == pytest.approx(ev[0], abs=1e-12 * max(1, abs(ev).max()))
    scales, _ = sc.decoupled_projection(W, t.U, t.V)
    np.testing.assert_allclose(np.abs(scales), np.abs(a), atol=1e-12)


@pytest.mark.parametrize("L", [2, 3, 4])
def test_exact_saddle_lambda_min(L):
    s = [3.0, 2.0, 1.5, 1.0]
    for k in range(3):
        a = np.zeros((L, 4))
        a[:, :k] = np.array(s[:k]) ** (1 / L)
        t, _, _ = decoupled_point(L, k, s, 7)
        frames = [t.V] + [torch.eye(6, dtype=torch.float64)] * (L - 1) + [t.U]
        W = [frames[l + 1][:, :4] @ torch.diag(torch.tensor(a[l])) @ frames[l][:, :4].T for l in range(L)]
        theta, f = loss_function(W, t.M)
        assert dense_eigenvalues(f, theta)[0] == pytest.approx(sc.saddle_lambda_min(s, k, L), abs=1e-12)


def test_chain_hessian_matches_autograd():
    rng = np.random.default_rng(3)
    W = rng.standard_normal((2, 3, 2, 2))
    T = rng.standard_normal((2, 2, 2))
    H = sc.chain_hessian(W, np.ones((2, 2)), T)
    for i in range(2):

        def f(x, i=i):
            P = x[0]
            for w in x[1:]:
                P = w @ P
            return 0.5 * ((P - torch.from_numpy(T[i])) ** 2).sum()

        ref = hessian(f)(torch.from_numpy(W[i])).reshape(12, 12).numpy()
        np.testing.assert_allclose(H[i], ref, atol=1e-12)


def test_gradient_norms_match_autograd():
    exp = tiny(depth=3)
    W = init_weights(exp)
    theta, f = loss_function(W, exp.teacher.M)
    ref = torch.linalg.vector_norm(torch.func.grad(f)(theta))
    assert float(sc.gradient_norms(W, exp.teacher.M)) == pytest.approx(float(ref), rel=1e-12)


def test_gradient_norms_with_input_covariance_match_autograd():
    exp = tiny(depth=3)
    W = init_weights(exp)
    A = torch.randn(exp.teacher.d_in, exp.teacher.d_in, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    root = A @ A.T / exp.teacher.d_in + 0.1 * torch.eye(exp.teacher.d_in, dtype=torch.float64)  # any SPD root
    theta, f = loss_function(W, exp.teacher.M, root)
    ref = torch.linalg.vector_norm(torch.func.grad(f)(theta))
    assert float(sc.gradient_norms(W, exp.teacher.M, root @ root)) == pytest.approx(float(ref), rel=1e-12)


def test_fit_loglog_recovers_a_power_law_and_covers_it():
    rng = np.random.default_rng(0)
    x = np.geomspace(1e-4, 1e-2, 8)
    values = (2.0 * x**0.75)[:, None, None] * np.exp(rng.normal(0, 0.05, (8, 16, 1)))
    fit = lr_sweep.fit_loglog(x, values)
    assert fit.lo <= 0.75 <= fit.hi and fit.hi - fit.lo < 0.1
    with pytest.raises(ValueError, match="no log-log slope"):
        lr_sweep.fit_loglog(x, -values)


def test_sweep_points_keep_the_training_time():
    exp = tiny(steps=50)
    points = lr_sweep.sweep_points(exp, (2, 3))
    assert len(points) == 8
    assert {p.experiment.lr * p.experiment.steps for p in points} == pytest.approx([exp.lr * exp.steps] * 1)
    assert lr_sweep.checkpoint_steps(points[-1].experiment, (0, 0.5, 1)) == [0, 200, 400]
    with pytest.raises(ValueError, match="lr_fractions"):
        lr_sweep.sweep_points(dataclasses.replace(exp, steps=3), (2,), (1.0, 0.7))


@pytest.mark.parametrize("lr", [0.02, 0.005])
def test_ou_variance_is_the_small_lr_limit_of_discrete_sgd(lr):
    """x <- x - lr (kappa x + xi), Var xi = c sigma^2 independent: the exact stationary variance is
    lr c sigma^2 / (kappa (2 - lr kappa)); ou_variance drops the lr kappa / 2 relative term."""
    kappa, c, noise = 3.0, 0.1, 2.0
    exact = lr * c * noise / (kappa * (2 - lr * kappa))
    assert sgd.ou_variance(lr, c, noise, kappa) == pytest.approx(exact, rel=lr * kappa / 2 * 1.01)
    rng = np.random.default_rng(0)
    x = np.zeros(20000)
    for _ in range(int(10 / (lr * kappa))):
        x = x - lr * (kappa * x + rng.normal(0, np.sqrt(c * noise), x.shape))
    assert x.var() == pytest.approx(exact, rel=4 * np.sqrt(2 / x.size))
    with pytest.raises(ValueError, match="curvature"):
        sgd.ou_variance(lr, c, noise, 0.0)


def test_fit_loglog_nests_runs_within_inits():
    rng = np.random.default_rng(1)
    x = np.geomspace(1e-4, 1e-2, 6)
    per_init = np.exp(rng.normal(0, 0.3, (6, 5, 1, 1)))  # init effect, shared by its runs
    values = x[:, None, None, None] * per_init * np.exp(rng.normal(0, 0.02, (6, 5, 8, 1)))
    nested = lr_sweep.fit_loglog(x, values)
    pooled = lr_sweep.fit_loglog(x, values.reshape(6, 40, 1))
    assert nested.slope == pytest.approx(pooled.slope)
    assert nested.hi - nested.lo > pooled.hi - pooled.lo  # init variation widens the interval
    assert nested.lo <= 1.0 <= nested.hi


def test_an_ensemble_over_the_memory_budget_trains_in_halves_with_the_same_trajectories():
    """train(ensemble) over the budget splits its configs in halves (recursively) instead of refusing;
    the trajectories equal the one-program run; a single config over the budget is still refused."""
    from dlncheck import Ensemble
    from dlncheck.engine import budget

    ens = Ensemble(tiny(steps=20, sgd_runs=3), [Init("gaussian", 0.4, seed=s) for s in range(5)])
    ck = {i: [0, 7, 20] for i in range(len(ens))}
    together = train(ens, checkpoints=ck)
    one = budget.check_budget(dataclasses.replace(ens.base, sgd_runs=ens.base.runs - 1), torch.zeros(4, 3), 1)
    halves = train(ens, checkpoints=ck, memory_budget=one + 1)  # only one config fits at a time
    for a, b in zip(together, halves):
        for x, y in zip(a.weights + [a.loss], b.weights + [b.loss]):
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-15)
    with pytest.raises(budget.MemoryBudgetExceeded, match="memory_budget"):
        train(ens, checkpoints=ck, memory_budget=one // 2)


def test_slope_truncation_band_is_the_worst_bend_over_the_box():
    """Every relative correction |e_i| <= h_i bends the least-squares slope by at most the band (brute
    force over the box's corners in log(1 + e)); the band's symmetric box is attained."""
    from dlncheck.theory.sgd import slope_truncation_band

    f = np.array([1, 0.5, 0.25, 0.125] * 2)
    c = np.array([50 / 590] * 4 + [30 / 1770] * 4)
    x, h = f * c, 0.2 * f
    band = slope_truncation_band(x, h)
    d = np.log(x) - np.log(x).mean()
    worst = 0.0
    for corner in itertools.product((0, 1), repeat=len(x)):
        e = np.where(np.array(corner) == 1, h, -h)
        worst = max(worst, abs((d * np.log1p(e)).sum() / (d**2).sum()))
    assert worst <= band + 1e-15
    attained = (d * np.sign(d) * -np.log1p(-h)).sum() / (d**2).sum()
    assert band == pytest.approx(attained)
    with pytest.raises(ValueError, match="are invalid"):
        slope_truncation_band(x, np.full_like(x, 1.0))
