"""dlncheck.theory.spread against independent references: Monte-Carlo over the engine's shuffles
(NumPy permutations), autograd Hessians, a forward simulation of the linearised recursion, and the
chi-square law of a sample variance."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlncheck.theory import spread


def _mc_sums(z, B, draws, rng):
    """sum_k sum_i (1[i in batch k] / B - 1/n) z[:, k, i] with a fresh shuffle per epoch (the
    engine's sampler), for ``draws`` draws: (draws, J)."""
    J, steps, n = z.shape
    m = n // B
    out = np.zeros((draws, J))
    for k in range(steps):
        if k % m == 0:
            perms = np.argsort(rng.random((draws, n)), axis=1)  # uniform permutations
            batch_of = np.full((draws, n), -1)
            batch_of[np.arange(draws)[:, None], perms] = np.arange(n) // B  # positions >= m B dropped
        a = (batch_of == k % m) / B - 1 / n  # (draws, n)
        out += a @ z[:, k].T
    return out


@pytest.mark.parametrize("n, B, steps", [(12, 3, 4), (12, 4, 2), (10, 3, 3), (12, 3, 6), (11, 5, 3)])
def test_path_covariance_matches_shuffle_monte_carlo(n, B, steps):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2, steps, n)) + rng.normal(size=(2, 1, n))
    pred = spread.path_covariance(z, n, B, lr=0.5)
    mc = 0.25 * np.cov(_mc_sums(z, B, 200_000, rng).T)
    assert np.allclose(mc, pred, rtol=0.03, atol=0.02 * np.abs(pred).max())


def test_frozen_epoch_has_no_noise():
    """z independent of the step within each epoch: an epoch's batch noise sums to zero (item 3)."""
    z = np.repeat(np.random.default_rng(1).normal(size=(3, 2, 12)), 4, axis=1)
    assert np.allclose(spread.path_covariance(z, 12, 3, 1.0), 0, atol=1e-12)


def test_full_batch_has_no_noise():
    z = np.random.default_rng(2).normal(size=(2, 1, 8))
    assert np.allclose(spread.path_covariance(z, 8, 8, 1.0), 0, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 4), st.integers(0, 10_000))
def test_hvp_matches_autograd(L, seed):
    g = torch.Generator().manual_seed(seed)
    dims = [3] + [4] * (L - 1) + [2]
    W = [torch.randn(dims[l + 1], dims[l], generator=g, dtype=torch.float64) * 0.7 for l in range(L)]
    M = torch.randn(2, 3, generator=g, dtype=torch.float64)
    V = [torch.randn(2, *w.shape, generator=g, dtype=torch.float64) for w in W]

    def loss(*ws):
        P = ws[0]
        for w in ws[1:]:
            P = w @ P
        return 0.5 * (P - M).pow(2).sum()

    H = torch.autograd.functional.hessian(loss, tuple(W))
    dW, hv = spread.tangent_and_hvp(W, M, V)
    for j in range(2):
        for l in range(L):
            ref = sum(torch.einsum("abcd,cd->ab", H[l][m], V[m][j]) for m in range(L))
            assert torch.allclose(hv[l][j], ref, atol=1e-10)
        ref_dW = torch.autograd.functional.jvp(lambda *ws: _prod(ws), tuple(W), tuple(v[j] for v in V))[1]
        assert torch.allclose(dW[j], ref_dW, atol=1e-12)


def _prod(ws):
    P = ws[0]
    for w in ws[1:]:
        P = w @ P
    return P


