"""Power of the regimes family's saddle check (claims/test_regimes.py: flow_agreement): one SGD
run's escape delayed by d steps, planted in its loss curve (held on the first inner plateau for d
steps, the rest of the curve shifted), read through the claim's dwell and flow readings.

Deterministic: the planted run's dwell grows by d lr / T; it is rejected once that exceeds its slack
rtol x flow dwell + grid - (dwell - flow dwell), the mdd the claim reports as mdd_dwell."""

from __future__ import annotations

import torch

from claims.test_regimes import flow_agreement
from dlncheck import theory
from dlncheck.measure import events
from dlncheck.measure.events import DWELL_RTOL
from dlncheck.theory import sgd, tolerances
from tests import power

RUN = 1


def _golden():
    exp, traj = power.golden(depth=2)
    s, L, times = exp.teacher.s, exp.depth, traj.times
    inner = theory.stage_plateaus(s)[1:-1]
    flow = theory.aligned_loss(s, exp.init.scale**L, times, L)
    flow_dwell = events.dwell_times(flow[None], times, inner, DWELL_RTOL)[0] / times[-1]
    final = traj.relative_movement()[:, -1]
    flow_move = float(theory.aligned_movement(s, exp.init.scale, times[-1:], L, min(exp.widths))[0])
    move_err = ((final - flow_move).abs() / flow_move).max().item()
    rtol = tolerances.aligned_flow_rtol(sgd.truncation_tolerance(exp))
    grid = 2 * float(torch.diff(times).max()) / float(times[-1])
    return traj.loss, times, inner, flow_dwell, move_err, rtol, grid


def _delayed(loss, times, inner, steps):
    """Run RUN held for ``steps`` steps at the middle of its first inner plateau, the rest shifted."""
    near = ((loss[RUN] - inner[0]).abs() <= DWELL_RTOL * inner[0]).nonzero().flatten()
    i = int(near[len(near) // 2])
    planted = loss.clone()
    planted[RUN] = torch.cat([loss[RUN, :i], loss[RUN, i].repeat(steps), loss[RUN, i : loss.shape[1] - steps]])
    return planted


def _holds(loss, times, inner, flow_dwell, move_err, rtol, grid):
    dwell = events.dwell_times(loss, times, inner, DWELL_RTOL) / times[-1]
    return flow_agreement(dwell, flow_dwell, move_err, rtol, grid), dwell


def test_power_regimes_rejects_an_escape_delay_beyond_the_dwell_band_and_accepts_one_well_below():
    loss, times, inner, flow_dwell, move_err, rtol, grid = _golden()
    holds, dwell = _holds(loss, times, inner, flow_dwell, move_err, rtol, grid)
    assert holds, "the golden run dwells on each plateau as gradient flow does"
    slack = float(rtol * flow_dwell[0] + grid - (dwell[RUN, 0] - flow_dwell[0]))  # fraction of T
    dt = float(times[1] - times[0])
    for fraction, rejected in ((1.05 * slack, True), (slack / 4, False)):
        steps = round(fraction * float(times[-1]) / dt)
        planted = _delayed(loss, times, inner, steps)
        assert _holds(planted, times, inner, flow_dwell, move_err, rtol, grid)[0] != rejected, (
            f"escape delayed by {steps} steps ({fraction:.3g} of the run; slack {slack:.3g})"
        )
    print(f"regimes (saddle) mdd {slack:.3g} of the run (rtol {rtol:.3g}, grid {grid:.3g})")
