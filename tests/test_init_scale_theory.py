"""dlncheck.theory.init_scale and dlncheck.measure.escape_fits against independent references: the
decoupled ODE's quadrature (escape_time), the engine's GD from an aligned init, synthetic laws for
the fits, and power tests (a wrong exponent or a wrong law must fail the band)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dlncheck import Experiment, Init, Teacher, theory, train
from dlncheck.measure import escape_fits, events
from dlncheck.theory import init_scale as th


@pytest.mark.parametrize("depth", [3, 4, 5])
def test_constant_and_offset_give_the_decoupled_escape_time(depth):
    """t(u0) = C u0^{-(L-2)/L} + D + O(u0^{2/L}) against the quadrature of theory.escape_time."""
    for s in (4.0, 1.0, 0.5):
        C, D = th.escape_constant(s, depth), th.escape_offset(s, depth)
        for u0 in (1e-9, 1e-12):
            t = float(theory.escape_time([s], u0, depth)[0])
            assert t - C * u0 ** (-(depth - 2) / depth) == pytest.approx(D, abs=5 * u0 ** (2 / depth) / s**2 + 1e-7)


def test_l2_constant_and_offset_are_saxe():
    s, f = 2.0, theory.ESCAPE_FRACTION
    for a0 in (1e-3, 1e-5):
        exact = math.log((f * s / a0**2) * (s - a0**2) / (s - f * s)) / (2 * s)
        approx = th.escape_constant(s, 2) * math.log(1 / a0) + th.escape_offset(s, 2)
        assert exact == pytest.approx(approx, abs=a0**2)
    assert th.flow_exponent(2) == 1 and th.flow_exponent(4) == -2
    with pytest.raises(ValueError, match="L >= 2"):
        th.flow_exponent(1)


def test_decoupled_escape_times_are_the_engine_gd_of_an_aligned_init():
    teacher = Teacher(3, 3, (3.0, 1.0), seed=1)
    a0s = [0.3, 0.15]
    got = th.decoupled_escape_times(teacher.s.numpy(), a0s, 3, 0.01)  # with the decaying s = 0 mode
    for i, a0 in enumerate(a0s):
        exp = Experiment(teacher, 3, 3, Init("aligned", a0), 0.01, int(got[i, -1] / 0.01) + 50, 3, 6, 0)
        traj = train(exp)
        np.testing.assert_allclose(events.escape_times(traj.loss, traj.times, teacher.s)[0], got[i], rtol=1e-10)


def _power_times(a0s, C, p, D):
    return C * np.asarray(a0s) ** p + D


A0 = 0.2 * 2.0 ** -np.arange(5)


def test_power_law_fit_recovers_the_exponent_and_the_offset():
    fit = escape_fits.power_law_fit(A0, _power_times(A0, 0.7, -1.0, -0.3) * (1 + 1e-4 * np.cos(np.arange(5))))
    assert fit.exponent == pytest.approx(-1.0, abs=5e-3) and fit.offset == pytest.approx(-0.3, abs=0.05)
    assert fit.dof == 2 and fit.se < 5e-3
    short = escape_fits.power_law_fit(A0[:3], _power_times(A0[:3], 0.7, -1.0, 0.0))
    assert math.isnan(short.exponent) and short.dof == 0  # no spare scale: not resolved
    dropped = escape_fits.power_law_fit(A0, np.append(_power_times(A0[:4], 0.7, -2.0, 0.1), np.inf))
    assert dropped.n_points == 4 and dropped.exponent == pytest.approx(-2.0, abs=1e-6)


def test_log_law_fit_recovers_the_coefficient():
    s = 2.0
    fit = escape_fits.log_law_fit(A0, (1 / s) * np.log(1 / A0) + 0.4, s)
    assert fit.exponent == pytest.approx(1.0, abs=1e-12) and fit.dof == 3


@pytest.mark.parametrize("depth", [2, 3])
def test_exponent_band_has_power(depth):
    """The band around the decoupled prediction accepts the law and rejects an exponent off by 0.5 or a
    law of the other kind (a power law at L = 2, a logarithmic one at L = 3)."""
    s, lr = 2.0, 0.01
    fit = escape_fits.escape_law_fit(depth)
    p_gd, delta = th.decoupled_exponent([s], A0, depth, lr, fit)
    times = th.decoupled_escape_times([s], A0, depth, lr)[:, 0]

    def passes(t):
        f = fit(A0, t, s)
        band = float(th.exponent_band(f.se, f.dof, 6, delta[0]))
        return abs(f.exponent - p_gd[0]) <= band < th.RESOLVED

    assert passes(times)
    if depth == 2:
        assert not passes(times * 1.5)  # coefficient 1.5 / s: exponent off by 0.5
        assert not passes(0.05 * A0**-1.0)  # a power law, not logarithmic
    else:
        assert not passes(_power_times(A0, 1 / s, -1.5, -0.5))
        assert not passes(np.log(1 / A0) / s + 1.0)  # logarithmic, not a power
    assert np.isinf(th.exponent_band(0.1, 0, 6, 0.0))


def test_alignment_exponent_is_one_minus_the_next_ratio():
    np.testing.assert_allclose(th.alignment_exponent([4.0, 2.0, 1.0, 0.0]), [0.5, 0.5, 1.0])
    np.testing.assert_allclose(th.alignment_exponent([4.0, 2.0, 2.0, 1.0]), [0.5, 0.5, 0.5, 1.0])  # a block


def test_rho_at_t_diag_shrinks_at_the_derived_rate():
    """Item 4b at L = 2 on the engine's GD (every step a checkpoint): at t_diag of mode 1 the entry of row 1
    in the column of a later mode c is ~ a0^{1 - s_c/s_1}: 1/2 for s_c = 1 of s_1 = 2, 1 for the null mode."""
    from dlncheck import spectra
    from dlncheck.measure import modes

    teacher, a0s, entries = Teacher(3, 3, (2.0, 1.0), seed=5), 0.02 * 4.0 ** -np.arange(4), []
    for a0 in a0s:
        steps = int(math.log(2 / a0**2) / 4 / 0.01) + 300
        exp = Experiment(teacher, 2, 8, Init("gaussian", a0 / math.sqrt(8), seed=1), 0.01, steps, 3, 6, 0)
        traj = train(exp, checkpoints=list(range(steps + 1)))
        w = modes.mode_coefficients(spectra.end_to_end(traj.weights), teacher.U, teacher.V)[0]
        t_diag = modes.crossing_times(w, teacher.s, traj.checkpoint_times)["t_diag"][0]
        entries.append(w[int(torch.nonzero(traj.checkpoint_times == t_diag)[0, 0]), 0, 1:].abs().numpy())
    entries = np.array(entries)
    assert escape_fits.loglog_slope(a0s, entries[:, 0]).exponent == pytest.approx(
        th.alignment_exponent([2.0, 1.0])[0], abs=0.05
    )
    assert escape_fits.loglog_slope(a0s, entries[:, 1]).exponent == pytest.approx(1.0, abs=0.05)
