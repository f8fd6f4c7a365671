"""Units of the sampling claim: closed-form laws vs autograd, batched vs single certification, MALA, theory."""

import numpy as np
import pytest
import torch
from test_saddles_normal_form import teacher

from dlncheck.saddles import NormalForm, certify, sample
from dlncheck.saddles.batch_certify import certify_batch
from dlncheck.saddles.certify import hessian
from dlncheck.saddles.gaussian import gaussian_law, normality_tests, whiten
from dlncheck.theory import sampling as th

M = teacher(4, 4, [3.0, 2.0, 1.5, 1.0], seed=1)


@pytest.mark.parametrize("widths, zeros", [([4, 5, 4], (2,)), ([4, 5, 4], (1,)), ([4, 5, 5, 4], (1, 3))])
def test_gaussian_law_is_the_hessian_of_the_potential(widths, zeros):
    """The closed-form precision equals the autograd Hessian of beta E + alpha/2 ||Z||^2 in the free block."""
    nf = NormalForm(M, [0], widths)
    beta, alpha = 1.7, 0.6
    l, A, axis = gaussian_law(nf, zeros, beta, alpha)
    Z = nf.zeros()

    def U(x):
        Zl = list(Z)
        Zl[l - 1] = x.view(nf.shapes[l - 1])
        return beta * nf.energy(Zl) + 0.5 * alpha * (x**2).sum()

    H = hessian(U)(torch.zeros(int(np.prod(nf.shapes[l - 1])), dtype=torch.float64)).numpy()
    m, n = nf.shapes[l - 1]
    blocks = np.kron(np.eye(m), A) if axis == "rows" else np.kron(A, np.eye(n))
    np.testing.assert_allclose(H, blocks, atol=1e-12)


def test_ula_covariance_matches_simulation_and_mala_removes_the_bias():
    """1-D: ULA variance 1/(a (1 - eps a/4)) (inflated 25% here) vs simulation; MALA gives 1/a."""
    nf = NormalForm(M, [0], [4, 5, 5, 4])
    alpha, eps = 4.0, 0.2
    kw = dict(step_size=eps, beta=1.0, alpha=alpha, zero_blocks=(1, 3), seed=1, record_every=100)
    v_ula, v_mala = (float(sample(nf, 256, 100, mala=m, **kw).Z[1].var()) for m in (False, True))
    # 4096 draws: relative SE of a variance sqrt(2/4096) = 2.2%; 5 SE = 11% < the 25% inflation
    np.testing.assert_allclose(v_ula, th.ula_stationary_covariance([[alpha]], eps)[0, 0], rtol=0.11)
    np.testing.assert_allclose(v_mala, 1 / alpha, rtol=0.11)
    assert abs(v_ula - 1 / alpha) > abs(v_mala - 1 / alpha)


def test_normality_tests_accept_normal_and_reject_scaled():
    rng = np.random.default_rng(0)
    y = rng.standard_normal((400, 3, 4))
    assert normality_tests(y).p_value.min() > 1e-3
    assert normality_tests(1.2 * y).query("test == 'chi2 second moment'").p_value.iloc[0] < 1e-6
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    z = torch.from_numpy(rng.multivariate_normal([0, 0], cov, size=(500, 3)))
    w = whiten(z, cov, "rows")
    np.testing.assert_allclose(np.cov(w.reshape(-1, 2).T), np.eye(2), atol=0.1)


def test_batched_certification_equals_single():
    nf = NormalForm(M, [0], [4, 5, 5, 4])
    Z = nf.zero_block_sample((1, 2), chains=3, seed=0)
    Z3 = nf.zero_block_sample((1, 2, 3), chains=2, seed=1)
    W = [torch.cat([a, b]) for a, b in zip(nf.weights(Z), nf.weights(Z3))]
    table = certify_batch(W, M)
    for c in range(5):
        one = certify([w[c] for w in W], M, method="dense")
        assert table.kind[c] == one.kind
        np.testing.assert_allclose(table.lambda_min[c], one.lambda_min, atol=1e-12)
        np.testing.assert_allclose(table.grad_norm[c], one.grad_norm, atol=1e-13)  # both at roundoff
        np.testing.assert_allclose(table.tau[c], one.tau, rtol=1e-2)  # tau_crit = sqrt(roundoff gradient * ||H||)
        assert (table.n_neg[c], table.n_zero[c], table.n_pos[c]) == one.inertia
    assert list(table.kind) == ["strict"] * 3 + ["non-strict"] * 2


