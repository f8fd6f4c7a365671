"""Claim family: distance in parameter space, raw and modulo the hidden-layer orthogonal gauge.

Raw: E_B||theta_GD - theta_SGD||_2 / ||theta_GD||_2, cosine, layerwise d_l and d (seed,
"Distance in parameter space"). Gauge-aligned: the same after gauge.gauge_align moves each
SGD run to the point of its orbit W_l -> Q_l W_l Q_{l-1}^T closest to GD (alternating
Procrustes, an upper bound on the true gauge distance). FACTOR = time-average of the raw ratio
over time-average of the aligned ratio, over N_CHECKPOINTS log-spaced checkpoints with t > 0.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from claims import expectations
from dlncheck import compare, events, presets
from dlncheck.gauge import gauge_align
from dlncheck.report import plots

N_CHECKPOINTS, MAX_SWEEPS = 12, 10

# Measured contradictions: the assertion stays as the theory states it (strict xfail).
def _distances(weights: list[torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """E_B of the ratio ||theta_GD - theta_SGD|| / ||theta_GD||, the cosine and d, over SGD runs."""
    return {m: compare.over_runs(f(weights)) for m, f in (("ratio", compare.theta_ratio),
                                                          ("cosine", compare.cosine), ("d", compare.d))}


def _holds(condition: str, factor: float, fn_end: float, raw_end: float) -> bool:
    """The asserted condition of the row (its ``kind``) on FACTOR and the end distances."""
    return {"factor >= 2": factor >= 2.0, "factor <= 1.1": factor <= 1.1,
            "function < raw": fn_end < raw_end}[condition]


@pytest.mark.parametrize("regime, teacher, depth",
                         expectations.cases("parameter_space", quick=expectations.deepest_quick))
def test_parameter_distance_raw_vs_gauge(regime, teacher, depth, preset, trajectory_cache, claim):
    case = presets.case_id(regime, teacher, depth)
    row = expectations.PREDICTIONS["parameter_space"][regime]
    exp = preset(regime, teacher, depth)
    traj = trajectory_cache(exp, checkpoints=events.time_grid_for(exp))
    K = traj.checkpoint_steps.shape[-1]
    pick = torch.as_tensor(np.unique(np.geomspace(1, K - 1, N_CHECKPOINTS).round().astype(int)))
    weights = [w[:, pick] for w in traj.weights]
    t = traj.checkpoint_steps[pick].double() * exp.lr
    aligned = gauge_align(weights, max_sweeps=MAX_SWEEPS).weights
    raw, gauge = _distances(weights), _distances(aligned)
    func = compare.over_runs(compare.function_distance(weights))
    factor = float(raw["ratio"]["mean"].mean() / gauge["ratio"]["mean"].mean())
    fn_end, raw_end = float(func["mean"][-1]), float(raw["ratio"]["mean"][-1])
    holds = _holds(row.kind, factor, fn_end, raw_end)
    numbers = dict(factor=factor, raw_ratio_end=raw_end, aligned_ratio_end=float(gauge["ratio"]["mean"][-1]),
                   raw_ratio_max=float(raw["ratio"]["mean"].max()),
                   aligned_ratio_max=float(gauge["ratio"]["mean"].max()),
                   cosine_raw_min=float(raw["cosine"]["mean"].min()), function_distance_end=fn_end,
                   theta_gd_norm_end=float(compare.theta_norm(weights)[0, -1]), max_sweeps=MAX_SWEEPS)

    d_l_raw, d_l_gauge = compare.d_l(weights).mean(0), compare.d_l(aligned).mean(0)      # (K, L)
    fig, axes = plots.figure(ncols=3, size=(15, 4.0))
    for label, summ, style in (("raw", raw, "-"), ("gauge-aligned", gauge, "--")):
        plots.band(axes[0], t, summ["ratio"]["mean"], summ["ratio"]["lo"], summ["ratio"]["hi"],
                   label=f"ratio, {label}", linestyle=style)
        plots.band(axes[1], t, summ["cosine"]["mean"], summ["cosine"]["lo"], summ["cosine"]["hi"],
                   label=f"cosine, {label}", linestyle=style)
    plots.band(axes[0], t, func["mean"], func["lo"], func["hi"], label="function space")
    twin = axes[0].twinx()
    twin.plot(t.numpy(), compare.theta_norm(weights)[0].numpy(), color="gray", linestyle=":")
    twin.set_ylabel("||theta_GD||_2 (gray dotted)")
    for l in range(depth):
        line = axes[2].plot(t.numpy(), d_l_raw[:, l].numpy(), label=f"d_{l + 1} raw")[0]
        axes[2].plot(t.numpy(), d_l_gauge[:, l].numpy(), linestyle="--", color=line.get_color(),
                     label=f"d_{l + 1} aligned")
    for ax, ylabel in zip(axes, ("E_B||theta_GD - theta_SGD|| / ||theta_GD||", "cos(theta_GD, theta_SGD)",
                                 "layerwise d_l")):
        ax.set_xscale("log")
        ax.set_xlabel("time t = lr * step")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    axes[0].set_yscale("log")
    axes[2].set_yscale("log")
    axes[1].set_title(f"{case}: parameter space, raw vs gauge-aligned")
    claim.figure(fig, "parameter_space", caption="relative distance (with function-space distance and "
                 "||theta_GD|| for scale), cosine and layerwise d_l, raw beside gauge-aligned")
    claim.table(compare.frame({"time": t}, **{f"{k}_raw": v for k, v in raw.items()},
                              **{f"{k}_aligned": v for k, v in gauge.items()}, function_distance=func),
                "parameter_space")
    claim.verdict(prediction=row.prediction, reason=row.reason, exploratory=row.exploratory, holds=holds,
                  observed=(f"factor raw/aligned {factor:.3g}; ratio at end raw {raw_end:.3g}, aligned "
                            f"{numbers['aligned_ratio_end']:.3g}, max raw {numbers['raw_ratio_max']:.3g}; "
                            f"function distance at end {fn_end:.3g}; min cosine {numbers['cosine_raw_min']:.4f}"),
                  **numbers)
    assert holds, (f"{case}: predicted '{row.prediction}' but raw/aligned factor is {factor:.3g} (raw ratio at end "
                   f"{raw_end:.3g}, aligned {numbers['aligned_ratio_end']:.3g}, function {fn_end:.3g}); "
                   "see parameter_space.png")
