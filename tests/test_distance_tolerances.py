"""dlncheck.theory.tolerances: the parameter-space split offset and the function-space reshuffled
variance, against closed forms and a Monte-Carlo of epoch-reshuffled SGD."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dlncheck.theory import tolerances


def test_split_distance_is_the_norm_of_the_layer_scale_shifts():
    a2_gd = np.array([[4.0, 1.0], [4.0, 1.0]])
    a2_sgd = np.array([[4.41, 1.0], [3.61, 1.21]])
    expected = math.sqrt(0.1**2 + 0.1**2 + 0.1**2) / 2.0
    assert tolerances.split_distance(a2_gd, a2_sgd, 2.0) == pytest.approx(expected)
    assert tolerances.offset_match_tolerance(0.01, 0.02, 4, 0.2, 2.0) == pytest.approx(2.0 * 0.02 / 2 + 0.002)


def _whitened_problem(rng, d_in, d_out, n, noise):
    X = rng.standard_normal((d_in, n))
    X = np.linalg.cholesky(np.linalg.inv(X @ X.T / n)).T @ X  # X X^T / n = I exactly
    M = rng.standard_normal((d_out, d_in))
    Y = M @ X + noise * rng.standard_normal((d_out, n))
    return SimpleNamespace(X=torch.as_tensor(X), Y=torch.as_tensor(Y), Syx=torch.as_tensor(Y @ X.T / n))


def test_reshuffled_variance_matches_epoch_reshuffled_linear_sgd():
    """Depth 1 (every lam_ab = 1): W <- W - lr (W Sxx_b - Syx_b) over epoch-reshuffled batches is
    exactly the recursion the derivation linearises; the spread E||W - E W||^2 at stationarity (epoch
    boundary) against 4000 chains, to 15 % (the neglected label-noise x input-noise third moments
    enter at the same order). The independent-batch law lr v / (2 - lr) is far off, and the chains'
    mean is biased away from Syx (the O(lr) within-epoch mean the function does not predict)."""
    rng = np.random.default_rng(0)
    d_in, d_out, n, B, lr, R = 3, 3, 12, 2, 0.05, 4000
    pr = _whitened_problem(rng, d_in, d_out, n, 0.3)
    X, Y, Syx = pr.X.numpy(), pr.Y.numpy(), pr.Syx.numpy()
    W = np.broadcast_to(Syx, (R, d_out, d_in)).copy()
    m, epochs = n // B, 150
    for _ in range(epochs):
        order = np.argsort(rng.random((R, n)), axis=1)
        for j in range(m):
            idx = order[:, j * B : (j + 1) * B]
            Xb, Yb = X[:, idx].transpose(1, 0, 2), Y[:, idx].transpose(1, 0, 2)  # (R, d, B)
            G = (W @ Xb - Yb) @ Xb.transpose(0, 2, 1) / B
            W -= lr * G
    measured = float(((W - W.mean(0)) ** 2).sum((1, 2)).mean())
    learned = torch.ones(d_in, dtype=torch.bool)
    predicted = tolerances.reshuffled_function_variance(pr, lr, 1, epochs * m, B, learned)
    assert measured == pytest.approx(predicted, rel=0.15)
    iid = lr * float(((Y - Syx @ X) ** 2).sum() * d_in / n) * (n - B) / (B * (n - 1)) / (2 - lr)
    assert iid > 2 * measured
