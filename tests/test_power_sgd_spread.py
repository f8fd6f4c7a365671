"""Power of the sgd_spread family's check (claims/test_sgd_spread.py: spread_check): the SGD runs'
variance of sigma_1 at mid-training scaled by a planted factor k.

The golden run's own variance stands in for the linear-noise prediction (so k = 1 agrees exactly);
its rows go through the same chi-square interval as the claim's."""

from __future__ import annotations

import numpy as np
import pandas as pd

from claims.test_sgd_spread import measured, spread_check
from dlncheck.theory import power
from tests import power as golden_runs


def _golden():
    exp, traj = golden_runs.golden(depth=2)
    _, strengths = measured(traj, traj.checkpoint_times.numel() // 2, exp.teacher.rank)  # (S, r)
    return strengths[:, 0], exp.sgd_runs


def _check(var, predicted, runs):
    row = {"measured": var, "predicted": predicted, "cov": np.array([[predicted]]), "asserted": True}
    return spread_check(pd.DataFrame([row]), runs).iloc[0]


def test_power_sgd_spread_rejects_a_variance_factor_above_the_interval_and_accepts_one_well_below():
    sigma1, runs = _golden()
    v = float(sigma1.var(ddof=1))
    row = _check(v, v, runs)
    assert row.ok, "the golden run agrees with its own variance"
    assert not _check(1.05 * row.hi * v, v, runs).ok, f"variance x {1.05 * row.hi:.3g} (interval hi {row.hi:.3g})"
    assert _check((1 + (row.hi - 1) / 4) * v, v, runs).ok, "variance scaled a quarter of the way to hi"


def test_power_sgd_spread_rejects_at_its_mdd_with_95_percent():
    sigma1, runs = _golden()
    v = float(sigma1.var(ddof=1))
    mdd = float(_check(v, v, runs).mdd_factor)

    def draw(k):
        return lambda rng: not _check(float((np.sqrt(k * v) * rng.standard_normal(runs)).var(ddof=1)), v, runs).ok

    at_mdd = golden_runs.rejection_rate(draw(mdd))
    assert at_mdd >= golden_runs.MC_FLOOR, f"rejection at the mdd factor {mdd:.3g}: {at_mdd:.3f}"
    assert mdd == power.variance_factor_mdd(_check(v, v, runs).hi, runs - 1)
    print(f"sgd_spread mdd variance factor {mdd:.3g} (S = {runs}): rejection {at_mdd:.3f}")
