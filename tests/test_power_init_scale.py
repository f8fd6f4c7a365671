"""Power of the init_scale family's check (claims/test_init_scale.py: exponent_holds) at L = 3: GD's
escape times against the init scale a0 from the claim's own golden engine pass (_pass1, quick grid,
aligned init, first escape) with the exponent of t = C a0^p + D off by a planted d.

Planting: t' = (t - D) (a0 / a0_max)^d + D with the fit's own D keeps the law's form and its
residuals and moves the fitted exponent by d. Rejected beyond the band t SE + |delta| (the
fit's SE is the engine's, tiny for the aligned init, so the mdd is about |delta|, the claim's
mdd_exponent); the issue's d = 0.3 is rejected, d = mdd / 4 accepted."""

from __future__ import annotations

import functools
import types

import pytest

from claims.test_init_scale import _pass1, exponent_holds
from dlncheck import presets, train
from dlncheck.measure import escape_fits
from dlncheck.theory import escape_lag, power
from dlncheck.theory import init_scale as law

DEPTH, INIT, ESCAPE = 3, 0, 0  # the aligned init (first of _inits), the first escape


@functools.cache
def _golden():
    exp = presets.experiment("saddle", "lowrank", depth=DEPTH)
    a0s, _, _, T = _pass1(exp, "quick", types.SimpleNamespace(ensemble=train))
    s = float(escape_lag.escape_values(exp.teacher.s)[ESCAPE])
    fit = escape_fits.escape_law_fit(DEPTH)
    p_gd, delta = law.decoupled_exponent(exp.teacher.s.numpy(), a0s, DEPTH, exp.lr, fit)
    return a0s, T[:, INIT, ESCAPE], s, fit, float(p_gd[ESCAPE]), float(delta[ESCAPE])


def _holds(d):
    a0s, t, s, fit, p, delta = _golden()
    D = fit(a0s, t, s).offset
    f = fit(a0s, (t - D) * (a0s / a0s[0]) ** d + D, s)
    return exponent_holds(f, p, delta, 1)[0], f


@pytest.mark.parametrize("d", [0.3, -0.3])
def test_power_init_scale_rejects_the_issue_s_exponent_off_by_0_3(d):
    assert _holds(0.0)[0], "the golden GD escape times follow the decoupled law"
    assert not _holds(d)[0], f"exponent off by {d}"


def test_power_init_scale_rejects_just_above_its_mdd_and_accepts_well_below():
    a0s, t, s, fit, p, delta = _golden()
    f = fit(a0s, t, s)
    mdd = power.band_mdd(f.se, float(law.exponent_band(1.0, f.dof, 1, 0.0)), f.dof, abs(delta))
    mdd += abs(f.exponent - p)  # the golden fit's own distance from the prediction
    assert not _holds(1.05 * mdd)[0], f"exponent off by 1.05 x mdd = {1.05 * mdd:.3g}"
    assert _holds(mdd / 4)[0], f"exponent off by {mdd / 4:.3g}"
    print(f"init_scale mdd {mdd:.3g} (SE {f.se:.3g}, delta {delta:.3g}, dof {f.dof})")
