"""Claim family: balance of adjacent layers (protocol "Balanced assumptions"), per init.

r_l(t) = ||W_l W_l^T - W_{l+1}^T W_{l+1}||_F / (||W_l W_l^T||_F + ||W_{l+1}^T W_{l+1}||_F),
D_l = W_{l+1}^T W_{l+1} - W_l W_l^T. The exact discrete drift identity and the residual bound it
implies are algebra, not claims: tests/test_balance.py checks them (and that GD from the aligned
init stays balanced). What can fail, per init (its GD and SGD runs are one outcome):

1. GD's drift bound: ||D_l^GD(T) - D_l(0)||_F <= lr (L(0) - L(T)) / (1 - h/2)
   (theory.balance.gd_drift_bound: descent lemma; fails if the curvature leaves its bound);
2. SGD's extra drift: ||mean_SGD D_l(T) - D_l^GD(T) - c_B lr^2 sum_t C_l(W_t^GD)||_F within
   theory.balance.sgd_drift_tolerance (+ the quadrature error of the sum over checkpoints), its
   sampling quantile Bonferroni-corrected over the n_inits x (L - 1) pairs asserted,
   the first-order prediction of theory.sgd (item 1). The published family's law-of-balance case
   (claims/test_published.py::test_law_of_balance) tests the same drift along each run's own path;
   this family tests the GD-path prediction over init ensembles in every regime.

Saddle-regime random inits are read twice, on the same settled runs (init_ensembles.settled_ensemble:
every run trained to its own last escape plus theory.trap.settling_margin): ``-time`` at GD's last
checkpoint T for every run; ``-progress`` at matched progress (dlncheck.measure.progress_exact: GD at
its latest checkpoint t_k whose progress every SGD run reaches, each SGD run's own weights at the
step where it matches GD's progress there), with the same two predictions evaluated there: GD's
bound with L(t_k) for L(T), the drift sum over GD's path up to t_k (its checkpoints 0..k); the
det-sign trapped inits (theory.trap, from the init alone) are set apart there, as in the pattern
families: GD's progress never leaves its last plateau, so no step of a run matches it and the drift,
which accrues per step on a plateau, is read at an arbitrary one. The aligned control and the other regimes keep one reading, at T.

GD's final residual against the conserved-D_l(0) prediction (theory.balanced_residual_prediction)
is reported (key ``gd_over_conserved``), not asserted: GD's own lr^2 drift is of the size of
D_l(0) at a small init and no tolerance for it is derived.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from claims import expectations
from dlncheck import presets, theory
from dlncheck.config.data import make_problem
from dlncheck.measure import balance, events, progress_exact
from dlncheck.report import plots
from dlncheck.report.claim import Prediction
from dlncheck.suite import init_ensembles
from dlncheck.suite.family import Family
from dlncheck.suite.tiers import NIGHTLY
from dlncheck.theory import balance_drift as theory_balance
from dlncheck.theory import sgd as sgd_theory
from dlncheck.theory.gradient_noise import minibatch_factor

FAMILY = Family(
    "balance",
    question="do the layers stay balanced, as the theory assumes?",
    group="assumptions",
    if_contradicted="assumption-fails",
    predictions={
        "saddle": Prediction(
            "every random small init: GD's ||D_l(T) - D_l(0)|| <= lr (L(0) - L(T)) / (1 - h/2), and SGD's mean "
            "extra drift of D_l equals c_B lr^2 sum_t C_l(W_t^GD) within h ||prediction|| + the runs' "
            "sampling error (Student t, Bonferroni over the (init, pair) tests)",
            "gradient flow conserves D_l (Arora, Cohen & Hazan 2018); GD's lr^2 drift is bounded by the descent "
            "lemma; minibatch noise adds the expected drift c_B lr^2 C_l (theory.sgd, item 1), which dominates "
            "SGD's final residual from a small init",
        ),
        "aligned": Prediction(
            "control (D_l(0) = 0): the same two checks; GD stays exactly balanced (identity, tests/test_balance.py)",
            "aligned balanced init: GD's per-mode map keeps the layers equal, so all of SGD's imbalance is the "
            "predicted noise drift",
        ),
        "ntk": Prediction(
            "every init: GD's drift within the descent-lemma bound; SGD's extra drift equals the first-order "
            "prediction within its tolerance",
            "the drift identity and its first-order expectation hold in any regime with h = lr lambda_max < 2; "
            "at a large init D_l(0) is O(1) and persists (lazy weights move little)",
        ),
        "intermediate": Prediction(
            "every init: GD's drift within the descent-lemma bound; SGD's extra drift equals the first-order "
            "prediction within its tolerance",
            "as in the other regimes: the prediction is first order in lr c_B and needs no regime-specific assumption",
        ),
    },
)
pytestmark = FAMILY.mark


#: SGD runs per random init in both tiers: the nightly tier's count (a few seconds more in the quick
#: tier). The sampling term's Student quantile has R - 1 degrees of freedom, so with the quick tier's
#: shared 4 runs (3 dof, Bonferroni over 16 tests) the band was 4.4 SGD standard deviations against
#: 2.0 nightly and a case could pass quick and fail nightly by construction; with the same R the two
#: tiers differ only in the Bonferroni count (quick the narrower band: fewer inits).
SGD_RUNS = NIGHTLY.ensembles.check_sgd_runs
#: the prediction read at matched progress (``-progress``)
PROGRESS_NOTE = (
    "; read at matched progress: GD at its latest checkpoint t_k that every SGD run matches, each SGD run at "
    "its own step matching GD's progress there (dlncheck.measure.progress_exact), L(T) -> L(t_k) and the "
    "drift sum over GD's path up to t_k; det-sign trapped inits (theory.trap) set apart"
)


def _runs(exp, regime, init, reading, ensembles, cache):
    """(labels, trajectories, read points, labels set apart): saddle random inits settled
    (init_ensembles.settled_ensemble) and read at GD's last checkpoint (``time``, point None) or at
    matched progress (``progress``: progress_exact.exact_matched_ends); the other cases as before, at
    the end. At matched progress the det-sign trapped inits (theory.trap, decided before training)
    are left out (GD never makes their last escape: its progress stays flat on its last plateau,
    where matching it picks no step and the drift accrues per step)."""
    if regime != "saddle" or init == "aligned":
        labels, trajs = init_ensembles.case_trajectories(exp, init, ensembles, cache)
        return labels, trajs, [None] * len(trajs), []
    ens = init_ensembles.case_ensemble(exp, ensembles, sgd_runs=ensembles.check_sgd_runs)
    ens = init_ensembles.settled_ensemble(exp, ens, cache, events.time_grid_for)
    trajs = list(cache.ensemble(ens, checkpoints=events.time_grid_for(ens.base)))
    labels = init_ensembles.init_labels(ens)
    if reading == "time":
        return labels, trajs, [None] * len(trajs), []
    free = [i for i in range(len(ens)) if not init_ensembles.gd_trapped(ens.experiment(i))]
    exact = progress_exact.exact_matched_ends(cache, ens, trajs, free, exp.teacher.s[: exp.teacher.rank])
    trapped = [labels[i] for i in range(len(ens)) if i not in free]
    return [labels[i] for i in free], [trajs[i] for i in free], [exact[i] for i in free], trapped


def _read(tr, point):
    """(checkpoint index k, weights (R, ...) per layer there): GD's last checkpoint and every run
    at it, or, for a matched-progress point, GD's checkpoint k and each run at its matched step."""
    if point is None:
        return tr.checkpoint_steps.shape[-1] - 1, [w[:, -1] for w in tr.weights]
    return point.index, point.weights


