"""Figures and CSVs of the stagewise growth claim (test_unit_step_growth): per-run rank
sequences (every SGD run visible), the per-init outcome grid, the spectrum with the theory's
escape times, gaps at transitions and the partial products' staircases. Fixed layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.ticker import MaxNLocator

from dlncheck import spectra
from dlncheck.measure import stagewise
from dlncheck.report import plots
from dlncheck.suite import init_ensembles

TIME = r"time $t = \eta\,k$"


def _shown(inits: list) -> int:
    """The init drawn run by run: the first with a failing run, else the first."""
    return next((i for i, a in enumerate(inits) if not bool(a["ok"].all())), 0)


def rank_vs_time(claim, inits, case, eps, levels):
    shown = _shown(inits)
    a = inits[shown]
    t, ranks, ok = a["traj"].checkpoint_times.numpy(), a["ranks"].double(), a["ok"]
    R = ranks.shape[0]
    fig, (ax, grid) = plots.figure(
        1, 2, size=(11.0, 4.2), gridspec_kw={"width_ratios": [1.7, 1.0], "wspace": 0.3, "top": 0.82}
    )
    offsets = np.linspace(-0.25, 0.25, max(R - 1, 1)) if R > 1 else []
    for run in range(1, R):
        color = "tab:red" if not ok[run] else plots.SGD_COLOR
        ax.step(
            t,
            ranks[run].numpy() + offsets[run - 1],
            where="post",
            color=color,
            lw=0.9,
            alpha=0.8,
            label=("SGD run (offset for visibility)" if run == 1 else None),
        )
    ax.step(t, ranks[0].numpy(), where="post", color=plots.GD_COLOR, lw=2.2, label="GD")
    if (~ok).any():
        ax.plot([], [], color="tab:red", lw=0.9, label="run failing the prediction")
    for lv in levels:
        ax.axhline(lv, color="0.6", lw=0.6, ls=":", zorder=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(TIME)
    ax.set_ylabel(r"rank $\#\{\sigma_m > \varepsilon \max(\sigma_1, s_1)\}$")
    init = a["exp"].init
    ax.set_title(
        f"{case}, init {shown} ({init.kind}, seed {init.seed})\n"
        rf"$\varepsilon = {eps:g}$; dotted: predicted levels",
        fontsize=10,
    )
    ax.legend(loc="lower right")
    outcome = np.stack([x["ok"].numpy().astype(float) for x in inits])  # (inits, R)
    grid.imshow(outcome, cmap=ListedColormap(["tab:red", "tab:green"]), vmin=0, vmax=1, aspect="auto")
    grid.set_xticks(range(R), ["GD"] + [str(r) for r in range(1, R)], fontsize=7)
    grid.set_yticks(
        range(len(inits)),
        [f"{x['exp'].init.kind[:3]} {x['exp'].init.seed}" + (" (trap)" if x["trapped"] else "") for x in inits],
        fontsize=7,
    )
    grid.set_xlabel("run (GD, SGD 1..S)")
    grid.set_title("per-init outcome\n(green: matches, red: fails)", fontsize=10)
    grid.grid(False)
    claim.figure(
        fig,
        "rank_vs_time",
        caption=(
            f"left: rank of W(t) at eps={eps:g} for GD (black) and every SGD run (thin, offset vertically so "
            "overlapping runs stay visible; red = fails) of one init; right: outcome of every (init, run)"
        ),
    )
    rows = [
        pd.DataFrame(
            {
                "init": i,
                "run": run,
                "time": x["traj"].checkpoint_times.numpy(),
                "rank": x["ranks"][run].numpy(),
                "ok": bool(x["ok"][run]),
            }
        )
        for i, x in enumerate(inits)
        for run in range(x["ranks"].shape[0])
    ]
    claim.table(pd.concat(rows, ignore_index=True), "rank_vs_time")


def spectrum(claim, a, base, case, eps):
    exp, traj, svals = a["exp"], a["traj"], a["svals"]
    t, s1 = traj.checkpoint_times, float(exp.teacher.s[0])
    t_esc, _ = init_ensembles.predicted_windows(traj)
    fig, ax = plots.figure(size=(8.4, 4.2), margins={"right": 3.6})  # room for the legend
    k = min(svals.shape[-1], 6)
    for m in range(k):
        line = plots.band(ax, t, svals[0, :, m], label=rf"$\sigma_{m + 1}$ (GD)")
        if svals.shape[0] > 1:
            ax.fill_between(
                t.numpy(),
                svals[1:, :, m].amin(0).numpy(),
                svals[1:, :, m].amax(0).numpy(),
                color=line.get_color(),
                alpha=0.2,
                linewidth=0,
            )
    plots.mark_times(ax, t_esc, label=r"theory escape times ($u_0$ from the init)")
    ax.axhline(eps * s1, color="tab:red", linestyle=":", label=rf"floor $\varepsilon s_1$, $\varepsilon={eps:g}$")
    ax.set_yscale("log")
    ax.set_xlabel(TIME)
    ax.set_ylabel(r"singular value $\sigma_m(W(t))$")
    ax.set_title(
        f"{case}: spectrum of W(t), init {exp.init.kind} {exp.init.seed}\n(GD line, SGD min-max band)", fontsize=10
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    claim.figure(
        fig,
        "singular_values_vs_time",
        caption="singular values of the end-to-end map (first init) with the theory's escape times marked",
    )
    R, K, _ = svals.shape
    claim.table(
        pd.DataFrame(
            {
                "run": np.repeat(np.arange(R), K * k),
                "time": np.tile(np.repeat(t.numpy(), k), R),
                "index": np.tile(np.arange(1, k + 1), R * K),
                "sigma": svals[..., :k].numpy().ravel(),
            }
        ),
        "singular_values_vs_time",
    )


def gaps(claim, inits, case, eps):
    rows = []
    for i, a in enumerate(inits):
        g = stagewise.transition_gaps(a["svals"], a["ranks"])
        where = np.argwhere(np.isfinite(g.numpy()))
        t = a["traj"].checkpoint_times.numpy()
        rows += [
            {"init": i, "run": int(r), "time": float(t[k]), "rank": int(a["ranks"][r, k]), "gap": float(g[r, k])}
            for r, k in where
        ]
    table = pd.DataFrame(rows, columns=["init", "run", "time", "rank", "gap"])
    fig, ax = plots.figure(size=(6.4, 4.0), margins={"left": 1.2}, gridspec_kw={"top": 0.85})
    for name, part, color, z in (
        ("SGD runs", table[table.run > 0], plots.SGD_COLOR, 2),
        ("GD", table[table.run == 0], plots.GD_COLOR, 3),
    ):
        if len(part):
            ax.scatter(part.time, part.gap, s=16, color=color, label=name, zorder=z, alpha=0.8)
    if len(table):
        ax.set_yscale("log")
        ax.legend()
    ax.set_xlabel(r"time of the rank change $t = \eta\,k$")
    ax.set_ylabel(r"gap $\sigma_r / \sigma_{r+1}$ at the new rank $r$")
    ax.set_title(f"{case}: gap at each rank transition\n" + rf"($\varepsilon = {eps:g}$, all inits)", fontsize=10)
    claim.figure(fig, "gap_at_transitions", caption="singular-value gap at each rank transition, GD and SGD")
    claim.table(table, "gap_at_transitions")


def product_staircases(claim, a, case, eps) -> dict:
    """Rank of every partial product P_ij over time for one init (same eps and floor as W):
    figure, CSV and per-product unit-step / non-monotone fractions (descriptive)."""
    traj, s1 = a["traj"], float(a["exp"].teacher.s[0])
    t = traj.checkpoint_times
    pattern = spectra.rank_pattern(traj.weights, eps, atol=eps * s1)  # (R, K, L, L)
    growth = stagewise.growth_statistics(pattern.movedim(1, -1))  # each (R, L, L)
    R, K, L, _ = pattern.shape
    fig, ax = plots.figure(size=(7.4, 4.2), gridspec_kw={"right": 0.75, "top": 0.85})
    rows, numbers = [], {"unit_fraction_gd_by_product": {}, "nonmonotone_max_sgd_by_product": {}}
    for i, j in zip(*np.triu_indices(L)):
        name = f"P_{i + 1}{j + 1}"
        r = pattern[:, :, i, j].double()
        line = plots.band(ax, t, r[0], label=rf"$P_{{{i + 1}{j + 1}}}$", drawstyle="steps-post")
        if R > 1:
            ax.fill_between(
                t.numpy(),
                r[1:].amin(0).numpy(),
                r[1:].amax(0).numpy(),
                step="post",
                color=line.get_color(),
                alpha=0.2,
                linewidth=0,
            )
        numbers["unit_fraction_gd_by_product"][name] = float(growth["unit"][0, i, j])
        numbers["nonmonotone_max_sgd_by_product"][name] = float(growth["nonmonotone"][1:, i, j].max()) if R > 1 else 0.0
        rows.append(
            pd.DataFrame(
                {
                    "run": np.repeat(np.arange(R), K),
                    "time": np.tile(t.numpy(), R),
                    "i": i + 1,
                    "j": j + 1,
                    "rank": r.numpy().ravel(),
                }
            )
        )
    ax.set_xscale("symlog", linthresh=float(t[1]) if K > 1 else 1.0)
    ax.set_xlabel(TIME + " (symlog)")
    ax.set_ylabel(r"rank of $P_{ij}(t)$, floor $\varepsilon s_1$")
    ax.set_title(
        f"{case}: rank of every partial product\n(GD line, SGD min-max band; init "
        f"{a['exp'].init.kind} {a['exp'].init.seed})",
        fontsize=10,
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), title="product")
    claim.figure(fig, "product_rank_staircases", caption="numerical rank of each P_ij over time (first init)")
    claim.table(pd.concat(rows, ignore_index=True), "product_rank_staircases")
    return numbers
