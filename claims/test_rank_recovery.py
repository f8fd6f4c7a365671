"""Claim: r_eps recovers a known rank on synthetic A = M + N (protocol 1.2, parts I and III).

Signal M = U diag(4, 2, 1) V^T, 48 x 32, r = 3. For each case a batched sweep over noise
levels x eps grid x draws measures P(r_eps = r); the theory (dlncheck.measure.calibration) predicts
the eps interval where r is recovered:

    FLOOR_MARGIN * max(edge / sigma_1(A), max(m, n) u)  <=  eps  <=  (sigma_r(A) / sigma_1(A)) / CEILING_MARGIN

with edge = sigma (sqrt(m) + sqrt(n)) (Bai-Yin), sigma_i(A) at the Benaych-Georges-Nadakuditi
outlier locations, u = finfo(dtype).eps, margins 2 and 2. Tier changes eps grid, draws and
noise levels, never the assertion.

Checks (each can fail):
  contains  - at every level the measured contiguous plateau with P(r_eps = r) >= 0.95 contains
              every grid eps of the predicted interval (which must be non-empty),
  none      - at every level s_r is below the detection threshold sigma (m n)^(1/4) and no grid
              eps reaches P(r_eps = r) >= 0.95,
  roundoff  - at every level P(r_eps = r) <= 0.05 for all grid eps <= 1e-3 x max(m, n) u
              (there must be such eps on the grid).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from matplotlib.ticker import MaxNLocator

from dlncheck import theory
from dlncheck.measure import calibration as cal
from dlncheck.report import plots
from dlncheck.suite.family import Family

FAMILY = Family("rank_recovery", question="does the rank estimator recover planted ranks?", group="calibration")
pytestmark = FAMILY.mark


@dataclasses.dataclass(frozen=True)
class Case:
    """A rank-recovery case: noise model, dtype, levels per tier, the checks asserted and why."""

    id: str
    model: str
    dtype: torch.dtype
    levels: tuple  # quick tier: sigma (gaussian) or sample counts n (proxy)
    nightly_levels: tuple
    checks: tuple
    reason: str
    label_noise: float = 0.0
    seed: int = 0


CASES = [
    Case(
        "gaussian-strong-float64",
        "gaussian",
        torch.float64,
        (1e-10, 1e-8, 1e-6, 1e-4, 1e-2),
        tuple(10.0**k for k in range(-11, -1)),
        ("contains",),
        "s_r = 1 >= 7.9 x noise edge (12.6 sigma) at every sigma <= 1e-2: noise values stay below "
        "the edge, outliers sit at the BGN locations, so r is counted between the two",
        seed=1,
    ),
    Case(
        "gaussian-strong-float32",
        "gaussian",
        torch.float32,
        (1e-8, 1e-6, 1e-4, 1e-2),
        tuple(10.0**k for k in range(-9, -1)),
        ("contains",),
        "same signal held in float32: the floor is max(noise floor, 48 x 1.2e-7 = 5.7e-6)",
        seed=2,
    ),
    Case(
        "gaussian-subthreshold-float64",
        "gaussian",
        torch.float64,
        (0.3, 0.5, 1.0),
        (0.25, 0.3, 0.4, 0.5, 0.7, 1.0),
        ("none",),
        "s_r = 1 < sigma (m n)^(1/4) = 6.3 sigma: the r-th mode sinks into the Marchenko-Pastur "
        "bulk (BBP transition), no gap separates sigma_r from sigma_{r+1}",
        seed=3,
    ),
    Case(
        "proxy-noiseless-float64",
        "proxy",
        torch.float64,
        (64, 256, 1024),
        (32, 64, 256, 1024, 2048),
        ("contains",),
        "X X^T / n = I exactly, so M_hat = M (X X^T / n) = M has exact rank r; only roundoff "
        "(floor 48 u = 1.1e-14) remains, so every eps from 1e-13 to the ceiling recovers r",
        seed=4,
    ),
    Case(
        "proxy-labelnoise-float64",
        "proxy",
        torch.float64,
        (64, 256, 1024),
        (32, 64, 256, 1024, 2048),
        ("contains",),
        "label noise tau = 0.05: M_hat - M = (tau / n) E X^T is i.i.d. N(0, tau^2 / n), so the "
        "Gaussian theory holds at sigma_eff = tau / sqrt(n)",
        label_noise=0.05,
        seed=5,
    ),
    Case(
        "exact-lowrank-float32",
        "gaussian",
        torch.float32,
        (0.0,),
        (0.0,),
        ("contains", "roundoff"),
        "rounding M to float32 lifts the zero singular values to ~u sigma_1 (u = 1.2e-7): "
        "eps <= 5.7e-9 counts them all; eps above 48 u recovers r",
        seed=6,
    ),
    Case(
        "exact-lowrank-float64",
        "gaussian",
        torch.float64,
        (0.0,),
        (0.0,),
        ("contains",),
        "float64 roundoff floor 48 u = 1.1e-14: every eps from 1e-13 to the signal ceiling "
        "s_r / s_1 = 0.25 (/2) recovers r",
        seed=6,
    ),
]


M, N, S = 48, 32, (4.0, 2.0, 1.0)
R = len(S)
NOT_RECOVERED = 0.05  # "not recovered": P(r_eps = r) at most this


def _prediction(case: Case) -> str:
    text = {
        "contains": (
            "a contiguous eps plateau with P(r_eps = r) >= 0.95 contains "
            f"[{theory.FLOOR_MARGIN:g} x max(edge / sigma_1(A), max(m,n) u), "
            f"(sigma_r(A) / sigma_1(A)) / {theory.CEILING_MARGIN:g}] on the grid"
        ),
        "none": "s_r below the detection threshold and no eps reaches P(r_eps = r) >= 0.95",
        "roundoff": (f"P(r_eps = r) <= {NOT_RECOVERED} for every eps <= {cal.FAR_BELOW_ROUNDOFF:g} x max(m,n) u"),
    }
    return "; ".join(text[c] for c in case.checks) + f" (because {case.reason})"


def _holds(check: str, table) -> np.ndarray:
    """Per noise level: does the check hold?"""
    if check == "contains":
        return table["contains_prediction"].to_numpy()
    if check == "none":
        return (~table["detectable"] & (table["max_recovery"] < cal.RECOVERY_LEVEL)).to_numpy()
    far = table["max_recovery_far_below_roundoff"].to_numpy()
    return np.isfinite(far) & (far <= NOT_RECOVERED)


def _label(model: str, level: float, sigma: float) -> str:
    if model == "proxy":
        return rf"n={level:.0f} ($\sigma_{{\rm eff}}$={sigma:.1e})"
    return rf"$\sigma$={level:.0e}" if level > 0 else r"$\sigma$=0 (roundoff only)"


# ----------------------------------------------------------------------------- figures
def _heatmap_figure(case, summary, table, labels):
    grid = summary.pivot(index="noise_level", columns="eps", values="recovery_rate")
    grid = grid.loc[table["noise_level"]]
    eps = grid.columns.to_numpy()
    log_eps = np.log10(eps)
    step = np.diff(log_eps).mean()
    edges = 10.0 ** np.concatenate([log_eps - step / 2, [log_eps[-1] + step / 2]])
    fig, ax = plots.figure(size=(8.9, 2.3 + 0.55 * len(labels)), margins={"left": 2.1, "bottom": 1.2})
    mesh = ax.pcolormesh(edges, np.arange(len(labels) + 1) - 0.5, grid.to_numpy(), cmap="viridis", vmin=0, vmax=1)
    rows = np.arange(len(labels))
    floor = np.maximum(table["relative_noise_floor"], table["roundoff_floor"])
    ax.plot(floor, rows, "w<", mec="black", ms=7, label=r"floor $\max(\mathrm{edge}/\sigma_1,\ \max(m,n)\,u)$")
    ax.plot(table["signal_ceiling"], rows, "w>", mec="black", ms=7, label=r"ceiling $\sigma_r/\sigma_1$")
    for y, row in zip(rows, table.itertuples()):
        ax.hlines(
            y + 0.18,
            row.predicted_lo,
            row.predicted_hi,
            colors="white",
            lw=2.5,
            label="predicted interval (margins 2, 2)" if y == 0 else None,
        )
        if np.isfinite(row.plateau_lo):
            ax.hlines(
                y - 0.18,
                row.plateau_lo,
                row.plateau_hi,
                colors="red",
                lw=2.5,
                ls=":",
                label="measured plateau (P >= 0.95)" if y == 0 else None,
            )
    ax.set_xscale("log")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_yticks(rows, labels)
    ax.set_xlabel(r"relative threshold $\varepsilon$")
    ax.set_ylabel("noise level")
    ax.set_title(rf"{case.id}: $P(r_\varepsilon = {R})$ over {int(summary['n_draws'].iloc[0])} draws", fontsize=10)
    ax.grid(False)
    fig.colorbar(mesh, ax=ax, label=r"recovery rate $P(r_\varepsilon = r)$")
    ax.legend(
        loc="lower left",
        bbox_to_anchor=(0.02, 0.02),
        bbox_transform=fig.transFigure,
        ncol=2,
        fontsize=7,
        frameon=True,
        facecolor="0.55",
    )  # in the bottom margin, below the axis label
    return fig


def _rank_band_figure(case, summary, labels, levels):
    fig, ax = plots.figure(size=(6.0, 3.8))
    for level, label in zip(levels, labels):
        part = summary[summary["noise_level"] == level].sort_values("eps")
        plots.band(ax, part["eps"], part["rank_mean"], part["rank_q05"], part["rank_q95"], label=label, marker=".")
    ax.axhline(R, color="black", ls="--", lw=1, label=f"true rank r = {R}")
    ax.set_xscale("log")
    ax.set_xlabel(r"relative threshold $\varepsilon$")
    ax.set_ylabel(r"numerical rank $r_\varepsilon$")
    ax.set_title(rf"{case.id}: $r_\varepsilon$, mean and 5-95 % band over draws", fontsize=10)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    return fig


def _gap_figure(case, draws, table, labels):
    fig, ax = plots.figure(size=(6.0, 3.6))
    log_gap = np.log10(draws["gap"].to_numpy())
    finite = np.isfinite(log_gap)
    bins = np.linspace(log_gap[finite].min(), log_gap[finite].max() + 1e-9, 80)
    for i, (row, label) in enumerate(zip(table.itertuples(), labels)):
        gaps = log_gap[(draws["noise_level"] == row.noise_level).to_numpy() & finite]
        ax.hist(gaps, bins=bins, alpha=0.6, color=f"C{i}", label=label)
        if np.isfinite(row.gap_predicted):
            ax.axvline(np.log10(row.gap_predicted), color=f"C{i}", ls="--", lw=1.2)
    ax.set_xlabel(r"$\log_{10}\,\sigma_r/\sigma_{r+1}$")
    ax.set_ylabel("draws (count)")
    ax.set_title(f"{case.id}: gap at r = {R}\n" + r"(dashed: predicted $\sigma_r(A)$ / noise edge)", fontsize=10)
    ax.legend()
    return fig


def _effective_rank_figure(case, per_level, labels):
    fig, ax = plots.figure(size=(6.6, 4.2), margins={"left": 1.3, "bottom": 1.2})
    x = np.arange(len(labels))
    plots.band(
        ax,
        x,
        per_level["effective_rank_mean"],
        per_level["effective_rank_q05"],
        per_level["effective_rank_q95"],
        label=r"effective rank $e^{H(\sigma/\sum\sigma)}$",
        marker="o",
    )
    plots.band(
        ax,
        x,
        per_level["participation_ratio_mean"],
        per_level["participation_ratio_q05"],
        per_level["participation_ratio_q95"],
        label="participation ratio",
        marker="s",
    )
    ax.axhline(R, color="black", ls="--", lw=1, label=f"true rank r = {R}")
    ax.set_xticks(x, labels, rotation=20, ha="right")
    ax.set_xlabel("noise level")
    ax.set_ylabel("continuous rank (dimensionless)")
    ax.set_title(f"{case.id}: continuous ranks vs noise\n(mean, 5-95 % band over draws)", fontsize=10)
    ax.legend()
    return fig


# ------------------------------------------------------------------------------- claim
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rank_recovery(case, tier, device, claim):
    quick = tier == "quick"
    eps = cal.eps_grid(1e-13, 1e-1, per_decade=1 if quick else 4)
    levels = case.levels if quick else case.nightly_levels
    result = cal.sweep(
        case.model,
        m=M,
        n=N,
        s=S,
        levels=levels,
        eps=eps,
        n_draws=100 if quick else 400,
        seed=case.seed,
        label_noise=case.label_noise,
        dtype=case.dtype,
        device=device,
    )
    table = cal.plateau_table(result.summary, S, M, N)
    per_level = cal.level_summary(result.draws)
    labels = [_label(case.model, lv, sg) for lv, sg in zip(table["noise_level"], table["sigma_eff"])]

    claim.figure(
        _heatmap_figure(case, result.summary, table, labels),
        "recovery_heatmap",
        "P(r_eps = r) over (eps, noise); white: predicted interval and edges, red: measured plateau",
    )
    claim.figure(
        _rank_band_figure(case, result.summary, labels, table["noise_level"]),
        "rank_vs_eps",
        "r_eps against eps, mean and 5-95 % band over draws",
    )
    claim.figure(
        _gap_figure(case, result.draws, table, labels), "gap_histogram", "histogram of sigma_r / sigma_{r+1} over draws"
    )
    claim.figure(
        _effective_rank_figure(case, per_level, labels),
        "effective_rank_vs_noise",
        "effective rank and participation ratio against noise level",
    )
    claim.table(result.summary, "recovery_by_eps", "numbers behind the heatmap and the r_eps bands")
    claim.table(result.draws, "spectra_by_draw", "numbers behind the gap histogram")
    claim.table(per_level, "continuous_rank_by_noise", "numbers behind the effective-rank figure")
    claim.table(table, "plateau_predicted_vs_measured", "predicted and measured eps plateaus")

    ok = {check: _holds(check, table) for check in case.checks}
    holds = bool(all(v.all() for v in ok.values()))
    lines = [
        f"{label}: measured plateau [{row.plateau_lo:.1e}, {row.plateau_hi:.1e}] vs predicted "
        + (
            f"grid [{row.predicted_grid_lo:.1e}, {row.predicted_grid_hi:.1e}] (interval "
            f"[{row.predicted_lo:.1e}, {row.predicted_hi:.2g}])"
            if row.predicted_grid_points
            else f"none (s_r / threshold = {S[-1] / row.detection_threshold:.2f})"
        )
        + f", max P = {row.max_recovery:.2f}"
        + (
            ""
            if np.isnan(row.max_recovery_far_below_roundoff)
            else f", max P far below roundoff = {row.max_recovery_far_below_roundoff:.2f}"
        )
        + "".join(f" [{c} FAILS]" for c, v in ok.items() if not v[i])
        for i, (row, label) in enumerate(zip(table.itertuples(), labels))
    ]
    observed = "; ".join(lines)
    numbers = table[
        [
            "noise_level",
            "sigma_eff",
            "predicted_lo",
            "predicted_hi",
            "predicted_grid_lo",
            "predicted_grid_hi",
            "plateau_lo",
            "plateau_hi",
            "max_recovery",
            "max_recovery_far_below_roundoff",
        ]
    ].to_dict("records")
    worst = float(table["max_recovery"].min())
    claim.verdict(
        prediction=_prediction(case),
        observed=observed,
        holds=holds,
        golden_path="n/a",
        key="worst_max_recovery",
        worst_max_recovery=worst,
        checks=list(case.checks),
        levels=numbers,
        n_draws=int(result.summary["n_draws"].iloc[0]),
        eps_points=len(eps),
        floor_margin=theory.FLOOR_MARGIN,
        ceiling_margin=theory.CEILING_MARGIN,
    )
    assert holds, (
        f"{case.id}: prediction '{_prediction(case)}' fails. {observed}. Check the "
        "noise levels in CASES against the theory edges, or report the contradiction."
    )
