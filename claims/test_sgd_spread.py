"""Claim family: SGD's run-to-run spread around the GD path, against the linear-noise approximation
with the engine's epoch-reshuffled batches (dlncheck.theory.spread; issue #11 item 5).

For each (lr, B) of the scaling sweep (test_scaling's ensembles, read from the cache: nothing is
trained twice; lr in {eta, eta/2}, B in {10, 30}) and at t = T/2 (plateaus
and escapes in the saddle regime, the approach in the NTK regime) and t = T (the end, near the minimum):

- read-outs: the r x r block u_a^T W v_b of the end-to-end map in GD's singular frame at t (its summed
  variance) and each mode strength sigma_a(W) (r = teacher rank);
- predicted: lr^2 sum over epochs of Hoeffding's permutation covariance of the adjoint-projected
  per-sample gradients along GD's path (first order in the noise, theory.spread items 1-3) plus the
  same-order pair term, the multiplicative noise acting on the within-epoch displacement
  (theory.spread_pair, Monte-Carlo over shuffles, ~2% relative error, neglected against the interval);
- asserted: measured/predicted variance inside the chi-square interval of a variance from S runs
  (Welch-Satterthwaite for the block), Bonferroni over every asserted ratio of the case.
  A mode strength whose predicted sd is below the float64 resolution eps s_1 sqrt(steps) of its
  measurement (rounding as a random walk over the steps) has no measurable predicted level; it is
  reported, not asserted.
Growth during an escape: at T/2 the saddle runs sit on the plateau before the last escape, after the
earlier ones; the LNA linearises the escape path, so the T/2 ratios test it (theory.spread item 5).
The lr and B scaling of the spreads is asserted in claims/test_scaling.py (function_distance_mid,
function_distance, sigma_spread).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from claims import expectations
from dlncheck import presets
from dlncheck.config.data import init_weights, make_problem
from dlncheck.measure import lr_sweep
from dlncheck.report import plots
from dlncheck.report.claim import Prediction
from dlncheck.suite.family import Family
from dlncheck.theory import power, spread

FAMILY = Family(
    "sgd_spread",
    question="is SGD's run-to-run spread around GD the linearised prediction?",
    group="golden path",
    predictions={
        "level": Prediction(
            "run-to-run Var of the mode-frame block of W and of each mode strength at T/2 and T = the linear-noise "
            "approximation with epoch reshuffling plus the same-order pair term (theory.spread.lna_covariance, "
            "theory.spread_pair), within the chi-square interval of a variance from S runs (Bonferroni over the "
            "case's ratios)",
            "around GD's path: lr^2 sum over epochs of Hoeffding's permutation covariance of the adjoint-projected "
            "per-sample gradients (first order; the zero-sum epoch cancels its frozen-path part) plus the "
            "multiplicative noise acting on the within-epoch displacement (second order in the noise, the same lr^3)",
        ),
    },
)
pytestmark = FAMILY.mark
BATCH_SIZES = (10, 30)  # = claims/test_scaling.BATCH_SIZES (same cached ensembles)
TIMES = (0.5, 1.0)  # fractions of T (the sweep's checkpoints)
FRACTIONS = (1.0, 0.5)  # lr in {eta, eta/2}: the adjoint pass costs ~ steps / fraction
PAIR_DRAWS = 4096  # shuffles per path for the pair term's Monte-Carlo: relative error ~ sqrt(2 / 4096) = 2%
LEVEL = 0.05  # family-wise, Bonferroni over the asserted ratios of a case
QUICK = [("saddle", "lowrank", 2), ("saddle", "lowrank", 3), ("ntk", "lowrank", 2), ("ntk", "lowrank", 3)]
NIGHTLY = [(r, t, L) for r in ("saddle", "ntk") for t in presets.TEACHERS for L in (2, 3, 4) if (r, t, L) not in QUICK]
PARAMS = [
    expectations.param(presets.case_id(*c), *c, nightly=nightly)
    for cases, nightly in ((QUICK, False), (NIGHTLY, True))
    for c in cases
]


def measured(traj, checkpoint: int, r: int):
    """(S, r*r) block u_a^T W v_b in GD's frame and (S, r) mode strengths of the SGD runs."""
    W = [w[:, checkpoint] for w in traj.weights]
    P = W[0]
    for w in W[1:]:
        P = w @ P
    U, _, Vh = torch.linalg.svd(P[0])
    block = torch.einsum("ia,rij,jb->rab", U[:, :r], P, Vh[:r].T).reshape(P.shape[0], -1)
    return block[1:].double().numpy(), torch.linalg.svdvals(P)[1:, :r].double().numpy()


