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
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from claims import expectations
from dlncheck import Ensemble, presets
from dlncheck.measure import compare
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


def _variants(regime, teacher, depth):
    return [("", ("random",)), ("-aligned", ("aligned",))] if regime == "saddle" else [("", ("preset",))]


def _quick(regime, teacher, depth, inits):
    """Quick tier: saddle at L = 2 (the offset prediction integrates the GD path: ~1 s per init
    at L = 2, ~6 s at L = 3), aligned control for lowrank only; intermediate lowrank L = 3 (ntk: the
    128-wide alignment hits 50 sweeps, ~9 s per init and checkpoint: nightly)."""
    if regime == "saddle":
        return depth == 2 and (inits == "random" or teacher == "lowrank")
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


@pytest.mark.parametrize("regime, teacher, depth, inits", expectations.cases(variants=_variants, quick=_quick))
def test_parameter_distance_raw_vs_gauge(regime, teacher, depth, inits, preset, trajectory_cache, sizes, claim):
    exp = preset(regime, teacher, depth)
    ens = init_ensembles.case_ensemble(exp, sizes.ensembles) if inits != "aligned" else Ensemble(exp, inits=[exp.init])
    runs = trajectory_cache.ensemble(ens, checkpoints=init_ensembles.distance_grid(regime, ens.experiment(0)))
    applies = regime == "saddle"
    z = bonferroni_z(len(ens))
    rows, curves = [], []
    trapped = [init_ensembles.gd_trapped(e) for e in ens.experiments]
    predicted = [i for i in range(len(ens)) if applies and not trapped[i]]
    offsets = dict(zip(predicted, sgd.ensemble_offsets([ens.experiment(i) for i in predicted])))  # one program
    for i in range(len(ens)):
        e, traj = ens.experiment(i), runs[i]
        W = traj.weights if applies else [w[: 1 + EXPLORATORY_RUNS] for w in traj.weights]
        K = traj.checkpoint_steps.shape[-1]
        loss_gd = traj.loss[0, torch.searchsorted(traj.steps, traj.checkpoint_steps).clamp_max(traj.steps.numel() - 1)]
        picks = (_plateau_checkpoints(loss_gd, e.teacher.s) if applies else []) + [K - 1]
        aligned = gauge_align_path([w[:, picks] for w in W], max_sweeps=50 if applies else EXPLORATORY_SWEEPS)
        raw_end = float(compare.theta_ratio([w[:, -1] for w in W]).mean())
        al_end = float(compare.theta_ratio(aligned[-1].weights).mean())
        share = [
            float(
                (1 - (compare.theta_distance(a.weights) / compare.theta_distance([w[:, k] for w in W])).square()).mean()
            )
            for a, k in zip(aligned, picks)
        ]
        m_raw, spread_raw = compare.mean_displacement([w[:, -1] for w in W])
        m_al, spread_al = compare.mean_displacement(aligned[-1].weights)
        row = dict(
            init=init_ensembles.init_label(e.init),
            raw_ratio_end=raw_end,
            aligned_ratio_end=al_end,
            gauge_share_end=share[-1],
            gauge_share_plateau_max=max(share[:-1], default=float("nan")),
            mean_displacement_raw=m_raw,
            spread_raw=spread_raw,
            mean_displacement_aligned=m_al,
            spread_aligned=spread_al,
        )
        row["gd_trapped"] = trapped[i]
        if i in offsets:
            pred = offsets[i]
            p = tolerances.split_distance(
                pred["a2_gd"], pred["a2_sgd"], float(compare.theta_norm([w[:1, -1] for w in W])[0])
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
    claim.verdict(
        prediction=row.prediction,
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
            "prediction) left to that family" + power
        ),
        **numbers,
    )
    assert holds, (
        f"{presets.case_id(regime, teacher, depth)}: the mean SGD displacement matches the derived split "
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
