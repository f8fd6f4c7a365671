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
import torch

from claims import expectations
from dlncheck import presets, spectra, theory
from dlncheck.measure import events, stats
from dlncheck.measure.events import DWELL_RTOL
from dlncheck.report import plots
from dlncheck.report.claim import Prediction
from dlncheck.suite import init_ensembles
from dlncheck.suite.family import Family
from dlncheck.theory import sgd as sgd_theory
from dlncheck.theory import tolerances
from dlncheck.theory.kernel import kernel_bounds

FAMILY = Family(
    "regimes",
    question="does each preset sit in the regime it is named after?",
    group="assumptions",
    if_contradicted="assumption-fails",
    predictions={
        "saddle": Prediction(
            "every run's dwell on each intermediate plateau and its final movement within relative h = lr "
            "lambda_max of the gradient flow's (theory.tolerances.aligned_flow_rtol; dwell plus one loss-grid "
            "spacing; movement: theory.aligned_movement)",
            "aligned tiny init: modes escape one by one at Saxe's times (Saxe et al. 2014), weights grow "
            "from ~scale to ~s^{1/L}",
        ),
        "ntk": Prediction(
            "every init, every run: no plateau (dwell on each intermediate plateau below the lazy bound "
            "ln((1+rtol)/(1-rtol)) / (2 k_min T)) and relative movement inside the kernel band "
            "[|e_0 - e_T| / sqrt(k_max), |e_0 + e_T| / sqrt(k_min)] / ||theta_0|| (theory.tolerances)",
            "wide LeCun init: the tangent kernel barely changes, the loss decays at its rates and the weights "
            "move by the kernel-weighted residual (Jacot et al. 2018; Lee et al. 2019)",
        ),
        "intermediate": Prediction(
            "movement strictly between the ntk and saddle presets of the same teacher and depth; "
            "plateau dwell recorded only",
            "gamma = 1 boundary of Jacot et al. 2021: theory gives no plateau prediction",
            exploratory=True,
        ),
    },
)
pytestmark = FAMILY.mark

CHECKPOINTS = 30


def _final_movement(cache, preset, regime, teacher, depth):
    traj = cache(preset(regime, teacher, depth), checkpoints=CHECKPOINTS)
    return traj.relative_movement()[:, -1]


def flow_agreement(dwell, flow_dwell, move_err: float, rtol: float, grid: float) -> bool:
    """Saddle regime: every run's dwell on every inner plateau (fraction of the run) within rtol of
    gradient flow's plus one loss spacing, and the final movement within rtol of the flow's."""
    return bool(((dwell - flow_dwell).abs() <= rtol * flow_dwell + grid).all() and move_err <= rtol)


