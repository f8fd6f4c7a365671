"""Claim family: the GD trap of a balanced init whose det sign disagrees with the teacher's.

Theory (:mod:`dlncheck.theory.trap`): balanced gradient flow keeps sign(det W), so from a
balanced init with sign(det W_0) sign(det M) < 0 GD can never reach M: its loss stays >= P =
0.5 s_min^2 (Eckart-Young-Mirsky) and settles on that plateau (smallest mode unlearned); SGD's
noise breaks balance and escapes the strict saddle (L = 2). With agreeing signs GD converges.
Cases: saddle preset, full-rank square teacher, ``Init("balanced", scale, seed)``; the seeds are
chosen BEFORE training by scanning seeds 0..SCAN-1 and taking the first ones whose det signs
predict a trap / no trap (quick: one of each per depth; nightly: NIGHTLY_SEEDS of each).
Run length: 2x the preset's steps, lengthened where theory's settle time of the slowest learned
mode (effective start of the random init) or the L = 2 SGD escape time at kappa = KAPPA_FLOOR
is later.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from claims import expectations
from dlncheck import (
    Ensemble,
    Init,
    presets,
    spectra,
)
from dlncheck.config.data import init_weights
from dlncheck.measure import events
from dlncheck.report import plots
from dlncheck.report.claim import Prediction
from dlncheck.spectra import end_to_end
from dlncheck.suite.family import Family
from dlncheck.suite.tiers import NIGHTLY, QUICK
from dlncheck.theory import trap

_GD_TRAPPED = (
    "GD: loss in [P/2, midpoint to the next critical value] (P = 0.5 s_min^2) from the predicted settle time to T"
)
_WHY_TRAPPED = (
    "balance is conserved (Arora, Cohen & Hazan 2018) so sign(det W) is conserved (theory.trap items 1-3); "
    "loss >= P by Eckart-Young; in float64 the trapped mode regrows from the roundoff floor only "
    "after trap.float_trap_end"
)
# rows per kind: "trapped-L2", "trapped-L3" (L >= 3), "free"; the case ids (chosen by det sign before
# training) are "<kind>-saddle-fullrank-L<depth>-seed<seed>"
FAMILY = Family(
    "gd_trap",
    question="does SGD leave a saddle where GD stays trapped?",
    group="golden path",
    if_holds="differs",
    if_contradicted="agrees",
    predictions={
        "trapped-L2": Prediction(
            f"{_GD_TRAPPED}; every SGD run escapes (loss < P/2) before T",
            f"{_WHY_TRAPPED}; SGD noise breaks balance and the L = 2 plateau is a strict saddle "
            "(curvature -s_min); T = trap.float_trap_end covers SGD's heuristic escape time "
            "down to kappa = KAPPA_FLOOR",
        ),
        "trapped-L3": Prediction(
            f"{_GD_TRAPPED}; SGD escape reported, not asserted",
            f"{_WHY_TRAPPED}; at L >= 3 the plateau is a degenerate saddle: SGD's escape is "
            "polynomially slow and its time is not predicted (exploratory part)",
        ),
        "free": Prediction(
            "every run (GD and SGD) converges: loss(T) <= trap.converged_loss",
            "det W_0 det M > 0: no sign barrier; balanced flow converges to M (Arora, Cohen, Golowich & Hu 2019)",
        ),
    },
    results=(
        (r"\[trapped-", "det-sign trap: GD stays on the plateau P = s_min^2/2"),
        # only L = 2 asserts the escape (a strict saddle); at L >= 3 it is reported, not asserted
        (r"\[trapped-.*-L2-seed", "det-sign trap at L = 2: every SGD run escapes it"),
        (r"\[free-", "no det-sign barrier: GD and every SGD run converge to M"),
    ),
)
pytestmark = FAMILY.mark
TEACHER, REGIME, SCAN, NIGHTLY_SEEDS, CHECKPOINTS = "fullrank", "saddle", 16, 2, 80
FLOW_HORIZON = 20  # the balanced flow is integrated up to 20x the preset's time when sizing a case
SCALING_GRID = ((1.0, 10), (0.5, 10), (1.0, 20), (0.5, 20))  # (lr / preset lr, batch size)


def scan_signs(depth: int) -> list[int]:
    """sign(det W_0) sign(det M) of the balanced init for seeds 0..SCAN-1 (no training)."""
    base = presets.experiment(REGIME, TEACHER, depth)
    return [
        int(trap.trap_sign(end_to_end(init_weights(_with_seed(base, seed))), base.teacher.M)) for seed in range(SCAN)
    ]


def _with_seed(exp, seed: int):
    return dataclasses.replace(exp, init=Init("balanced", exp.init.scale, seed=seed))


def _cases() -> list:
    params = []
    for depth in NIGHTLY.depths:
        signs = scan_signs(depth)
        for kind, want in (("trapped", -1), ("free", 1)):
            seeds = [seed for seed, sign in enumerate(signs) if sign == want][:NIGHTLY_SEEDS]
            for n, seed in enumerate(seeds):
                cid = f"{kind}-{presets.case_id(REGIME, TEACHER, depth)}-seed{seed}"
                quick = n == 0 and depth in QUICK.depths
                params.append(expectations.param(cid, kind, depth, seed, nightly=not quick))
    return params


def _prediction(kind: str, depth: int) -> Prediction:
    """The family's row: "free", or "trapped-L2" / "trapped-L3" (L >= 3)."""
    return FAMILY.predictions[kind if kind == "free" else f"trapped-L{min(depth, 3)}"]


