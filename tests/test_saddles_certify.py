"""Certification: HVP Lanczos vs dense Hessian, closed-form spectra, and the oracle on every pattern."""

import itertools

import numpy as np
import pytest
import torch
from test_saddles_normal_form import teacher

from dlncheck.saddles import NormalForm, certify, oracle_kind
from dlncheck.saddles.certify import hessian, hvp_operator, lanczos_smallest, loss_function

M = teacher(4, 4, [3.0, 2.0, 1.5, 1.0], seed=1)


def test_hvp_matches_dense_hessian_and_finite_differences():
    nf = NormalForm(M, [0], [4, 5, 5, 4])
    W = [w[0] for w in nf.weights(nf.zero_block_sample((1, 3), chains=1, seed=2))]
    theta, f = loss_function(W, M)
    H = hessian(f)(theta).numpy()
    v = np.random.default_rng(0).standard_normal(theta.numel())
    np.testing.assert_allclose(hvp_operator(f, theta).matvec(v), H @ v, rtol=1e-10, atol=1e-10)
    g = torch.func.grad(f)
    h = 1e-6
    fd = (g(theta + h * torch.from_numpy(v)) - g(theta - h * torch.from_numpy(v))) / (2 * h)
    np.testing.assert_allclose(H @ v, fd.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # the old path, for reference
@pytest.mark.parametrize("seed", range(4))
def test_reverse_over_reverse_hessian_equals_torch_func_hessian(seed):
    """certify.hessian (jacrev of jacrev) replaces torch.func.hessian (jacfwd of jacrev, whose forward
    mode scripts decompositions with the deprecated torch.jit.script): the same matrix to rounding,
    the same eigenvalues, the same certificates, also under vmap (batch_certify)."""
    nf = NormalForm(M, [0], [4, 5, 5, 4])
    Z = nf.zero_block_sample((1,) if seed % 2 else (), chains=3, seed=seed)
    W = nf.weights(Z)
    theta, f = loss_function([w[0] for w in W], M)
    old, new = torch.func.hessian(f)(theta), hessian(f)(theta)
    scale = float(old.abs().max())
    assert float((new - old).abs().max()) <= 64 * torch.finfo(torch.float64).eps * scale
    np.testing.assert_allclose(
        torch.linalg.eigvalsh(new).numpy(), torch.linalg.eigvalsh(old).numpy(), rtol=0, atol=1e-12 * scale
    )
    batch = torch.cat([w.reshape(3, -1) for w in W], 1)
    theta_b, f_b = batch, lambda th: f(th)
    torch.testing.assert_close(
        torch.func.vmap(hessian(f_b))(theta_b),
        torch.func.vmap(torch.func.hessian(f_b))(theta_b),
        rtol=0,
        atol=1e-12 * scale,
    )


def test_depth2_origin_closed_form():
    """At W_1 = W_2 = 0 (d_1 = 1) H = [[0, -M^T],[-M, 0]] (blocks over w_1 in R^{d_0}, w_2 in R^{d_2}):
    eigenvalues are +-s_k, so lambda_min = -s_1 exactly and the inertia is (4, 0, 4)."""
    W = [torch.zeros(1, 4, dtype=torch.float64), torch.zeros(4, 1, dtype=torch.float64)]
    cert = certify(W, M, method="dense", k=8)
    assert cert.kind == "strict"
    np.testing.assert_allclose(cert.eigenvalues, [-3.0, -2.0, -1.5, -1.0, 1.0, 1.5, 2.0, 3.0], rtol=1e-12)
    assert cert.inertia == (4, 0, 4)


def test_depth2_origin_closed_form_with_input_covariance():
    """With root = Sxx^{1/2} the loss near the origin is const - w_2^T M Sxx w_1, so H = [[0, -(M Sxx)^T],
    [-M Sxx, 0]]: eigenvalues +-sigma_k(M Sxx); the loss is 0.5 ||M root||_F^2 there."""
    root = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))[0]
    root = root @ torch.diag(torch.tensor([1.0, 0.8, 0.5, 0.3], dtype=torch.float64)) @ root.T
    W = [torch.zeros(1, 4, dtype=torch.float64), torch.zeros(4, 1, dtype=torch.float64)]
    cert = certify(W, M, method="dense", k=8, root=root)
    s = torch.linalg.svdvals(M @ root @ root).numpy()
    np.testing.assert_allclose(cert.eigenvalues, np.sort(np.concatenate([-s, s])), rtol=1e-12, atol=1e-14)
    assert cert.kind == "strict" and cert.loss == pytest.approx(0.5 * float((M @ root).square().sum()), rel=1e-14)


def test_global_minimum_is_certified_minimum():
    nf = NormalForm(M, [0, 1, 2, 3], [4, 4, 4])
    cert = certify([w for w in nf.weights(nf.zeros())], M)
    assert cert.kind == "minimum" and cert.loss < 1e-20 and cert.grad_norm < 1e-12


