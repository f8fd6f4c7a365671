"""Claim family: balance of adjacent layers (protocol "Balanced assumptions").

r_l(t) = ||W_l W_l^T - W_{l+1}^T W_{l+1}||_F / (||W_l W_l^T||_F + ||W_{l+1}^T W_{l+1}||_F).
Gradient flow conserves D_l = W_{l+1}^T W_{l+1} - W_l W_l^T; a discrete step changes it by
exactly lr^2 (G_{l+1}^T G_{l+1} - G_l G_l^T) (GD and SGD alike). Every case asserts that
accumulated identity (to REL_TOL) and that r_l stays below the bound it implies; then the
regime's own prediction (table below).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from claims import expectations
from dlncheck import balance, events, presets, stats, theory
from dlncheck.report import plots

# (float64; x exp.roundoff_scale) accumulated drift identity, relative to max_t (||W_l W_l^T|| + ||W_{l+1}^T W_{l+1}||)
REL_TOL = 1e-10
ORDER_ONE = 0.1              # "r_l is O(1)": r_l >= 0.1
FACTOR = 2.0                 # saddle: final r_l within this factor of the conserved-D prediction (GD)
NTK_FACTOR = 2.0             # ntk: r_l(T) / r_l(0) within [1/2, 2]
DENSE_STEPS = 6000           # identity checked on every step of the first DENSE_STEPS steps,
DENSE_BYTES = 2 ** 28        # ... capped so every-step weights of all runs fit in 256 MiB
# (float64; x exp.roundoff_scale) r_l <= bound up to the roundoff of forming D_l (~ d * 1e-16 relative)
ROUNDOFF = 1e-12


def _experiment(preset, regime, teacher, depth, init):
    exp = preset(regime, teacher, depth)
    return presets.random_small_init(exp) if init == "random" else exp


@pytest.mark.parametrize("regime, teacher, depth, init", expectations.cases(
    "balance", variants=lambda regime, teacher, depth: [("", ("preset",))]
    + ([("-random", ("random",))] if regime == "saddle" else [])))  # the saddle preset is aligned: add a random init
def test_balance(regime, teacher, depth, init, preset, trajectory_cache, claim):
    exp = _experiment(preset, regime, teacher, depth, init)
    aligned = exp.init.kind == "aligned"
    row = expectations.PREDICTIONS["balance"]["aligned" if aligned else regime]
    step_bytes = exp.runs * sum(a * b for a, b in zip(exp.widths[1:], exp.widths[:-1])) * 8
    n = min(exp.steps, DENSE_STEPS, DENSE_BYTES // step_bytes)
    traj = trajectory_cache(exp, checkpoints=list(range(n + 1)), loss_every=max(1, n // 500))
    times = traj.checkpoint_times
    full = trajectory_cache(exp, checkpoints=events.time_grid_for(exp))   # shared time grid, to the end

    drift = balance.drift_identity(traj.weights)                     # per run, per pair
    r = balance.balance_residuals(traj.weights)                      # (R, K, L-1)
    err = drift["error"]                                        # (R, L-1)
    bound = drift["bound"]                                      # (R, K, L-1)
    rel_tol, roundoff = REL_TOL * exp.roundoff_scale, ROUNDOFF * exp.roundoff_scale
    identity_ok = bool((err <= rel_tol).all())
    below_bound = bool((r <= bound + roundoff).all())
    r_full = balance.balance_residuals(full.weights)
    r0, rT = r_full[:, 0], r_full[:, -1]
    dD = drift["drift"][:, -1]                                  # accumulated ||drift|| (R, L-1)
    sgd_gd_drift = (dD[1:].mean(0) / dD[0]).tolist() if exp.runs > 1 else []

    numbers = dict(identity_error_max=err.max().item(), r0_gd=r0[0].tolist(), rT_gd=rT[0].tolist(),
                   rT_sgd_mean=rT[1:].mean(0).tolist(), rT_sgd_std=rT[1:].std(0).tolist() if exp.runs > 2 else [],
                   drift_gd=dD[0].tolist(), sgd_over_gd_drift=sgd_gd_drift, dense_steps=n, steps=exp.steps)
    checks = {"identity": identity_ok, "below_bound": below_bound}
    if aligned:
        checks["gd_stays_balanced"] = bool((r_full[0] <= roundoff).all())
    elif regime == "saddle":
        predicted = theory.balanced_residual_prediction(drift["D0"][0], exp.teacher.s, depth)
        numbers["rT_gd_predicted"] = predicted.tolist()
        checks["starts_order_one"] = bool((r0 >= ORDER_ONE).all())
        checks["falls"] = bool((rT < r0).all())
        ratio = rT[0] / predicted
        numbers["gd_over_predicted"] = ratio.tolist()
        checks["gd_matches_conserved"] = bool(((ratio <= FACTOR) & (ratio >= 1 / FACTOR)).all())
    elif regime == "ntk":
        ratio = rT / r0
        numbers["ratio_T_over_0"] = ratio.tolist()
        checks["order_one"] = bool((r_full >= ORDER_ONE).all())
        checks["persists"] = bool(((ratio <= NTK_FACTOR) & (ratio >= 1 / NTK_FACTOR)).all())
    holds = all(checks.values())
    numbers["checks"] = checks

    _figure(claim, times, r, bound, exp, regime, init)
    claim.verdict(prediction=row.prediction, exploratory=row.exploratory, holds=holds,
                  observed=(f"identity error {err.max().item():.1e} (tol {rel_tol:g}); r_l(0) GD "
                            f"{np.round(r0[0].tolist(), 4).tolist()}, "
                            f"r_l(T) GD {np.round(rT[0].tolist(), 5).tolist()}, "
                            f"SGD {np.round(rT[1:].mean(0).tolist(), 5).tolist()} (mean over {exp.runs - 1}); "
                            f"SGD/GD accumulated drift {np.round(sgd_gd_drift, 2).tolist()}; "
                            f"failed checks: {[k for k, v in checks.items() if not v]}"),
                  **numbers)
    assert holds, (f"balance prediction failed for {regime}/{teacher}/L{depth}/{init}: "
                   f"failed {[k for k, v in checks.items() if not v]}; numbers {numbers}")


def _figure(claim, times, r, bound, exp, regime, init):
    K = r.shape[1]
    keep = torch.unique(torch.linspace(0, K - 1, min(K, 400)).round().long())
    t, r, bound = times[keep], r[:, keep], bound[:, keep]
    pairs = r.shape[-1]
    fig, axes = plots.figure(1, pairs, size=(4.4 * pairs, 3.4))
    axes = np.atleast_1d(axes)
    rows = []
    for l, ax in enumerate(axes):
        plots.band(ax, t, r[0, :, l], label="GD", color=plots.GD_COLOR)
        if r.shape[0] > 1:
            s = stats.summarize(r[1:, :, l], n_boot=500)
            plots.band(ax, t, s["mean"], s["lo"], s["hi"], label="SGD mean (95% CI)", color=plots.SGD_COLOR)
        plots.band(ax, t, bound[0, :, l], label="GD drift bound", color="tab:blue", linestyle="--")
        ax.set_yscale("log")
        ax.set_xlabel("time t = lr * step")
        ax.set_ylabel(f"r_{l + 1} (pair {l + 1},{l + 2})")
        ax.set_title(f"{regime} ({init} init): layers {l + 1}-{l + 2}")
        ax.legend()
        for run in range(r.shape[0]):
            rows.append(pd.DataFrame({"pair": l + 1, "run": run, "method": "GD" if run == 0 else "SGD",
                                      "time": t.numpy(), "r": r[run, :, l].numpy(),
                                      "bound": bound[run, :, l].numpy()}))
    claim.figure(fig, "balance_residuals", caption="r_l(t) per adjacent pair with the bound implied by "
                 "the accumulated discrete drift (||D_l(0)|| + sum ||lr^2 (G_{l+1}^T G_{l+1} - G_l G_l^T)||) / scale")
    claim.table(pd.concat(rows, ignore_index=True), "balance_residuals")