@pytest.mark.parametrize(
    "regime, teacher, depth, width",
    expectations.cases(variants=expectations.wide(), quick=expectations.at_preset_width(expectations.quick_depths)),
)
def test_regime(regime, teacher, depth, width, preset, sizes, trajectory_cache, claim):
    label = presets.case_id(regime, teacher, depth) + (f"-w{width}" if width else "")
    exp = preset(regime, teacher, depth, width=width)
    if regime == "ntk":  # lazy predictions per init: an ensemble of seeds, the first one drawn
        ens = init_ensembles.case_ensemble(exp, sizes.ensembles, sgd_runs=sizes.ensembles.check_sgd_runs)
        checkpoints = CHECKPOINTS if width is None else 2  # wide: the ends are what the checks read
        trajs = trajectory_cache.ensemble(ens, checkpoints=checkpoints)  # config by config when large
        traj = trajs[0]
    else:
        traj = trajectory_cache(exp, checkpoints=CHECKPOINTS)
    s, times = exp.teacher.s, traj.times
    plateaus = theory.stage_plateaus(s)
    inner = plateaus[1:-1]
    dwell = events.dwell_times(traj.loss, times, inner, DWELL_RTOL) / times[-1]  # (R, n)
    movement = traj.relative_movement()  # (R, K)
    flow = theory.aligned_loss(s, exp.init.scale**depth, times, depth) if regime == "saddle" else None
    flow_dwell = events.dwell_times(flow[None], times, inner, DWELL_RTOL)[0] / times[-1] if flow is not None else None

    _figure(claim, exp, traj, plateaus, movement, flow, label)
    rows = [
        {
            "run": r,
            "method": "GD" if r == 0 else "SGD",
            "plateau": k + 1,
            "level": float(inner[k]),
            "dwell_fraction": float(dwell[r, k]),
            "flow_dwell_fraction": float(flow_dwell[k]) if flow_dwell is not None else np.nan,
            "final_movement": float(movement[r, -1]),
        }
        for r in range(traj.runs)
        for k in range(len(inner))
    ]
    claim.table(
        pd.DataFrame(rows), "dwell_and_movement", caption="Plateau dwell (fraction of run) and movement per run"
    )

    final = movement[:, -1]
    numbers = dict(
        min_dwell=dwell.min().item() if dwell.numel() else None,
        max_dwell=dwell.max().item() if dwell.numel() else None,
        movement_min=final.min().item(),
        movement_max=final.max().item(),
    )
    if regime == "saddle":
        ratio = dwell / flow_dwell
        flow_move = float(theory.aligned_movement(s, exp.init.scale, times[-1:], depth, min(exp.widths))[0])
        move_err = ((final - flow_move).abs() / flow_move).max().item()
        rtol = tolerances.aligned_flow_rtol(sgd_theory.truncation_tolerance(exp))
        grid = 2 * float(torch.diff(times).max()) / float(times[-1])  # one loss spacing per dwell
        holds = flow_agreement(dwell, flow_dwell, move_err, rtol, grid)
        numbers |= dict(
            rtol=rtol,
            mdd_dwell=float((rtol * flow_dwell + grid - (dwell - flow_dwell)).max()),  # one run's plateau longer: fails
            flow_dwell=flow_dwell.tolist(),
            dwell_ratio_min=ratio.min().item(),
            dwell_ratio_max=ratio.max().item(),
            flow_movement=flow_move,
            movement_rel_err=move_err,
        )
        observed = (
            f"dwell/flow in [{ratio.min():.2f}, {ratio.max():.2f}], flow dwell "
            f"{[round(v, 3) for v in flow_dwell.tolist()]}, movement {final.min():.3g}-{final.max():.3g} "
            f"(flow {flow_move:.3g}, rel. err {move_err:.1e})"
        )
    elif regime == "ntk":
        per_init, band_rows = _lazy_checks(ens, trajs, inner, depth)
        summary = init_ensembles.summary(per_init)
        holds = summary["n_pass"] == summary["n_inits"]
        band = pd.DataFrame(band_rows)
        claim.table(
            band,
            "lazy_bounds_per_init",
            caption="per init and run: movement vs the kernel band, dwell vs the lazy bound",
        )
        numbers |= dict(
            n_inits=summary["n_inits"],
            inits_holding=summary["n_pass"],
            fraction_inits=summary["fraction"],
            fraction_ci=[summary["fraction_lo"], summary["fraction_hi"]],
            movement_over_upper_max=float((band.movement / band.upper).max()),
            movement_over_lower_min=float((band.movement / band.lower).min()),
            dwell_over_bound_max=float((band.max_dwell / band.dwell_bound).max()),
        )
        observed = (
            f"{summary['n_pass']}/{summary['n_inits']} inits: movement {band.movement.min():.3g}-"
            f"{band.movement.max():.3g} within the kernel bands (movement/upper <= "
            f"{numbers['movement_over_upper_max']:.2f}, /lower >= {numbers['movement_over_lower_min']:.2f}); "
            f"max dwell / lazy bound {numbers['dwell_over_bound_max']:.2f}"
        )
    else:
        lazy = _final_movement(trajectory_cache, preset, "ntk", teacher, depth).max()
        rich = _final_movement(trajectory_cache, preset, "saddle", teacher, depth).min()
        holds = bool((final > lazy).all() and (final < rich).all())
        numbers |= dict(ntk_movement=lazy.item(), saddle_movement=rich.item())
        observed = (
            f"movement {final.min():.3g}-{final.max():.3g} vs ntk {lazy:.3g}, saddle {rich:.3g}; "
            f"max dwell {dwell.max():.3f}"
        )
    p = FAMILY.predictions[regime]
    golden = "n/a" if p.exploratory else ("agrees" if holds else "assumption-fails")
    key = "fraction_inits" if regime == "ntk" else "movement_max"
    claim.verdict(
        prediction=p.prediction,
        observed=observed,
        holds=holds,
        exploratory=p.exploratory,
        reason=p.reason,
        golden_path=golden,
        key=key,
        **numbers,
    )
    assert holds, f"{label} does not show its regime: {observed} (predicted: {p.prediction})"


