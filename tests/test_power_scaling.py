"""Power of the scaling family's slope check (claims/test_scaling.py: slope_holds): the exponent
of d_sigma against lr c_B off by a planted d, on a golden engine sweep (saddle-lowrank-L2: the
claim's 4 lr x 2 batch sizes, 8 SGD runs each), including the issue's d = 0.3.

Planting: every per-run discrepancy of configuration c is multiplied by x_c^d, which shifts the
fitted slope and its whole bootstrap interval by exactly d (theory.power item 4)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from claims.test_scaling import BATCH_SIZES, slope_band, slope_holds
from dlncheck import presets, train
from dlncheck.measure import lr_sweep, scaling
from dlncheck.theory import power, sgd

NAME = "d_sigma"


@functools.cache
def _golden():
    points = lr_sweep.sweep_points(presets.experiment("saddle", "lowrank", depth=2), BATCH_SIZES, lr_sweep.LR_FRACTIONS)
    trajs = lr_sweep.run_sweep(points, train=train)
    predicted, var, _ = sgd.EXPONENTS[NAME]
    x = np.array([scaling.noise_variable(var, p.experiment) for p in points])
    return x, np.stack([scaling.features(t, NAME) for t in trajs]), predicted, slope_band(points)


def _fit(x, values, d):
    return lr_sweep.fit_loglog(x, values * x[:, None, None] ** d, scaling.STATISTICS[NAME])


@pytest.mark.parametrize("direction", [+1, -1])
def test_power_scaling_rejects_an_exponent_off_beyond_the_band_and_accepts_one_well_below(direction):
    x, values, predicted, band = _golden()
    fit = _fit(x, values, 0.0)
    assert slope_holds(fit, predicted, band), f"golden sweep: slope {fit.slope:.3f} [{fit.lo:.3f}, {fit.hi:.3f}]"
    mdd = power.slope_mdd(fit.lo, fit.hi, predicted, band)
    shifted = _fit(x, values, direction * 1.02 * mdd)
    assert abs(shifted.lo - fit.lo - direction * 1.02 * mdd) < 1e-9, "the planted exponent shifts the interval"
    assert not slope_holds(shifted, predicted, band), f"exponent off by {direction * 1.02 * mdd:.3g}"
    assert slope_holds(_fit(x, values, direction * mdd / 4), predicted, band), f"off by {direction * mdd / 4:.3g}"
    print(f"scaling ({NAME}) mdd {mdd:.3g} (band {band:.3g}, interval [{fit.lo:.3f}, {fit.hi:.3f}])")


def test_power_scaling_rejects_the_issue_s_exponent_off_by_0_3():
    x, values, predicted, band = _golden()
    for d in (0.3, -0.3):
        assert not slope_holds(_fit(x, values, d), predicted, band), f"exponent off by {d}"
