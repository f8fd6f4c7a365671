"""Normal form and constraint energy against the DLN loss computed independently (NumPy)."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlncheck.saddles import NormalForm


def teacher(d_out, d_in, s, seed=0):
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(d_out, d_out, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(d_in, d_in, generator=g, dtype=torch.float64))
    k = len(s)
    return U[:, :k] @ torch.diag(torch.tensor(s, dtype=torch.float64)) @ V[:, :k].T


def numpy_grad(weights, M):
    """Gradient of 0.5||W_L...W_1 - M||^2 w.r.t. each W_l, by the product rule in NumPy."""
    W = [np.asarray(w) for w in weights]
    L = len(W)

    def prod(ms, n):
        return np.linalg.multi_dot(ms[::-1]) if len(ms) > 1 else (ms[0] if ms else np.eye(n))

    R = prod(W, None) - np.asarray(M)
    return [prod(W[l + 1 :], W[l].shape[0]).T @ R @ prod(W[:l], W[l].shape[1]).T for l in range(L)]


M = teacher(4, 5, [3.0, 2.0, 1.0])


@pytest.mark.parametrize("L", [2, 3, 4])
@pytest.mark.parametrize("S", [[], [0], [1, 2]])
def test_product_is_projected_teacher_plus_residual(L, S):
    nf = NormalForm(M, S, [5] + [6] * (L - 1) + [4])
    Z = [torch.randn(3, *shp, dtype=torch.float64) for shp in nf.shapes]
    W = nf.weights(Z)
    assert [tuple(w.shape) for w in W] == [(3, d1, d0) for d0, d1 in zip(nf.widths, nf.widths[1:])]
    prod = W[0]
    for w in W[1:]:
        prod = w @ prod
    expected = nf.P_S @ M + nf.U_Q @ nf.mu(Z)
    torch.testing.assert_close(prod, expected.expand_as(prod), rtol=1e-12, atol=1e-12)


def random_blocks(nf, seed, zero=()):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.zeros(*s, dtype=torch.float64) if l in zero else torch.randn(*s, generator=g, dtype=torch.float64)
        for l, s in enumerate(nf.shapes, start=1)
    ]


@settings(max_examples=25, deadline=None)
@given(
    L=st.integers(2, 4), seed=st.integers(0, 10_000), S=st.sampled_from([[0], [2], [0, 1], []]), zero=st.integers(1, 4)
)
def test_gradient_norm_equals_cyclic_maps_when_mu_vanishes(L, seed, S, zero):
    """With mu = 0 (one zero block), ||dL/dW_l||_F = ||dmu_l||_F for every layer, so E = 0 <=> grad = 0."""
    nf = NormalForm(M, S, [5] + [6] * (L - 1) + [4])
    Z = random_blocks(nf, seed, zero=(min(zero, L),))
    assert float(torch.linalg.matrix_norm(nf.mu(Z))) == 0.0
    grads = numpy_grad([w.numpy() for w in nf.weights(Z)], M.numpy())
    for l, g in enumerate(grads, start=1):
        np.testing.assert_allclose(
            np.linalg.norm(g), float(torch.linalg.matrix_norm(nf.dmu(Z, l))), rtol=1e-10, atol=1e-12
        )
    total = sum(np.linalg.norm(g) ** 2 for g in grads)
    np.testing.assert_allclose(0.5 * total, float(nf.energy(Z)), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("L", [2, 3, 4])
def test_two_zero_blocks_are_critical(L):
    nf = NormalForm(M, [0], [5] + [6] * (L - 1) + [4])
    for zeros in itertools.combinations(range(1, L + 1), 2):
        Z = nf.zero_block_sample(zeros, chains=4, seed=1)
        assert torch.all(nf.energy(Z) == 0)
        for c in range(4):
            grads = numpy_grad([w[c].numpy() for w in nf.weights(Z)], M.numpy())
            assert max(np.abs(g).max() for g in grads) < 1e-13


def test_random_residuals_are_not_critical():
    nf = NormalForm(M, [0], [5, 6, 6, 4])
    Z = random_blocks(nf, 3)
    grads = numpy_grad([w.numpy() for w in nf.weights(Z)], M.numpy())
    assert float(nf.energy(Z)) > 1e-3 and max(np.abs(g).max() for g in grads) > 1e-3


def test_critical_point_of_a_larger_stratum_has_positive_energy():
    """Converse caveat of E = 0 <=> grad = 0: the residual path may learn u_2 s_2 v_2^T (mu != 0)."""
    nf = NormalForm(M, [0], [5, 6, 4])
    k = nf.Q.index(1)
    Z1 = torch.zeros(*nf.shapes[0], dtype=torch.float64)
    Z2 = torch.zeros(*nf.shapes[1], dtype=torch.float64)
    Z1[0] = nf.s[1] * nf.V[:, 1]
    Z2[k, 0] = 1.0
    grads = numpy_grad([w.numpy() for w in nf.weights([Z1, Z2])], M.numpy())
    assert max(np.abs(g).max() for g in grads) < 1e-13
    assert float(nf.energy([Z1, Z2])) > 0.1


def test_full_rank_stratum_has_empty_residuals():
    nf = NormalForm(M, [0, 1, 2], [5, 3, 4])
    Z = nf.zeros(chains=2)
    assert nf.shapes == [(0, 5), (1, 0)] and torch.all(nf.energy(Z) == 0)
    assert nf.is_global_minimum


def test_stratum_facts():
    nf = NormalForm(M, [1], [5, 6, 6, 4])
    assert not nf.is_top and not nf.is_global_minimum and nf.r_max == 3
    np.testing.assert_allclose(nf.stratum_loss, 0.5 * (9.0 + 1.0))
    np.testing.assert_allclose(nf.global_min_loss, 0.0, atol=1e-12)


def test_empirical_normal_form_matches_population_for_whitened_data():
    n = 50
    X = torch.linalg.qr(torch.randn(n, 5, dtype=torch.float64))[0].T * n**0.5  # X X^T / n = I
    nf_data = NormalForm.from_data(X, M @ X, [0], [5, 6, 4])
    nf_pop = NormalForm(M, [0], [5, 6, 4])
    torch.testing.assert_close(nf_data.M, M)
    torch.testing.assert_close(nf_data.sigma, nf_pop.sigma)
    torch.testing.assert_close(nf_data.batch_sigma(torch.arange(n)), nf_pop.sigma)
    assert nf_pop.X is None and nf_pop.Y is None  # declared on every normal form, set by from_data
    with pytest.raises(ValueError, match="batch_sigma needs data"):
        nf_pop.batch_sigma(torch.arange(n))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(S=[0, 0], widths=[5, 6, 4]), "repeated"),
        (dict(S=[7], widths=[5, 6, 4]), "outside"),
        (dict(S=[0, 1, 2], widths=[5, 2, 4]), "narrower"),
        (dict(S=[0], widths=[5, 4]), "depth"),
        (dict(S=[0], widths=[4, 6, 4]), "d_0"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NormalForm(M, **kwargs)


def test_wrong_block_shape_names_block_and_shape():
    nf = NormalForm(M, [0], [5, 6, 6, 4])
    Z = nf.zeros()
    Z[1] = torch.zeros(4, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"^Z_2=.*has shape \(\.\.\., 5, 5\)"):
        nf.energy(Z)
    with pytest.raises(ValueError, match="zero_blocks"):
        nf.zero_block_sample((1, 4), chains=1)
