"""dlncheck.spectra against NumPy references, plus hypothesis properties."""

from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dlncheck import spectra
from dlncheck.spectra import _ranks as ranks_module

DTYPES = [torch.float64, torch.float32]


def random_matrix(m, n, rank, seed, dtype=torch.float64):
    g = np.random.default_rng(seed)
    A = g.standard_normal((m, rank)) @ g.standard_normal((rank, n)) if rank else np.zeros((m, n))
    return torch.as_tensor(A, dtype=dtype)


def chain(widths, seed=0, batch=(), dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*batch, widths[l + 1], widths[l], generator=g, dtype=dtype) for l in range(len(widths) - 1)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize(
    "m,n,rank",
    [(6, 6, 6), (6, 6, 3), (7, 3, 2), (3, 8, 3), (5, 5, 0)],
    ids=["square-full", "square-rank3", "tall", "wide", "zero"],
)
def test_singular_values_and_rank_match_numpy(m, n, rank, dtype):
    A = random_matrix(m, n, rank, seed=m * n + rank, dtype=dtype)
    s = spectra.singular_values(A)
    ref = np.linalg.svd(A.numpy().astype(np.float64), compute_uv=False)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(s.numpy(), ref, rtol=tol, atol=tol * max(ref.max(), 1))
    eps = 1e-4 if dtype == torch.float32 else 1e-9
    expected = 0 if rank == 0 else np.linalg.matrix_rank(A.numpy(), rtol=eps)
    assert spectra.numerical_rank(A, eps).item() == expected == rank


def test_batched_rank_matches_per_matrix_loop():
    A = torch.stack([random_matrix(5, 4, r, seed=r) for r in range(5)]).reshape(5, 1, 5, 4)
    ranks = spectra.numerical_rank(A.expand(5, 3, 5, 4), 1e-8)
    assert ranks.shape == (5, 3)
    assert ranks[:, 0].tolist() == [np.linalg.matrix_rank(a[0].numpy(), rtol=1e-8) for a in A]


def test_eps_grid_broadcasts_as_leading_axis():
    A = torch.diag(torch.tensor([1.0, 1e-3, 1e-6], dtype=torch.float64))
    eps = torch.tensor([1e-7, 1e-4, 1e-2])
    assert spectra.numerical_rank(A, eps).tolist() == [3, 2, 1]


def test_absolute_floor_makes_tiny_matrices_rank_zero():
    A = 1e-9 * random_matrix(4, 4, 4, seed=1)
    assert spectra.numerical_rank(A, 1e-3).item() == 4  # scale-invariant: shape only
    assert spectra.numerical_rank(A, 1e-3, atol=1e-6).item() == 0


def test_singular_gap_conventions():
    s = torch.tensor([4.0, 2.0, 0.0], dtype=torch.float64)
    gaps = spectra.singular_gap(s, torch.tensor([0, 1, 2, 3]))
    assert gaps.tolist() == [np.inf, 2.0, np.inf, np.inf]


