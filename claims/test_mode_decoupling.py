"""Claim family: cross-mode decay before diagonal growth (protocol "Mode decoupling").

w_ab(t) = u_a^T W(t) v_b in the teacher's full singular bases. t_diag(a) = first t with
|w_aa| >= C_DIAG s_a. The protocol's t_cross uses an absolute eps on max_{b != a} |w_ab|: from a
tiny init every coefficient starts below any useful eps, so it is trivially 0; it is reported
(EPS_ABS) but the claim asserts the scale-free version: t_cross(a) = first t with
rho_a = ||off-diagonal part of row a|| / ||row a|| <= EPS_RHO. Pairs (a, b) inside a degenerate
block of s have no preferred basis and are excluded from the off-diagonal part.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from claims import expectations
from claims.expectations import MIN_FRACTION
from dlncheck import events, modes, presets, spectra, stats
from dlncheck.report import plots

EPS_RHO = 0.1          # scale-free threshold on rho_a
EPS_ABS = 1e-3         # protocol's absolute threshold, times s_1 (reported only)
C_DIAG = 0.5           # protocol's c


# Measured contradictions: the assertion stays as the theory states it (strict xfail).
@pytest.mark.parametrize("regime, teacher, depth", expectations.cases("mode_decoupling"))
def test_cross_modes_decay_before_diagonal(regime, teacher, depth, preset, trajectory_cache, claim):
    exp = presets.random_small_init(preset(regime, teacher, depth))
    row = expectations.PREDICTIONS["mode_decoupling"][regime]
    traj = trajectory_cache(exp, checkpoints=events.time_grid_for(exp))
    t = traj.checkpoint_times
    s, T = exp.teacher.s, exp.teacher
    n = int((s > 0).sum())
    W = spectra.end_to_end(traj.weights)
    w = modes.mode_coefficients(W, T.U, T.V)                                   # (R, K, d_out, d_in)
    times = modes.crossing_times(w, s, t, eps_rho=EPS_RHO, eps_abs=EPS_ABS * float(s[0]), c=C_DIAG)
    learned = torch.isfinite(times["t_diag"])                               # (R, n)
    before = (times["t_cross"] <= times["t_diag"]) & learned
    fraction = before.sum().item() / max(learned.sum().item(), 1)
    abs_fraction = ((times["t_cross_abs"] <= times["t_diag"]) & learned).sum().item() / max(learned.sum().item(), 1)
    off = modes.row_offdiag(w, s)
    energy = modes.cross_energy(w)
    blocks = [b for b in modes.degenerate_blocks(s) if len(b) > 1]

    if regime == "saddle":
        holds = fraction >= MIN_FRACTION and bool(learned.all())
    elif regime == "ntk":
        holds = fraction < MIN_FRACTION
    else:
        bound = modes.rho_upper_bound(W[:, -1], T.M, s)
        holds = bool((off["rho"][:, -1] <= bound).all())
    per_run = before.double().sum(-1) / learned.double().sum(-1).clamp(min=1)
    numbers = dict(fraction=fraction, fraction_abs_eps=abs_fraction, eps_rho=EPS_RHO, eps_abs=EPS_ABS * float(s[0]),
                   pairs=int(learned.sum()), unlearned_pairs=int((~learned).sum()),
                   fraction_gd=per_run[0].item(), fraction_sgd=per_run[1:].tolist(),
                   t_cross_gd=times["t_cross"][0].tolist(), t_diag_gd=times["t_diag"][0].tolist(),
                   t_cross_sgd_mean=times["t_cross"][1:].mean(0).tolist(),
                   t_diag_sgd_mean=times["t_diag"][1:].mean(0).tolist(),
                   final_cross_ratio=energy["ratio"][:, -1].tolist(), excluded_blocks=blocks,
                   init=exp.init.kind)
    _figure(claim, t, w, off, energy, times, s, n, presets.case_id(regime, teacher, depth))
    excl = f"; excluded within-block pairs of degenerate blocks {blocks}" if blocks else ""
    claim.verdict(prediction=row.prediction, exploratory=row.exploratory, holds=holds, reason=row.reason,
                  observed=(f"t_cross <= t_diag for {fraction:.0%} of {int(learned.sum())} learned (mode, run) "
                            f"pairs (GD {per_run[0].item():.0%}, SGD {np.round(per_run[1:].tolist(), 2).tolist()}); "
                            f"absolute-eps version ({EPS_ABS:g} s_1): {abs_fraction:.0%} (trivial at tiny init); "
                            f"GD t_cross {np.round(times['t_cross'][0].tolist(), 2).tolist()}, t_diag "
                            f"{np.round(times['t_diag'][0].tolist(), 2).tolist()}{excl}"),
                  **numbers)
    assert holds, (f"mode decoupling prediction failed for {presets.case_id(regime, teacher, depth)}: "
                   f"t_cross <= t_diag in {fraction:.0%} of pairs ({int((~learned).sum())} unlearned), "
                   f"predicted {row.prediction}")


def _figure(claim, t, w, off, energy, times, s, n, case):
    shown = min(n, 3)
    fig, axes = plots.figure(1, shown + 1, size=(4.0 * (shown + 1), 3.4))
    diag = torch.diagonal(w, dim1=-2, dim2=-1)[..., :n].abs()
    rows = []
    for a in range(shown):
        ax = axes[a]
        for name, x, color in (("max_{b!=a}|w_ab|", off["max"][..., a], "tab:red"),
                               ("|w_aa|", diag[..., a], "tab:blue")):
            sm = stats.summarize(x, n_boot=200)
            plots.band(ax, t, sm["mean"], sm["mean"] - sm["sem"], sm["mean"] + sm["sem"], label=name, color=color)
            rows.append(pd.DataFrame({"mode": a + 1, "quantity": name, "time": t.numpy(),
                                      "mean": sm["mean"].numpy(), "sem": sm["sem"].numpy()}))
        plots.mark_times(ax, times["t_cross"][0, a:a + 1], label="t_cross (GD)", color="tab:red")
        plots.mark_times(ax, times["t_diag"][0, a:a + 1], label="t_diag (GD)", color="tab:blue", linestyle=":")
        ax.set_yscale("log")
        ax.set_xlabel("time t = lr * step")
        ax.set_ylabel("|mode coefficient|")
        ax.set_title(f"{case}: mode {a + 1} (s={s[a]:.2g})")
        ax.legend()
    ax = axes[shown]
    sm = stats.summarize(energy["ratio"], n_boot=200)
    plots.band(ax, t, sm["mean"], sm["mean"] - sm["sem"], sm["mean"] + sm["sem"], label="E_cross / E_tot",
               color="tab:purple")
    rows.append(pd.DataFrame({"mode": 0, "quantity": "E_cross/E_tot", "time": t.numpy(),
                              "mean": sm["mean"].numpy(), "sem": sm["sem"].numpy()}))
    ax.set_xlabel("time t = lr * step")
    ax.set_ylabel("E_cross / E_tot")
    ax.set_title("cross-mode energy fraction (mean +- s.e.m.)")
    ax.legend()
    claim.figure(fig, "mode_coefficients", caption="max off-diagonal and diagonal mode coefficients per mode "
                 "and the cross-energy fraction, mean +- s.e.m. over GD and SGD runs; t_cross, t_diag of GD marked")
    claim.table(pd.concat(rows, ignore_index=True), "mode_coefficients")
