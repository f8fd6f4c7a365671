"""theory.power's closed forms against Monte Carlo: the planted deviation at the mdd is rejected with
probability 0.95 (within the Monte Carlo floor of tests/power.py), including few degrees of freedom."""

from __future__ import annotations

import numpy as np
import pytest

from dlncheck.theory import power
from tests import power as mc


@pytest.mark.parametrize("df, quantile", [(1, 190.98), (2, 17.28), (7, 3.5)])
def test_band_mdd_is_rejected_with_95_percent(df, quantile):
    se, allowance = 0.3, 0.1
    mdd = power.band_mdd(se, quantile, df, allowance)

    def rejects(rng):
        estimate = mdd + se * rng.standard_normal()
        se_hat = se * np.sqrt(rng.chisquare(df) / df)
        return abs(estimate) > quantile * se_hat + allowance

    rate = mc.rejection_rate(rejects, seeds=4000)
    assert abs(rate - power.POWER) < 0.02, f"df {df}: rejection {rate:.3f} at the mdd {mdd:.4g}"


def test_variance_factor_mdd_is_rejected_with_95_percent():
    nu, hi = 7, 2.3
    k = power.variance_factor_mdd(hi, nu)
    rate = mc.rejection_rate(lambda rng: k * rng.chisquare(nu) / nu > hi, seeds=4000)
    assert abs(rate - power.POWER) < 0.02, f"rejection {rate:.3f} at the factor {k:.3g}"
