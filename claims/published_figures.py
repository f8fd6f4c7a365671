"""Figures of the published-result claims (claims/test_published.py): each shows what is asserted,
in the form a reader of the paper would recognise."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats as sps

from dlncheck.measure import stats
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
                shown = V > 1e-6 * V.max()  # the ODE's absolute tolerance floor below
                scale = float(d["var"][:, a].max()) / max(float(V.max()), 1e-300)
                ax.plot(d["times"][shown], V[shown] * scale, color=line.get_color(), alpha=0.4, linewidth=3)
        ax.set_yscale("log")
        ax.set_xlabel("time $t = \\eta k$")
        ax.set_ylabel(r"$\mathrm{Var}_{\mathrm{runs}}\, u_\alpha(t)$")
        ax.set_title(f"{name} init: peak (:) before learned (--)")
        ax.legend()
    claim.figure(
        fig,
        "variance_vs_time",
        caption="run-to-run variance of each mode strength under SGD; dotted: "
        "its peak, dashed: median time the mode reaches 0.9 s; faint (aligned): the modewise SDE's "
        "variance (linear-noise approximation), rescaled to the measured peak",
    )


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
    claim.figure(
        fig,
        f"stationary_{kind}",
        caption=f"late-time law of each mode's deviation from GD's fixed point, "
        f"in units of the predicted ({kind}) standard deviation",
    )


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
    claim.figure(
        fig,
        "balance_drift",
        caption="imbalance after convergence: GD conserves D_l, SGD with label noise "
        "drifts toward noise balance along the predicted path D_l(t_0) + lr^2 sum E[g_{l+1}^T g_{l+1} "
        "- g_l g_l^T]",
    )


def rank(claim, times, logdet, sv_w1, t_late, rate, exp):
    fig, axes = plots.figure(1, 2, size=(10.0, 3.6))
    ax = axes[0]
    ax.plot(times, logdet[0], color=plots.GD_COLOR, label="GD")
    s = stats.summarize(logdet[1:], n_boot=500)
    plots.band(ax, times, s["mean"], s["lo"], s["hi"], color=plots.SGD_COLOR, label="SGD mean (95% CI)")
    start = float(s["mean"][times >= t_late[0]][0])
    ax.plot(
        t_late,
        start + float(rate[1:].mean()) * (t_late - t_late[0]),
        color="tab:blue",
        linestyle="--",
        label="predicted slope (asserted window)",
    )
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
    claim.figure(
        fig,
        "rank_deficiency",
        caption="label-noise SGD shrinks det(Theta^T Theta) at the predicted rate "
        "while GD keeps it; the hidden layer's smallest singular values follow",
    )


def collapse(claim, times, spread, tol):
    fig, ax = plots.figure(1, 1, size=(5.0, 3.4))
    ax.semilogy(times, spread, color=plots.SGD_COLOR, label=r"$\max_{r,ij} |W^{SGD}_r - W^{GD}|$")
    ax.axhline(tol, color="tab:red", linestyle="--", label="asserted at the end")
    ax.set_xlabel("time $t = \\eta k$")
    ax.set_ylabel("spread around GD")
    ax.set_title("no label noise: SGD collapses onto GD's fixed point")
    ax.legend()
    claim.figure(fig, "collapse", caption="largest deviation of any SGD run from GD (the same init), no label noise")


def drift_identity(claim, times, curves, phase):
    """Per pair: E[D^SGD(t)] - D^GD(t) projected on the drift identity's end-point prediction P_l
    (units of ||P_l||^2), measured vs law of balance vs drift identity; the asserted end-point
    intervals drawn at T (red: a failed comparison)."""
    fig, axes = plots.figure(1, len(curves), size=(5.2 * len(curves), 3.8))
    t = np.asarray(times)
    for l, (ax, c) in enumerate(zip(np.atleast_1d(axes), curves), start=1):
        s = stats.summarize(c["measured"], n_boot=500)
        plots.band(ax, t, s["mean"], s["lo"], s["hi"], color=plots.SGD_COLOR, label="measured SGD $-$ GD (95% CI)")
        ax.plot(t, c["lob"].mean(0), color="tab:blue", linestyle="--", label="law of balance (SGD paths)")
        ax.plot(t, c["di"].mean(0), color=plots.GD_COLOR, linestyle=":", label="drift identity (GD path)")
        r, lim = c["row"], c["limits"]
        span = float(t[-1] - t[0])
        for dx, (y, half, name, color) in enumerate(
            [
                (r["x_measured"], r["z"] * r["se_measured"], "measured = DI", plots.SGD_COLOR),
                (r["x_lob"], lim["LoB = DI"] - r["h_di"], "LoB = DI", "tab:blue"),
                (1.0, r["h_di"], "measured = DI", plots.GD_COLOR),
            ]
        ):
            failed = name in c["failed"]
            ax.errorbar(
                t[-1] + (0.02 + 0.025 * dx) * span,
                y,
                yerr=half,
                fmt="o",
                ms=3,
                capsize=3,
                color="tab:red" if failed else color,
            )
        ax.set_xlim(t[0], t[-1] + 0.1 * span)
        ax.set_xlabel("time $t = \\eta k$")
        ax.set_ylabel(rf"$\langle \Delta D_{l}, P_{l}\rangle / \|P_{l}\|^2$")
        ax.set_title(rf"pair {l}: $D_{l} = W_{l + 1}^\top W_{l + 1} - W_{l} W_{l}^\top$ ({phase} phase)")
        ax.legend(fontsize=7, loc="upper left")
    claim.figure(
        fig,
        f"drift_identity_{phase}",
        caption="extra balance drift of SGD over GD, over the init x run "
        "ensemble, against the law of balance (noise drift on each SGD path) and the suite's drift identity "
        "(on GD's path); bars at T: the asserted intervals (run spread x z + truncation; red: fails)",
    )


def rank_departure(claim, d, setting):
    """sigma_m(P_ij) of the product whose rank departs, against the rank floor, and the total rank
    sum_{i<=j} r_ij per run, GD vs SGD, with the times each SGD run's rank pattern departs from GD's
    for good."""
    fig, axes = plots.figure(1, 2, size=(10.0, 3.6))
    t, sv, r = d["times"].numpy(), d["sv"], d["patterns"].sum((-2, -1))
    i, j = d["entry"]
    ax = axes[0]
    for m in range(sv.shape[-1]):
        ax.semilogy(t, sv[0, :, m], color=plots.GD_COLOR, label="GD" if m == 0 else None)
        ax.semilogy(t, sv[1:, :, m].mean(0), color=plots.SGD_COLOR, label="SGD mean" if m == 0 else None)
    ax.semilogy(
        t, d["floor"][1:].mean(0), color="tab:red", linestyle="--", label=r"rank floor $\epsilon\max(\sigma_1, s_1)$"
    )
    ax.set_xlabel("time $t = \\eta k$")
    ax.set_ylabel(rf"$\sigma_m(P_{{{i}{j}}})$")
    ax.set_title(f"spectrum of $P_{{{i}{j}}}$ ({setting})")
    ax.legend(fontsize=8)
    ax = axes[1]
    jitter = np.linspace(-0.15, 0.15, r.shape[0] - 1)
    for run in range(1, r.shape[0]):
        ax.plot(
            t,
            r[run] + jitter[run - 1],
            color=plots.SGD_COLOR,
            alpha=0.5,
            linewidth=1,
            label="SGD runs (jittered)" if run == 1 else None,
        )
    ax.plot(t, r[0], color=plots.GD_COLOR, linewidth=2, label="GD")
    finite = d["t_dep"][torch.isfinite(d["t_dep"])]
    for k, td in enumerate(finite):
        ax.axvline(float(td), color="tab:red", alpha=0.3, linewidth=1, label="departs for good" if k == 0 else None)
    ax.set_xlabel("time $t = \\eta k$")
    ax.set_ylabel(r"$\sum_{i \leq j} r_{ij}$ (rank pattern)")
    ax.set_title(f"departed by the end: {d['departed']}/{d['n_sgd']} SGD runs")
    ax.legend(fontsize=8)
    claim.figure(
        fig,
        "rank_departure",
        caption="label-noise SGD collapses spurious singular values below the "
        "suite's rank floor and its rank pattern leaves GD's for good (red: each run's departure time); "
        "GD keeps its pattern",
    )