CASES = _cases()


def _run_length(exp, kind: str, W0: torch.Tensor) -> tuple[float, float, float]:
    """(t_end, t_settle, t_float): t_settle = trap.settle_time after the balanced flow from W_0 enters
    the band (trapped: loss <= the band's upper edge; free: loss <= P/2, the last mode half learned);
    free: t_end = max(2x preset, t_settle); trapped: t_end = min(max(2x preset, t_settle), t_float)
    with t_float = trap.float_trap_end, except at L = 2 where t_end = t_float (the longest window in
    which GD is still predicted trapped) and SGD's predicted escape at kappa = KAPPA_FLOOR must fit."""
    s, L, lr = exp.teacher.s.numpy(), exp.depth, exp.lr
    low, high = trap.plateau_band(s)
    learned = len(s) - (kind == "trapped")
    t_max = FLOW_HORIZON * exp.steps * lr
    t_entry = trap.flow_entry_time(W0, exp.teacher.M, L, high if kind == "trapped" else low, t_max)
    if not math.isfinite(t_entry):
        raise AssertionError(
            f"balanced flow from this init does not reach the band before t = {t_max:g}: "
            f"{kind} case cannot be sized; raise FLOW_HORIZON"
        )
    t_settle = trap.settle_time(t_entry, s, L, learned, lr * L * float(s.max()) ** (2 - 2 / L))
    t_end = max(2 * exp.steps * lr, t_settle)
    if kind == "free":
        return t_end, t_settle, math.inf
    t_float = trap.float_trap_end(s, t_settle, L, torch.finfo(exp.torch_dtype).eps)
    if L > 2:
        return min(t_end, t_float), t_settle, t_float
    t_sgd = trap.sgd_escape_time(
        float(s.min()), exp.init.scale**L, trap.sgd_temperature(lr, exp.n_samples, exp.batch_size), trap.KAPPA_FLOOR
    )
    if t_sgd > t_float:
        pytest.skip(
            f"{exp.dtype}: GD's roundoff floor regrows the trapped mode by t = {t_float:.1f}, before "
            f"SGD's predicted escape {t_sgd:.1f} (kappa = {trap.KAPPA_FLOOR:g}): the case cannot separate them"
        )
    return t_float, t_settle, t_float


def _sigma_min(traj) -> torch.Tensor:
    return spectra.singular_values(spectra.end_to_end(traj.weights))[..., -1]  # (R, K)


def converged(loss: torch.Tensor, s: torch.Tensor, depth: int) -> tuple[bool, float]:
    """Free init: (every run's final loss <= trap.converged_loss, that bound); loss (R, T)."""
    bound = trap.converged_loss(s.numpy(), depth)
    return bool((loss[:, -1] <= bound).all()), bound


