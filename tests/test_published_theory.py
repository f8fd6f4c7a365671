"""Published-result predictions against independent references: scalar simulations of the
reshuffled AR(1), brute-force sums, exhaustive batch enumeration, the engine's own step."""

import dataclasses
import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlncheck import (
    Experiment,
    Init,
    Teacher,
    train,
)
from dlncheck.config.data import make_problem
from dlncheck.measure import noise_metrics as nm
from dlncheck.theory import gradient_noise as gn
from dlncheck.theory import published as pub


def _simulate_shuffled_ar1(rho, z, B, epochs, rng, phase=0):
    """x <- rho x + mean of a batch of z, batches = consecutive B-blocks of a fresh permutation per epoch."""
    n, m = len(z), len(z) // B
    x, out = np.zeros(4000), []
    for e in range(epochs):
        perm = np.argsort(rng.random((x.size, n)), axis=1)
        for j in range(m):
            if j == phase and e > epochs // 5:
                out.append(x.copy())
            x = rho * x + z[perm[:, j * B : (j + 1) * B]].mean(1)
    return np.concatenate(out)


@pytest.mark.parametrize("rho, phase", [(0.9, 0), (0.97, 0), (0.97, 3)])
def test_shuffled_ar1_variance_matches_simulation(rho, phase):
    rng = np.random.default_rng(0)
    n, B = 24, 4
    z = rng.standard_normal(n)
    z -= z.mean()  # the epoch's batch means sum to 0
    v = gn.minibatch_factor(n, B) * np.mean(z**2)  # variance of one batch mean
    x = _simulate_shuffled_ar1(rho, z, B, 200, rng, phase)
    predicted = pub.shuffled_ar1_variance(rho, v, n // B, phase)
    # 4000 chains x 160 epochs of samples; the per-epoch autocorrelation rho^6 <= 0.84 leaves >= 3e4 effective
    assert np.var(x) == pytest.approx(predicted, rel=0.05)
    assert predicted < pub.iid_ar1_variance(rho, v)  # reshuffling removes variance


def test_minibatch_factor_is_the_exact_batch_mean_variance():
    z = np.arange(8.0) - 3.5
    means = [np.mean(c) for c in itertools.combinations(z, 3)]
    assert np.var(means) == pytest.approx(gn.minibatch_factor(8, 3) * np.mean(z**2), rel=1e-12)


@pytest.mark.parametrize("m", [2, 3, 6, 9])
def test_epoch_pair_sum_matches_brute_force(m):
    c = np.eye(m) - (1 - np.eye(m)) / (m - 1)
    brute = sum(c[i, k] * c[j, l] for i, j, k, l in itertools.product(range(m), repeat=4) if i < j and k < l)
    assert pub.epoch_pair_sum(m) == pytest.approx(brute, rel=1e-12, abs=1e-12)


def _small_problem(label_noise=0.7, n=12, B=3):
    exp = Experiment(
        Teacher(3, 4, (2.0, 1.0), seed=3),
        2,
        5,
        Init("gaussian", 0.4, seed=2),
        lr=0.05,
        steps=4,
        batch_size=B,
        n_samples=n,
        sgd_runs=2,
        label_noise=label_noise,
    )
    return exp, make_problem(exp)


def test_noise_moments_match_exhaustive_batch_enumeration():
    exp, problem = _small_problem()
    E, X = gn.residuals(problem), problem.X
    g = torch.Generator().manual_seed(0)
    P = torch.randn(3, 3, generator=g, dtype=torch.float64)
    Q = torch.randn(4, 4, generator=g, dtype=torch.float64)
    NPN, NQN = 0, 0
    batches = list(itertools.combinations(range(exp.n_samples), exp.batch_size))
    for b in batches:
        N = E[:, b] @ X[:, b].T / exp.batch_size
        NPN, NQN = NPN + N.T @ P @ N, NQN + N @ Q @ N.T
    f = gn.minibatch_factor(exp.n_samples, exp.batch_size)
    torch.testing.assert_close(NPN / len(batches), f * gn.input_moment(problem, P), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(NQN / len(batches), f * gn.output_moment(problem, Q), rtol=1e-10, atol=1e-12)


def test_logdet_changes_by_the_exact_step_identity():
    """One engine step: log det(Theta^T Theta) changes by 2 sum_i log(1 - lr^2 sigma_i(G)^2)."""
    exp, problem = _small_problem()
    exp = dataclasses.replace(exp, width=8, steps=1, sgd_runs=0)  # Theta is 8 x 7: tall
    traj = train(exp, checkpoints=[0, 1])
    W1, W2 = traj.weights[0][0], traj.weights[1][0]
    theta = torch.cat([W1, W2.mT], -1)
    logdet = 2 * torch.linalg.svdvals(theta).log().sum(-1)
    G = W2[0] @ W1[0] - problem.Syx  # GD: full-batch gradient of W at step 0
    predicted = 2 * torch.log1p(-((exp.lr * torch.linalg.svdvals(G)) ** 2)).sum()
    torch.testing.assert_close(logdet[1] - logdet[0], predicted, rtol=1e-9, atol=1e-12)
    assert float((logdet[1] - logdet[0]).abs()) <= float(pub.gd_logdet_bound(G.pow(2).sum()[None], exp.lr)) + 1e-12


@given(x=st.lists(st.floats(0.0, 0.3), min_size=1, max_size=6))
@settings(max_examples=40, deadline=None)
def test_gd_logdet_bound_dominates_the_spectral_sum(x):
    x = np.asarray(x) / max(1.0, 1.2 * sum(x))  # sum < 1
    exact = -np.log1p(-x).sum()
    assert 2 * exact <= float(pub.gd_logdet_bound(torch.tensor([x.sum()]), 1.0)) + 1e-15


def test_logdet_rate_independent_batches_is_the_closed_form():
    exp, problem = _small_problem()
    weights = [w[None] for w in (torch.randn(6, 4, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64))]
    rate = gn.logdet_rate(weights, exp, 1, problem, reshuffled=False)
    E, X = gn.residuals(problem), problem.X
    factor = gn.minibatch_factor(exp.n_samples, exp.batch_size)
    closed = -2 * exp.lr * factor * (E.pow(2).sum(0) * X.pow(2).sum(0)).mean()
    torch.testing.assert_close(rate[0], closed, rtol=1e-12, atol=0)


def test_expected_balance_drift_matches_batch_average_at_a_minimum():
    """Independent-batch noise drift = the average over all batches of lr^2 (g2^T g2 - g1 g1^T) / lr^2 at W = Syx."""
    exp, problem = _small_problem()
    U, S, Vh = torch.linalg.svd(problem.Syx, full_matrices=False)
    W2 = U @ torch.diag(S.sqrt())  # 3 x 3 hidden factorisation of Syx
    W1 = torch.diag(S.sqrt()) @ Vh
    drift = gn.expected_balance_drift([W1, W2], exp, problem, reshuffled=False)[0]
    total = 0
    batches = list(itertools.combinations(range(exp.n_samples), exp.batch_size))
    for b in batches:
        Xb, Yb = problem.X[:, b], problem.Y[:, b]
        G = (W2 @ W1 @ Xb - Yb) @ Xb.T / exp.batch_size
        g2, g1 = G @ W1.T, W2.T @ G
        total = total + g2.T @ g2 - g1 @ g1.T
    torch.testing.assert_close(drift, total / len(batches), rtol=1e-9, atol=1e-12)


def test_stationary_law_reduces_to_the_ou_variance_for_small_steps():
    """Independent batches: (lr lam)^2 v / (1 - rho^2) -> lr lam v / 2 (the OU variance) as lr -> 0."""
    lam, v = torch.tensor([[2.0]]), torch.tensor([[0.3]])
    for lr in (1e-2, 1e-3):
        law = pub.stationary_mode_law(lam, v, torch.zeros(1, 1), lr, 6)
        assert float(law["iid"][0]) == pytest.approx(lr * 2.0 * 0.3 / 2, rel=lr * 2.0)


def test_variance_ode_peaks_mid_escape_for_depth_two():
    """L = 2: f'(u) = 2s - 4u vanishes at s/2, so the variance peaks after u = s/2 and before learning."""
    s, u0 = 2.0, 1e-4
    t = np.linspace(0, 10, 2001)
    out = pub.variance_ode(s, u0, 2, 0.01, 0.2, t)
    t_half = math.log((s / 2) / u0 * (s - u0) / (s - s / 2)) / (2 * s)  # Saxe: u(t) = s / 2
    assert t_half < out["t_peak"] < out["t_learned"]


def test_noise_metrics_against_numpy():
    g = torch.Generator().manual_seed(1)
    t = torch.linspace(0, 3, 17, dtype=torch.float64)
    y = torch.randn(4, 17, generator=g, dtype=torch.float64)
    expected = np.array([np.polyfit(t.numpy(), row, 1)[0] for row in y.numpy()])
    np.testing.assert_allclose(nm.slope(y, t).numpy(), expected, rtol=1e-12)
    A = torch.randn(3, 7, 4, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(nm.logdet_gram(A).numpy(), np.linalg.slogdet((A.mT @ A).numpy())[1], rtol=1e-10)
    P = torch.randn(2, 3, 3, generator=g, dtype=torch.float64)
    ratio, cos = nm.projected_ratio(2.5 * P, P)
    np.testing.assert_allclose(ratio.numpy(), 2.5, rtol=1e-12)
    np.testing.assert_allclose(cos.numpy(), 1.0, rtol=1e-12)
    with pytest.raises(ValueError, match="wide"):
        nm.logdet_gram(A.mT)


def test_peak_and_learning_times_on_known_curves():
    times = torch.linspace(0, 10, 101, dtype=torch.float64)
    runs = torch.stack([torch.tanh(times - 5 + 0.1 * k) for k in range(-3, 4)])[..., None]  # (7, K, 1)
    t_peak, t_learned, _ = nm.peak_and_learning_times(runs, torch.tensor([1.0]), times, 0.9)
    assert abs(float(t_peak[0]) - 5.0) <= 0.1  # runs differ most where tanh is steepest
    assert float(t_learned[0]) == pytest.approx(5 + math.atanh(0.9), abs=0.1)  # median run (shift 0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 2), min_size=6, max_size=6), min_size=2, max_size=5))
def test_departure_times_match_a_python_scan(rows):
    """noise_metrics.departure_times against a plain scan: the first k with pattern != GD's at every k' >= k."""
    p = torch.tensor(rows).view(len(rows), 6, 1, 1)
    times = torch.arange(6, dtype=torch.float64) * 0.5
    got = nm.departure_times(p, times)
    for run in range(1, len(rows)):
        differs = [rows[run][k] != rows[0][k] for k in range(6)]
        first = next((k for k in range(6) if all(differs[k:])), None)
        assert float(got[run - 1]) == (float("inf") if first is None else 0.5 * first)