def test_partial_products_match_numpy_chain():
    W = chain([3, 4, 5, 2, 6], seed=2)
    P = spectra.partial_products(W)
    assert len(P) == 10
    for (i, j), Pij in P.items():
        ref = np.linalg.multi_dot([w.numpy() for w in W[i - 1 : j]][::-1]) if j > i else W[i - 1].numpy()
        np.testing.assert_allclose(Pij.numpy(), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(spectra.end_to_end(W).numpy(), P[(1, 4)].numpy())


def test_products_from_are_partial_products_chains_bit_for_bit():
    W = chain([3, 4, 5, 2, 6], seed=5, batch=(2,))
    P = spectra.partial_products(W)
    chains = {}
    for i in range(1, 5):
        chains |= spectra.products_from(W, i)
    assert list(chains) == list(P) and all(torch.equal(chains[k], P[k]) for k in P)
    with pytest.raises(ValueError, match="i=5 is invalid"):
        spectra.products_from(W, 5)


def test_product_singular_values_match_per_product_svd():
    W = chain([3, 4, 4, 3], seed=3, batch=(2, 5))
    for key, s in spectra.product_singular_values(W).items():
        P = spectra.partial_products(W)[key].numpy()
        np.testing.assert_allclose(s.numpy(), np.linalg.svd(P, compute_uv=False), rtol=1e-12)


@given(piece_matrices=st.integers(1, 12), left=st.sampled_from([(2, 5), (1, 5), (2, 1), (5,)]))
def test_product_singular_values_in_cpu_pieces_match_one_pass(piece_matrices, left):
    """Pieces of any size (down to one matrix) and broadcast batch axes give the one-pass values."""
    W = chain([3, 4], seed=7, batch=left) + chain([4, 4, 3], seed=3, batch=(2, 5))
    whole = {k: torch.linalg.svdvals(P) for k, P in spectra.partial_products(W).items()}
    with mock.patch.object(ranks_module, "CPU_PIECE_BYTES", piece_matrices * 4 * 4 * 8):
        pieced = spectra.product_singular_values(W)
    assert list(pieced) == list(whole)
    for key, s in pieced.items():
        assert s.shape == whole[key].shape
        np.testing.assert_allclose(s.numpy(), whole[key].numpy(), rtol=1e-13, atol=0)


def test_effective_rank_and_participation_ratio_closed_forms():
    A = torch.diag(torch.tensor([2.0, 2.0, 2.0, 0.0], dtype=torch.float64))
    assert spectra.effective_rank(A).item() == pytest.approx(3.0)
    assert spectra.participation_ratio(A).item() == pytest.approx(3.0)
    s = np.array([3.0, 1.0])
    p = s / s.sum()
    B = torch.diag(torch.as_tensor(s))
    assert spectra.effective_rank(B).item() == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert spectra.participation_ratio(B).item() == pytest.approx((s**2).sum() ** 2 / (s**4).sum())
    Z = torch.zeros(3, 3, dtype=torch.float64)
    assert spectra.effective_rank(Z).item() == 0 and spectra.participation_ratio(Z).item() == 0


def test_multiplicity_pattern_by_hand():
    r = torch.tensor([[3, 3, 2], [0, 4, 2], [0, 0, 2]])
    m, clipped = spectra.multiplicity_pattern(r, return_clipped=True)
    assert m.tolist() == [[0, 1, 2], [0, 1, 0], [0, 0, 0]] and clipped.item() == 0
    noisy = torch.tensor([[1, 2], [0, 1]])  # r_12 > r_11: m_11 = m_22 = -1, both clipped
    m, clipped = spectra.multiplicity_pattern(noisy, return_clipped=True)
    assert m.tolist() == [[0, 2], [0, 0]] and clipped.item() == 2


def test_log_spectrum_floor_padding_and_normalization():
    A = torch.diag(torch.tensor([np.e, 1.0, 0.0], dtype=torch.float64))
    s = spectra.log_spectrum(A, K=4)
    np.testing.assert_allclose(s.numpy(), [1.0, 0.0, np.log(1e-30), np.log(1e-30)])
    sn = spectra.log_spectrum(A, K=2, normalized=True)
    np.testing.assert_allclose(sn.numpy(), [0.0, -1.0])


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: spectra.numerical_rank(torch.eye(2), 0.0), r"^eps=0.0 is invalid: eps lies in \(0, 1\)"),
        (lambda: spectra.numerical_rank(torch.eye(2), 1.5), r"^eps=1.5 is invalid: eps lies in \(0, 1\)"),
        (lambda: spectra.numerical_rank(torch.tensor([[np.nan, 0.0]]), 0.1), "non-finite"),
        (lambda: spectra.log_spectrum(torch.eye(2), 0), r"^K=0 is invalid: pass an integer in \[1, "),
        (lambda: spectra.partial_products([torch.eye(2), torch.ones(3, 3)]), "do not compose"),
        (lambda: spectra.singular_gap(torch.ones(2), 3), r"^r=3 is invalid: ranks lie in \[0, 2\]"),
        (lambda: spectra.multiplicity_pattern(torch.ones(2, 3)), "rank pattern"),
    ],
    ids=["eps-zero", "eps-above-one", "nan", "K-zero", "shapes", "gap-r", "pattern-shape"],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------ hypothesis properties
finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)
matrices = st.integers(1, 5).flatmap(
    lambda m: st.integers(1, 5).flatmap(lambda n: arrays(np.float64, (m, n), elements=finite))
)