def _lazy_checks(ens, trajs, inner, depth):
    """Per init of the ntk ensemble: every run's final movement inside the kernel band
    (theory.tolerances.lazy_movement_band) and dwell on every intermediate plateau below the lazy
    bound (theory.tolerances.lazy_dwell_bound), both from that init's kernel bounds."""
    per_init, rows = [], []
    for lab, e, tr in zip(init_ensembles.init_labels(ens), ens.experiments, trajs):
        k_min, k_max = kernel_bounds(e)
        W0, M = spectra.end_to_end(tr.initial_weights), e.teacher.M
        theta0 = float(torch.cat([w.flatten() for w in tr.initial_weights]).norm())
        move = tr.relative_movement()[:, -1]
        resT = spectra.end_to_end([w[:, -1] for w in tr.weights]).sub(M).flatten(-2).norm(dim=-1)
        dwell = events.dwell_times(tr.loss, tr.times, inner, DWELL_RTOL) / tr.times[-1]
        ok = True
        for r in range(tr.runs):
            drift = 2 * (depth - 1) * float(move[r])
            lo, hi = tolerances.lazy_movement_band(float((W0 - M).norm()), float(resT[r]), theta0, k_min, k_max, drift)
            bound = tolerances.lazy_dwell_bound(
                DWELL_RTOL, k_min * (1 - drift), float(tr.times[-1]), float(torch.diff(tr.times).max())
            )
            max_dwell = float(dwell[r].max()) if dwell.numel() else 0.0
            run_ok = lo <= float(move[r]) <= hi and max_dwell <= bound
            ok &= run_ok
            rows.append(
                {
                    "init": lab,
                    "run": r,
                    "movement": float(move[r]),
                    "lower": lo,
                    "upper": hi,
                    "max_dwell": max_dwell,
                    "dwell_bound": bound,
                    "holds": run_ok,
                }
            )
        per_init.append(ok)
    return per_init, rows


def _figure(claim, exp, traj, plateaus, movement, flow, label):
    fig, (ax_loss, ax_log, ax_move) = plots.figure(1, 3, size=(14.5, 3.9))
    t = traj.times[1:]
    sgd = traj.loss[1:, 1:]
    if len(sgd):
        plots.band(
            ax_loss,
            t,
            stats.mean(sgd, dim=0),
            sgd.min(0).values,
            sgd.max(0).values,
            label=f"SGD mean, min-max band ({len(sgd)} runs)",
            color=plots.SGD_COLOR,
        )
    ax_loss.plot(t.numpy(), traj.loss[0, 1:].numpy(), color=plots.GD_COLOR, label="GD")
    if flow is not None:
        ax_loss.plot(t.numpy(), flow[1:].numpy(), color="tab:blue", linestyle=":", label="gradient flow (Saxe)")
    for k, level in enumerate(plateaus.tolist()):
        ax_loss.axhline(
            level, color="tab:gray", linestyle="--", linewidth=0.8, label="predicted plateaus $P_k$" if k == 0 else None
        )
    ax_loss.set_xscale("log")
    ax_loss.set(xlabel="time t = lr x step", ylabel="full-data loss", title=f"{label}: loss")
    ax_loss.legend(fontsize=7)
    if len(sgd):
        ax_log.fill_between(
            t.numpy(),
            sgd.min(0).values.numpy(),
            sgd.max(0).values.numpy(),
            color=plots.SGD_COLOR,
            alpha=0.35,
            linewidth=0,
            label="SGD (min-max)",
        )
    ax_log.plot(t.numpy(), traj.loss[0, 1:].numpy(), color=plots.GD_COLOR, label="GD")
    if flow is not None:
        ax_log.plot(t.numpy(), flow[1:].numpy(), color="tab:blue", linestyle=":", label="gradient flow")
    ax_log.set(yscale="log", xlabel="time t = lr x step", ylabel="full-data loss (log)", title="convergence")
    ax_log.legend(fontsize=7)
    ct = traj.times[traj.checkpoint_steps][1:]
    ax_move.plot(ct.numpy(), movement[0, 1:].numpy(), color=plots.GD_COLOR, marker=".", label="GD")
    if movement.shape[0] > 1:
        ax_move.plot(
            ct.numpy(), movement[1:, 1:].mean(0).numpy(), color=plots.SGD_COLOR, linestyle="--", label="SGD mean"
        )
    ax_move.set_xscale("log")
    ax_move.set_yscale("log")
    ax_move.set(
        xlabel="time t = lr x step", ylabel=r"$\|\theta_t-\theta_0\| / \|\theta_0\|$", title="relative weight movement"
    )
    ax_move.legend()
    claim.figure(fig, "regime", caption="Loss in log time with predicted plateaus; relative weight movement")
