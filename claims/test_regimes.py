"""Regime check: every preset shows the regime it is named after.

Per case: loss against log time with the predicted plateau levels P_k = 0.5 sum_{a>k} s_a^2
(theory.stage_plateaus), and the relative weight movement ||theta_t - theta_0|| / ||theta_0||.
Dwell on plateau k = time with |loss - P_k| <= DWELL_RTOL * P_k (events.dwell_times), as a
fraction of the training time, for the plateaus strictly between the start and the solution.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from claims import expectations
from claims.expectations import (
    DWELL_FACTOR,
    DWELL_RTOL,
    MIN_THEORY_DWELL,
    MOVEMENT_RTOL,
    NTK_MAX_DWELL,
    NTK_MOVEMENT,
    SADDLE_MOVEMENT,
)
from dlncheck import events, presets, stats, theory
from dlncheck.report import plots

CHECKPOINTS = 30


def _final_movement(cache, preset, regime, teacher, depth):
    traj = cache(preset(regime, teacher, depth), checkpoints=CHECKPOINTS)
    return traj.relative_movement()[:, -1]


@pytest.mark.parametrize("regime, teacher, depth", expectations.cases("regimes"))
def test_regime(regime, teacher, depth, preset, trajectory_cache, claim):
    case = (regime, teacher, depth)
    exp = preset(regime, teacher, depth)
    traj = trajectory_cache(exp, checkpoints=CHECKPOINTS)
    s, times = exp.teacher.s, traj.times
    plateaus = theory.stage_plateaus(s)
    inner = plateaus[1:-1]
    dwell = events.dwell_times(traj.loss, times, inner, DWELL_RTOL) / times[-1]       # (R, n)
    movement = traj.relative_movement()                                              # (R, K)
    flow = theory.aligned_loss(s, exp.init.scale ** depth, times, depth) if regime == "saddle" else None
    flow_dwell = events.dwell_times(flow[None], times, inner, DWELL_RTOL)[0] / times[-1] if flow is not None else None

    _figure(claim, exp, traj, plateaus, movement, flow, case)
    rows = [{"run": r, "method": "GD" if r == 0 else "SGD", "plateau": k + 1, "level": float(inner[k]),
             "dwell_fraction": float(dwell[r, k]),
             "flow_dwell_fraction": float(flow_dwell[k]) if flow_dwell is not None else np.nan,
             "final_movement": float(movement[r, -1])}
            for r in range(traj.runs) for k in range(len(inner))]
    claim.table(pd.DataFrame(rows), "dwell_and_movement", caption="Plateau dwell (fraction of run) and movement per "
                                                                  "run")

    final = movement[:, -1]
    numbers = dict(min_dwell=dwell.min().item() if dwell.numel() else None,
                   max_dwell=dwell.max().item() if dwell.numel() else None,
                   movement_min=final.min().item(), movement_max=final.max().item())
    if regime == "saddle":
        ratio = dwell / flow_dwell
        flow_move = float(theory.aligned_movement(s, exp.init.scale, times[-1:], depth, min(exp.widths))[0])
        move_err = ((final - flow_move).abs() / flow_move).max().item()
        holds = bool((flow_dwell >= MIN_THEORY_DWELL).all() and (ratio >= DWELL_FACTOR[0]).all()
                     and (ratio <= DWELL_FACTOR[1]).all() and (final >= SADDLE_MOVEMENT).all()
                     and move_err <= MOVEMENT_RTOL)
        numbers |= dict(flow_dwell=flow_dwell.tolist(), dwell_ratio_min=ratio.min().item(),
                        dwell_ratio_max=ratio.max().item(), flow_movement=flow_move, movement_rel_err=move_err)
        observed = (f"dwell/flow in [{ratio.min():.2f}, {ratio.max():.2f}], flow dwell "
                    f"{[round(v, 3) for v in flow_dwell.tolist()]}, movement {final.min():.3g}-{final.max():.3g} "
                    f"(flow {flow_move:.3g}, rel. err {move_err:.1e})")
    elif regime == "ntk":
        bound = NTK_MOVEMENT / exp.widths[1] ** 0.5
        holds = bool((dwell < NTK_MAX_DWELL).all() and (final <= bound).all())
        numbers |= dict(movement_bound=bound)
        observed = f"max dwell {dwell.max():.3f}, movement <= {final.max():.3g} (bound {bound:.3g})"
    else:
        lazy = _final_movement(trajectory_cache, preset, "ntk", teacher, depth).max()
        rich = _final_movement(trajectory_cache, preset, "saddle", teacher, depth).min()
        holds = bool((final > lazy).all() and (final < rich).all())
        numbers |= dict(ntk_movement=lazy.item(), saddle_movement=rich.item())
        observed = (f"movement {final.min():.3g}-{final.max():.3g} vs ntk {lazy:.3g}, saddle {rich:.3g}; "
                    f"max dwell {dwell.max():.3f}")
    p = expectations.PREDICTIONS["regimes"][regime]
    claim.verdict(prediction=p.prediction, observed=observed, holds=holds, exploratory=p.exploratory, **numbers)
    assert holds, f"{presets.case_id(*case)} does not show its regime: {observed} (predicted: {p.prediction})"


def _figure(claim, exp, traj, plateaus, movement, flow, case):
    fig, (ax_loss, ax_move) = plots.figure(1, 2, size=(10, 3.8))
    t = traj.times[1:]
    sgd = traj.loss[1:, 1:]
    if len(sgd):
        plots.band(ax_loss, t, stats.mean(sgd, dim=0), sgd.min(0).values, sgd.max(0).values,
                   label=f"SGD mean, min-max band ({len(sgd)} runs)", color=plots.SGD_COLOR)
    ax_loss.plot(t.numpy(), traj.loss[0, 1:].numpy(), color=plots.GD_COLOR, label="GD")
    if flow is not None:
        ax_loss.plot(t.numpy(), flow[1:].numpy(), color="tab:blue", linestyle=":", label="gradient flow (Saxe)")
    for k, level in enumerate(plateaus.tolist()):
        ax_loss.axhline(level, color="tab:gray", linestyle="--", linewidth=0.8,
                        label="predicted plateaus $P_k$" if k == 0 else None)
    ax_loss.set_xscale("log")
    ax_loss.set(xlabel="time t = lr x step", ylabel="full-data loss", title=f"{presets.case_id(*case)}: loss")
    ax_loss.legend()
    ct = traj.times[traj.checkpoint_steps][1:]
    ax_move.plot(ct.numpy(), movement[0, 1:].numpy(), color=plots.GD_COLOR, marker=".", label="GD")
    if movement.shape[0] > 1:
        ax_move.plot(ct.numpy(), movement[1:, 1:].mean(0).numpy(), color=plots.SGD_COLOR, linestyle="--",
                     label="SGD mean")
    ax_move.set_xscale("log")
    ax_move.set_yscale("log")
    ax_move.set(xlabel="time t = lr x step", ylabel=r"$\|\theta_t-\theta_0\| / \|\theta_0\|$",
                title="relative weight movement")
    ax_move.legend()
    claim.figure(fig, "regime", caption="Loss in log time with predicted plateaus; relative weight movement")