@given(A=matrices, c=st.floats(1e-3, 1e3), eps=st.sampled_from([1e-8, 1e-4, 1e-2]))
def test_ranks_are_scale_invariant(A, c, eps):
    A = torch.as_tensor(A)
    assert spectra.numerical_rank(c * A, eps) == spectra.numerical_rank(A, eps) or _near_threshold(A, eps)
    np.testing.assert_allclose(spectra.effective_rank(c * A), spectra.effective_rank(A), rtol=1e-9)
    np.testing.assert_allclose(spectra.participation_ratio(c * A), spectra.participation_ratio(A), rtol=1e-9)


def _near_threshold(A, eps):
    """Scaling may move a singular value across eps*sigma_1 by one ulp; allow only that."""
    s = spectra.singular_values(A)
    return bool(torch.any(torch.isclose(s, eps * s[0], rtol=1e-9)))


@given(A=matrices)
def test_continuous_ranks_are_bounded_by_the_rank(A):
    A = torch.as_tensor(A)
    rank = int(np.linalg.matrix_rank(A.numpy()))
    r_eff, r_pr = spectra.effective_rank(A).item(), spectra.participation_ratio(A).item()
    if rank == 0:
        assert r_eff == r_pr == 0
    else:
        assert 1 - 1e-9 <= r_eff <= rank + 1e-9 and 1 - 1e-9 <= r_pr <= rank + 1e-9


widths = st.lists(st.integers(1, 4), min_size=2, max_size=5)


@given(widths=widths, seed=st.integers(0, 2**16), rank_cut=st.integers(0, 3))
def test_pattern_properties(widths, seed, rank_cut):
    W = chain(widths, seed=seed)
    if rank_cut and len(W) > 1:  # make one layer rank deficient to get non-trivial patterns
        U, S, Vh = torch.linalg.svd(W[0], full_matrices=False)
        W[0] = (U[:, :rank_cut] * S[:rank_cut]) @ Vh[:rank_cut]
    P = spectra.partial_products(W)
    for (i, j), Pij in P.items():
        if j > i:
            torch.testing.assert_close(Pij, W[j - 1] @ P[(i, j - 1)])
    r = spectra.rank_pattern(W, 1e-9)
    L = len(W)
    for i in range(L):
        for j in range(i, L):  # growing the interval never increases the rank
            if j + 1 < L:
                assert r[i, j + 1] <= r[i, j]
            if i > 0:
                assert r[i - 1, j] <= r[i, j]
    m, clipped = spectra.multiplicity_pattern(r, return_clipped=True)
    if clipped == 0:  # inclusion-exclusion inverts: r_ij = sum_{a <= i, b >= j} m_ab
        for i in range(L):
            for j in range(i, L):
                assert m[: i + 1, j:].sum() == r[i, j]


@pytest.mark.parametrize("scale", [5e-324, 1e-200, 1e200], ids=["denormal", "tiny", "huge"])
def test_continuous_ranks_survive_extreme_scales(scale):
    """Found by hypothesis: sigma^4 underflowed for A = [[5e-324]], giving r_PR = 0 < rank 1."""
    A = torch.diag(torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)) * scale
    assert spectra.participation_ratio(A).item() == pytest.approx(2.0)
    assert spectra.effective_rank(torch.tensor([[5e-324]], dtype=torch.float64)).item() == 1.0
    assert spectra.participation_ratio(torch.tensor([[5e-324]], dtype=torch.float64)).item() == 1.0


def test_chain_product_order_and_empty_chain():
    A, B = torch.randn(2, 3, 4, dtype=torch.float64), torch.randn(2, 5, 3, dtype=torch.float64)
    torch.testing.assert_close(spectra.chain_product([A, B]), B @ A)
    assert spectra.chain_product([]) is None


def test_absolute_floor_may_be_a_grid_beside_eps():
    A = torch.as_tensor(np.diag([1.0, 1e-3, 1e-6]))
    eps = torch.tensor([1e-7, 1e-4, 1e-2], dtype=torch.float64)
    r = spectra.numerical_rank(A, eps, atol=eps * 100)  # thresholds max(eps, 100 eps) = 100 eps
    assert r.tolist() == [2, 1, 0]  # 1e-5, 1e-2, 1 (strict >)
    assert r.tolist() == [spectra.numerical_rank(A, e.item(), atol=100 * e.item()).item() for e in eps]