def case_rows(points, trajs, fractions, runs: int) -> pd.DataFrame:
    exp = points[0].experiment
    r, problem = exp.teacher.rank, make_problem(exp)
    rows = []
    for f in fractions:
        p = next(q for q in points if q.lr_fraction == f)
        targets = lr_sweep.checkpoint_steps(p.experiment, TIMES)
        pred = spread.lna_covariance(
            init_weights(p.experiment),
            problem.X,
            problem.Syx,
            p.lr,
            p.experiment.steps,
            targets,
            r,
            BATCH_SIZES,
            pair_draws=PAIR_DRAWS,
        )
        floor = np.finfo(np.float64).eps * float(exp.teacher.s[0]) * np.sqrt(p.experiment.steps)
        for q, traj in zip(points, trajs):
            if q.lr_fraction != f:
                continue
            for c, (frac, t) in enumerate(zip(TIMES, targets), start=1):
                cov = pred["cov"][(t, q.batch_size)]
                block, modes = measured(traj, c, r)
                base = {"lr": q.lr, "lr_fraction": f, "batch_size": q.batch_size, "t": t * q.lr, "time_fraction": frac}
                rows.append(
                    base
                    | {
                        "readout": "block",
                        "measured": block.var(0, ddof=1).sum(),
                        "predicted": np.trace(cov),
                        "cov": cov,
                        "asserted": True,
                    }
                )
                for a in range(r):
                    v = cov[a * (r + 1), a * (r + 1)]
                    rows.append(
                        base
                        | {
                            "readout": f"sigma_{a + 1}",
                            "measured": modes[:, a].var(ddof=1),
                            "predicted": v,
                            "cov": np.array([[v]]),
                            "asserted": np.sqrt(v) > floor,
                        }
                    )
    return spread_check(pd.DataFrame(rows), runs)


def spread_check(df: pd.DataFrame, runs: int) -> pd.DataFrame:
    """Rows with measured and predicted variance, predicted covariance ``cov`` and ``asserted``: ratio,
    its Bonferroni chi-square interval lo..hi (theory.spread.variance_ratio_interval), ok, and the
    variance factor rejected above hi with probability 95 % (mdd_factor, theory.power item 2)."""
    df = df.assign(ratio=df.measured / df.predicted)
    alpha = LEVEL / int(df.asserted.sum())
    bounds = [
        spread.variance_ratio_interval(c, runs, alpha) if a else (np.nan, np.nan)
        for c, a in zip(df["cov"], df.asserted)
    ]
    df["lo"], df["hi"] = np.array(bounds).T
    df["ok"] = ~df.asserted | ((df.ratio >= df.lo) & (df.ratio <= df.hi))
    df["mdd_factor"] = [
        power.variance_factor_mdd(hi, spread.welch_dof(c, runs)) if a else np.nan
        for c, a, hi in zip(df["cov"], df.asserted, df.hi)
    ]
    return df.drop(columns="cov")


