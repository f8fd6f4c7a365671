"""The lazy regime's width law: the fit of measure.width_fits against exact data and an independent
least-squares reference, the engine's per-layer movement against NumPy, and the claim's power."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from dlncheck.config.experiment import Experiment, Init, Teacher
from dlncheck.engine import train
from dlncheck.measure import width_fits
from dlncheck.theory import lazy_width

WIDTHS = np.array([64.0, 128, 256, 512, 1024])


def _law(p, c=0.5, A=3.0, widths=WIDTHS):
    return A * widths**p * np.exp(c * widths**-0.5)


@given(p=st.floats(-1.5, 0.5), c=st.floats(-3, 3), log_a=st.floats(-5, 5))
@settings(max_examples=40, deadline=None)
def test_fit_recovers_the_law_exactly(p, c, log_a):
    m = np.repeat(_law(p, c, np.exp(log_a))[:, None], 3, axis=1)
    m[:, 1] *= 1 + 1e-9  # a residual, so the standard error is defined
    fit = width_fits.width_law_fit(WIDTHS, m)
    assert fit.exponent == pytest.approx(p, abs=1e-6)
    assert fit.offset == pytest.approx(c, abs=1e-4)
    assert fit.dof == 15 - 3


def test_standard_error_matches_scipy_when_the_correction_is_known():
    """With c fixed, the model is a straight line in ln h: scipy.stats.linregress on ln m - c h^-1/2."""
    rng = np.random.default_rng(1)
    m = _law(-0.5, 0.0)[:, None] * np.exp(0.05 * rng.standard_normal((5, 8)))
    h = np.repeat(WIDTHS, 8)
    ref = stats.linregress(np.log(h), np.log(m.ravel()))
    X = np.stack([np.ones_like(h), np.log(h)], 1)
    beta, *_ = np.linalg.lstsq(X, np.log(m.ravel()), rcond=None)
    assert beta[1] == pytest.approx(ref.slope, rel=1e-12)
    fit = width_fits.width_law_fit(WIDTHS, m)  # three parameters: a wider interval than the line's
    assert fit.se > ref.stderr


def test_unresolved_with_two_widths():
    fit = width_fits.width_law_fit([64, 128], np.ones((2, 4)))
    assert np.isnan(fit.exponent) and fit.se == np.inf
    with pytest.raises(ValueError, match="widths"):
        width_fits.width_law_fit([64, 128], np.ones(2))


def test_layer_movement_matches_numpy():
    exp = Experiment(
        Teacher(4, 3, (2.0, 1.0)), 3, 5, Init("lecun", 1.0), lr=0.05, steps=20, batch_size=5, n_samples=20, sgd_runs=2
    )
    traj = train(exp, checkpoints=3)
    got = traj.layer_movement().numpy()
    for l, (w, w0) in enumerate(zip(traj.weights, traj.initial_weights)):
        w, w0 = w.numpy(), w0.numpy()
        ref = np.linalg.norm(w - w0, axis=(-2, -1)) / np.linalg.norm(w0)
        np.testing.assert_allclose(got[..., l], ref, rtol=1e-12)
    assert torch.all(traj.layer_movement()[:, 0] == 0)


@pytest.mark.parametrize("inits", [8, 32])
def test_power_lazy_width(inits):
    """Planted exponents: the claim's check (width_law_check) accepts p = -1/2 at about its level and
    rejects p = -1/2 +- mdd with probability >= 0.95 (Monte Carlo over seeds, 400 draws: a 0.95 rate
    reads >= 0.92 with probability > 0.99). The spread is the measured one: 5-10 % per init
    (quick tier, ntk-lowrank-L2/L3)."""
    rng = np.random.default_rng(0)
    draws, spread = 400, 0.08

    def sample(p):
        return _law(p, 0.3)[:, None] * np.exp(spread * rng.standard_normal((len(WIDTHS), inits)))

    se = np.median([width_fits.width_law_fit(WIDTHS, sample(-0.5)).se for _ in range(50)])
    mdd = lazy_width.min_detectable(se, len(WIDTHS) * inits - 3)
    accept = np.mean([width_fits.width_law_check(WIDTHS, sample(-0.5))[2] for _ in range(draws)])
    assert accept >= 0.92
    for sign in (1, -1):
        reject = np.mean([not width_fits.width_law_check(WIDTHS, sample(-0.5 + sign * mdd))[2] for _ in range(draws)])
        assert reject >= 0.92, (sign, mdd, reject)
    off_by = np.mean([not width_fits.width_law_check(WIDTHS, sample(-0.2))[2] for _ in range(draws)])
    assert off_by >= (0.92 if mdd <= 0.3 else 0.0)