def test_theory_tolerances():
    # chi2 bound: at stationarity of a pure quadratic E, P(E > tol) <= delta
    rng = np.random.default_rng(0)
    beta, k = 50.0, 12
    E = 0.5 * (rng.standard_normal((20000, k)) ** 2).sum(1) / beta
    tol = th.boltzmann_energy_tolerance(beta, k, 0.05)
    assert abs((E > tol).mean() - 0.05) < 0.01
    assert th.max_failures(64, 0.05, 0.001) >= 3
    assert th.burn_in_steps(0.1, 1.0, 1.0, 1e-3) == np.ceil(np.log(1e3) / (-2 * np.log1p(-0.05)))
    vals = rng.standard_normal(100)
    loo = (vals.sum() - vals) / 99  # leave-one-out means
    np.testing.assert_allclose(th.jackknife_se(loo), vals.std(ddof=1) / 10, rtol=1e-12)  # mean: SE = s/sqrt(C)
    with pytest.raises(ValueError, match="eps"):
        th.ula_stationary_covariance([[50.0]], 0.1)


def test_mala_with_minibatch_is_refused_and_norm_blocks_checked():
    nf = NormalForm(M, [0], [4, 5, 4])
    with pytest.raises(ValueError, match="norm_blocks"):
        sample(nf, 2, 2, zero_blocks=(1,), norm_blocks=(1,))


def test_lm_polish_reaches_the_variety_and_keeps_zero_blocks():
    from dlncheck.saddles.polish import polish

    nf = NormalForm(M, [0], [4, 5, 5, 4])
    Z = nf.zero_block_sample((), chains=6, seed=2, scale=0.5)
    P = polish(nf, Z, 30)
    assert float(nf.energy(P).max()) < 1e-26 * float(nf.energy(Z).max())
    Zb = nf.zero_block_sample((2,), chains=4, seed=3, scale=0.5)
    Pb = polish(nf, Zb, 30, zero_blocks=(2,))
    assert torch.all(Pb[1] == 0) and float(nf.energy(Pb).max()) < 1e-26


def test_invariant_features_are_gauge_invariant_and_spread_matches_direct():
    from dlncheck.saddles.diversity import invariant_features, spread

    nf = NormalForm(M, [0], [4, 5, 5, 4])
    Z = nf.zero_block_sample((), chains=5, seed=4)
    O1 = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))[0]
    O2 = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))[0]
    Zg = [O1 @ Z[0], O2 @ Z[1] @ O1.T, Z[2] @ O2.T]
    torch.testing.assert_close(invariant_features(nf, Zg), invariant_features(nf, Z))
    F = invariant_features(nf, Z)
    s, loo = spread(F)
    d = [float((F[i] - F[j]).norm()) for i in range(5) for j in range(i + 1, 5)]
    np.testing.assert_allclose(s, np.mean(d), rtol=1e-12)
    d0 = [float((F[i] - F[j]).norm()) for i in range(1, 5) for j in range(i + 1, 5)]
    np.testing.assert_allclose(loo[0], np.mean(d0), rtol=1e-12)


def test_explore_batches_sampled_and_collapsed_chains():
    from dlncheck.saddles import explore

    nf = NormalForm(M, [0], [4, 5, 4])
    ex = explore(nf, 4, anneal=20, hold=10, polish=15, step_size=0.1, beta0=10.0, beta_f=1e3, norm_strength=1.0)
    T = ex.table
    assert list(T.null) == [False] * 4 + [True] * 4
    null = [z[4:] for z in ex.Z]
    assert all(torch.allclose(z, z[:1].expand_as(z), atol=1e-12) for z in null)  # one start, no noise: collapsed
    assert (T.energy < 1e-20).all() and set(T.kind) <= {"strict", "non-strict", "minimum"}
    assert (T.kind == T.oracle).all() and set(ex.trace.stage) == {"anneal", "hold", "polish"}