@pytest.mark.parametrize("zeros, S", [((1, 3), [0]), ((1, 2, 3), [0]), ((1, 2, 3), [1]), ((2, 3), [0, 1])])
def test_lanczos_agrees_with_dense(zeros, S):
    nf = NormalForm(M, S, [4, 6, 6, 4])
    W = [w[0] for w in nf.weights(nf.zero_block_sample(zeros, chains=1, seed=5))]
    dense, lanczos = certify(W, M, method="dense"), certify(W, M, method="lanczos", k=4)
    assert dense.kind == lanczos.kind
    # both eigensolvers are backward stable: the difference is a few eps*||H||, well inside tau_round
    assert abs(dense.lambda_min - lanczos.lambda_min) <= dense.tau_round
    assert dense.n_neg == lanczos.n_neg or lanczos.n_neg == 4
    np.testing.assert_allclose(lanczos.h_norm, dense.h_norm, rtol=1e-10)


def test_lanczos_smallest_on_known_spectrum():
    from scipy.sparse.linalg import aslinearoperator

    ev = np.concatenate([[-2.0, -1e-3], np.zeros(40), np.linspace(0.5, 10, 58)])
    Q = np.linalg.qr(np.random.default_rng(1).standard_normal((100, 100)))[0]
    smallest, norm = lanczos_smallest(aslinearoperator(Q @ np.diag(ev) @ Q.T), k=3)
    np.testing.assert_allclose(smallest, [-2.0, -1e-3, 0.0], atol=1e-10)
    np.testing.assert_allclose(norm, 10.0)


@pytest.mark.parametrize("L", [2, 3, 4])
@pytest.mark.parametrize("S", [[0], [1], [0, 1], [0, 2]], ids=["top1", "nottop1", "top2", "nottop2"])
def test_oracle_matches_dense_hessian_on_every_zero_pattern(L, S):
    """Every pattern of >= 2 zero residual blocks, 2 random samples each: oracle kind == dense kind."""
    nf = NormalForm(M, S, [4] + [5] * (L - 1) + [4])
    for n_zero in range(2, L + 1):
        for zeros in itertools.combinations(range(1, L + 1), n_zero):
            Z = nf.zero_block_sample(zeros, chains=2, seed=n_zero)
            W = nf.weights(Z)
            for c in range(2):
                pred = oracle_kind(nf, [z[c] for z in Z])
                cert = certify([w[c] for w in W], M, method="dense")
                assert pred.kind == cert.kind, (zeros, pred, cert.lambda_min, cert.tau)
                expected = "strict" if (not nf.is_top or L == 2 or n_zero == 2) else "non-strict"
                assert pred.kind == expected, (zeros, pred)


def test_oracle_on_one_zero_block_critical_points():
    """L = 3, Z_2 = 0 and Z_1 sigma Z_3 = 0 with Z_1, Z_3 != 0: strict by the pair (1, 2) whenever
    sigma Z_3 != 0 and Z_1 is rank-deficient; non-strict when Z_3 only feeds zero singular directions."""
    Mz = teacher(5, 4, [3.0, 2.0, 1.0], seed=2)  # s_4 = s_5 = 0 on the output side
    nf = NormalForm(Mz, [0], [4, 4, 4, 5])
    null_out = [nf.Q.index(k) for k in (3, 4)]  # residual coordinates of the zero singular directions
    Z1 = torch.zeros(*nf.shapes[0], dtype=torch.float64)
    Z1[0] = nf.V[:, 3]  # row in the null space of M
    Z2 = torch.zeros(*nf.shapes[1], dtype=torch.float64)
    for Z3_rows in (null_out, [nf.Q.index(1)]):
        Z3 = torch.zeros(*nf.shapes[2], dtype=torch.float64)
        Z3[Z3_rows[0], 0] = 1.0
        Z = [Z1, Z2, Z3]
        assert float(nf.energy(Z)) < 1e-28
        pred = oracle_kind(nf, Z)
        cert = certify([w for w in nf.weights(Z)], Mz, method="dense")
        assert pred.kind == cert.kind, (Z3_rows, pred, cert.lambda_min)


def test_oracle_reads_numerically_zero_pinned_blocks_as_zero():
    """L = 3, Z_1 sigma = 0 and Z_2, Z_3 at ~1e-30 (what LM leaves of a pinned block, `saddles.pins`): the certificate
    reads non-strict and so does the oracle (its K test has the ranks' absolute floor). With Z_1 sigma != 0 the
    pair (2, 3) is open and both read strict."""
    nf = NormalForm(M, [0], [4, 5, 5, 4])
    g = torch.Generator().manual_seed(7)
    Z = [torch.randn(s, generator=g, dtype=torch.float64) for s in nf.shapes]
    Z = [Z[0] @ nf.V[:, :1] @ nf.V[:, :1].mT, 1e-30 * Z[1], 1e-30 * Z[2]]
    for z1, kind in ((Z[0], "non-strict"), (Z[0] + 0.3 * nf.V[:, 1:2].mT, "strict")):
        Zk = [z1, Z[1], Z[2]]
        cert = certify(nf.weights(Zk), M, method="dense")
        assert cert.kind == oracle_kind(nf, Zk).kind == kind, (cert, oracle_kind(nf, Zk))


def test_certify_bad_input():
    with pytest.raises(ValueError, match="one network"):
        certify([torch.zeros(2, 1, 4), torch.zeros(2, 4, 1)], M)
    with pytest.raises(ValueError, match="method"):
        certify([torch.zeros(1, 4), torch.zeros(4, 1)], M, method="arpack")
