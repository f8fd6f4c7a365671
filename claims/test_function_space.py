"""Claim family: distance in function space, E_B ||W_GD - W_SGD||_F / ||W_GD||_F over time.

Tolerances at the last checkpoint (derivations in :mod:`dlncheck.theory.tolerances`):
- no label noise (realizable): theory.REALIZABLE_FUNCTION_TOL = 2 e^-10;
- label noise sigma: theory.sgd_function_tolerance = 3 sqrt(eta_max sigma^2 d_in d_out / (2 b))
  / ||W_GD||_F, eta_max = lr L s_1^{2-2/L}.
"""
from __future__ import annotations

import pytest
import torch

from claims import expectations
from dlncheck import compare, events, presets, spectra, theory
from dlncheck.report import plots

LABEL_NOISE = 0.1


@pytest.mark.parametrize("regime, teacher, depth, noise", expectations.cases(
    "function_space", variants=lambda *_: [(f"-noise{noise:g}", (noise,)) for noise in (0.0, LABEL_NOISE)],
    quick=lambda regime, teacher, depth, noise: expectations.deepest_quick(regime, teacher, depth)
    and (noise == 0.0 or (regime, teacher) == ("saddle", "lowrank"))))
def test_sgd_matches_gd_in_function_space(regime, teacher, depth, noise, preset, trajectory_cache, claim):
    case = f"{presets.case_id(regime, teacher, depth)}-noise{noise:g}"
    exp = preset(regime, teacher, depth, label_noise=noise)
    traj = trajectory_cache(exp, checkpoints=events.time_grid_for(exp))
    t = traj.checkpoint_times
    dist = compare.over_runs(compare.function_distance(traj.weights))
    norm_gd = float(torch.linalg.matrix_norm(spectra.end_to_end([w[:1, -1] for w in traj.weights])[0]))
    s1 = float(exp.teacher.s[0])
    if noise == 0:
        tol = theory.REALIZABLE_FUNCTION_TOL
        how = "2 e^-10 (both converge to M)"
    else:
        eta_max = exp.lr * depth * s1 ** (2 - 2 / depth)
        tol = theory.sgd_function_tolerance(exp.lr, depth, s1, noise, exp.teacher.d_in, exp.teacher.d_out,
                                            exp.batch_size, norm_gd)
        how = f"3 sqrt(eta_max sigma^2 d_in d_out / 2b) / ||W_GD|| (eta_max={eta_max:.3g}, sigma={noise:g})"
    end = float(dist["mean"][-1])
    holds = end <= tol
    fig, ax = plots.figure(size=(6.4, 4.0))
    plots.band(ax, t, dist["mean"], dist["lo"], dist["hi"], label="E_B ||W_GD - W_SGD||_F / ||W_GD||_F")
    ax.axhline(tol, color="tab:red", linestyle=":", label=f"tolerance {tol:.2g}")
    ax.set_yscale("log")
    ax.set_xlabel("time t = lr * step")
    ax.set_ylabel("relative function-space distance")
    ax.set_title(f"{case}: function-space distance")
    ax.legend()
    claim.figure(fig, "function_distance", caption="relative distance of end-to-end maps, mean over SGD "
                 "runs with 95% bootstrap band")
    claim.table(compare.frame({"time": t}, function_distance=dist), "function_distance")
    claim.verdict(prediction=f"relative distance at the end <= {tol:.3g} = {how}", holds=holds,
                  observed=f"end {end:.3g} (CI {float(dist['lo'][-1]):.3g}..{float(dist['hi'][-1]):.3g}); "
                           f"max over time {float(dist['mean'].max()):.3g}",
                  end=end, tolerance=tol, max_over_time=float(dist["mean"].max()), label_noise=noise)
    assert holds, (f"{case}: SGD ends {end:.3g} away from GD in function space (relative), above the "
                   f"tolerance {tol:.3g} = {how}; see function_distance.png")