def test_lna_matches_simulated_linear_recursion():
    """Forward simulation delta_{k+1} = (I - lr H_k) delta_k + xi_k with NumPy shuffles and autograd
    Hessians (independent of the adjoint and of Hoeffding's formula)."""
    rng = np.random.default_rng(3)
    g = torch.Generator().manual_seed(4)
    n, B, lr, steps = 12, 3, 0.05, 10
    X = torch.randn(2, n, generator=g, dtype=torch.float64)
    X = torch.linalg.cholesky(X @ X.T / n).inverse() @ X  # whitened
    M = torch.tensor([[2.0, 0.3], [0.1, 1.0]], dtype=torch.float64)
    W0 = [torch.randn(*shape, generator=g, dtype=torch.float64) * 0.5 for shape in ((3, 2), (2, 3))]
    pred = spread.lna_covariance(W0, X, M, lr, steps, [steps], 2, [B])
    path = spread.gd_path(W0, M, lr, steps)
    sizes = [w[0].numel() for w in path]

    def loss(theta):
        a, b = theta[: sizes[0]].reshape(3, 2), theta[sizes[0] :].reshape(2, 3)
        return 0.5 * (b @ a - M).pow(2).sum()

    def per_sample_grads(theta):
        a, b = theta[: sizes[0]].reshape(3, 2), theta[sizes[0] :].reshape(2, 3)
        R = (b @ a - M) @ X  # (2, n) residuals r_i
        ga = torch.einsum("ji,jn,kn->nik", b, R, X).reshape(n, -1)  # B^T r_i x_i^T
        gb = torch.einsum("jn,kn->njk", R, a @ X).reshape(n, -1)  # r_i (a x_i)^T
        return torch.cat([ga, gb], 1).numpy()

    draws = 40_000
    delta = np.zeros((draws, sum(sizes)))
    m = n // B
    for k in range(steps):
        theta = torch.cat([p[k].reshape(-1) for p in path])
        if k % m == 0:
            perms = np.argsort(rng.random((draws, n)), axis=1)
            batch_of = np.empty((draws, n), dtype=int)
            batch_of[np.arange(draws)[:, None], perms] = np.arange(n) // B
        Hk = torch.autograd.functional.hessian(loss, theta).numpy()
        a = (batch_of == k % m) / B - 1 / n
        delta = delta - lr * delta @ Hk - lr * a @ per_sample_grads(theta)
    Wt = [p[steps] for p in path]
    U, _, Vh = torch.linalg.svd(Wt[1] @ Wt[0])
    J = torch.autograd.functional.jacobian(
        lambda t: _prod([t[: sizes[0]].reshape(3, 2), t[sizes[0] :].reshape(2, 3)]),
        torch.cat([p[steps].reshape(-1) for p in path]),
    ).numpy()
    read = np.einsum("ia,ijp,jb->abp", U.numpy(), J, Vh.T.numpy()).reshape(4, -1)
    mc = np.cov((delta @ read.T).T)
    cov = pred["cov"][(steps, B)]
    assert np.allclose(np.diag(mc), np.diag(cov), rtol=0.04)
    assert np.allclose(mc, cov, atol=0.04 * np.diag(cov).max())


def test_variance_ratio_interval_is_the_chi_square_law():
    rng = np.random.default_rng(5)
    runs, alpha = 8, 0.1
    lo, hi = spread.variance_ratio_interval(np.array([[2.0]]), runs, alpha)
    ratios = rng.normal(scale=np.sqrt(2.0), size=(100_000, runs)).var(1, ddof=1) / 2.0
    assert abs(np.mean((ratios >= lo) & (ratios <= hi)) - (1 - alpha)) < 0.005
    cov = np.diag([1.0, 0.25, 0.0625])
    lo, hi = spread.variance_ratio_interval(cov, runs, alpha)
    draws = rng.normal(size=(100_000, runs, 3)) * np.sqrt(np.diag(cov))
    sums = draws.var(1, ddof=1).sum(1) / np.trace(cov)
    assert abs(np.mean((sums >= lo) & (sums <= hi)) - (1 - alpha)) < 0.02


@settings(max_examples=10, deadline=None)
@given(st.integers(2, 4), st.integers(0, 10_000))
def test_pair_matrix_matches_autograd_per_sample_hessians(L, seed):
    from dlncheck.theory import spread_pair

    g = torch.Generator().manual_seed(seed)
    dims = [3] + [4] * (L - 1) + [2]
    n = 5
    W = [torch.randn(dims[l + 1], dims[l], generator=g, dtype=torch.float64) * 0.7 for l in range(L)]
    M = torch.randn(2, 3, generator=g, dtype=torch.float64)
    X = torch.randn(3, n, generator=g, dtype=torch.float64)
    lam = [torch.randn(2, *w.shape, generator=g, dtype=torch.float64) for w in W]
    sizes = [w.numel() for w in W]

    def unflat(theta):
        return [t.reshape(w.shape) for t, w in zip(theta.split(sizes), W)]

    def sample_loss(theta, i):
        return 0.5 * (_prod(unflat(theta)) @ X[:, i] - M @ X[:, i]).pow(2).sum()

    theta = torch.cat([w.reshape(-1) for w in W])
    grads = torch.stack([torch.autograd.functional.jacobian(lambda t, i=i: sample_loss(t, i), theta) for i in range(n)])
    lam_flat = torch.stack([torch.cat([lm[j].reshape(-1) for lm in lam]) for j in range(2)])
    ref = torch.stack(
        [
            lam_flat @ torch.autograd.functional.hessian(lambda t, i=i: sample_loss(t, i), theta) @ grads.T
            for i in range(n)
        ],
        1,
    )  # (J, i, i')
    assert torch.allclose(spread_pair.pair_matrix(W, M, X, lam), ref, atol=1e-9)


