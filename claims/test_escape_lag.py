"""Claim family: the escape-lag law (issue #25 item 2). SGD's escapes lag GD's, by the first-order
amount that reshuffled SGD's modified loss predicts (dlncheck.theory.escape_lag).

1. Size and sign (``test_escape_lag``). Per init (random small inits of the saddle ensemble, and the
   aligned control) and per escape k: GD's escape time t_k (run 0) and each SGD run's (runs 1..S),
   the loss-midpoint crossings interpolated between recorded steps (measure.events.escape_times: it
   needs only the loss, so it serves random inits; one escape per distinct s). The measured lag is the
   mean over the init's S runs of t_k(SGD) - t_k(GD); the prediction is theory.escape_lag.predicted_lags
   (GD's path and the mean path of GD on L + (lr c_B / 4) tr Sigma, from the data alone, no SGD run).
   Asserted for every (init, escape) pair at family-wise level 0.05 (Bonferroni over the K pairs):
   |mean - p| <= t_{1-0.05/(2K), S-1} sd / sqrt(S) + h |p| (h = lr lambda_max,
   theory.sgd.truncation_tolerance) and no significantly negative mean. Runs are nested in their
   init: statistics are within inits, fractions over inits (Wilson). An (init, escape) that GD never
   makes (the det-sign trap) has no lag and is set apart; an SGD run still on the plateau at T lags
   by more than T - t_k (censored: counted as positive, kept out of the size check).
2. Slope (``test_escape_lag_slope``). Over the lr x B sweep of claims/test_scaling.py (the aligned
   preset, lr in {eta, eta/2, eta/4, eta/8} x B in {10, 30}, equal time T): the log-log slope of the
   mean lag of each escape against lr c_B, with a nested run-bootstrap 95% interval [lo, hi]
   (measure.lr_sweep.fit_loglog); asserted: 1 in [lo - b, hi + b], b = h / (1 - h).
Numbers are named lag_* (relative lags are lag / t_GD).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from claims import expectations
from dlncheck import presets
from dlncheck.config import Ensemble
from dlncheck.measure import events, lr_sweep
from dlncheck.report import plots
from dlncheck.report.claim import Prediction
from dlncheck.suite import init_ensembles
from dlncheck.suite.family import Family
from dlncheck.theory import escape_lag, power, sgd
from dlncheck.theory import mode_dynamics as theory_modes
from dlncheck.theory.gradient_noise import minibatch_factor

_SIZE = (
    "per (init, escape): mean over the init's SGD runs of t_esc(SGD) - t_esc(GD) (loss-midpoint crossings) "
    "= theory.escape_lag.predicted_lags within t_(1-0.05/2K, S-1) sd/sqrt(S) + h |p| (Bonferroni over the K "
    "pairs), and no significantly negative mean"
)
_WHY = (
    "the mean iterate of reshuffled SGD is GD on L + (lr c_B / 4) tr Sigma (Smith et al. 2021's modified loss, "
    "the epoch expansion of this sampler); at a small-init saddle the noise is multiplicative, tr Sigma is "
    "smallest at the saddle and the drift slows every escape (theory.escape_lag items 1-4); h = lr lambda_max "
    "bounds the neglected relative terms (theory.sgd.truncation_tolerance)"
)
FAMILY = Family(
    "escape_lag",
    question="do SGD's escapes lag GD's by the first-order amount of reshuffled SGD's modified loss?",
    group="golden path",
    if_holds="differs",
    if_contradicted="differs",
    predictions={
        "ensemble": Prediction(_SIZE + " (random small inits: balanced and Gaussian)", _WHY),
        "aligned": Prediction(_SIZE + " (aligned control: decoupled modes)", _WHY),
        "slope": Prediction(
            "log-log slope of each escape's mean lag against lr c_B is 1: 1 in [lo - b, hi + b], b = h / (1 - h), "
            "over the lr x B sweep of the scaling family",
            "the lag is linear in the regulariser's weight lr c_B / 4 at first order (theory.escape_lag item 4); "
            "O(h) relative terms bend a local log-log slope by at most b",
        ),
    },
    results=(
        (r"test_escape_lag\[saddle-", "SGD's escapes lag GD's by the predicted lr c_B amount"),
        (r"test_escape_lag_slope\[", "the escape lag vanishes linearly in lr c_B"),
    ),
)
pytestmark = FAMILY.mark
SWEEP_BATCH_SIZES = (10, 30)  # claims/test_scaling.py's sweep: the cache trains it once for both families
QUICK = [("lowrank", 2, "ensemble"), ("lowrank", 3, "ensemble")] + [("lowrank", L, "aligned") for L in (2, 3, 4)]
NIGHTLY = [
    (t, L, inits)
    for t in presets.TEACHERS
    for L in (2, 3, 4)
    for inits in ("ensemble", "aligned")
    if (t, L, inits) not in QUICK
]
SLOPE_QUICK = [("lowrank", 2), ("lowrank", 3)]
SLOPE_NIGHTLY = [(t, L) for t in presets.TEACHERS for L in (2, 3, 4) if (t, L) not in SLOPE_QUICK]


def _case_id(teacher, depth, inits="ensemble"):
    return presets.case_id("saddle", teacher, depth) + ("-aligned" if inits == "aligned" else "")


LAG_CASES = [
    expectations.param(_case_id(t, L, i), t, L, i, nightly=nightly)
    for rows, nightly in ((QUICK, False), (NIGHTLY, True))
    for t, L, i in rows
]
SLOPE_CASES = [
    expectations.param(f"slope-{_case_id(t, L)}", t, L, nightly=nightly)
    for rows, nightly in ((SLOPE_QUICK, False), (SLOPE_NIGHTLY, True))
    for t, L in rows
]


def _ensemble(exp, inits, sizes):
    """The init ensemble of the pattern claims (same configs and checkpoints, so the cache trains it
    once for every family), lengthened only where theory's mean SGD path escapes too late: its last
    escape plus h times the largest predicted lag plus the rise of the slowest mode (three half-widths
    of its escape window, theory.escape_halfwidth) must fit in T. Fixed from theory alone, before any
    SGD run is looked at."""
    ens = Ensemble(exp, [exp.init]) if inits == "aligned" else init_ensembles.case_ensemble(exp, sizes.ensembles)
    pred = escape_lag.predicted_lags(ens, max_steps=2 * ens.base.steps)
    h = max(sgd.truncation_tolerance(e) for e in ens.experiments)
    finite = np.isfinite(pred["sgd"])
    rise = 3 * float(theory_modes.escape_halfwidth([escape_lag.escape_values(exp.teacher.s)[-1]], exp.depth)[0])
    needed = math.ceil((pred["sgd"][finite].max() + h * pred["lag"][finite].max() + rise) / exp.lr)
    if needed > ens.base.steps:
        ens = Ensemble(dataclasses.replace(ens.base, steps=needed), ens.inits)
    return ens, pred, h


@pytest.mark.parametrize("teacher, depth, inits", LAG_CASES)
def test_escape_lag(teacher, depth, inits, preset, sizes, trajectory_cache, claim):
    exp = preset("saddle", teacher, depth)
    cid = _case_id(teacher, depth, inits)
    row = FAMILY.predictions[inits]
    ens, pred, h = _ensemble(exp, inits, sizes)
    et = trajectory_cache.ensemble(ens, checkpoints=init_ensembles.analysis_grid(ens.base))
    labels = init_ensembles.init_labels(ens)
    values = escape_lag.escape_values(exp.teacher.s)
    rows, pairs = [], []
    for i, tr in enumerate(et):
        t = events.escape_times(tr.loss, tr.times, exp.teacher.s, tr.loss_offset)  # (R, n)
        for k, s_k in enumerate(values):
            trapped = not np.isfinite(t[0, k])  # GD never escapes: no lag is defined (and inf - inf is no number)
            lags = np.full(len(t) - 1, np.nan) if trapped else t[1:, k] - t[0, k]
            kind = "trapped" if trapped else "censored" if not np.isfinite(lags).all() else "asserted"
            pairs.append((i, k, kind, lags, float(t[0, k]), float(pred["lag"][i, k])))
            rows += [
                {
                    "init": labels[i],
                    "escape": k + 1,
                    "s": float(s_k),
                    "run": r + 1,
                    "t_gd": float(t[0, k]),
                    "t_sgd": float(t[r + 1, k]),
                    "lag": float(lags[r]),
                    "predicted": float(pred["lag"][i, k]),
                    "pair": kind,
                }
                for r in range(len(lags))
            ]
    asserted = [p for p in pairs if p[2] == "asserted" and np.isfinite(p[5])]
    checks = escape_lag.lag_checks(np.stack([p[3] for p in asserted]), np.array([p[5] for p in asserted]), h)
    ok = checks["size"] & checks["sign"]
    t_gd = np.array([p[4] for p in asserted])
    rel, rel_pred = checks["mean"] / t_gd, np.array([p[5] for p in asserted]) / t_gd
    per_init = [bool(all(ok[j] for j, p in enumerate(asserted) if p[0] == i)) for i in range(len(ens))]
    summary = init_ensembles.summary(per_init)
    censored = [p for p in pairs if p[2] == "censored"]
    holds = bool(ok.all()) and not any(np.nanmin(p[3]) < 0 for p in censored)
    numbers = dict(
        lag_median=float(np.median(rel)),
        lag_median_predicted=float(np.median(rel_pred)),
        lag_min=float(rel.min()),
        lag_max=float(rel.max()),
        lag_ratio_median=float(np.median(checks["mean"] / np.array([p[5] for p in asserted]))),
        lag_positive=int((checks["mean"] > 0).sum()),
        lag_resolved_positive=int(
            (checks["mean"] - checks["t"] * checks["sd"] / math.sqrt(ens.base.sgd_runs) > 0).sum()
        ),
        lag_pairs=len(asserted),
        lag_size_ok=int(checks["size"].sum()),
        lag_sign_ok=int(checks["sign"].sum()),
        lag_censored=len(censored),
        lag_trapped=sum(p[2] == "trapped" for p in pairs),
        lag_median_per_escape=[float(np.median(rel[[p[1] == k for p in asserted]])) for k in range(len(values))],
        t_quantile=checks["t"],
        h=h,
        sgd_runs=ens.base.sgd_runs,
        n_inits=summary["n_inits"],
        inits_holding=summary["n_pass"],
        fraction_inits=summary["fraction"],
        fraction_ci=[summary["fraction_lo"], summary["fraction_hi"]],
        steps=ens.base.steps,
    )
    worst = int(np.argmax(np.abs(checks["mean"] - rel_pred * t_gd) / checks["band"]))
    numbers["mdd_lag"] = max(  # largest delay (fraction of t_GD) the size check is sure to catch (theory.power)
        power.band_mdd(sd / math.sqrt(ens.base.sgd_runs), checks["t"], ens.base.sgd_runs - 1, h * abs(p[5])) / p[4]
        for sd, p in zip(checks["sd"], asserted)
    )
    numbers["lag_worst_ratio"] = float(checks["mean"][worst] / asserted[worst][5])
    numbers["lag_worst_excess"] = float(abs(checks["mean"][worst] - asserted[worst][5]) / checks["band"][worst])
    observed = (
        f"{len(asserted)} (init, escape) pairs, {summary['n_inits']} inits x {ens.base.sgd_runs} SGD runs: median lag "
        f"{100 * numbers['lag_median']:.3g}% of t_GD (predicted {100 * numbers['lag_median_predicted']:.3g}%), range "
        f"{100 * numbers['lag_min']:.3g}% to {100 * numbers['lag_max']:.3g}%, measured/predicted median "
        f"{numbers['lag_ratio_median']:.3f}; size within band in {numbers['lag_size_ok']}/{len(asserted)}, no "
        f"significantly negative mean in {numbers['lag_sign_ok']}/{len(asserted)}; worst {labels[asserted[worst][0]]} "
        f"escape {asserted[worst][1] + 1}: {checks['mean'][worst]:.4g} vs {asserted[worst][5]:.4g} (band "
        f"{checks['band'][worst]:.3g}); {len(censored)} censored, {numbers['lag_trapped']} trapped"
    )
    _lag_figure(claim, asserted, checks, ok, h, cid)
    claim.table(
        pd.DataFrame(rows), "lags", caption="per init, escape and SGD run: GD's and SGD's escape times and the lag"
    )
    claim.verdict(
        prediction=row.prediction,
        reason=row.reason,
        observed=observed,
        holds=holds,
        golden_path="differs" if numbers["lag_resolved_positive"] > len(asserted) / 2 else "agrees",
        key="lag_median",
        **numbers,
    )
    assert holds, f"{cid}: the escape-lag law fails: {observed}"


@pytest.mark.parametrize("teacher, depth", SLOPE_CASES)
def test_escape_lag_slope(teacher, depth, preset, trajectory_cache, claim):
    cid = _case_id(teacher, depth)
    row = FAMILY.predictions["slope"]
    exp = preset("saddle", teacher, depth)
    points = lr_sweep.sweep_points(exp, SWEEP_BATCH_SIZES)
    trajs = lr_sweep.run_sweep(points, train=trajectory_cache.ensemble)
    x = np.array([p.lr * minibatch_factor(p.experiment.n_samples, p.batch_size) for p in points])
    lags = []
    for tr in trajs:
        t = events.escape_times(tr.loss, tr.times, exp.teacher.s, tr.loss_offset)
        lags.append(t[1:] - t[:1])
    lags = np.stack(lags)  # (C, S, n)
    b = escape_lag.slope_band(max(sgd.truncation_tolerance(p.experiment) for p in points))
    fits, holds_k = [], []
    for k in range(lags.shape[-1]):
        try:
            fit = lr_sweep.fit_loglog(x, lags[:, :, k : k + 1])
            holds_k.append(bool(fit.lo - b <= 1 <= fit.hi + b))
        except ValueError:  # a mean lag <= 0: no logarithm, the slope is not resolved
            fit = None
            holds_k.append(False)
        fits.append(fit)
    slopes = [f.slope if f else math.nan for f in fits]
    holds = all(holds_k)
    numbers = dict(
        lag_slope=float(np.nanmedian(slopes)),
        lag_slopes=slopes,
        lag_slope_lo=[f.lo if f else math.nan for f in fits],
        lag_slope_hi=[f.hi if f else math.nan for f in fits],
        lag_slope_band=b,
        lag_at_largest_noise=[float(v) for v in lags[int(np.argmax(x))].mean(0)],
        lag_at_smallest_noise=[float(v) for v in lags[int(np.argmin(x))].mean(0)],
    )
    observed = (
        "; ".join(
            f"escape {k + 1}: slope {f.slope:.3f} [{f.lo:.3f}, {f.hi:.3f}]"
            if f
            else f"escape {k + 1}: mean lag <= 0, not resolved"
            for k, f in enumerate(fits)
        )
        + f" (band b = {b:.3f} around the predicted 1)"
    )
    claim.table(
        pd.DataFrame(
            [
                {
                    "lr": p.lr,
                    "batch_size": p.batch_size,
                    "lr_c_B": x[c],
                    "escape": k + 1,
                    "mean_lag": float(lags[c, :, k].mean()),
                }
                for c, p in enumerate(points)
                for k in range(lags.shape[-1])
            ]
        ),
        "sweep",
        caption="mean SGD-GD escape lag per (lr, B) and escape",
    )
    claim.figure(
        _slope_figure(x, lags, fits, b, cid),
        "loglog",
        caption="mean lag vs lr c_B per escape, fit and predicted slope 1",
    )
    claim.verdict(
        prediction=row.prediction,
        reason=row.reason,
        observed=observed,
        holds=holds,
        golden_path="agrees" if all(f and f.lo > 0 for f in fits) else "n/a",
        key="lag_slope",
        **numbers,
    )
    assert holds, f"{cid}: the lag's slope against lr c_B is not 1: {observed}"


def _lag_figure(claim, asserted, checks, ok, h, cid):
    """Measured mean lag (t-interval bars) vs the predicted lag per (init, escape); the y = x line and
    its band h |p|; failing pairs in red."""
    fig, ax = plots.figure(size=(5.4, 4.6))
    p = np.array([a[5] for a in asserted])
    err = checks["t"] * checks["sd"] / math.sqrt(asserted[0][3].shape[0])
    ax.errorbar(
        p[ok],
        checks["mean"][ok],
        yerr=err[ok],
        fmt="o",
        ms=4,
        color=plots.SGD_COLOR,
        label="mean SGD - GD (t-interval)",
    )
    if (~ok).any():
        ax.errorbar(
            p[~ok], checks["mean"][~ok], yerr=err[~ok], fmt="s", ms=5, color="tab:red", label="outside the band"
        )
    lim = np.array([0, max(p.max(), checks["mean"].max()) * 1.1])
    ax.plot(lim, lim, color="gray", lw=1, label="measured = predicted")
    ax.fill_between(lim, lim * (1 - h), lim * (1 + h), color="gray", alpha=0.15, label="h |p|")
    ax.set(
        xlabel="predicted lag (theory.escape_lag)",
        ylabel="measured mean lag",
        title=f"{cid}: {len(set(a[0] for a in asserted))} inits",
    )
    ax.legend(fontsize=8)
    claim.figure(
        fig, "lag_vs_prediction", caption="per (init, escape): the measured mean lag against the first-order prediction"
    )


def _slope_figure(x, lags, fits, b, cid):
    fig, ax = plots.figure(size=(5.2, 4.0))
    xs = np.geomspace(x.min(), x.max(), 50)
    for k, fit in enumerate(fits):
        y = lags[:, :, k].mean(1)
        pos = y > 0
        line = ax.loglog(x[pos], y[pos], "o", ls="none", label=f"escape {k + 1}")[0]
        if fit:
            ax.loglog(xs, np.exp(fit.intercept) * xs**fit.slope, "-", color=line.get_color(), lw=1)
            ax.loglog(xs, np.exp(np.log(fit.y).mean() - np.log(fit.x).mean()) * xs, ":", color=line.get_color(), lw=1)
    ax.set(
        xlabel="lr c_B", ylabel="mean lag t_SGD - t_GD", title=f"{cid}: fits (solid), slope 1 (dotted), band ±{b:.2f}"
    )
    ax.legend(fontsize=8)
    return fig
