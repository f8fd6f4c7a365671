"""Claim family: GD and SGD top-K log singular values of every partial product (protocol 1.3).

s_ij,k = log max(sigma_k(P_ij), 1e-30), shape-normalized s~_ij,k = s_ij,k - s_ij,1, SGD means
in log space with bootstrap bands; d_sigma, d_shape, d_sigma,w (w_ij = j - i + 1) over time.
Asserted at the last checkpoint for the top-r values (r = teacher rank, the learned modes):
|s^GD_ij,k - mean_SGD s_ij,k| <= Z * std_SGD(s_ij,k) * sqrt(1 + 1/S), i.e. GD lies inside the
Z-sigma prediction interval of one more SGD draw ("GD is a typical SGD run"), plus ATOL for
float64 round-off of the logarithm.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from claims import expectations
from dlncheck import compare, events, modes, presets, spectra, theory
from dlncheck.report import plots

K_TOP, Z, ATOL = 5, 3.0, 1e-8

@pytest.mark.parametrize("regime, teacher, depth",
                         expectations.cases("singular_patterns", quick=expectations.deepest_quick))
def test_sgd_follows_gd_singular_values(regime, teacher, depth, preset, trajectory_cache, claim):
    case = presets.case_id(regime, teacher, depth)
    row = expectations.PREDICTIONS["singular_patterns"][regime]
    exp = preset(regime, teacher, depth)
    traj = trajectory_cache(exp, checkpoints=events.time_grid_for(exp))
    t = traj.checkpoint_times
    n = exp.teacher.rank
    u0 = modes.initial_mode_strength(traj.initial_weights, exp.teacher.U, exp.teacher.V, n)
    t_esc = theory.escape_time(exp.teacher.s[:n], u0, depth)
    windows = theory.escape_windows(t_esc, exp.teacher.s[:n], depth)

    logs = spectra.log_spectra(traj.weights, K_TOP)
    d_sig, d_shp, d_w = compare.d_sigma(logs.s), compare.d_shape(logs.s_tilde), compare.d_sigma_w(logs.s)
    final = compare.sgd_summary(logs.s[:, -1:, ..., :n])                         # (1, L, L, n)
    S = exp.sgd_runs
    tol = Z * final["std"] * (1 + 1 / S) ** 0.5 + ATOL
    dev = (final["gd"] - final["mean"]).abs()
    upper = torch.ones(depth, depth, dtype=torch.bool).triu()[..., None].expand_as(dev[0])
    ok = (dev <= tol)[0] | ~upper
    holds = bool(ok.all())
    worst = torch.argmax(torch.where(upper, dev[0] / tol[0], 0).flatten())
    i, j, k = np.unravel_index(int(worst), dev[0].shape)
    numbers = dict(K=K_TOP, z=Z, atol=ATOL, entries_outside=int((~ok).sum()), entries=int(upper.sum()),
                   worst_entry=f"P_{i + 1}{j + 1} k={k + 1}", worst_deviation=float(dev[0, i, j, k]),
                   worst_tolerance=float(tol[0, i, j, k]), d_sigma_end=float(d_sig["value"][-1]),
                   d_shape_end=float(d_shp["value"][-1]), d_sigma_w_end=float(d_w["value"][-1]),
                   d_sigma_max=float(d_sig["value"].max()),
                   d_sigma_max_in_windows=float(d_sig["value"][events.in_windows(t, windows)].max())
                   if events.in_windows(t, windows).any() else None)
    _figures(claim, case, t, windows, t_esc, logs, d_sig, d_shp, d_w)
    claim.verdict(prediction=f"{row.prediction} (|dev| <= {Z:g} std_SGD sqrt(1+1/S) + {ATOL:g})",
                  reason=row.reason, exploratory=row.exploratory, holds=holds,
                  observed=(f"{numbers['entries'] - numbers['entries_outside']}/{numbers['entries']} top-{n} "
                            f"entries inside; worst {numbers['worst_entry']}: |dev| {numbers['worst_deviation']:.3g}"
                            f" vs tol {numbers['worst_tolerance']:.3g}; d_sigma end {numbers['d_sigma_end']:.3g}"
                            f" (max {numbers['d_sigma_max']:.3g}), d_shape end {numbers['d_shape_end']:.3g}"),
                  **numbers)
    assert holds, (f"{case}: GD log singular values leave the SGD noise band at the end: "
                   f"{numbers['entries_outside']} of {numbers['entries']} entries, worst {numbers['worst_entry']} "
                   f"|dev| {numbers['worst_deviation']:.3g} > tol {numbers['worst_tolerance']:.3g}; see "
                   "log_sv_heatmaps.png and d_sigma.png")


def _figures(claim, case, t, windows, t_esc, logs, d_sig, d_shp, d_w):
    fig, ax = plots.figure(size=(6.4, 4.0))
    for name, d in (("d_sigma", d_sig), ("d_shape", d_shp), ("d_sigma,w", d_w)):
        plots.band(ax, t, d["value"], d["lo"], d["hi"], label=f"{name} (95% band)")
    plots.shade_windows(ax, windows.tolist())
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("time t = lr * step")
    ax.set_ylabel("L1 distance of log singular values (nats)")
    ax.set_title(f"{case}: d_sigma, d_shape, d_sigma,w")
    ax.legend()
    claim.figure(fig, "d_sigma", caption="singular-value pattern distances with bootstrap bands over SGD "
                 "runs; escape windows shaded")
    claim.table(compare.frame({"time": t}, d_sigma=d_sig, d_shape=d_shp, d_sigma_w=d_w), "d_sigma")

    picks = {"before": int(torch.argmin((t - windows[0, 0]).abs())),
             "during": int(torch.argmin((t - t_esc[0]).abs())), "after": len(t) - 1}
    slices = [("s_ij,1", logs.s, 0), ("s_ij,2", logs.s, 1), ("s~_ij,2", logs.s_tilde, 1)]
    fig, axes = plots.figure(nrows=len(picks), ncols=2 * len(slices), size=(20, 3.2 * len(picks)))
    rows = []
    for row, (label, k) in enumerate(picks.items()):
        for col, (name, x, idx) in enumerate(slices):
            gd, mean = x[0, k, ..., idx], x[1:, k, ..., idx].mean(0)
            plots.heatmap(axes[row, 2 * col], gd, title=f"GD {name}, {label} (t={t[k]:.3g})",
                          cbar_label="log sigma", fmt="{:.2f}")
            plots.heatmap(axes[row, 2 * col + 1], gd - mean, title=f"GD - mean SGD {name}",
                          cbar_label="difference (nats)", fmt="{:.1e}", cmap="coolwarm")
            i, j = np.triu_indices(gd.shape[-1])
            rows.append(pd.DataFrame({"checkpoint": label, "time": float(t[k]), "slice": name, "i": i + 1,
                                      "j": j + 1, "gd": gd.numpy()[i, j], "sgd_mean": mean.numpy()[i, j]}))
    claim.figure(fig, "log_sv_heatmaps", caption="log singular values s_ij,1, s_ij,2 and shape-normalized "
                 "s~_ij,2 for GD and GD - mean SGD before, during and after the first escape")
    claim.table(pd.concat(rows, ignore_index=True), "log_sv_heatmaps")
