"""dlncheck.measure.compare against direct NumPy computations on small hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from nets import random_net

from dlncheck import spectra
from dlncheck.measure import compare


def _pattern(upper_rows):
    """(L, L) int pattern from its upper-triangular rows."""
    L = len(upper_rows)
    r = np.zeros((L, L), dtype=np.int64)
    for i, row in enumerate(upper_rows):
        r[i, i:] = row
    return r


def test_d_r_of_two_known_patterns():
    gd = _pattern([[3, 2, 1], [3, 2], [3]])
    sgd_a = _pattern([[3, 2, 2], [3, 2], [3]])  # one entry off by 1
    sgd_b = _pattern([[3, 1, 1], [3, 3], [3]])  # two entries off by 1
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
        q[1 : L + 1, 1 : L + 1] = np.triu(p)
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


def test_single_run_is_rejected_with_fix():
    with pytest.raises(ValueError, match="S >= 1"):
        compare.d_r(torch.zeros(1, 3, 2, 2))


def test_d_sigma_d_shape_d_sigma_w_against_numpy():
    rng = np.random.default_rng(4)
    L, K = 3, 2
    s = rng.standard_normal((5, 7, L, L, K)) * np.triu(np.ones((L, L)))[..., None]
    gd, mean = s[0], s[1:].mean(0)
    iu = np.triu_indices(L)
    diff = np.abs(gd - mean)[:, iu[0], iu[1], :]  # (7, #pairs, K)
    w = (iu[1] - iu[0] + 1).astype(float)
    st_ = torch.as_tensor(s)
    np.testing.assert_allclose(compare.d_sigma(st_)["value"].numpy(), diff.sum((1, 2)))
    np.testing.assert_allclose(compare.d_shape(st_)["value"].numpy(), diff.sum((1, 2)))
    np.testing.assert_allclose(compare.d_sigma_w(st_)["value"].numpy(), (diff * w[None, :, None]).sum((1, 2)))
    np.testing.assert_array_equal(compare.interval_weights(3).numpy(), [[1, 2, 3], [0, 1, 2], [0, 0, 1]])


def test_bootstrap_band_brackets_the_statistic_and_is_seeded():
    rng = np.random.default_rng(5)
    s = torch.as_tensor(rng.standard_normal((9, 4, 2, 2, 3)))
    a, b = compare.d_sigma(s, seed=3), compare.d_sigma(s, seed=3)
    assert torch.equal(a["lo"], b["lo"]) and torch.equal(a["hi"], b["hi"])
    assert torch.all(a["lo"] <= a["hi"])


def test_parameter_metrics_against_numpy():
    rng = np.random.default_rng(6)
    dims = [3, 4, 2]
    weights = random_net(rng, dims, runs=4, checkpoints=3)
    theta = np.concatenate([W.numpy().reshape(4, 3, -1) for W in weights], -1)
    dist = np.linalg.norm(theta[1:] - theta[:1], axis=-1)
    np.testing.assert_allclose(compare.theta_distance(weights).numpy(), dist)
    np.testing.assert_allclose(compare.theta_norm(weights).numpy(), np.linalg.norm(theta, axis=-1))
    np.testing.assert_allclose(compare.theta_ratio(weights).numpy(), dist / np.linalg.norm(theta[0], axis=-1))
    cos = (theta[1:] * theta[:1]).sum(-1) / (np.linalg.norm(theta[1:], axis=-1) * np.linalg.norm(theta[:1], axis=-1))
    np.testing.assert_allclose(compare.cosine(weights).numpy(), cos)
    dl = np.stack(
        [
            np.linalg.norm(W.numpy()[1:] - W.numpy()[:1], axis=(-2, -1)) / np.linalg.norm(W.numpy()[0], axis=(-2, -1))
            for W in weights
        ],
        -1,
    )
    np.testing.assert_allclose(compare.d_l(weights).numpy(), dl)
    np.testing.assert_allclose(compare.d(weights).numpy(), dl.mean(-1))


def test_function_distance_against_numpy():
    rng = np.random.default_rng(7)
    weights = random_net(rng, [3, 5, 4, 2], runs=3, checkpoints=2)
    Ws = [W.numpy() for W in weights]
    W = Ws[2] @ Ws[1] @ Ws[0]
    expected = np.linalg.norm(W[1:] - W[:1], axis=(-2, -1)) / np.linalg.norm(W[0], axis=(-2, -1))
    np.testing.assert_allclose(compare.function_distance(weights).numpy(), expected)


def test_bad_weights_raise_with_fix():
    rng = np.random.default_rng(8)
    weights = random_net(rng, [3, 4, 2], runs=2)
    with pytest.raises(ValueError, match="do not compose"):
        compare.theta_distance([weights[1], weights[0]])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), runs=st.integers(2, 6), L=st.integers(1, 4))
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
    weights = random_net(rng, [2, 3, 2], runs=5, checkpoints=4)
    summary = compare.over_runs(compare.theta_ratio(weights))
    df = compare.frame({"step": np.arange(4)}, ratio=summary)
    assert list(df.columns[:2]) == ["step", "metric"] and len(df) == 4
    np.testing.assert_allclose(df["mean"], compare.theta_ratio(weights).mean(0).numpy())
