"""theory.sgd.drift_covariance with label noise against a brute-force NumPy reference: explicit
per-sample layer gradients of 0.5 ||W x - y||^2 and every without-replacement minibatch enumerated."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlncheck import Experiment, Init, Teacher
from dlncheck.config.data import init_weights, make_problem
from dlncheck.theory import gradient_noise as gn
from dlncheck.theory import sgd
from dlncheck.theory.gradient_noise import minibatch_factor


def chain(mats: list[np.ndarray], d: int) -> np.ndarray:
    """mats[-1] @ ... @ mats[0], the d x d identity for none."""
    out = np.eye(d)
    for m in mats:
        out = m @ out
    return out


def layer_grads(W: list[np.ndarray], X: np.ndarray, Y: np.ndarray) -> list[np.ndarray]:
    """Gradients of (1/(2|b|)) sum_{i in b} ||W_L..W_1 x_i - y_i||^2 w.r.t. each W_l (NumPy)."""
    R = chain(W, X.shape[0]) @ X - Y
    return [
        chain(W[l + 1 :], W[l].shape[0]).T @ R @ (chain(W[:l], X.shape[0]) @ X).T / X.shape[1] for l in range(len(W))
    ]


def brute_force_extra_drift(W, X, Y, B):
    """E_b[g_{l+1}^T g_{l+1} - g_l g_l^T] - (G_{l+1}^T G_{l+1} - G_l G_l^T) over all B-subsets: the
    expected extra one-step change of D_l / lr^2 that minibatch noise adds (= c_B C_l)."""
    full = layer_grads(W, X, Y)
    subsets = list(itertools.combinations(range(X.shape[1]), B))
    acc = [np.zeros((w.shape[0], w.shape[0])) for w in W[:-1]]
    for b in subsets:
        g = layer_grads(W, X[:, b], Y[:, b])
        for l in range(len(W) - 1):
            acc[l] += g[l + 1].T @ g[l + 1] - g[l] @ g[l].T
    return [a / len(subsets) - (full[l + 1].T @ full[l + 1] - full[l] @ full[l].T) for l, a in enumerate(acc)]


def problem_and_weights(depth, width, n, noise, seed):
    exp = Experiment(
        Teacher(3, 4, (2.0, 1.0), seed=seed),
        depth,
        width,
        Init("gaussian", 0.5, seed=seed + 1),
        lr=0.01,
        steps=1,
        batch_size=2,
        n_samples=n,
        sgd_runs=0,
        label_noise=noise,
    )
    return make_problem(exp), init_weights(exp)


@settings(max_examples=15, deadline=None)
@given(
    depth=st.integers(2, 4),
    width=st.integers(2, 5),
    n=st.integers(5, 7),
    B=st.integers(1, 4),
    noise=st.sampled_from([0.0, 0.3, 2.0]),
    seed=st.integers(0, 10_000),
)
def test_label_noise_covariance_matches_enumerated_minibatches(depth, width, n, B, noise, seed):
    p, W = problem_and_weights(depth, width, n, noise, seed)
    got = sgd.drift_covariance(W, p.X, p.Syx, labels=p.Y)
    ref = brute_force_extra_drift([w.numpy() for w in W], p.X.numpy(), p.Y.numpy(), B)
    c_B = minibatch_factor(n, B)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(c_B * g.numpy(), r, rtol=1e-9, atol=1e-11 * max(1.0, np.abs(r).max()))


def test_noise_free_labels_are_the_special_case():
    p, W = problem_and_weights(3, 4, 6, 0.0, 3)
    for a, b in zip(sgd.drift_covariance(W, p.X, p.Syx), sgd.drift_covariance(W, p.X, p.Syx, labels=p.Y)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)
    p, W = problem_and_weights(3, 4, 6, 1.0, 3)  # the label term is not negligible
    with_noise = sgd.drift_covariance(W, p.X, p.Syx, labels=p.Y)
    without = sgd.drift_covariance(W, p.X, p.Syx)
    assert all(float((a - b).norm()) > 1e-3 * float(a.norm()) for a, b in zip(with_noise, without))


def test_at_a_minimum_it_is_the_label_noise_moment_of_gradient_noise():
    """At W = Syx only the label term survives: c_B C_l = gradient_noise.expected_balance_drift
    with independent batches (a separate implementation through the moments of N_b)."""
    p, W = problem_and_weights(2, 4, 6, 1.0, 5)
    U, S, Vh = torch.linalg.svd(p.Syx, full_matrices=False)  # a balanced factorisation of Syx
    Q = torch.linalg.qr(torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0]
    W = [Q @ torch.diag(S.sqrt()) @ Vh, U @ torch.diag(S.sqrt()) @ Q.T]
    exp = Experiment(
        Teacher(3, 4, (2.0, 1.0), seed=5),
        2,
        4,
        Init("gaussian", 0.5, seed=6),
        lr=0.01,
        steps=1,
        batch_size=2,
        n_samples=6,
        sgd_runs=0,
        label_noise=1.0,
    )
    ref = gn.expected_balance_drift(W, exp, p, reshuffled=False)[0]
    got = minibatch_factor(6, 2) * sgd.drift_covariance(W, p.X, p.Syx, labels=p.Y)[0]
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)


def test_labels_must_match_the_least_squares_map():
    p, W = problem_and_weights(2, 3, 6, 1.0, 1)
    with pytest.raises(ValueError, match="problem.Syx"):
        sgd.drift_covariance(W, p.X, p.Syx + 0.1, labels=p.Y)
