"""Claim family: distance in parameter space, raw and modulo the hidden-layer orthogonal gauge.

Every batch loss depends on the product only, so no step (GD or SGD) moves along the gauge orbit
W_l -> Q_l W_l Q_{l-1}^T at first order in lr; what SGD changes at first order in lr c_B is the
layer split of each learned mode (theory.sgd item 1). Prediction (saddle regime, where the
derivation's decoupled modes apply): at the end of training the mean SGD displacement from GD,
in raw coordinates, is the derived split offset, ||mean_r (theta_r - theta_GD)|| / ||theta_GD|| =
theory.tolerances.split_distance (no SGD run used), within the tolerance of
theory.tolerances.offset_match_tolerance (z Bonferroni over the inits of the case), for every init
of the ensemble (init_ensembles: small random balanced and Gaussian inits; the aligned preset is
the ``-aligned`` control). The check's power against a zero offset is reported per init
(theory.tolerances.offset_check: mdd = 2 z se + h p); a case that passes while some init's
prediction is below its mdd is exploratory (a zero offset would pass too), a failure stays a
rejection. The gauge share of the squared distance, 1 - (aligned / raw)^2, is
reported at the end and at GD's plateaus (gauge.gauge_align_path at those checkpoints only); no
threshold on it is derived, and in the ntk / intermediate regimes (no decoupled modes, no split
prediction) the case is exploratory and aligns GD with its first EXPLORATORY_RUNS SGD runs only.

Saddle-regime random inits are read twice, on the same settled runs (init_ensembles.settled_ensemble:
every run trained to its own last escape plus theory.trap.settling_margin): ``-time`` at GD's last
checkpoint T for every run (gauge share also at GD's plateaus); ``-progress`` at matched progress
(dlncheck.measure.progress_exact: GD at its latest checkpoint t_k whose progress every SGD run
reaches, each SGD run's own weights at the step where it matches GD's progress there), with the
same prediction evaluated there: the split offset from GD's path up to t_k
(theory.sgd.ensemble_offsets with at_steps) over ||theta_GD(t_k)||, the same tolerance; the gauge
share is read at that point only. The aligned control keeps one reading, at T.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from claims import expectations
from dlncheck import Ensemble, presets
from dlncheck.measure import compare, progress_exact
from dlncheck.measure.events import DWELL_RTOL
from dlncheck.measure.gauge import gauge_align_path
from dlncheck.report import plots
from dlncheck.report.claim import Prediction
from dlncheck.suite import init_ensembles
from dlncheck.suite.family import Family
from dlncheck.theory import sgd, tolerances
from dlncheck.theory.tolerances import bonferroni_z

FAMILY = Family(
    "parameter_space",
    question="is the raw GD-SGD parameter distance mostly gauge? (a contradiction: SGD stays in GD's gauge)",
    group="golden path",
    if_holds="differs",
    if_contradicted="agrees",
    predictions={  # asserted per init at the end of training
        "saddle": Prediction(
            "every init: ||mean_r (theta_r - theta_GD)|| / ||theta_GD|| at T, raw and gauge-aligned, equals the "
            "derived split offset (theory.tolerances.split_distance) within z sqrt(tr Sigma / S) + h p",
            "every batch loss is gauge-invariant, so no step moves along the gauge orbit at first order in lr; "
            "SGD's first-order effect is the balance drift lr c_B sum C_l (theory.sgd), which at the minimum only "
            "moves each learned mode's split over the layers (no SGD run used in the prediction)",
        ),
        "ntk": Prediction(
            "no derived prediction (exploratory): gauge share of the end distance reported per init",
            "lazy regime: no decoupled modes, so no split prediction; no gauge-share threshold derived",
            exploratory=True,
        ),
        "intermediate": Prediction(
            "no derived prediction (exploratory): gauge share of the end distance reported",
            "theory silent on the gauge share here",
            exploratory=True,
        ),
    },
)
pytestmark = FAMILY.mark

PLATEAU_RTOL = DWELL_RTOL  # "on plateau k": GD loss within 5% of P_k
#: exploratory regimes (nothing asserted): GD and its first 8 SGD runs, at most 10 Procrustes sweeps.
#: The 128-wide NTK layers converge slowly (nightly ntk-lowrank-L3, one init: gauge share 0.574 after
#: 10 sweeps, 0.592 after 50, still rising; ~1.2 s per sweep): every sweep lowers the objective, so
#: the share reported is a lower bound either way, at a fifth of the sweeps and a quarter of the runs.
EXPLORATORY_RUNS, EXPLORATORY_SWEEPS = 8, 10
#: the prediction read at matched progress (``-progress``)
PROGRESS_NOTE = (
    "; read at matched progress: GD at its latest checkpoint t_k that every SGD run matches, each SGD run at its "
    "own step matching GD's progress there (dlncheck.measure.progress_exact); the split offset from GD's path "
    "up to t_k (theory.sgd.ensemble_offsets at_steps) and ||theta_GD(t_k)||"
)


def _quick(regime, teacher, depth, inits, reading):
    """Quick tier: saddle at L = 2 (the offset prediction integrates the GD path: ~1 s per init
    at L = 2, ~6 s at L = 3), aligned control for lowrank only, and the matched-progress reading at
    L = 2 and lowrank L = 3; intermediate lowrank L = 3 (ntk: the 128-wide alignment hits 50 sweeps,
    ~9 s per init and checkpoint: nightly)."""
    if regime == "saddle":
        if reading == "progress":
            return depth == 2 or (depth == 3 and teacher == "lowrank")
        return depth == 2 and (inits == "ensemble" or teacher == "lowrank")
    return regime == "intermediate" and depth == 3 and teacher == "lowrank"


def _plateau_checkpoints(loss_gd: torch.Tensor, s: torch.Tensor) -> list[int]:
    """Middle checkpoint of each intermediate plateau of GD's loss (within PLATEAU_RTOL of
    P_k = 0.5 sum_{a > k} s_a^2, k = 1..r-1)."""
    s = s[s > 0]
    out = []
    for k in range(1, len(s)):
        level = 0.5 * float(s[k:].square().sum())
        on = torch.nonzero((loss_gd - level).abs() <= PLATEAU_RTOL * level).ravel()
        if on.numel():
            out.append(int(on[on.numel() // 2]))
    return sorted(set(out))


def _runs(exp, regime, inits, reading, sizes, cache):
    """(ensemble, trajectories, read points): saddle random inits settled
    (init_ensembles.settled_ensemble) and read at T (``time``) or at matched progress
    (``progress``: progress_exact.exact_matched_ends, one point per init); the rest as trained, at T."""
    ens = init_ensembles.case_ensemble(exp, sizes) if inits != "aligned" else Ensemble(exp, inits=[exp.init])
    grid = functools.partial(init_ensembles.distance_grid, regime)
    if regime == "saddle" and inits != "aligned":
        ens = init_ensembles.settled_ensemble(exp, ens, cache, grid)
    runs = cache.ensemble(ens, checkpoints=grid(ens.experiment(0)))  # config by config when large
    s = exp.teacher.s[: exp.teacher.rank]
    exact = (
        progress_exact.exact_matched_ends(cache, ens, runs, list(range(len(ens))), s) if reading == "progress" else {}
    )
    return ens, runs, [exact.get(i) for i in range(len(ens))]


@pytest.mark.parametrize(
    "regime, teacher, depth, inits, reading",
    expectations.cases(variants=expectations.progress_readings, quick=_quick),
)
def test_parameter_distance_raw_vs_gauge(
    regime, teacher, depth, inits, reading, preset, trajectory_cache, sizes, claim
):
    exp = preset(regime, teacher, depth)
    ens, runs, points = _runs(exp, regime, inits, reading, sizes.ensembles, trajectory_cache)
    applies = regime == "saddle"
    z = bonferroni_z(len(ens))
    rows, curves = [], []
    trapped = [init_ensembles.gd_trapped(e) for e in ens.experiments]
    predicted = [i for i in range(len(ens)) if applies and not trapped[i]]
    at_steps = [int(points[i].steps[0]) for i in predicted] if reading == "progress" else None
    offsets = dict(zip(predicted, sgd.ensemble_offsets([ens.experiment(i) for i in predicted], at_steps=at_steps)))
    for i in range(len(ens)):
        e, traj, point = ens.experiment(i), runs[i], points[i]
        W = traj.weights if applies else [w[: 1 + EXPLORATORY_RUNS] for w in traj.weights]
        K = traj.checkpoint_steps.shape[-1]
        loss_gd = traj.loss[0, torch.searchsorted(traj.steps, traj.checkpoint_steps).clamp_max(traj.steps.numel() - 1)]
        if point is None:  # GD's plateaus (reported) and T (asserted), every run at equal time
            picks = (_plateau_checkpoints(loss_gd, e.teacher.s) if applies else []) + [K - 1]
            read = [w[:, picks] for w in W]
        else:  # the matched point alone: GD's checkpoint k, each SGD run at its own matched step
            picks, read = [point.index], [w[:, None] for w in point.weights]
        end = [w[:, -1] for w in read]
        aligned = gauge_align_path(read, max_sweeps=50 if applies else EXPLORATORY_SWEEPS)
        raw_end = float(compare.theta_ratio(end).mean())
        al_end = float(compare.theta_ratio(aligned[-1].weights).mean())
        share = [
            float(
                (
                    1 - (compare.theta_distance(a.weights) / compare.theta_distance([w[:, k] for w in read])).square()
                ).mean()
            )
            for k, a in enumerate(aligned)
        ]
        m_raw, spread_raw = compare.mean_displacement(end)
        m_al, spread_al = compare.mean_displacement(aligned[-1].weights)
        row = dict(
            init=init_ensembles.init_label(e.init),
            read_time=float(traj.checkpoint_times[picks[-1]]),
            raw_ratio_end=raw_end,
            aligned_ratio_end=al_end,
            gauge_share_end=share[-1],
            gauge_share_plateau_max=max(share[:-1], default=float("nan")),
            mean_displacement_raw=m_raw,
            spread_raw=spread_raw,
            mean_displacement_aligned=m_al,
            spread_aligned=spread_al,
        )
        if point is not None:
            row |= dict(read_lag_steps_max=float((point.steps[1:] - point.steps[0]).abs().max()))
        row["gd_trapped"] = trapped[i]
        if i in offsets:
            pred = offsets[i]
            p = tolerances.split_distance(
                pred["a2_gd"], pred["a2_sgd"], float(compare.theta_norm([w[:1] for w in end])[0])
            )
            h = sgd.truncation_tolerance(e)
            raw = tolerances.offset_check(m_raw, p, spread_raw, e.sgd_runs, h, z)
            al = tolerances.offset_check(m_al, p, spread_al, e.sgd_runs, h, z)
            row |= dict(
                predicted=p,
                tolerance_raw=raw["tolerance"],
                tolerance_aligned=al["tolerance"],
                mdd_raw=raw["mdd"],
                mdd_aligned=al["mdd"],
                powered=raw["powered"] and al["powered"],
                h=h,
                holds=raw["holds"] and al["holds"],
            )
        rows.append(row)
        t = traj.checkpoint_times
        curves.append(
            (
                t,
                compare.theta_ratio(W).mean(0),
                1 - compare.cosine(W).mean(0),
                t[picks],
                [float(compare.theta_ratio(a.weights).mean()) for a in aligned],
            )
        )
    _figure(claim, curves, rows, applies, ens, regime)
    import pandas as pd

    table = pd.DataFrame(rows)
    claim.table(table, "parameter_space_per_init")
    share_end = float(np.median(table["gauge_share_end"]))
    numbers = dict(
        n_inits=len(ens),
        gauge_share_end_median=share_end,
        raw_ratio_end_median=float(np.median(table["raw_ratio_end"])),
        aligned_ratio_end_median=float(np.median(table["aligned_ratio_end"])),
        z=z,
        reading=reading,
        run_steps=ens.base.steps,
        read_time_min=float(table["read_time"].min()),
    )
    golden = "n/a"
    if not applies:
        claim.verdict(
            prediction="no derived prediction: the split offset needs decoupled modes (saddle regime)",
            reason="lazy / intermediate init: modes are not decoupled; no gauge-share threshold derived",
            exploratory=True,
            holds=True,
            golden_path=golden,
            key="gauge_share_end_median",
            observed=f"median over {len(ens)} inits (GD + first {EXPLORATORY_RUNS} SGD runs each, "
            f"{EXPLORATORY_SWEEPS} Procrustes sweeps: the share is a lower bound): raw ratio at "
            f"end {numbers['raw_ratio_end_median']:.3g}, "
            f"gauge-aligned {numbers['aligned_ratio_end_median']:.3g}, gauge share {share_end:.3g}",
            **numbers,
        )
        return
    trapped = table["gd_trapped"].to_numpy(bool)
    table = table[~trapped]
    over = init_ensembles.summary(table["holds"])
    n_powered = int(table["powered"].sum())
    numbers |= over | dict(
        n_gd_trapped=int(trapped.sum()),
        predicted_median=float(np.median(table["predicted"])),
        mean_displacement_raw_median=float(np.median(table["mean_displacement_raw"])),
        mdd_offset=float(table[["mdd_raw", "mdd_aligned"]].to_numpy().max()),
        n_powered=n_powered,
    )
    row = FAMILY.predictions[regime]
    holds = over["n_pass"] == over["n_inits"]
    # a pass without power against a zero offset is no evidence (theory.tolerances.offset_check): exploratory;
    # a failure stays a rejection of the prediction whatever the power
    no_power = holds and n_powered < len(table)
    power = (
        f"; no power: in {len(table) - n_powered}/{len(table)} inits the minimum detectable deviation "
        f"(max {numbers['mdd_offset']:.2g}) exceeds the predicted offset (median {numbers['predicted_median']:.2g}), "
        "so a zero offset, or 4x the prediction, would pass as well"
        if n_powered < len(table)
        else f"; powered in every init (mdd max {numbers['mdd_offset']:.2g})"
    )
    worst = (
        table.assign(excess=(table["mean_displacement_raw"] - table["predicted"]).abs() / table["tolerance_raw"])
        .sort_values("excess")
        .iloc[-1]
    )
    if reading == "progress":
        numbers |= dict(read_lag_steps_max=float(table["read_lag_steps_max"].max()))
    claim.verdict(
        prediction=row.prediction + (PROGRESS_NOTE if reading == "progress" else ""),
        reason=row.reason + ("; the check has no power here (exploratory)" if no_power else ""),
        holds=holds,
        exploratory=no_power,
        golden_path="n/a" if no_power else ("agrees" if holds and not trapped.any() else "differs"),
        key="fraction",
        observed=(
            f"{over['n_pass']}/{over['n_inits']} inits hold (Wilson 95% {over['fraction_lo']:.2f}-"
            f"{over['fraction_hi']:.2f}); worst {worst['init']}: mean displacement raw "
            f"{worst['mean_displacement_raw']:.3g}, aligned "
            f"{worst['mean_displacement_aligned']:.3g} vs predicted {worst['predicted']:.3g} (tol raw "
            f"{worst['tolerance_raw']:.2g}); gauge share at end median {share_end:.3g}; "
            f"{int(trapped.sum())} init(s) predicted GD-trapped (theory.trap: no minimum, no split "
            "prediction) left to that family"
            + power
            + (
                f"; read at matched progress (GD's checkpoints from t = {numbers['read_time_min']:.4g}, SGD runs "
                f"up to {numbers['read_lag_steps_max']:.0f} steps from GD's step)"
                if reading == "progress"
                else ""
            )
        ),
        **numbers,
    )
    assert holds, (
        f"{presets.case_id(regime, teacher, depth)}-{reading}: the mean SGD displacement matches the derived split "
        f"offset in {over['n_pass']}/{over['n_inits']} inits; worst {worst['init']}: raw "
        f"{worst['mean_displacement_raw']:.3g}, aligned {worst['mean_displacement_aligned']:.3g}, predicted "
        f"{worst['predicted']:.3g} +- {worst['tolerance_raw']:.2g}; see parameter_space.png"
    )


def _figure(claim, curves, rows, applies, ens, regime):
    """Left: raw ratio over time per init (lines) with the gauge-aligned ratio at the aligned
    checkpoints (markers). Middle: 1 - cos(theta_GD, theta_SGD), log axis. Right (saddle): end of
    training per init, measured mean displacement vs the derived split offset and its tolerance."""
    applies = applies and any("predicted" in r for r in rows)
    fig, axes = plots.figure(
        ncols=3 if applies else 2,
        size=(17.4 if applies else 10, 4.6),  # legend, init names
        margins={"left": 1.0, "right": 2.6 if applies else 0.2, "bottom": 1.1},
    )
    for i, (t, ratio, one_minus_cos, t_al, r_al) in enumerate(curves):
        color = f"C{i % 10}"
        later = t > 0  # log time axis: t = 0 (identical inits) left out
        axes[0].plot(t[later].numpy(), ratio[later].numpy(), color=color, lw=1, label="raw" if i == 0 else None)
        axes[0].plot(
            t_al.numpy(),
            r_al,
            "o",
            mfc="none",
            color=color,
            label="gauge-aligned (asserted/drawn checkpoints)" if i == 0 else None,
        )
        axes[1].plot(t[later].numpy(), one_minus_cos[later].numpy(), color=color, lw=1)
    axes[0].set_ylabel(r"$E_B\|\theta_{GD}-\theta_{SGD}\| / \|\theta_{GD}\|$")
    axes[1].set_ylabel(r"$1 - \cos(\theta_{GD}, \theta_{SGD})$ (mean over runs)")
    for ax in axes[:2]:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"time $t = \eta\,k$")
    axes[0].legend(fontsize=7, loc="lower right")
    axes[0].set_title(f"{len(curves)} init(s), one colour each", fontsize=9)
    rows = [r for r in rows if "predicted" in r]
    if applies and rows:
        x = np.arange(len(rows))
        p = np.array([r["predicted"] for r in rows])
        tol = np.array([r["tolerance_raw"] for r in rows])
        axes[2].errorbar(x, p, yerr=tol, fmt="_", color="k", capsize=4, label="derived split offset ± tolerance")
        axes[2].plot(x, [r["mean_displacement_raw"] for r in rows], "o", label="raw mean displacement")
        axes[2].plot(
            x + 0.15,
            [r["mean_displacement_aligned"] for r in rows],
            "s",
            mfc="none",
            label="gauge-aligned mean displacement",
        )
        plots.mark_failing(axes[2], x, [r["mean_displacement_raw"] for r in rows], [not r["holds"] for r in rows])
        axes[2].set_xticks(x, [r["init"] for r in rows], rotation=60, fontsize=7)
        axes[2].set_ylabel(r"$\|\bar\delta\| / \|\theta_{GD}\|$ at $T$")
        axes[2].set_title("asserted at the end of training", fontsize=9)
        axes[2].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    claim.figure(
        fig,
        "parameter_space",
        caption=(
            "raw relative distance per init (lines) with the gauge-aligned one at the end and at GD's plateaus "
            "(markers); 1 - cosine on a log axis"
            + ("; end of training: mean displacement vs the derived split offset (asserted)" if applies else "")
        ),
    )