@pytest.mark.parametrize("B", [3, 6])
def test_lna_plus_pair_matches_exact_sgd(B):
    """Exact reshuffled SGD (4000 runs, an independent torch loop) vs LNA + pair term on a tiny net:
    every block entry's variance within 4 sd of its estimate (runs: sqrt(2 / (R - 1)); pair-term
    Monte-Carlo: sqrt(2 / draws)); the LNA alone misses the same-order pair term (item 5)."""
    g = torch.Generator().manual_seed(4)
    n, lr, R, draws = 12, 0.02, 4000, 8192
    X = torch.randn(2, n, generator=g, dtype=torch.float64)
    X = torch.linalg.cholesky(X @ X.T / n).inverse() @ X
    M = torch.tensor([[2.0, 0.3], [0.1, 1.0]], dtype=torch.float64)
    W0 = [torch.randn(*shape, generator=g, dtype=torch.float64) * 0.5 for shape in ((3, 2), (2, 3))]
    steps = 150 - 150 % (n // B)
    res = spread.lna_covariance(W0, X, M, lr, steps, [steps], 2, [B], pair_draws=draws)
    A, Bm = W0[0].expand(R, 3, 2).clone(), W0[1].expand(R, 2, 3).clone()
    rng = torch.Generator().manual_seed(1)
    for k in range(steps):
        if k % (n // B) == 0:
            perm = torch.argsort(torch.rand(R, n, generator=rng), dim=1)
        Xb = X.T[perm[:, (k % (n // B)) * B : (k % (n // B) + 1) * B]]  # (R, B, 2)
        G = (Bm @ A - M) @ (Xb.mT @ Xb / B)
        A, Bm = A - lr * Bm.mT @ G, Bm - lr * G @ A.mT
    path = spread.gd_path(W0, M, lr, steps)
    U, _, Vh = torch.linalg.svd(path[1][-1] @ path[0][-1])
    measured = torch.einsum("ia,rij,jb->rab", U, Bm @ A, Vh.T).reshape(R, -1).var(0).numpy()
    tol = 4 * np.sqrt(2 / (R - 1) + 2 / draws)
    predicted = np.diag(res["cov"][(steps, B)])
    assert np.all(np.abs(measured / predicted - 1) < tol), measured / predicted
    assert measured.sum() / np.trace(res["lna"][(steps, B)]) > 1 + tol


def test_targets_share_one_adjoint_pass():
    """Two targets in one call give each target's covariance of a call with that target alone
    (the LNA exactly; the pair term within its Monte-Carlo error), an epoch straddling the
    earlier target included for the later one."""
    g = torch.Generator().manual_seed(7)
    n, lr = 12, 0.03
    X = torch.randn(2, n, generator=g, dtype=torch.float64)
    X = torch.linalg.cholesky(X @ X.T / n).inverse() @ X
    M = torch.tensor([[2.0, 0.3], [0.1, 1.0]], dtype=torch.float64)
    W0 = [torch.randn(*shape, generator=g, dtype=torch.float64) * 0.5 for shape in ((3, 2), (2, 3))]
    both = spread.lna_covariance(W0, X, M, lr, 40, [21, 40], 2, [2, 6], pair_draws=20_000)
    for t in (21, 40):
        alone = spread.lna_covariance(W0, X, M, lr, 40, [t], 2, [2, 6], pair_draws=20_000, seed=1)
        for B in (2, 6):
            assert np.allclose(both["lna"][(t, B)], alone["lna"][(t, B)], rtol=1e-10, atol=0)
            assert np.allclose(np.diag(both["cov"][(t, B)]), np.diag(alone["cov"][(t, B)]), rtol=0.1)