def plot_case(cid: str, df: pd.DataFrame):
    """Block spread vs t per (lr, B): measured points, the LNA level with its interval where asserted
    (error bars at the checkpoints only); right: every measured/predicted Var ratio and its interval."""
    fig, axes = plots.figure(1, 3, size=(14.8, 4.2), margins={"left": 1.1})
    colors = dict(zip(sorted(df.lr_fraction.unique(), reverse=True), plt_colors()))
    for ax, B in zip(axes[:2], BATCH_SIZES):
        for k, (f, color) in enumerate(colors.items()):
            sel = df[(df.readout == "block") & (df.batch_size == B) & (df.lr_fraction == f)].sort_values("t")
            lr, pred = sel.lr.iloc[0], np.sqrt(sel.predicted.to_numpy())
            shift = 1 + 0.01 * (k - 0.5) * (sel.t.max() - sel.t.min()) / sel.t.max()  # keep bars apart
            bars = [pred - np.sqrt(sel.predicted * sel.lo), np.sqrt(sel.predicted * sel.hi) - pred]
            ax.errorbar(
                sel.t * shift,
                pred,
                yerr=bars,
                fmt="_",
                ms=14,
                color=color,
                capsize=3,
                label=rf"LNA $\pm$ interval, $\eta$ = {lr:.3g}",
            )
            ax.plot(sel.t * shift, np.sqrt(sel.measured), "o", color=color, label=rf"measured, $\eta$ = {lr:.3g}")
            plots.mark_failing(ax, sel.t * shift, np.sqrt(sel.measured), ~sel.ok)
        ax.set(
            yscale="log",
            xlabel=r"time $t = \eta k$ (checkpoints $T/2$, $T$)",
            ylabel=r"block spread $\left(\sum_{a,b\leq r}\mathrm{Var}\,[u_a^\top W v_b]\right)^{1/2}$",
            title=f"{cid}, B = {B}",
        )
        ax.legend(fontsize=6)
    ax = axes[2]
    x = np.arange(len(df))
    asserted, block = df.asserted.to_numpy(), (df.readout == "block").to_numpy()
    ax.errorbar(
        x[asserted],
        np.ones(asserted.sum()),
        yerr=[1 - df.lo[asserted], df.hi[asserted] - 1],
        fmt="none",
        ecolor="0.6",
        label="chi-square interval (Bonferroni)",
    )
    ax.plot(x[asserted & block], df.ratio[asserted & block], "s", ms=4, label="block")
    ax.plot(x[asserted & ~block], df.ratio[asserted & ~block], "o", ms=3, label=r"mode strength $\sigma_a$")
    ax.plot(
        x[~asserted],
        df.ratio[~asserted],
        "x",
        color="0.5",
        ms=4,
        label="not asserted (LNA level below float64 resolution)",
    )
    plots.mark_failing(ax, x, df.ratio, ~df.ok.to_numpy())
    ax.axhline(1, color="k", lw=0.8)
    ax.set(
        yscale="log",
        xlabel=r"read-out (per $\eta$, B, t: block, $\sigma_1..\sigma_r$)",
        ylabel="measured / predicted Var",
        title="Var ratio",
    )
    ax.legend(fontsize=6)
    return fig


def plt_colors():
    import matplotlib.pyplot as plt

    return plt.rcParams["axes.prop_cycle"].by_key()["color"]


@pytest.mark.parametrize("regime, teacher, depth", PARAMS)
def test_sgd_spread_level(regime, teacher, depth, preset, trajectory_cache, claim, dtype):
    if dtype != "float64":
        pytest.skip("spreads of 1e-10 s_1 need float64 (--dtype float64)")
    cid = presets.case_id(regime, teacher, depth)
    points = lr_sweep.sweep_points(preset(regime, teacher, depth), BATCH_SIZES, lr_sweep.LR_FRACTIONS)
    trajs = lr_sweep.run_sweep(points, train=trajectory_cache.ensemble)  # test_scaling's ensembles
    df = case_rows(points, trajs, FRACTIONS, points[0].experiment.sgd_runs)
    holds = bool(df.ok.all())
    claim.table(df, "ratios", caption="measured vs predicted run-to-run variance per (lr, B, t, read-out)")
    claim.figure(plot_case(cid, df), "spread", caption="SGD spread around GD vs the linear-noise approximation")
    a = df[df.asserted]
    worst = a.iloc[int(np.argmax(np.abs(np.log(a.ratio))))]
    block = df[df.readout == "block"].ratio
    row = FAMILY.predictions["level"]
    assert claim.verdict(
        prediction=row.prediction,
        observed=f"{int((~a.ok).sum())} of {len(a)} ratios outside; block ratio "
        f"{block.min():.3g}..{block.max():.3g}; worst {worst.readout} at lr "
        f"{worst.lr:.3g}, B {worst.batch_size}, t {worst.t:.3g}: {worst.ratio:.3g} "
        f"[{worst.lo:.3g}, {worst.hi:.3g}]",
        reason=row.reason,
        golden_path="agrees" if holds else "differs",
        key="worst_ratio",
        holds=holds,
        worst_ratio=float(worst.ratio),
        block_ratio_min=float(block.min()),
        block_ratio_max=float(block.max()),
        asserted=len(a),
        outside=int((~a.ok).sum()),
        mdd_variance_factor=float(a.mdd_factor.max()),  # any asserted variance scaled more: rejected >= 95%
    ), f"{cid}: {int((~a.ok).sum())} of {len(a)} variance ratios outside their intervals (worst {worst.ratio:.3g})"
