"""Figures of the published-result claims (claims/test_published.py): each shows what is asserted,
in the form a reader of the paper would recognise."""
from __future__ import annotations

import numpy as np
import torch
from scipy import stats as sps

from dlncheck import stats
from dlncheck.report import plots


def diffusion(claim, per_init, s, sde):
    fig, axes = plots.figure(1, len(per_init), size=(4.4 * len(per_init), 3.4))
    for ax, (name, d) in zip(np.atleast_1d(axes), per_init.items()):
        for a in range(len(s)):
            line = ax.plot(d["times"], d["var"][:, a], label=rf"$\alpha={a + 1}$ ($s={float(s[a]):g}$)")[0]
            ax.axvline(float(d["t_peak"][a]), color=line.get_color(), linestyle=":", linewidth=1)
            ax.axvline(float(d["t_learned"][a]), color=line.get_color(), linestyle="--", linewidth=1)
            if name == "aligned":
                V = sde[a]["V"]
                shown = V > 1e-6 * V.max()                   # the ODE's absolute tolerance floor below
                scale = float(d["var"][:, a].max()) / max(float(V.max()), 1e-300)
                ax.plot(d["times"][shown], V[shown] * scale, color=line.get_color(), alpha=0.4, linewidth=3)
        ax.set_yscale("log")
        ax.set_xlabel("time $t = \\eta k$")
        ax.set_ylabel(r"$\mathrm{Var}_{\mathrm{runs}}\, u_\alpha(t)$")
        ax.set_title(f"{name} init: peak (:) before learned (--)")
        ax.legend()
    claim.figure(fig, "variance_vs_time", caption="run-to-run variance of each mode strength under SGD; dotted: "
                 "its peak, dashed: median time the mode reaches 0.9 s; faint (aligned): the modewise SDE's "
                 "variance (linear-noise approximation), rescaled to the measured peak")


def stationary(claim, samples, kind):
    fig, axes = plots.figure(2, 4, size=(14.0, 6.0))
    for (factor, a), (z_obs, p) in samples.items():
        ax = axes[0 if factor == 1.0 else 1, a]
        ax.hist(z_obs, bins=60, density=True, color=plots.SGD_COLOR, alpha=0.6, label="SGD (runs x thinned times)")
        z = np.linspace(-4, 4, 200)
        ax.plot(z, sps.norm.pdf(z), color="black", label="predicted")
        ax.set_xlim(-4.5, 4.5)
        ax.set_xlabel(rf"$(\delta_{a + 1} - \mu_{{pred}}) / \sigma_{{pred}}$")
        ax.set_title(rf"$\alpha={a + 1}$, $\eta \times {factor:g}$: KS p = {p:.1g}")
        if a == 0:
            ax.legend()
    claim.figure(fig, f"stationary_{kind}", caption=f"late-time law of each mode's deviation from GD's fixed point, "
                 f"in units of the predicted ({kind}) standard deviation")


def balance(claim, times, curves):
    fig, axes = plots.figure(1, len(curves), size=(4.8 * len(curves), 3.5))
    for l, (ax, (D, pred)) in enumerate(zip(np.atleast_1d(axes), curves), start=1):
        norm = torch.linalg.matrix_norm(D, "fro")
        norm_pred = torch.linalg.matrix_norm(pred, "fro")
        ax.plot(times, norm[0], color=plots.GD_COLOR, label="GD")
        s = stats.summarize(norm[1:], n_boot=500)
        plots.band(ax, times, s["mean"], s["lo"], s["hi"], color=plots.SGD_COLOR, label="SGD mean (95% CI)")
        ax.plot(times, norm_pred[1:].mean(0), color="tab:blue", linestyle="--", label="SGD predicted (noise drift)")
        ax.set_xlabel("time $t = \\eta k$")
        ax.set_ylabel(rf"$\|D_{l}\|_F$")
        ax.set_title(rf"$D_{l} = W_{l + 1}^\top W_{l + 1} - W_{l} W_{l}^\top$")
        ax.legend()
    claim.figure(fig, "balance_drift", caption="imbalance after convergence: GD conserves D_l, SGD with label noise "
                 "drifts toward noise balance along the predicted path D_l(t_0) + lr^2 sum E[g_{l+1}^T g_{l+1} "
                 "- g_l g_l^T]")


def rank(claim, times, logdet, sv_w1, t_late, rate, exp):
    fig, axes = plots.figure(1, 2, size=(10.0, 3.6))
    ax = axes[0]
    ax.plot(times, logdet[0], color=plots.GD_COLOR, label="GD")
    s = stats.summarize(logdet[1:], n_boot=500)
    plots.band(ax, times, s["mean"], s["lo"], s["hi"], color=plots.SGD_COLOR, label="SGD mean (95% CI)")
    start = float(s["mean"][times >= t_late[0]][0])
    ax.plot(t_late, start + float(rate[1:].mean()) * (t_late - t_late[0]), color="tab:blue", linestyle="--",
            label="predicted slope (asserted window)")
    ax.set_xlabel("time $t = \\eta k$")
    ax.set_ylabel(r"$\log\det(\Theta^\top\Theta)$, $\Theta = [W_1, W_2^\top]$")
    ax.set_title("Varre et al.: the determinant GD conserves")
    ax.legend()
    ax = axes[1]
    for i in range(sv_w1.shape[-1]):
        ax.semilogy(times, sv_w1[0, :, i], color=plots.GD_COLOR, label="GD" if i == 0 else None)
        ax.semilogy(times, sv_w1[1:, :, i].mean(0), color=plots.SGD_COLOR, label="SGD mean" if i == 0 else None)
    ax.set_xlabel("time $t = \\eta k$")
    ax.set_ylabel(r"$\sigma_i(W_1)$")
    ax.set_title(f"hidden layer spectrum (teacher rank {exp.teacher.rank})")
    ax.legend()
    claim.figure(fig, "rank_deficiency", caption="label-noise SGD shrinks det(Theta^T Theta) at the predicted rate "
                 "while GD keeps it; the hidden layer's smallest singular values follow")


def collapse(claim, times, spread, tol):
    fig, ax = plots.figure(1, 1, size=(5.0, 3.4))
    ax.semilogy(times, spread, color=plots.SGD_COLOR, label=r"$\max_{r,ij} |W^{SGD}_r - W^{GD}|$")
    ax.axhline(tol, color="tab:red", linestyle="--", label="asserted at the end")
    ax.set_xlabel("time $t = \\eta k$")
    ax.set_ylabel("spread around GD")
    ax.set_title("no label noise: SGD collapses onto GD's fixed point")
    ax.legend()
    claim.figure(fig, "collapse", caption="largest deviation of any SGD run from GD (the same init), no label noise")