@pytest.mark.parametrize(
    "regime, teacher, depth, init, reading", expectations.cases(variants=expectations.progress_readings)
)
def test_balance(regime, teacher, depth, init, reading, preset, sizes, trajectory_cache, claim):
    exp = preset(regime, teacher, depth)
    cid = presets.case_id(regime, teacher, depth) + (
        "-aligned" if init == "aligned" else f"-{reading}" if regime == "saddle" else ""
    )
    row = FAMILY.predictions["aligned" if init == "aligned" else regime]
    ensembles = dataclasses.replace(sizes.ensembles, check_sgd_runs=max(SGD_RUNS, sizes.ensembles.check_sgd_runs))
    labels, trajs, points, set_apart = _runs(exp, regime, init, reading, ensembles, trajectory_cache)
    e = trajs[0].experiment
    problem = make_problem(e)
    c_B = minibatch_factor(e.n_samples, e.batch_size)
    h = sgd_theory.truncation_tolerance(e)
    R = trajs[0].runs
    per_init, rows, curves, read_k = [], [], [], []
    n_tests = len(trajs) * (depth - 1)  # every (init, pair) is asserted: Bonferroni over them
    for lab, tr, point in zip(labels, trajs, points):
        k, end = _read(tr, point)  # GD's checkpoint k; the prediction takes GD's path up to it
        read_k.append(k)
        loss_k = float(tr.loss[0, torch.searchsorted(tr.steps, tr.checkpoint_steps[k]).clamp_max(tr.steps.numel() - 1)])
        D_init = balance.balance_matrices(tr.initial_weights)
        D0 = [torch.linalg.matrix_norm(d, "fro") for d in D_init]
        DT = balance.balance_matrices(end)  # per pair (R, d, d)
        bound = theory_balance.gd_drift_bound(tr.experiment.lr, float(tr.loss[0, 0]), loss_k, h)
        pred, quad = theory_balance.sgd_extra_drift(
            [w[0, : k + 1] for w in tr.weights],
            tr.checkpoint_steps[: k + 1],
            problem.X,
            problem.Syx,
            tr.experiment.lr,
            c_B,
        )
        rT = balance.balance_residuals(end)  # (R, L-1)
        conserved = theory.balanced_residual_prediction(torch.stack(D0), e.teacher.s, depth)
        ok = True
        for l, d_T in enumerate(DT):
            gd_change = float(torch.linalg.matrix_norm(d_T[0] - D_init[l], "fro"))
            check = theory_balance.sgd_drift_check(d_T[1:], d_T[0], pred[l], float(quad[l]), h, n_tests)
            W, Wn = end[l][0], end[l + 1][0]
            den = float(torch.linalg.matrix_norm(W @ W.mT, "fro") + torch.linalg.matrix_norm(Wn.mT @ Wn, "fro"))
            pair_ok = gd_change <= bound and bool(check["holds"])
            ok &= pair_ok
            rows.append(
                {
                    "init": lab,
                    "pair": l + 1,
                    "read_time": float(tr.checkpoint_times[k]),
                    "gd_change": gd_change,
                    "gd_bound": bound,
                    "sgd_extra": check["extra"],
                    "predicted_extra": check["predicted"],
                    "error": check["error"],
                    "tolerance": check["tolerance"],
                    "mdd": check["mdd"],
                    "quadrature_error": float(quad[l]),
                    "spread": check["spread"],
                    "r0": float(balance.balance_residuals(tr.initial_weights)[l]),
                    "rT_gd": float(rT[0, l]),
                    "rT_sgd_mean": float(rT[1:, l].mean()),
                    "rT_gd_conserved": float(conserved[l]),
                    "den_gd": den,
                    "rT_sgd_predicted": float(torch.linalg.matrix_norm(d_T[0] + pred[l], "fro")) / den,
                    "holds": pair_ok,
                }
            )
        per_init.append(ok)
        curves.append(balance.balance_residuals(tr.weights))  # (R, K, L-1)
    table = pd.DataFrame(rows)
    summary = init_ensembles.summary(per_init)
    holds = summary["n_pass"] == summary["n_inits"]
    ratio = (table.rT_gd / table.rT_gd_conserved).replace([np.inf, -np.inf], np.nan)
    numbers = dict(
        n_inits=summary["n_inits"],
        inits_holding=summary["n_pass"],
        fraction_inits=summary["fraction"],
        fraction_ci=[summary["fraction_lo"], summary["fraction_hi"]],
        per_init=dict(zip(labels, summary["per_init"])),
        c_B=c_B,
        h=h,
        sgd_runs_per_init=R - 1,
        max_error_over_tol=float((table.error / table.tolerance).max()),
        mdd_drift_over_predicted=float((table.mdd / table.predicted_extra).max()),
        max_gd_change_over_bound=float((table.gd_change / table.gd_bound).max()),
        sgd_extra_over_predicted=[float(v) for v in (table.sgd_extra / table.predicted_extra)],
        gd_over_conserved=float(np.nanmedian(ratio)) if ratio.notna().any() else None,
        rT_sgd_over_gd_median=float(np.median(table.rT_sgd_mean / table.rT_gd.clip(lower=1e-300))),
        reading=reading,
        run_steps=e.steps,
        read_time_min=float(table.read_time.min()),
    )
    if reading == "progress":
        lag = [float((p.steps[1:] - p.steps[0]).abs().max()) for p in points]
        numbers |= dict(
            read_lag_steps_max=max(lag),
            progress_level_min=min(p.level for p in points),
            trapped_set_apart=set_apart,
        )
    _figure(claim, trajs, curves, table, labels, cid, read_k)
    claim.table(
        table,
        "balance_per_init",
        caption="per init and pair: GD's change of D_l vs its bound, SGD's "
        "extra drift vs the first-order prediction, final residuals",
    )
    lo, hi = summary["fraction_lo"], summary["fraction_hi"]
    failing = table[~table.holds]
    observed = (
        f"{summary['n_pass']}/{summary['n_inits']} inits hold (95% CI {lo:.2f}-{hi:.2f}); "
        f"SGD extra drift / predicted in [{min(numbers['sgd_extra_over_predicted']):.2f}, "
        f"{max(numbers['sgd_extra_over_predicted']):.2f}], max error/tol {numbers['max_error_over_tol']:.2f}; "
        f"GD change / bound <= {numbers['max_gd_change_over_bound']:.1e}; "
        f"median r_T SGD/GD {numbers['rT_sgd_over_gd_median']:.3g}"
        + (f"; failing (init, pair): {list(zip(failing.init, failing.pair))}" if len(failing) else "")
        + (
            f"; read at matched progress (GD's checkpoints from t = {numbers['read_time_min']:.4g}, SGD runs "
            f"up to {numbers['read_lag_steps_max']:.0f} steps from GD's step; {len(set_apart)} det-sign trapped "
            "init(s) set apart)"
            if reading == "progress"
            else ""
        )
    )
    golden = "n/a" if row.exploratory else ("agrees" if holds else "assumption-fails")
    claim.verdict(
        prediction=row.prediction + (PROGRESS_NOTE if reading == "progress" else ""),
        observed=observed,
        holds=holds,
        exploratory=row.exploratory,
        reason=row.reason,
        golden_path=golden,
        key="max_error_over_tol",
        **numbers,
    )
    assert holds, f"balance prediction failed for {cid}: {observed}"


