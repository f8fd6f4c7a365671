"""dlncheck.measure.balance (and theory.balanced_residual_prediction) against direct NumPy computations and exact properties."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlncheck import theory
from dlncheck.measure import balance

rng = np.random.default_rng(0)


def _chain(dims, scale=1.0, batch=(), seed=0):
    g = np.random.default_rng(seed)
    return [torch.as_tensor(scale * g.standard_normal(batch + (dims[l + 1], dims[l]))) for l in range(len(dims) - 1)]


def _balanced_chain(dims_hidden, r, seed=0):
    """W_l = R_l diag(a) R_{l-1}^T with orthogonal R: exactly balanced (D_l = 0)."""
    g = np.random.default_rng(seed)
    Rs = [np.linalg.qr(g.standard_normal((d, d)))[0] for d in dims_hidden]
    a = np.diag(g.uniform(0.5, 2.0, r))
    return [torch.as_tensor(Rs[l + 1][:, :r] @ a @ Rs[l][:, :r].T) for l in range(len(dims_hidden) - 1)]


def test_balance_residual_matches_numpy():
    Ws = _chain([4, 5, 3, 2], batch=(2, 3))
    r = balance.balance_residuals(Ws)
    assert r.shape == (2, 3, 2)
    A = [W.numpy() for W in Ws]
    for i in range(2):
        for k in range(3):
            for l in range(2):
                Wl, Wn = A[l][i, k], A[l + 1][i, k]
                num = np.linalg.norm(Wl @ Wl.T - Wn.T @ Wn)
                den = np.linalg.norm(Wl @ Wl.T) + np.linalg.norm(Wn.T @ Wn)
                assert r[i, k, l].item() == pytest.approx(num / den, rel=1e-12)


def test_balanced_chain_has_zero_residual():
    Ws = _balanced_chain([6, 5, 5, 4], r=3)
    assert balance.balance_residuals(Ws).abs().max().item() < 1e-13


@settings(max_examples=25, deadline=None)
@given(c=st.floats(1e-3, 1e3), seed=st.integers(0, 10_000))
def test_balance_residual_scale_invariant_and_bounded(c, seed):
    Ws = _chain([3, 4, 4, 2], seed=seed)
    r = balance.balance_residuals(Ws)
    r_scaled = balance.balance_residuals([c * W for W in Ws])
    assert torch.allclose(r, r_scaled, rtol=1e-9, atol=1e-14)
    assert torch.all((r >= 0) & (r <= 1))


def test_balance_rejects_single_layer():
    with pytest.raises(ValueError, match="at least 2 layers"):
        balance.balance_residuals(_chain([3, 3]))


def _gd_path(Ws, M, lr, steps):
    """Plain NumPy GD on 0.5||W_L..W_1 - M||^2, every step kept: (steps+1, d, d) per layer."""
    Ws = [W.copy() for W in Ws]
    path = [[W.copy()] for W in Ws]
    L = len(Ws)
    for _ in range(steps):
        prod = [np.eye(Ws[0].shape[1])]
        for W in Ws:
            prod.append(W @ prod[-1])
        E = prod[-1] - M
        grads, above = [None] * L, np.eye(M.shape[0])
        for l in reversed(range(L)):
            grads[l] = above.T @ E @ prod[l].T
            above = above @ Ws[l]
        Ws = [W - lr * G for W, G in zip(Ws, grads)]
        for p, W in zip(path, Ws):
            p.append(W.copy())
    return [torch.as_tensor(np.stack(p)) for p in path]


def test_drift_identity_holds_for_gd_and_bounds_residual():
    g = np.random.default_rng(1)
    M = g.standard_normal((3, 4))
    Ws = [0.3 * g.standard_normal(s) for s in [(5, 4), (5, 5), (3, 5)]]
    path = _gd_path(Ws, M, lr=0.05, steps=200)
    out = balance.drift_identity(path)
    assert out["error"].max().item() < 1e-12
    r = balance.balance_residuals(path)
    assert torch.all(r <= out["bound"] * (1 + 1e-12) + 1e-15)
    # D_l actually moved (lr^2 terms are not zero here), so the check is not vacuous
    D = balance.balance_matrices(path)
    assert max((D_l[-1] - D_l[0]).norm().item() for D_l in D) > 1e-6


def test_drift_identity_detects_non_gradient_update():
    g = np.random.default_rng(2)
    M = g.standard_normal((3, 3))
    path = _gd_path([0.5 * g.standard_normal((3, 3)) for _ in range(2)], M, lr=0.05, steps=50)
    path[0] = path[0] * (1 - 1e-3) ** torch.arange(51, dtype=torch.float64)[:, None, None]  # decay on W_1
    assert balance.drift_identity(path)["error"].max().item() > 1e-6


def test_balanced_prediction_formula():
    s = torch.tensor([4.0, 1.0, 0.0])
    got = theory.balanced_residual_prediction(torch.tensor(0.2), s, depth=2)
    assert got.item() == pytest.approx(0.2 / (2 * math.sqrt(16 + 1)))


def _engine_run(init_kind, steps=60):
    """A small engine run (GD + 3 SGD runs) with every step checkpointed."""
    from dlncheck import (
        Experiment,
        Init,
        Teacher,
        train,
    )

    exp = Experiment(
        Teacher(4, 4, (2.0, 1.0), seed=1),
        3,
        5,
        Init(init_kind, 0.4, seed=2),
        lr=0.05,
        steps=steps,
        batch_size=5,
        n_samples=20,
        sgd_runs=3,
    )
    return train(exp, checkpoints=list(range(steps + 1)))


@pytest.mark.parametrize("init_kind", ["gaussian", "aligned"])
def test_engine_steps_obey_drift_identity(init_kind):
    """Identity (moved here from the balance claim): the engine's GD and SGD steps change D_l by
    exactly lr^2 (G_{l+1}^T G_{l+1} - G_l G_l^T), and r_l stays below the bound it implies."""
    traj = _engine_run(init_kind)
    out = balance.drift_identity(traj.weights)
    assert out["error"].max().item() < 1e-12
    assert torch.all(balance.balance_residuals(traj.weights) <= out["bound"] * (1 + 1e-12) + 1e-15)


def test_aligned_gd_stays_balanced_sgd_does_not():
    """Identity: from the aligned balanced init GD's per-mode map keeps D_l = 0 to roundoff; SGD's
    noise drift moves it (so the identity test is not vacuous)."""
    r = balance.balance_residuals(_engine_run("aligned").weights)  # (R, K, L-1)
    assert r[0].max().item() < 1e-12
    assert r[1:, -1].min().item() > 1e-8


def test_gd_drift_bound_holds_on_gd_and_fails_past_stability():
    """theory.balance.gd_drift_bound against a NumPy GD path: holds at h = lr lambda_max < 2."""
    from dlncheck.theory import balance_drift as tb

    g = np.random.default_rng(4)
    M = np.diag([2.0, 1.0, 0.5])
    Ws = [0.5 * g.standard_normal((3, 3)) for _ in range(3)]
    lr = 0.02
    path = _gd_path(Ws, M, lr=lr, steps=400)
    loss = [
        0.5 * np.linalg.norm(path[2][k].numpy() @ path[1][k].numpy() @ path[0][k].numpy() - M) ** 2 for k in (0, -1)
    ]
    D = balance.balance_matrices(path)
    change = max((D_l[-1] - D_l[0]).norm().item() for D_l in D)
    assert 0 < change <= tb.gd_drift_bound(lr, loss[0], loss[1], h=lr * 3 * 2.0 ** (4 / 3))
    with pytest.raises(ValueError, match="h="):
        tb.gd_drift_bound(lr, 1.0, 0.0, h=2.5)


def test_sgd_extra_drift_trapezoid_and_richardson():
    """The quadrature of theory.balance.sgd_extra_drift equals a direct per-step sum on a fine grid
    and its Richardson estimate bounds the coarse grid's error."""
    from dlncheck.theory import balance_drift as tb
    from dlncheck.theory import sgd as ts

    g = np.random.default_rng(5)
    X = torch.as_tensor(np.linalg.qr(g.standard_normal((12, 3)))[0].T * 12**0.5)  # whitened (3, 12)
    M = torch.diag(torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64))
    path = _gd_path([0.3 * g.standard_normal((3, 3)) for _ in range(2)], M.numpy(), lr=0.05, steps=200)
    C = ts.drift_covariance(path, X, M)
    direct = [0.05**2 * c[:-1].sum(0) for c in C]  # sum over steps k < T
    steps = torch.arange(201)
    fine, _ = tb.sgd_extra_drift(path, steps, X, M, lr=0.05, c_B=1.0)
    scale = max(d.norm().item() for d in direct)
    # on the every-step grid the trapezoid is the step sum plus the end correction (C_T - C_0) / 2
    assert all(torch.allclose(f, d + 0.05**2 * (c[-1] - c[0]) / 2, atol=1e-14) for f, d, c in zip(fine, direct, C))
    coarse_idx = torch.arange(0, 201, 10)
    coarse, err = tb.sgd_extra_drift([p[coarse_idx] for p in path], coarse_idx, X, M, lr=0.05, c_B=1.0)
    assert all((c - f).norm().item() <= 3 * e.item() + 1e-3 * scale for c, f, e in zip(coarse, fine, err))
    for chunk in (1, 7):  # accumulated chunk by chunk: the same sums
        got, got_err = tb.sgd_extra_drift([p[coarse_idx] for p in path], coarse_idx, X, M, 0.05, 1.0, chunk=chunk)
        assert all(torch.allclose(a, b, rtol=1e-12, atol=1e-15) for a, b in zip(got + got_err, coarse + err))


