"""dlncheck.compare against direct NumPy/SciPy computations on small hand-made cases."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import orthogonal_procrustes
from scipy.stats import ortho_group

from dlncheck import compare, events, gauge, spectra


def _net(rng, dims, runs, checkpoints=1, scale=1.0):
    """Random weights, L tensors (runs, checkpoints, d_l, d_{l-1}), float64."""
    return [torch.as_tensor(scale * rng.standard_normal((runs, checkpoints, dims[l + 1], dims[l])))
            for l in range(len(dims) - 1)]


def _gauge_pair(rng, dims):
    """GD network and an 'SGD' copy W_l -> Q_l W_l Q_{l-1}^T with random hidden rotations."""
    gd = [rng.standard_normal((dims[l + 1], dims[l])) for l in range(len(dims) - 1)]
    Q = [np.eye(dims[0])] + [ortho_group.rvs(d, random_state=rng) for d in dims[1:-1]] + [np.eye(dims[-1])]
    sgd = [Q[l + 1] @ W @ Q[l].T for l, W in enumerate(gd)]
    return [torch.as_tensor(np.stack([a, b]))[:, None] for a, b in zip(gd, sgd)]


# --------------------------------------------------------------------- rank patterns
def _pattern(upper_rows):
    """(L, L) int pattern from its upper-triangular rows."""
    L = len(upper_rows)
    r = np.zeros((L, L), dtype=np.int64)
    for i, row in enumerate(upper_rows):
        r[i, i:] = row
    return r


def test_d_r_of_two_known_patterns():
    gd = _pattern([[3, 2, 1], [3, 2], [3]])
    sgd_a = _pattern([[3, 2, 2], [3, 2], [3]])   # one entry off by 1
    sgd_b = _pattern([[3, 1, 1], [3, 3], [3]])   # two entries off by 1
    r = torch.as_tensor(np.stack([gd, sgd_a, sgd_b]))[:, None]  # (R=3, K=1, 3, 3)
    out = compare.d_r(r)
    mean = (sgd_a + sgd_b) / 2
    expected = np.abs(gd - mean)[np.triu_indices(3)].sum()
    assert expected == pytest.approx(1.5)
    assert out["value"].item() == pytest.approx(expected)
    # bootstrap band: resamples are {a,a}, {a,b}, {b,b} -> d_r in {1, 1.5, 2}
    assert 1.0 - 1e-12 <= out["lo"].item() <= out["value"].item() <= out["hi"].item() <= 2.0 + 1e-12


def test_d_r_zero_when_every_sgd_run_has_gd_pattern():
    gd = _pattern([[2, 2, 1], [2, 1], [3]])
    r = torch.as_tensor(np.stack([gd] * 5))[:, None].expand(5, 4, 3, 3)
    out = compare.d_r(r)
    assert torch.all(out["value"] == 0) and torch.all(out["lo"] == 0) and torch.all(out["hi"] == 0)


def test_d_m_matches_numpy_inclusion_exclusion():
    rng = np.random.default_rng(1)
    r = torch.as_tensor(rng.integers(0, 5, (6, 3, 4, 4))).triu()
    m = spectra.multiplicity_pattern(r).numpy()

    def inclusion_exclusion(p):
        L = p.shape[0]
        q = np.zeros((L + 2, L + 2), dtype=np.int64)
        q[1:L + 1, 1:L + 1] = np.triu(p)
        out = np.zeros((L, L), dtype=np.int64)
        for i in range(1, L + 1):
            for j in range(i, L + 1):
                out[i - 1, j - 1] = max(0, q[i, j] - q[i, j + 1] - q[i - 1, j] + q[i - 1, j + 1])
        return out

    for run in range(6):
        for k in range(3):
            assert np.array_equal(m[run, k], inclusion_exclusion(r[run, k].numpy()))
    expected = np.abs(m[0] - m[1:].mean(0))[..., *np.triu_indices(4)].sum(-1)
    np.testing.assert_allclose(compare.d_m(torch.as_tensor(m))["value"].numpy(), expected)


@pytest.mark.parametrize("eps", [1e-3, 0.3])
def test_rank_patterns_and_gaps_match_numpy_svd(eps):
    rng = np.random.default_rng(2)
    dims = [3, 4, 5]                                    # all products generically full rank
    weights = _net(rng, dims, runs=3, checkpoints=2)
    weights[0][0, 0, :, 2] *= 1e-4                      # one near-degenerate direction
    out = spectra.rank_patterns(weights, eps, gap_threshold=10.0)
    for run in range(3):
        for k in range(2):
            Ws = [W[run, k].numpy() for W in weights]
            for i in range(1, 3):
                for j in range(i, 3):
                    P = Ws[i - 1]
                    for layer in Ws[i:j]:
                        P = layer @ P
                    s = np.linalg.svd(P, compute_uv=False)
                    r = int((s > eps * s[0]).sum())
                    gap = np.inf if r == len(s) or s[r] == 0 else s[r - 1] / s[r]
                    assert out.r[run, k, i - 1, j - 1] == r
                    assert out.gap[run, k, i - 1, j - 1].item() == pytest.approx(gap, rel=1e-9)
                    assert bool(out.ambiguous[run, k, i - 1, j - 1]) == (gap < 10.0)
    assert not out.ambiguous[..., 1, 0].any()          # below the diagonal: never flagged


def test_rank_patterns_reject_bad_gap_threshold():
    with pytest.raises(ValueError, match="gap_threshold"):
        spectra.rank_patterns(_net(np.random.default_rng(0), [2, 2], 2), 1e-5, gap_threshold=1.0)


def test_single_run_is_rejected_with_fix():
    with pytest.raises(ValueError, match="S >= 1"):
        compare.d_r(torch.zeros(1, 3, 2, 2))


# -------------------------------------------------------------- singular-value patterns
def test_log_spectra_match_spectra_log_spectrum_and_numpy():
    rng = np.random.default_rng(3)
    dims = [4, 2, 5]                 # P_12 is 5x4 of rank 2: sigma_3, sigma_4 ~ 0 -> padded/floored
    weights = _net(rng, dims, runs=3, checkpoints=2)
    K, delta = 4, 1e-30
    out = spectra.log_spectra(weights, K, delta)
    products = spectra.partial_products(weights)
    for (i, j), P in products.items():
        np.testing.assert_allclose(out.s[..., i - 1, j - 1, :].numpy(),
                                   spectra.log_spectrum(P, K, delta).numpy())
        np.testing.assert_allclose(out.s_tilde[..., i - 1, j - 1, :].numpy(),
                                   spectra.log_spectrum(P, K, delta, normalized=True).numpy())
    s = np.linalg.svd(weights[0][1, 0].numpy(), compute_uv=False)      # 2x4: two values
    np.testing.assert_allclose(out.s[1, 0, 0, 0].numpy(), np.log(np.r_[s, delta, delta]))
    assert torch.all(out.s[..., 1, 0, :] == 0)                         # below the diagonal


def test_d_sigma_d_shape_d_sigma_w_against_numpy():
    rng = np.random.default_rng(4)
    L, K = 3, 2
    s = rng.standard_normal((5, 7, L, L, K)) * np.triu(np.ones((L, L)))[..., None]
    gd, mean = s[0], s[1:].mean(0)
    iu = np.triu_indices(L)
    diff = np.abs(gd - mean)[:, iu[0], iu[1], :]                        # (7, #pairs, K)
    w = (iu[1] - iu[0] + 1).astype(float)
    st_ = torch.as_tensor(s)
    np.testing.assert_allclose(compare.d_sigma(st_)["value"].numpy(), diff.sum((1, 2)))
    np.testing.assert_allclose(compare.d_shape(st_)["value"].numpy(), diff.sum((1, 2)))
    np.testing.assert_allclose(compare.d_sigma_w(st_)["value"].numpy(),
                               (diff * w[None, :, None]).sum((1, 2)))
    np.testing.assert_array_equal(compare.interval_weights(3).numpy(),
                                  [[1, 2, 3], [0, 1, 2], [0, 0, 1]])


def test_bootstrap_band_brackets_the_statistic_and_is_seeded():
    rng = np.random.default_rng(5)
    s = torch.as_tensor(rng.standard_normal((9, 4, 2, 2, 3)))
    a, b = compare.d_sigma(s, seed=3), compare.d_sigma(s, seed=3)
    assert torch.equal(a["lo"], b["lo"]) and torch.equal(a["hi"], b["hi"])
    assert torch.all(a["lo"] <= a["hi"])


# ------------------------------------------------------------------ parameter space
def test_parameter_metrics_against_numpy():
    rng = np.random.default_rng(6)
    dims = [3, 4, 2]
    weights = _net(rng, dims, runs=4, checkpoints=3)
    theta = np.concatenate([W.numpy().reshape(4, 3, -1) for W in weights], -1)
    dist = np.linalg.norm(theta[1:] - theta[:1], axis=-1)
    np.testing.assert_allclose(compare.theta_distance(weights).numpy(), dist)
    np.testing.assert_allclose(compare.theta_norm(weights).numpy(), np.linalg.norm(theta, axis=-1))
    np.testing.assert_allclose(compare.theta_ratio(weights).numpy(),
                               dist / np.linalg.norm(theta[0], axis=-1))
    cos = (theta[1:] * theta[:1]).sum(-1) / (np.linalg.norm(theta[1:], axis=-1)
                                             * np.linalg.norm(theta[:1], axis=-1))
    np.testing.assert_allclose(compare.cosine(weights).numpy(), cos)
    dl = np.stack([np.linalg.norm(W.numpy()[1:] - W.numpy()[:1], axis=(-2, -1))
                   / np.linalg.norm(W.numpy()[0], axis=(-2, -1)) for W in weights], -1)
    np.testing.assert_allclose(compare.d_l(weights).numpy(), dl)
    np.testing.assert_allclose(compare.d(weights).numpy(), dl.mean(-1))


def test_function_distance_against_numpy():
    rng = np.random.default_rng(7)
    weights = _net(rng, [3, 5, 4, 2], runs=3, checkpoints=2)
    Ws = [W.numpy() for W in weights]
    W = Ws[2] @ Ws[1] @ Ws[0]
    expected = np.linalg.norm(W[1:] - W[:1], axis=(-2, -1)) / np.linalg.norm(W[0], axis=(-2, -1))
    np.testing.assert_allclose(compare.function_distance(weights).numpy(), expected)


def test_bad_weights_raise_with_fix():
    rng = np.random.default_rng(8)
    weights = _net(rng, [3, 4, 2], runs=2)
    with pytest.raises(ValueError, match="do not compose"):
        compare.theta_distance([weights[1], weights[0]])


# ------------------------------------------------------------------------- gauge
@pytest.mark.parametrize("dims", [[4, 3, 2], [5, 4, 6, 3], [3, 3, 3, 3, 3], [2, 5, 4, 6]])
def test_pure_gauge_pair_aligns_to_zero_with_identical_function(dims):
    """Widths that never grow from the input ([5, 4, 6, 3] hidden 4) or from the output side
    ([2, 5, 4, 6] hidden 5, 4) make the gauge identifiable from one side: exact recovery."""
    weights = _gauge_pair(np.random.default_rng(9), dims)
    assert compare.theta_ratio(weights).item() > 0.3               # raw: far apart
    assert compare.function_distance(weights).item() < 1e-12       # same function
    aligned = gauge.gauge_align(weights)
    assert compare.theta_ratio(aligned.weights).item() < 1e-10     # gauge-aligned: same point
    assert compare.function_distance(aligned.weights).item() < 1e-12


def _gauge_fit(gd, sgd, Q):
    Qs = [np.eye(gd[0].shape[1])] + Q + [np.eye(gd[-1].shape[0])]
    return sum(np.linalg.norm(g - Qs[l + 1] @ s @ Qs[l].T) ** 2
               for l, (g, s) in enumerate(zip(gd, sgd)))


def _reference_alternating_procrustes(gd, sgd, sweeps):
    """Per-network loop with scipy.linalg.orthogonal_procrustes, same three starts and
    schedule as gauge.gauge_align; returns (best fit, its Q) over the starts."""
    L = len(gd)

    def left(l, Q):
        return sgd[0] if l == 1 else sgd[l - 1] @ Q[l - 2].T

    def right(l, Q):
        return sgd[l] if l + 1 == L else Q[l] @ sgd[l]

    identity = [np.eye(W.shape[0]) for W in gd[:-1]]
    forward, backward = list(identity), list(identity)
    for l in range(1, L):               # min ||B_l^T Q_l^T - G_l^T||: R = Q_l^T
        forward[l - 1] = orthogonal_procrustes(left(l, forward).T, gd[l - 1].T)[0].T
    for l in range(L - 1, 0, -1):       # min ||Y Q_l^T - G_{l+1}||, Y = Q_{l+1} B_{l+1}
        backward[l - 1] = orthogonal_procrustes(right(l, backward), gd[l])[0].T
    results = []
    for Q in (identity, forward, backward):
        Q = list(Q)
        for _ in range(sweeps):         # ||Q [X, Y^T] - [G_l, G_{l+1}^T]||: R = Q^T
            for l in range(1, L):
                A = np.concatenate([left(l, Q), right(l, Q).T], axis=1)
                B = np.concatenate([gd[l - 1], gd[l].T], axis=1)
                Q[l - 1] = orthogonal_procrustes(A.T, B.T)[0].T
        results.append((_gauge_fit(gd, sgd, Q), Q))
    return sorted(results, key=lambda fq: fq[0])


@pytest.mark.parametrize("dims", [[4, 3, 3, 4], [5, 3, 2, 2, 4]])
def test_batched_procrustes_matches_scipy_loop(dims):
    """Hidden widths no larger than both neighbours: every Procrustes target is full rank,
    so its solution is unique and the batched torch path must reproduce SciPy exactly."""
    rng = np.random.default_rng(10)
    weights = _net(rng, dims, runs=4, checkpoints=3)
    out = gauge.gauge_align(weights, max_sweeps=3, rtol=-1.0)   # exactly 3 sweeps
    assert out.sweeps == 3
    for run in range(3):
        for k in range(3):
            gd = [W[0, k].numpy() for W in weights]
            sgd = [W[run + 1, k].numpy() for W in weights]
            (fit, Q), (second, _) = _reference_alternating_procrustes(gd, sgd, 3)[:2]
            assert out.objective[run, k].item() == pytest.approx(fit, rel=1e-9)
            if second > fit * (1 + 1e-6):                        # unique best start
                for q_ref, q in zip(Q, out.Q):
                    np.testing.assert_allclose(q[run, k].numpy(), q_ref, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1),
       dims=st.lists(st.integers(1, 5), min_size=2, max_size=5),
       noise=st.floats(0.0, 1.0))
def test_gauge_alignment_properties(seed, dims, noise):
    """Aligned <= raw; end-to-end map unchanged; Q orthogonal; reported objective is the
    distance of the aligned weights; a gauge-rotated copy whose hidden widths never grow
    from the input aligns to within the perturbation `noise`."""
    rng = np.random.default_rng(seed)
    pure = _gauge_pair(rng, dims)
    weights = [torch.cat([W[:1], W[1:] + noise * torch.as_tensor(rng.standard_normal(W[1:].shape))])
               for W in pure]
    out = gauge.gauge_align(weights)
    assert torch.all(out.objective <= out.objective_raw * (1 + 1e-12) + 1e-24)
    W_before, W_after = spectra.end_to_end(weights), spectra.end_to_end(out.weights)
    np.testing.assert_allclose(W_after.numpy(), W_before.numpy(), atol=1e-10)
    for q in out.Q:
        eye = np.eye(q.shape[-1])
        np.testing.assert_allclose((q.mT @ q).numpy(), np.broadcast_to(eye, q.shape), atol=1e-10)
    np.testing.assert_allclose(compare.theta_distance(out.weights).square().numpy(),
                               out.objective.numpy(), rtol=1e-9, atol=1e-20)
    perturbation = sum(float((W[1:] - P[1:]).square().sum()) for W, P in zip(weights, pure))
    if all(dims[l] >= dims[l + 1] for l in range(len(dims) - 2)):   # forward-identifiable
        assert out.objective.item() <= perturbation * (1 + 1e-6) + 1e-20


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2 ** 31 - 1), runs=st.integers(2, 6), L=st.integers(1, 4))
def test_d_r_properties(seed, runs, L):
    """d_r >= 0, zero iff the SGD mean equals GD entrywise, invariant to SGD run order."""
    rng = np.random.default_rng(seed)
    r = torch.as_tensor(rng.integers(0, 4, (runs, 2, L, L))).triu()
    out = compare.d_r(r)
    mean = r[1:].double().mean(0)
    assert torch.all(out["value"] >= 0)
    assert torch.equal(out["value"] == 0, (mean.triu() == r[0].double()).all(-1).all(-1))
    perm = torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(runs - 1)])
    torch.testing.assert_close(compare.d_r(r[perm])["value"], out["value"])


def test_over_runs_and_frame_are_tidy():
    rng = np.random.default_rng(11)
    weights = _net(rng, [2, 3, 2], runs=5, checkpoints=4)
    summary = compare.over_runs(compare.theta_ratio(weights))
    df = compare.frame({"step": np.arange(4)}, ratio=summary)
    assert list(df.columns[:2]) == ["step", "metric"] and len(df) == 4
    np.testing.assert_allclose(df["mean"], compare.theta_ratio(weights).mean(0).numpy())


def test_transition_checkpoints_flag_both_sides_of_a_gd_rank_change():
    r = torch.zeros(6, 2, 2, dtype=torch.int64)
    r[3:, 0, 1] = 1                      # GD's pattern changes between checkpoints 2 and 3
    assert events.transition_checkpoints(r).tolist() == [False, False, True, True, False, False]
    assert not events.transition_checkpoints(torch.zeros(4, 2, 2)).any()