@pytest.mark.parametrize("kind, depth, seed", CASES)
def test_gd_trap(kind, depth, seed, preset, trajectory_cache, claim):
    cid = f"{kind}-{presets.case_id(REGIME, TEACHER, depth)}-seed{seed}"
    row = _prediction(kind, depth)
    base = _with_seed(preset(REGIME, TEACHER, depth), seed)
    T, s = base.teacher, base.teacher.s
    W0 = end_to_end(init_weights(base))
    sign = int(trap.trap_sign(W0, T.M))
    assert (sign < 0) == (kind == "trapped"), f"{cid}: scan and case disagree on the det sign ({sign})"
    t_end, t_settle, t_float = _run_length(base, kind, W0)
    exp = dataclasses.replace(base, steps=math.ceil(t_end / base.lr))
    if kind == "trapped" and depth == 2:
        runs = _escape_grid(exp, trajectory_cache)
        traj = runs[(exp.lr, exp.batch_size)]
    else:
        traj, runs = trajectory_cache(exp, checkpoints=CHECKPOINTS), None
    loss, t = traj.loss.double().cpu(), traj.times.double().cpu()
    t_ck = traj.checkpoint_steps.double().cpu() * exp.lr
    smin = _sigma_min(traj).double().cpu()
    det_signs = trap.det_sign(spectra.end_to_end(traj.weights)).cpu()  # (R, K)
    P = trap.trap_plateau(s)
    low, high = trap.plateau_band(s)
    eps = torch.finfo(exp.torch_dtype).eps
    atol = trap.loss_roundoff(T.M, eps)
    flip = int(trap.first_sign_flip(det_signs)[0])
    numbers = dict(
        n_inits=1,
        init_seed=seed,
        det_sign_product=sign,
        plateau_P=P,
        band=[low, high],
        roundoff_floor=trap.resolvable_floor(s, eps),
        t_end=float(t[-1]),
        t_settle_predicted=t_settle,
        t_float_predicted=t_float,
        lr=exp.lr,
        batch_size=exp.batch_size,
        gd_final_loss=float(loss[0, -1]),
        gd_min_loss=float(loss[0].min()),
        gd_min_loss_minus_P=float(loss[0].min() - P),
        loss_roundoff=atol,
        gd_exact_floor_held=bool(loss[0].min() >= P - atol),
        gd_first_det_flip_t=float(t_ck[flip]) if flip >= 0 else None,
        gd_sigma_min_W_end=float(smin[0, -1]),
        gd_sigma_min_W_min=float(smin[0].min()),
        sgd_final_loss=loss[1:, -1].tolist(),
    )
    esc = None
    if kind == "free":
        holds, bound = converged(loss, s, depth)
        numbers |= dict(converged_loss_bound=bound, mdd_final_loss=bound - float(loss[:, -1].max()))
        # golden path: both converge (agrees); GD converges, some SGD run does not (differs); else the
        # premise (no sign barrier: GD converges) fails
        golden = "agrees" if holds else "differs" if loss[0, -1] <= bound else "assumption-fails"
        key = "gd_final_loss"
        observed = (
            f"final loss GD {loss[0, -1]:.3g}, SGD max {loss[1:, -1].max():.3g} (bound {bound:.2g}); "
            f"GD sigma_min(W) at T {smin[0, -1]:.3g}"
        )
    else:
        after = t >= t_settle
        gd_trapped = bool(((loss[0, after] >= low) & (loss[0, after] <= high)).all())
        esc = trap.escape_times(loss[1:], t, low)
        numbers |= dict(
            sgd_escape_times=esc.tolist(),
            sgd_escaped=int(torch.isfinite(esc).sum()),
            sgd_runs=exp.sgd_runs,
            sgd_escape_median=float(esc.median()),
        )
        observed = (
            f"GD loss in [{loss[0, after].min():.4g}, {loss[0, after].max():.4g}] for t in "
            f"[{t_settle:.1f}, {t[-1]:.1f}] (band [{low:.4g}, {high:.4g}]); min GD loss - P = "
            f"{loss[0].min() - P:.2g}; sigma_min(W_GD(T)) {smin[0, -1]:.2g}; SGD escape times "
            f"{np.round(esc.numpy(), 1).tolist()}"
        )
        holds = gd_trapped and (depth > 2 or bool(torch.isfinite(esc).all()))
        # golden path: GD stuck and SGD escapes (differs), both stuck (agrees); GD not trapped: premise fails
        escaped = bool(torch.isfinite(esc).any())
        golden = ("differs" if escaped else "agrees") if gd_trapped else "assumption-fails"
        key = "sgd_escape_median"
        if runs is not None:
            numbers |= _escape_scaling(claim, exp, runs, low)
    _figures(claim, cid, depth, kind, t, loss, t_ck, smin, esc, P, (low, high), t_settle, numbers)
    claim.verdict(
        prediction=row.prediction,
        observed=observed,
        holds=holds,
        exploratory=row.exploratory,
        reason=row.reason,
        golden_path=golden,
        key=key,
        **numbers,
    )
    assert holds, f"{cid}: prediction '{row.prediction}' failed: {observed}"