def test_sgd_drift_tolerance_keeps_family_wise_coverage():
    """Monte Carlo: n_tests inits whose R-run means scatter around an exact prediction (scalar
    drift, Gaussian runs) all land inside the Bonferroni tolerance in >= ~95% of ensembles; the
    uncorrected per-test 95% interval fails some init in most ensembles."""
    from dlncheck.theory.balance_drift import sgd_drift_tolerance

    rng = np.random.default_rng(0)
    R, n_tests, trials = 8, 32, 4000
    runs = rng.standard_normal((trials, n_tests, R))
    err, spread = np.abs(runs.mean(-1)), runs.std(-1, ddof=1)
    all_in = (err <= spread * sgd_drift_tolerance(0.0, 0.0, 1.0, R, n_tests)).all(-1).mean()
    all_in_uncorrected = (err <= spread * sgd_drift_tolerance(0.0, 0.0, 1.0, R, 1)).all(-1).mean()
    assert 0.93 <= all_in <= 0.99
    assert all_in_uncorrected < 0.3


@pytest.mark.parametrize("r_in, r_out", [(1.0, 0.0), (0.0, 1.0), (1.0, 0.3), (0.2, 1.0)])
@pytest.mark.parametrize("y", [0.01, 0.4, 3.0])
def test_secular_share_bounds_the_scalar_relaxation(r_in, r_out, y):
    """theory.balance_drift.secular_share against the L = 2 mode on its minimum set w_1 w_2 = m,
    dD/dt = a (R_in - R_out) sqrt(m^2 + D^2 / 4) - a (R_in + R_out) D / 2 integrated by SciPy:
    the relative error 1 - D(T) / P of the linear growth P = a m (R_in - R_out) T equals the share
    where one noise side vanishes (the slowest relaxation at this P) and exceeds it otherwise; the
    linearized relaxation P (1 - e^{-x}) / x, x = a (R_in + R_out) T / 2, errs more still; y / 2 to
    first order."""
    from scipy.integrate import solve_ivp

    from dlncheck.theory.balance_drift import secular_share

    a, m = 0.05, 0.7
    rate = a * (r_in - r_out)
    T = 2 * y / abs(rate)  # |P| = 2 m y
    sol = solve_ivp(
        lambda t, D: rate * np.sqrt(m**2 + D**2 / 4) - a * (r_in + r_out) * D / 2, (0, T), [0.0], rtol=1e-11, atol=1e-14
    )
    P = rate * m * T
    share = secular_share(P, m)
    relative_error = 1 - sol.y[0, -1] / P
    assert share == pytest.approx(y / 2, rel=0.02) if y < 0.05 else share < y / 2
    if r_in * r_out == 0:
        assert relative_error == pytest.approx(share, rel=1e-6)
    else:
        assert relative_error > share
    x = a * (r_in + r_out) * T / 2
    assert 1 - (1 - math.exp(-x)) / x >= relative_error - 1e-9