def _figure(claim, trajs, curves, table, labels, cid, read_k):
    """Left, per pair: r_l(t) of one init, GD line and SGD min-max band (log axes), the predicted
    SGD mean r_l(T) with its tolerance drawn at T only (where asserted). Right: every init's SGD
    extra drift against its prediction, with the tolerance as an error bar."""
    pairs = curves[0].shape[-1]
    fig, axes = plots.figure(
        1,
        pairs + 1,
        size=(4.2 * (pairs + 1) + 0.6, 3.8),
        margins={"left": 1.4},
        gridspec_kw={"wspace": 0.45, "top": 0.85, "bottom": 0.14},
    )
    worst = table.groupby("init", sort=False).holds.all()
    c = labels.index(worst[~worst].index[0]) if (~worst).any() else 0
    tr, r = trajs[c], curves[c]
    t = tr.checkpoint_times.numpy()
    keep = t > 0
    for l in range(pairs):
        ax = axes[l]
        ax.plot(t[keep], r[0, keep, l].numpy(), color=plots.GD_COLOR, label="GD")
        if r.shape[0] > 1:
            ax.fill_between(
                t[keep],
                r[1:, keep, l].amin(0).numpy(),
                r[1:, keep, l].amax(0).numpy(),
                color=plots.SGD_COLOR,
                alpha=0.4,
                linewidth=0,
                label="SGD (min-max)",
            )
        row = table[(table.init == labels[c]) & (table.pair == l + 1)].iloc[0]
        pred_r, err_r = row.rT_sgd_predicted, row.tolerance / row.den_gd
        ax.errorbar(
            [t[read_k[c]]],
            [pred_r],
            yerr=[[min(err_r, 0.99 * pred_r)], [err_r]],
            fmt="D",
            color="tab:blue",
            capsize=3,
            label="predicted SGD $r_l$ (asserted where read)",
        )
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="t = lr step",
            ylabel=f"$r_{l + 1}$",
            title=f"pair {l + 1}-{l + 2}" + ("" if row.holds else " (fails)"),
        )
        ax.legend(loc="lower left", fontsize=7)
    ax = axes[-1]
    for l in range(pairs):
        sub = table[table.pair == l + 1]
        ax.errorbar(
            sub.predicted_extra,
            sub.sgd_extra,
            yerr=sub.tolerance,
            fmt="o",
            capsize=2,
            alpha=0.8,
            label=f"pair {l + 1}-{l + 2}",
        )
        bad = sub[~sub.holds]
        plots.mark_failing(ax, bad.predicted_extra, bad.sgd_extra, np.ones(len(bad), bool))
    lim = np.array([table.predicted_extra.min() / 2, table.predicted_extra.max() * 2])
    ax.plot(lim, lim, color="gray", linewidth=1, label="measured = predicted")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=r"predicted $\|c_B S_l\|_F$",
        ylabel=r"$\|\overline{D}^{SGD}_l(T) - D^{GD}_l(T)\|_F$",
        title="SGD extra drift, every init",
    )
    ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{cid}: {labels[c]}", fontsize=11)
    claim.figure(
        fig,
        "balance_residuals",
        caption="r_l(t) of one init (GD line, SGD min-max band) with the "
        "predicted SGD r_l(T) and its tolerance at T; right: every init's SGD extra drift of D_l vs "
        "the first-order prediction c_B lr^2 sum C_l (theory.sgd), tolerance as error bars",
    )