def _escape_grid(exp, cache) -> dict:
    """Trajectories for lr in {eta, eta/2} x batch sizes of SCALING_GRID over the same time: one
    Ensemble (same init, two lrs) per batch size; keyed by (lr, batch size)."""
    out = {}
    for B in sorted({b for _, b in SCALING_GRID}):
        factors = [f for f, b in SCALING_GRID if b == B]
        ens = Ensemble(
            dataclasses.replace(exp, batch_size=B), inits=[exp.init] * len(factors), lrs=[exp.lr * f for f in factors]
        )
        et = cache.ensemble(ens, checkpoints=CHECKPOINTS)
        for i, f in enumerate(factors):
            out[(exp.lr * f, B)] = et[i]
    return out


def _escape_scaling(claim, exp, runs: dict, level: float) -> dict:
    """SGD escape times per (lr, batch) against the heuristic shift (exploratory: theory.trap item 5)."""
    s_min, c = float(exp.teacher.s.min()), exp.init.scale**exp.depth
    T0 = trap.sgd_temperature(exp.lr, exp.n_samples, exp.batch_size)
    rows = []
    for (lr, B), tr in runs.items():
        esc = trap.escape_times(tr.loss[1:].double().cpu(), tr.times.double().cpu(), level)
        Tb = trap.sgd_temperature(lr, exp.n_samples, B)
        for run, te in enumerate(esc.tolist(), 1):
            rows.append(
                dict(
                    lr=lr,
                    batch_size=B,
                    temperature=Tb,
                    run=run,
                    escape_time=te,
                    predicted_shift=trap.escape_shift(s_min, T0, Tb),
                    predicted_kappa1=trap.sgd_escape_time(s_min, c, Tb),
                )
            )
    df = pd.DataFrame(rows)
    med = (
        df.groupby(["lr", "batch_size"], sort=False)
        .agg(median=("escape_time", "median"), shift=("predicted_shift", "first"), kappa1=("predicted_kappa1", "first"))
        .reset_index()
    )
    med["measured_shift"] = med["median"] - med["median"].iloc[0]
    claim.table(df, "escape_times", caption="SGD escape time (loss < P/2) per run for each (lr, batch size)")
    _escape_figure(claim, df, med)
    return dict(
        escape_scaling=med.round(4).to_dict("records"),
        exploratory_note="escape-time shifts vs lr/batch are a heuristic (theory.trap item 5)",
    )


