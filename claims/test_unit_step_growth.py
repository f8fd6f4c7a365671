"""Claim family: stagewise (unit-step) rank growth of W(t) (protocol 1.2 II, DLN calibration).

Ranks are counted with the absolute floor tied to the teacher, r = #{sigma > eps max(sigma_1,
s_1)} at EPS (spectra.numerical_rank with atol = eps s_1): the purely relative r_eps is scale
invariant and, from a tiny init, reports the initial weights' spectral shape (often full rank),
so "rank starts at 0" is only testable with the floor (test_eps_sensitivity shows both notions).
The rank is read on a time grid (events.time_grid) for GD and every SGD run.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from claims import expectations
from claims.expectations import rank_levels, stagewise_prediction
from dlncheck import events, modes, presets, spectra, stagewise, theory
from dlncheck.report import plots

EPS = 1e-4                     # asserted threshold (relative), floor EPS * s_1
EPS_SHOWN = (1e-7, 1e-5, 1e-4, 1e-3)


@pytest.mark.parametrize("regime, teacher, depth", expectations.cases("unit_step_growth"))
def test_unit_step_rank_growth(regime, teacher, depth, preset, trajectory_cache, claim):
    exp = preset(regime, teacher, depth)
    pred = stagewise_prediction(regime, teacher)
    traj = trajectory_cache(exp, checkpoints=events.time_grid_for(exp))
    t = traj.checkpoint_times
    s, s1 = exp.teacher.s, float(exp.teacher.s[0])
    W = spectra.end_to_end(traj.weights)
    svals = spectra.singular_values(W)                                     # (R, K, n)
    eps = torch.tensor([EPS], dtype=torch.float64)
    ranks = stagewise.ranks_over_eps(svals, eps, atol=eps * s1)[0]               # (R, K)
    levels = rank_levels(pred, s)
    crit = stagewise.stagewise_criteria(ranks, levels)
    growth = stagewise.growth_statistics(ranks)
    gaps = stagewise.transition_gaps(svals, ranks)
    if pred.kind in ("unit", "multiplicity"):
        ok = crit["staircase"]
    elif pred.kind == "none":
        ok = crit["at_least_r"]
    else:
        ok = ranks[:, -1] >= stagewise.guaranteed_rank(W[:, -1], exp.teacher.M, s, eps, atol=eps * s1)[0]
    holds = bool(ok.all())
    unit = growth["unit"]
    numbers = dict(eps=EPS, floor=EPS * s1, levels=levels, ok_per_run=ok.tolist(),
                   unit_fraction_gd=unit[0].item(), unit_fraction_sgd=unit[1:].tolist(),
                   nonmonotone_gd=growth["nonmonotone"][0].item(), nonmonotone_sgd=growth["nonmonotone"][1:].tolist(),
                   start=growth["start"].tolist(), final=growth["final"].tolist(),
                   max_jump=growth["max_jump"].tolist(),
                   median_log10_gap_at_transitions=(float(np.nanmedian(np.log10(gaps.numpy())))
                                                    if torch.isfinite(gaps).any() else None))
    numbers |= _product_staircases(claim, traj, t, s1, presets.case_id(regime, teacher, depth))
    _figures(claim, exp, traj, t, svals, s1, depth, presets.case_id(regime, teacher, depth), gaps, ranks)
    claim.verdict(prediction=pred.prediction, exploratory=pred.exploratory, holds=holds, reason=pred.reason,
                  observed=(f"eps={EPS:g} (floor {EPS * s1:.1e}): criterion holds for {int(ok.sum())}/{len(ok)} runs "
                            f"(GD {'yes' if ok[0] else 'no'}); start ranks {growth['start'].tolist()}, final "
                            f"{growth['final'].tolist()}; unit-step fraction GD {unit[0].item():.2f}, SGD mean "
                            f"{unit[1:].nanmean().item() if len(unit) > 1 else float('nan'):.2f}; max jump "
                            f"{growth['max_jump'].tolist()}"),
                  **numbers)
    assert holds, (f"{presets.case_id(regime, teacher, depth)}: predicted '{pred.prediction}' at eps={EPS:g} with "
                   f"floor "
                   f"eps*s_1, fails for runs {torch.nonzero(~ok).flatten().tolist()} (0 = GD); rank sequences "
                   f"start {growth['start'].tolist()} end {growth['final'].tolist()}, max jump "
                   f"{growth['max_jump'].tolist()}; see rank_vs_time.png / eps_sensitivity for other eps")


def _figures(claim, exp, traj, t, svals, s1, depth, case, gaps, ranks):
    eps = torch.tensor(EPS_SHOWN, dtype=torch.float64)
    all_ranks = stagewise.ranks_over_eps(svals, eps, atol=eps * s1).double()    # (E, R, K)
    fig, ax = plots.figure(size=(6.4, 4.2))
    rows = []
    for e, value in enumerate(EPS_SHOWN):
        r = all_ranks[e]
        line = plots.band(ax, t, r[0], label=f"GD, eps={value:g}", drawstyle="steps-post")
        if r.shape[0] > 1:
            ax.fill_between(t.numpy(), r[1:].amin(0).numpy(), r[1:].amax(0).numpy(), step="post",
                            color=line.get_color(), alpha=0.2, linewidth=0)
        for run in range(r.shape[0]):
            rows.append(pd.DataFrame({"eps": value, "run": run, "method": "GD" if run == 0 else "SGD",
                                      "time": t.numpy(), "rank": r[run].numpy()}))
    ax.plot([], [], color="gray", alpha=0.3, linewidth=6, label="SGD min-max band")
    ax.set_xlabel("time t = lr * step")
    ax.set_ylabel("rank of W(t), floor eps * s_1")
    ax.set_title(f"{case}: rank growth")
    ax.legend(ncol=2)
    claim.figure(fig, "rank_vs_time", caption="numerical rank of W(t) with absolute floor for several eps; "
                 "GD line, SGD min-max band")
    claim.table(pd.concat(rows, ignore_index=True), "rank_vs_time")

    n = int((exp.teacher.s > 0).sum())
    s = exp.teacher.s[:n]
    u0 = modes.initial_mode_strength(traj.initial_weights, exp.teacher.U, exp.teacher.V, n)
    t_esc = theory.escape_time(s, u0, depth)
    fig, ax = plots.figure(size=(6.4, 4.2))
    k = min(svals.shape[-1], 8)
    for m in range(k):
        line = plots.band(ax, t, svals[0, :, m], label=f"sigma_{m + 1}" if m < 6 else None)
        if svals.shape[0] > 1:
            ax.fill_between(t.numpy(), svals[1:, :, m].amin(0).numpy(), svals[1:, :, m].amax(0).numpy(),
                            color=line.get_color(), alpha=0.2, linewidth=0)
    plots.mark_times(ax, t_esc, label="theory escape times (u0 from init projection)")
    ax.axhline(EPS * s1, color="tab:red", linestyle=":", label=f"floor {EPS:g} * s_1")
    ax.set_yscale("log")
    ax.set_xlabel("time t = lr * step")
    ax.set_ylabel("singular value of W(t)")
    ax.set_title(f"{case}: spectrum of W(t) (GD line, SGD band)")
    ax.legend(ncol=2)
    claim.figure(fig, "singular_values_vs_time", caption="singular values of the end-to-end map with the "
                 "theory's escape times marked")
    R, K, _ = svals.shape
    claim.table(pd.DataFrame({"run": np.repeat(np.arange(R), K * k), "time": np.tile(np.repeat(t.numpy(), k), R),
                              "index": np.tile(np.arange(1, k + 1), R * K),
                              "sigma": svals[..., :k].numpy().ravel()}), "singular_values_vs_time")

    fig, ax = plots.figure(size=(5.2, 3.8))
    where = torch.nonzero(torch.isfinite(gaps))
    g = gaps[torch.isfinite(gaps)]
    if len(g):
        ax.scatter(t[where[:, 1]].numpy(), g.numpy(), c=np.where(where[:, 0].numpy() == 0, 0, 1), cmap="coolwarm", s=18)
        ax.set_yscale("log")
    ax.set_xlabel("time of rank change t = lr * step")
    ax.set_ylabel("gap sigma_r / sigma_{r+1} at the new rank r")
    ax.set_title(f"{case}: gaps at transitions (eps={EPS:g}; blue GD, red SGD)")
    claim.figure(fig, "gap_at_transitions", caption="singular-value gap at each rank transition")
    claim.table(pd.DataFrame({"run": where[:, 0].numpy(), "time": t[where[:, 1]].numpy(),
                              "rank": ranks[where[:, 0], where[:, 1]].numpy(), "gap": g.numpy()}),
                "gap_at_transitions")


def _product_staircases(claim, traj, t, s1, case) -> dict:
    """Rank of every partial product P_ij over time (same eps and floor as W): figure, CSV and
    per-product unit-step / non-monotone fractions (descriptive; the assertion is on W)."""
    pattern = spectra.rank_pattern(traj.weights, EPS, atol=EPS * s1)          # (R, K, L, L)
    growth = stagewise.growth_statistics(pattern.movedim(1, -1))                      # each (R, L, L)
    R, K, L, _ = pattern.shape
    fig, ax = plots.figure(size=(7.0, 4.2))
    rows, numbers = [], {"unit_fraction_gd_by_product": {}, "nonmonotone_max_sgd_by_product": {}}
    for i, j in zip(*np.triu_indices(L)):
        name = f"P_{i + 1}{j + 1}"
        r = pattern[:, :, i, j].double()
        line = plots.band(ax, t, r[0], label=name, drawstyle="steps-post")
        if R > 1:
            ax.fill_between(t.numpy(), r[1:].amin(0).numpy(), r[1:].amax(0).numpy(), step="post",
                            color=line.get_color(), alpha=0.2, linewidth=0)
        numbers["unit_fraction_gd_by_product"][name] = float(growth["unit"][0, i, j])
        numbers["nonmonotone_max_sgd_by_product"][name] = float(growth["nonmonotone"][1:, i, j].max()) if R > 1 else 0.0
        rows.append(pd.DataFrame({"run": np.repeat(np.arange(R), K), "time": np.tile(t.numpy(), R),
                                  "i": i + 1, "j": j + 1, "rank": r.numpy().ravel()}))
    ax.set_xscale("symlog", linthresh=float(t[1]) if K > 1 else 1.0)
    ax.set_xlabel("time t = lr * step")
    ax.set_ylabel(f"rank of P_ij(t), eps {EPS:g}, floor eps * s_1")
    ax.set_title(f"{case}: rank staircases of every partial product (GD line, SGD band)")
    ax.legend(ncol=3, fontsize=7)
    claim.figure(fig, "product_rank_staircases", caption="numerical rank of each P_ij over time")
    claim.table(pd.concat(rows, ignore_index=True), "product_rank_staircases")
    return numbers
