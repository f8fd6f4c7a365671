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

from dlncheck import compare, events, gauge, presets
from dlncheck.pytest_plugin import preset_cases
from dlncheck.report import plots

N_CHECKPOINTS, MAX_SWEEPS = 12, 10

# (asserted condition on FACTOR, text, reason, exploratory)
PREDICTIONS = {
    "saddle": (lambda f, fn, raw: f >= 2.0, "raw distance >= 2 x gauge-aligned distance",
               "seed: GD and SGD select different symmetries at the saddles, so most of the raw "
               "distance is gauge", False),
    "ntk": (lambda f, fn, raw: f <= 1.1, "gauge-aligned distance within 10% of raw (factor <= 1.1)",
            "lazy regime: weights stay near the shared init, no rotation of hidden units to undo", False),
    "intermediate": (lambda f, fn, raw: fn < raw, "function-space distance at the end below the raw "
                     "parameter-space ratio (seed: raw large because of symmetries, function small)",
                     "theory silent on the gauge share here; exploratory", True),
}


# Measured contradictions: the assertion stays as the theory states it (strict xfail).
CONTRADICTIONS = {
    'saddle-lowrank-L3': (
        "from the aligned init SGD stays in GD's gauge: raw/gauge-aligned factor 1.00 (ratio at end 0.011-0.019, cosine >= 0.9998); the seed's 'GD and SGD select different symmetries' does not happen here"),
    'saddle-fullrank-L3': (
        "from the aligned init SGD stays in GD's gauge: raw/gauge-aligned factor 1.00 (ratio at end 0.011-0.019, cosine >= 0.9998); the seed's 'GD and SGD select different symmetries' does not happen here"),
    'saddle-degenerate-L3': (
        "from the aligned init SGD stays in GD's gauge: raw/gauge-aligned factor 1.00 (ratio at end 0.011-0.019, cosine >= 0.9998); the seed's 'GD and SGD select different symmetries' does not happen here"),
}


@pytest.mark.parametrize("regime, teacher, depth", preset_cases(quick_depths=(3,), contradictions=CONTRADICTIONS))
def test_parameter_distance_raw_vs_gauge(regime, teacher, depth, preset, trajectory_cache, claim):
    case = presets.case_id(regime, teacher, depth)
    condition, text, reason, exploratory = PREDICTIONS[regime]
    exp = preset(regime, teacher, depth)
    traj = trajectory_cache(exp, checkpoints=events.time_grid_for(exp))
    K = traj.checkpoint_steps.shape[-1]
    pick = torch.as_tensor(np.unique(np.geomspace(1, K - 1, N_CHECKPOINTS).round().astype(int)))
    weights = [w[:, pick] for w in traj.weights]
    t = traj.checkpoint_steps[pick].double() * exp.lr
    aligned = gauge.gauge_align(weights, max_sweeps=MAX_SWEEPS).weights
    raw = {m: compare.over_runs(f(weights)) for m, f in (("ratio", compare.theta_ratio),
                                                          ("cosine", compare.cosine), ("d", compare.d))}
    gauge = {m: compare.over_runs(f(aligned)) for m, f in (("ratio", compare.theta_ratio),
                                                            ("cosine", compare.cosine), ("d", compare.d))}
    func = compare.over_runs(compare.function_distance(weights))
    factor = float(raw["ratio"]["mean"].mean() / gauge["ratio"]["mean"].mean())
    fn_end, raw_end = float(func["mean"][-1]), float(raw["ratio"]["mean"][-1])
    holds = bool(condition(factor, fn_end, raw_end))
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
    claim.verdict(prediction=text, reason=reason, exploratory=exploratory, holds=holds,
                  observed=(f"factor raw/aligned {factor:.3g}; ratio at end raw {raw_end:.3g}, aligned "
                            f"{numbers['aligned_ratio_end']:.3g}, max raw {numbers['raw_ratio_max']:.3g}; "
                            f"function distance at end {fn_end:.3g}; min cosine {numbers['cosine_raw_min']:.4f}"),
                  **numbers)
    assert holds, (f"{case}: predicted '{text}' but raw/aligned factor is {factor:.3g} (raw ratio at end "
                   f"{raw_end:.3g}, aligned {numbers['aligned_ratio_end']:.3g}, function {fn_end:.3g}); "
                   "see parameter_space.png")
