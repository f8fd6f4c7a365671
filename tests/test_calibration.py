"""dlncheck.measure.calibration: generators, theory edges vs direct simulation, sweep vs NumPy, plateaus."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlncheck import theory
from dlncheck.measure import calibration as cal

M_, N_, S_ = 12, 8, (3.0, 2.0, 0.5)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------- generators
def test_signal_has_rank_r_orthonormal_frames_and_singular_values_s():
    sig = cal.low_rank_signal(M_, N_, S_, n_draws=5, generator=gen())
    eye = torch.eye(len(S_), dtype=torch.float64)
    assert sig.M.shape == (5, M_, N_)
    assert torch.allclose(sig.U.transpose(-1, -2) @ sig.U, eye.expand(5, -1, -1), atol=1e-12, rtol=0)
    assert torch.allclose(sig.V.transpose(-1, -2) @ sig.V, eye.expand(5, -1, -1), atol=1e-12, rtol=0)
    A = sig.M.numpy()
    assert [np.linalg.matrix_rank(a) for a in A] == [3] * 5
    svals = np.linalg.svd(A, compute_uv=False)
    np.testing.assert_allclose(svals[:, :3], np.broadcast_to(S_, (5, 3)), rtol=1e-12)


def test_signal_is_seeded_and_draws_differ():
    a = cal.low_rank_signal(M_, N_, S_, 3, gen(7)).M
    b = cal.low_rank_signal(M_, N_, S_, 3, gen(7)).M
    c = cal.low_rank_signal(M_, N_, S_, 3, gen(8)).M
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a[0], a[1])


@pytest.mark.parametrize("n_samples", [8, 9, 100])
def test_whitened_inputs_have_identity_sample_covariance(n_samples):
    X = cal.whitened_inputs(8, n_samples, n_draws=4, generator=gen())
    assert X.shape == (4, 8, n_samples)
    cov = X @ X.transpose(-1, -2) / n_samples
    assert (cov - torch.eye(8, dtype=torch.float64)).abs().max() < 1e-12


def test_noiseless_proxy_equals_signal_and_has_exact_rank_r():
    """No label noise: M_hat = M (X X^T / n) = M, so rank r holds to roundoff (NumPy default tol)."""
    sig = cal.low_rank_signal(M_, N_, S_, 6, gen(1))
    M_hat = cal.proxy_matrices(sig.M, 50, 0.0, gen(2))
    assert (M_hat - sig.M).abs().max() < 1e-12
    assert [np.linalg.matrix_rank(a) for a in M_hat.numpy()] == [3] * 6


def test_label_noise_proxy_adds_iid_gaussian_with_sigma_tau_over_sqrt_n():
    sig = cal.low_rank_signal(M_, N_, S_, 400, gen(1))
    tau, n = 0.3, 64
    resid = (cal.proxy_matrices(sig.M, n, tau, gen(2)) - sig.M).numpy().ravel()
    expected = cal.effective_sigma("proxy", [n], tau)[0]
    assert expected == pytest.approx(tau / 8)
    assert resid.std() == pytest.approx(expected, rel=0.03)
    assert abs(resid.mean()) < 3 * expected / math.sqrt(resid.size)


def test_gaussian_levels_share_draws_and_float32_rounds_the_signal():
    sig = cal.low_rank_signal(M_, N_, S_, 4, gen())
    A = cal.noisy_matrices("gaussian", sig.M, [0.0, 0.1, 0.2], gen(3))
    assert A.shape == (3, 4, M_, N_)
    assert torch.equal(A[0], sig.M)
    assert torch.allclose(A[2] - sig.M, 2 * (A[1] - sig.M), atol=1e-15)
    A32 = cal.noisy_matrices("gaussian", sig.M, [0.0], gen(3), dtype=torch.float32)
    assert A32.dtype == torch.float32 and torch.equal(A32[0], sig.M.float())


# ---------------------------------------------------------------- theory vs simulation
def test_bai_yin_edge_matches_largest_noise_singular_value():
    Z = torch.randn(10, 200, 200, generator=gen(), dtype=torch.float64)
    top = torch.linalg.svdvals(0.5 * Z)[:, 0]
    edge = theory.noise_edge(0.5, 200, 200)
    assert top.mean().item() == pytest.approx(edge, rel=0.03)
    assert (top < 1.03 * edge).all()


def test_outlier_location_above_and_bulk_edge_below_detection_threshold():
    m, n, sigma = 300, 100, 1.0
    thr = theory.detection_threshold(sigma, m, n)
    assert thr == pytest.approx((m * n) ** 0.25)
    sig = cal.low_rank_signal(m, n, (3 * thr,), 8, gen())
    Z = torch.randn(8, m, n, generator=gen(1), dtype=torch.float64)
    top = torch.linalg.svdvals(sig.M + sigma * Z)[:, 0].mean().item()
    assert top == pytest.approx(theory.outlier_location(3 * thr, sigma, m, n), rel=0.02)
    weak = cal.low_rank_signal(m, n, (0.5 * thr,), 8, gen()).M
    top_weak = torch.linalg.svdvals(weak + sigma * Z)[:, 0].mean().item()
    assert theory.outlier_location(0.5 * thr, sigma, m, n) == theory.noise_edge(sigma, m, n)
    assert top_weak == pytest.approx(theory.noise_edge(sigma, m, n), rel=0.03)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 500), n=st.integers(1, 500), sigma=st.floats(1e-3, 1e3))
def test_outlier_location_is_continuous_at_threshold_and_exceeds_s(m, n, sigma):
    thr = theory.detection_threshold(sigma, m, n)
    at = theory.outlier_location(thr * (1 + 1e-9), sigma, m, n)
    assert at == pytest.approx(theory.noise_edge(sigma, m, n), rel=1e-6)
    s = 5 * thr
    assert theory.outlier_location(s, sigma, m, n) > s
    assert theory.outlier_location(s, 0.0, m, n) == pytest.approx(s)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_roundoff_floor_bounds_the_residual_spectrum_of_exact_low_rank(dtype):
    sig = cal.low_rank_signal(48, 32, (4.0, 2.0, 1.0), 50, gen())
    svals = torch.linalg.svdvals(sig.M.to(dtype)).double()
    tail = svals[:, 3] / svals[:, 0]
    floor = theory.roundoff_floor(48, 32, dtype)
    assert floor == 48 * torch.finfo(dtype).eps
    assert (tail < floor).all()  # the floor is an upper bound ...
    assert (tail > cal.FAR_BELOW_ROUNDOFF * floor).all()  # ... and rounding is not exact zero


def test_theory_table_predicted_interval_formula():
    row = theory.theory_table((4.0, 1.0), 48, 32, [0.0, 1e-4, 1.0], torch.float64)
    zero, small, big = row.iloc[0], row.iloc[1], row.iloc[2]
    assert zero.predicted_lo == pytest.approx(2 * 48 * 2.0**-52)
    assert zero.predicted_hi == pytest.approx(0.25 / 2)
    edge = 1e-4 * (math.sqrt(48) + math.sqrt(32))
    s1 = theory.outlier_location(4.0, 1e-4, 48, 32)
    assert small.predicted_lo == pytest.approx(2 * edge / s1)
    assert small.detectable and not big.detectable
    assert big.predicted_lo >= big.predicted_hi  # subthreshold: empty interval


# ---------------------------------------------------------------------- sweep vs NumPy
def test_sweep_matches_numpy_matrix_rank_on_the_same_draws():
    eps = cal.eps_grid(1e-6, 1e-1, per_decade=1)
    kw = dict(m=M_, n=N_, s=S_, levels=[1e-3, 0.05, 0.3], n_draws=20, seed=4)
    result = cal.sweep("gaussian", eps=eps, **kw)
    A, _ = cal.draw("gaussian", **kw)
    ranks = np.array([[[np.linalg.matrix_rank(a, rtol=e) for a in level] for level in A.numpy()] for e in eps.numpy()])
    expected_rate = (ranks == len(S_)).mean(-1).ravel()
    np.testing.assert_allclose(result.summary["recovery_rate"], expected_rate)
    np.testing.assert_allclose(result.summary["rank_var"], ranks.var(-1, ddof=1).ravel())
    svals = np.linalg.svd(A.numpy(), compute_uv=False)
    np.testing.assert_allclose(result.draws["gap"], (svals[..., 2] / svals[..., 3]).ravel(), rtol=1e-10)
    assert set(result.summary) >= {
        "noise_model",
        "noise_level",
        "eps",
        "dtype",
        "recovery_rate",
        "rank_var",
        "gap_median",
        "effective_rank_mean",
        "participation_ratio_mean",
    }
    assert len(result.summary) == len(eps) * 3 and len(result.draws) == 20 * 3


def test_sweep_is_seeded():
    kw = dict(m=M_, n=N_, s=S_, levels=[16, 64], eps=cal.eps_grid(1e-4, 1e-1), n_draws=5, label_noise=0.1)
    a, b = cal.sweep("proxy", seed=3, **kw), cal.sweep("proxy", seed=3, **kw)
    assert a.summary.equals(b.summary) and a.draws.equals(b.draws)


def test_level_summary_one_row_per_level():
    result = cal.sweep("gaussian", m=M_, n=N_, s=S_, levels=[0.0, 0.1], n_draws=10, eps=cal.eps_grid(1e-3, 1e-1))
    table = cal.level_summary(result.draws)
    assert list(table["noise_level"]) == [0.0, 0.1]
    assert (table["effective_rank_q05"] <= table["effective_rank_mean"]).all()
    assert (table["effective_rank_mean"] <= table["effective_rank_q95"]).all()


# ------------------------------------------------------------------------- plateaus
EPS = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]


@pytest.mark.parametrize(
    "rate, lo, hi",
    [
        ([0.0, 0.5, 0.96, 1.0, 0.95, 0.2], 1e-4, 1e-2),  # one plateau; 0.95 itself counts
        ([1.0, 0.9, 1.0, 1.0, 1.0, 0.0], 1e-4, 1e-2),  # the longer of two runs wins
        ([1.0, 1.0, 0.0, 0.0, 0.0, 0.0], 1e-6, 1e-5),  # plateau at the grid's edge
        ([0.0, 0.0, 0.0, 0.97, 0.0, 0.0], 1e-3, 1e-3),  # a single point
    ],
)
def test_recovery_plateau_on_hand_made_curves(rate, lo, hi):
    plateau = cal.recovery_plateau(EPS, rate)
    assert plateau["lo"] == pytest.approx(lo) and plateau["hi"] == pytest.approx(hi)


def test_recovery_plateau_none_when_never_reliable():
    plateau = cal.recovery_plateau(EPS, [0.5, 0.94, 0.9, 0.1, 0.0, 0.0])
    assert math.isnan(plateau["lo"]) and math.isnan(plateau["hi"])


def _summary(rate, sigma, dtype="float64", eps=EPS):
    return pd.DataFrame(
        {
            "noise_model": "gaussian",
            "dtype": dtype,
            "noise_level": sigma,
            "sigma_eff": sigma,
            "eps": eps,
            "recovery_rate": rate,
        }
    )


def test_plateau_table_contains_prediction_only_when_plateau_covers_predicted_grid():
    # sigma = 1e-6, s = (4, 1), m=48, n=32: predicted eps in [~3.1e-6, 0.125] -> grid 1e-5..1e-1
    good = cal.plateau_table(_summary([0, 1, 1, 1, 1, 1], 1e-6), (4.0, 1.0), 48, 32).iloc[0]
    assert good.predicted_grid_lo == 1e-5 and good.predicted_grid_hi == 1e-1
    assert good.predicted_grid_points == 5 and good.contains_prediction
    short = cal.plateau_table(_summary([0, 1, 1, 1, 1, 0.9], 1e-6), (4.0, 1.0), 48, 32).iloc[0]
    assert not short.contains_prediction and short.plateau_hi == 1e-2
    assert short.max_recovery == 1


def test_plateau_table_far_below_roundoff():
    # float32, m=48: roundoff floor 48 * 2^-23 = 5.7e-6, "far below" = eps <= 5.7e-9
    eps = [1e-10, 1e-9, 1e-8, 1e-3, 1e-1]
    t32 = cal.plateau_table(_summary([0.02, 0, 0.5, 1, 1], 0.0, "float32", eps), (4.0, 1.0), 48, 32)
    assert t32.iloc[0].max_recovery_far_below_roundoff == 0.02
    t64 = cal.plateau_table(_summary([1] * 5, 0.0, "float64", eps), (4.0, 1.0), 48, 32)
    assert math.isnan(t64.iloc[0].max_recovery_far_below_roundoff)  # no eps <= 1e-17 on grid


# ------------------------------------------------------------------- input validation
@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: cal.low_rank_signal(0, 4, (1.0,), 3, gen()), "m must be a positive int"),
        (lambda: cal.low_rank_signal(4, 4, (1.0, 2.0), 3, gen()), "s must be positive and non-increasing"),
        (lambda: cal.low_rank_signal(4, 2, (3.0, 2.0, 1.0), 3, gen()), r"s must hold 1..min\(m, n\)"),
        (lambda: cal.low_rank_signal(4, 4, (1.0,), 1, gen()), "n_draws must be an int >= 2"),
        (lambda: cal.whitened_inputs(8, 4, 3, gen()), "n_samples must be an int >= d = 8.*increase n_samples"),
        (lambda: cal.noisy_matrices("uniform", torch.zeros(2, 3, 3), [0.1], gen()), "model must be one of"),
        (lambda: cal.noisy_matrices("gaussian", torch.zeros(2, 3, 3), [-0.1], gen()), "levels \\(sigma\\) must be"),
        (lambda: cal.noisy_matrices("gaussian", torch.zeros(2, 3, 3), [], gen()), "levels must hold"),
        (lambda: cal.proxy_matrices(torch.zeros(2, 3, 3), 8, -1.0, gen()), "label_noise must be"),
        (lambda: theory.roundoff_floor(3, 3, torch.float16), "dtype must be torch.float32 or torch.float64"),
        (lambda: cal.eps_grid(1e-3, 1e-5), "need 0 < lo < hi < 1"),
        (lambda: cal.eps_grid(1e-5, 1e-1, per_decade=0), "per_decade must be a positive int"),
        (lambda: theory.theory_table((1.0,), 3, 3, 0.1, torch.float64, floor_margin=0.5), "floor_margin must be >= 1"),
        (lambda: cal.recovery_plateau(EPS, [1] * 6, level=1.5), "level must lie in"),
        (lambda: cal.recovery_plateau(EPS[::-1], [1] * 6), "eps must be strictly increasing"),
        (
            lambda: cal.sweep("gaussian", m=3, n=3, s=(1.0,), levels=[0.1], n_draws=2, eps=torch.tensor([1e-2, 1e-3])),
            "eps must be a strictly increasing.*eps_grid",
        ),
    ],
)
def test_bad_input_raises_value_error_naming_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
