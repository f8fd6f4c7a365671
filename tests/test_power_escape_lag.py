"""Power of the escape_lag family's check (theory.escape_lag.lag_checks, as claims/test_escape_lag.py
calls it): a delayed SGD escape of a stated size."""

from __future__ import annotations

import math

import numpy as np

from dlncheck.measure import events
from dlncheck.theory import escape_lag, power, sgd
from tests import power as golden_runs

ESCAPE = 1  # the planted delay goes on escape 2 (0-based 1)


def _golden():
    """Per-run lags (K escapes, S runs) of the golden run, the lag they agree with and h."""
    exp, traj = golden_runs.golden(depth=2)
    t = events.escape_times(traj.loss, traj.times, exp.teacher.s, traj.loss_offset)  # (R, K)
    lags = (t[1:] - t[0]).T
    return lags, lags.mean(1), sgd.truncation_tolerance(exp)


def _rejects(lags, predicted, h) -> bool:
    checks = escape_lag.lag_checks(lags, predicted, h)
    return not bool(checks["size"][ESCAPE] and checks["sign"][ESCAPE])


def test_power_escape_lag_rejects_a_delay_above_the_band_and_accepts_one_well_below():
    lags, p, h = _golden()
    band = float(escape_lag.lag_checks(lags, p, h)["band"][ESCAPE])
    assert not _rejects(lags, p, h), "the golden run (lag = its own mean) must pass"
    delay = np.zeros_like(lags)
    for size, rejected in ((1.05 * band, True), (0.25 * band, False)):
        delay[ESCAPE] = size
        assert _rejects(lags + delay, p, h) == rejected, f"escape delayed by {size:.3g} (band {band:.3g})"


def test_power_escape_lag_rejects_at_its_mdd_with_95_percent():
    lags, p, h = _golden()
    S = lags.shape[1]
    sd = lags.std(1, ddof=1)
    t = escape_lag.t_quantile(S, lags.shape[0])
    mdd = power.band_mdd(float(sd[ESCAPE]) / math.sqrt(S), t, S - 1, h * abs(float(p[ESCAPE])))

    def draw(size):
        def rejects(rng):
            drawn = p[:, None] + sd[:, None] * rng.standard_normal(lags.shape)  # lags as the golden runs spread
            drawn[ESCAPE] += size  # every SGD run's escape delayed by ``size``
            return _rejects(drawn, p, h)

        return rejects

    at_mdd = golden_runs.rejection_rate(draw(mdd))
    below = golden_runs.rejection_rate(draw(mdd / 4))
    assert at_mdd >= golden_runs.MC_FLOOR, f"rejection at the mdd {mdd:.3g}: {at_mdd:.3f} < {golden_runs.MC_FLOOR:.3f}"
    assert below <= 0.5, f"a delay of mdd / 4 = {mdd / 4:.3g} is rejected in {below:.3f} of seeds"
    print(
        f"escape_lag mdd {mdd:.4g} (t units; sd {sd[ESCAPE]:.3g}, S {S}): rejection {at_mdd:.3f}, at mdd/4 {below:.3f}"
    )