def _figures(claim, cid, depth, kind, t, loss, t_ck, smin, esc, P, band, t_settle, numbers):
    fig, axes = plots.figure(1, 3, size=(14.0, 3.8))
    ax = axes[0]
    for r in range(1, loss.shape[0]):
        ax.plot(
            t,
            loss[r].clamp_min(1e-16),
            color="tab:orange",
            linewidth=0.7,
            alpha=0.7,
            label="SGD runs" if r == 1 else None,
        )
    ax.plot(t, loss[0].clamp_min(1e-16), color=plots.GD_COLOR, label="GD")
    ax.axhline(P, color="tab:blue", linestyle="--", linewidth=1, label=r"$P = s_{\min}^2/2$")
    if kind == "trapped":
        ax.fill_between(
            [t_settle, float(t[-1])], band[0], band[1], color="tab:blue", alpha=0.12, label="asserted GD band"
        )
        ok = torch.isfinite(esc)
        if ok.any():
            ax.plot(
                esc[ok], torch.full((int(ok.sum()),), band[0]), "v", color="tab:red", label=r"SGD escape (loss $< P/2$)"
            )
    else:
        ax.plot(
            [float(t[-1])],
            [numbers["converged_loss_bound"]],
            "v",
            color="tab:green",
            markersize=9,
            label=r"asserted bound on loss$(T)$",
        )
    ax.set_yscale("log")
    ax.set_xlabel(r"time $t = \eta\,k$")
    ax.set_ylabel(r"loss $\frac{1}{2}\|W - M\|_F^2$")
    ax.set_title(cid, fontsize=9)
    ax.legend(loc="upper right")
    ax = axes[1]
    for r in range(1, smin.shape[0]):
        ax.plot(
            t_ck,
            smin[r].clamp_min(1e-300),
            color="tab:orange",
            linewidth=0.7,
            alpha=0.7,
            label="SGD runs" if r == 1 else None,
        )
    ax.plot(t_ck, smin[0].clamp_min(1e-300), color=plots.GD_COLOR, label="GD")
    ax.axhline(numbers["roundoff_floor"], color="tab:gray", linestyle=":", label=r"roundoff floor $\epsilon s_1$")
    ax.set_yscale("log")
    ax.set_xlabel(r"time $t$")
    ax.set_ylabel(r"$\sigma_{\min}(W)$")
    ax.set_title(r"smallest singular value of $W = W_L\cdots W_1$")
    ax.legend(loc="lower left")
    ax = axes[2]
    signs = np.array(scan_signs(depth))
    ax.bar(np.arange(SCAN), signs, color=np.where(signs < 0, "tab:red", "tab:green"))
    ax.bar(
        [numbers["init_seed"]],
        [signs[numbers["init_seed"]]],
        fill=False,
        edgecolor="black",
        linewidth=2,
        label="this case",
    )
    ax.set_xlabel("init seed")
    ax.set_ylabel(r"sign$(\det W_0)\,$sign$(\det M)$")
    ax.set_title("prediction before training: -1 = trapped")
    ax.legend(loc="upper right")
    claim.figure(
        fig,
        "trap",
        caption="GD and every SGD run against the trap plateau P (band asserted from the "
        "predicted settle time), sigma_min of the end-to-end map, and the det-sign prediction per seed",
    )
    kept = events.time_grid(len(t) - 1)  # the recorded steps' indices the table keeps (a nightly L = 4 run
    # records every step of 33 runs: 8 MB of csv.xz per case in full)
    claim.table(
        pd.DataFrame(
            {
                "time": np.tile(t[kept].numpy(), loss.shape[0]),
                "run": np.repeat(np.arange(loss.shape[0]), len(kept)),
                "loss": loss[:, kept].numpy().ravel(),
            }
        ),
        "loss",
        caption=f"loss of GD (run 0) and every SGD run at {len(kept)} of the {len(t)} recorded times "
        "(measure.events.time_grid: linear and log-spaced, first and last included)",
    )


def _escape_figure(claim, df, med):
    fig, axes = plots.figure(1, 2, size=(10.0, 3.6))
    ax = axes[0]
    for (lr, B), g in df.groupby(["lr", "batch_size"], sort=False):
        ax.hist(g["escape_time"][np.isfinite(g["escape_time"])], bins=8, alpha=0.5, label=rf"$\eta$={lr:.3g}, B={B}")
    ax.set_xlabel(r"SGD escape time $t_{esc}$ (loss < P/2)")
    ax.set_ylabel("runs")
    ax.legend(loc="upper right")
    ax = axes[1]
    ax.plot(med["shift"], med["measured_shift"], "o", color="tab:purple", label="median shift")
    lim = [
        min(med["shift"].min(), med["measured_shift"].min()) - 0.5,
        max(med["shift"].max(), med["measured_shift"].max()) + 0.5,
    ]
    ax.plot(lim, lim, color="gray", linestyle="--", linewidth=1, label=r"$-\ln(T_2/T_1)/s_{\min}$")
    ax.set_xlabel(r"predicted shift of $t_{esc}$ (heuristic)")
    ax.set_ylabel(r"measured shift of median $t_{esc}$")
    ax.set_title("exploratory: escape time vs SGD temperature")
    ax.legend(loc="upper left")
    claim.figure(
        fig,
        "escape_times",
        caption="SGD escape-time histograms per (lr, batch) and the median shift "
        "vs the temperature heuristic -ln(T2/T1)/s_min (exploratory, not asserted)",
    )
