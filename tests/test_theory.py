"""Theory against independent references: closed form vs ODE, escape-time integrals and asymptotics."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from dlncheck import theory


@given(s=st.floats(0.3, 5.0), u0=st.floats(1e-6, 1e-2))
@settings(max_examples=20, deadline=None)
def test_saxe_closed_form_solves_the_ode(s, u0):
    t = np.linspace(0, 3 * math.log(s / u0) / s, 50)
    ref = solve_ivp(lambda _, u: 2 * u * (s - u), (0, t[-1]), [u0], t_eval=t, rtol=1e-12, atol=1e-15).y[0]
    torch.testing.assert_close(theory.mode_trajectory([s], u0, t, 2)[0], torch.from_numpy(ref), rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("depth", [3, 4])
def test_deep_mode_trajectory_solves_u_equation(depth):
    s, u0, t = 2.0, 1e-3, np.linspace(0, 20, 40)
    ref = solve_ivp(
        lambda _, u: depth * u ** (2 - 2 / depth) * (s - u), (0, 20), [u0], t_eval=t, rtol=1e-12, atol=1e-15
    ).y[0]
    torch.testing.assert_close(
        theory.mode_trajectory([s], u0, t, depth)[0], torch.from_numpy(ref), rtol=1e-7, atol=1e-12
    )


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_escape_time_is_where_the_trajectory_reaches_the_fraction(depth):
    s, u0 = np.array([3.0, 1.5]), 1e-4
    t_esc = theory.escape_time(s, u0, depth)
    u = torch.stack([theory.mode_trajectory([sv], u0, [float(t)], depth)[0, 0] for sv, t in zip(s, t_esc)])
    torch.testing.assert_close(u, torch.from_numpy(theory.ESCAPE_FRACTION * s), rtol=1e-6, atol=0)
    assert theory.escape_order(s, u0, depth).tolist() == [0, 1]


@pytest.mark.parametrize("depth", [2, 3])
def test_escape_time_asymptotics(depth):
    """The exact escape time approaches the small-u0 law: ratio -> 1 as u0 -> 0."""
    ratios = [
        float(theory.escape_time([2.0], u0, depth)[0] / theory.escape_time_asymptotic([2.0], u0, depth)[0])
        for u0 in (1e-6, 1e-12)
    ]
    assert abs(ratios[1] - 1) < abs(ratios[0] - 1) and abs(ratios[1] - 1) < 0.1


def test_discrete_map_converges_to_s_and_zero_mode_decays():
    u = theory.discrete_gd_modes([2.0, 0.0], 0.1, 0.05, 2000, 2)
    assert abs(u[0, -1] - 2.0) < 1e-10 and 0 < u[1, -1] < u[1, 0]


def test_aligned_movement_matches_engine_and_starts_at_zero():
    from dlncheck import presets
    from dlncheck.engine._train import train

    exp = presets.experiment("saddle", "fullrank", 2, sgd_runs=0)
    traj = train(exp, checkpoints=[0, exp.steps // 3, exp.steps])
    t = traj.times[traj.checkpoint_steps]
    flow = theory.aligned_movement(exp.teacher.s, exp.init.scale, t, 2, min(exp.widths))
    assert flow[0] == 0 and flow[-1] > 100
    torch.testing.assert_close(traj.relative_movement()[0], flow, rtol=0.02, atol=0)


@pytest.mark.parametrize("s", [0.5, 1.0, 4.0])
def test_escape_window_covers_the_logistic_rise_at_depth_2(s):
    """theory.escape_windows: the 5%-95% rise of Saxe's L = 2 solution lies inside [t_mid - D, t_mid + D]."""
    u0 = 1e-6
    t = np.linspace(0, 20 / s, 200_001)
    u = theory.mode_trajectory([s], u0, t, 2)[0].numpy()
    t05, t50, t95 = (t[np.argmax(u >= f * s)] for f in (0.05, 0.5, 0.95))
    ((lo, hi),) = theory.escape_windows(torch.tensor([t50]), torch.tensor([s]), 2).tolist()
    assert lo <= t05 and t95 <= hi
    assert hi - lo == pytest.approx(3 / s) and (t95 - t05) == pytest.approx(np.log(361) / (2 * s), rel=1e-3)
