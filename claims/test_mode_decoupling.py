"""Claim family: cross-mode decay before diagonal growth (protocol "Mode decoupling"), per init.

w_ab(t) = u_a^T W(t) v_b in the teacher's full singular bases. t_diag(a) = first t with
|w_aa| >= C_DIAG s_a (protocol's c). t_cross(a) = first t with rho_a <= EPS_RHO,
rho_a = ||off-diagonal part of row a|| / ||row a|| (scale-free; the protocol's absolute eps on
max_{b != a} |w_ab| is trivially met at a tiny init and only reported). Pairs inside a degenerate
block of s have no preferred basis and are excluded from the off-diagonal part.

The statement is about the regime's generic behaviour, so every case runs an ensemble of inits
(dlncheck.suite.init_ensembles): the saddle regime random small inits (balanced and Gaussian) plus the
aligned init as a control case; the other regimes several seeds of their preset init. An init
"aligns first" when t_cross(a) <= t_diag(a) for every learned mode a in GD and in every SGD run
of that init (its runs share W(0), so they are one outcome, not independent draws); the verdict
counts inits, with a Wilson interval. The thresholds are definitions, not tolerances:
EPS_RHO = 0.1 is "row a within 5.7 degrees of e_a" (cos >= 0.995), C_DIAG = 1/2 the protocol's.
Where the GD trap's premises hold (theory.trap.trapped_init: a balanced init with
det(W_0) det(M) < 0, a square full-rank teacher) that theory applies: GD never learns the smallest
mode, so that mode is predicted unlearned in GD and not asserted in the SGD runs (trap item 5:
no SGD prediction); the other modes align first as above.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from claims import expectations
from dlncheck import presets, spectra
from dlncheck.measure import modes
from dlncheck.report import plots
from dlncheck.report.claim import Prediction
from dlncheck.suite import init_ensembles
from dlncheck.suite.family import Family
from dlncheck.theory import mode_dynamics as theory_modes
from dlncheck.theory import power, trap

FAMILY = Family(
    "mode_decoupling",
    question="do the teacher's modes evolve independently?",
    group="assumptions",
    if_contradicted="assumption-fails",
    predictions={
        "saddle": Prediction(
            "every random small init aligns first: t_cross(a) <= t_diag(a) for every mode, "
            "in GD and every SGD run of the init; a trapped init (theory.trap.trapped_init): GD never "
            "learns the smallest mode, every other mode aligns first in every run",
            "small random init: during each plateau the layers align with the teacher's "
            "singular vectors before the mode is learned (silent alignment, Atanasov, "
            "Bordelon & Pehlevan, ICLR 2022; Saxe et al. 2014); the small-init limit "
            "admits no exceptional init, so the prediction is every init; balanced flow conserves "
            "sign det W (theory.trap), so with det(W_0) det(M) < 0 GD cannot learn the smallest mode",
        ),
        "saddle-deep": Prediction(
            "exploratory at L >= 3: every mode learned in every run of every init (a trapped init: every "
            "mode but GD's smallest); alignment order recorded, its a0 -> 0 trend asserted by "
            "init_scale's contradictions-* cases",
            "at L >= 3 alignment and escape share the time scale a0^-(L-2) (theory.init_scale items 2, 4b): "
            "nothing lets alignment finish before the escape at finite a0; rho_a(t_diag) = O(a0^{q_a}), "
            "q_a = 1 - s_{a+1}/s_a, with an init-dependent constant not derived, so the small-init limit's "
            "'aligns first' is not predicted at the preset's a0",
            True,
        ),
        "aligned": Prediction(
            "control: cross modes stay below eps_rho, so t_cross(a) <= t_diag(a) in GD and every SGD run",
            "aligned balanced init: GD keeps the modes exactly decoupled (rho_a = 0); SGD's "
            "noise creates cross coefficients that must stay small against the diagonal",
        ),
        "ntk": Prediction(
            "exploratory: every mode learned in every run of every init; the lazy isotropic-"
            "kernel model's per-mode outcome (theory.modes.lazy_rho_at_diag) is reported "
            "against GD's",
            "large init: W(0) is O(1) in all directions and the residual decays uniformly, so "
            "whether a row aligns before its diagonal is half-learned depends on W(0); no "
            "margin for kernel anisotropy is derived",
            True,
        ),
        "intermediate": Prediction(
            "exploratory: every mode learned in every run of every init; alignment order recorded",
            "timing of alignment is not predicted between the two limits",
            True,
        ),
    },
)
pytestmark = FAMILY.mark

EPS_RHO = 0.1  # definition of "aligned": rho_a <= 0.1
EPS_ABS = 1e-3  # protocol's absolute threshold, times s_1 (reported only)
C_DIAG = 0.5  # protocol's c


def aligned_first(w: torch.Tensor, s: torch.Tensor, t: torch.Tensor):
    """(crossing times, learned, aligned first) per mode from mode coefficients w (..., K, d_out, d_in):
    learned when |w_aa| reaches C_DIAG s_a, aligned first when rho_a <= EPS_RHO no later than that."""
    times = modes.crossing_times(w, s, t, eps_rho=EPS_RHO, eps_abs=EPS_ABS * float(s[0]), c=C_DIAG)
    learned = torch.isfinite(times["t_diag"])
    return times, learned, (times["t_cross"] <= times["t_diag"]) & learned


@pytest.mark.parametrize("regime, teacher, depth, init", expectations.cases(variants=expectations.ensemble_variants))
def test_cross_modes_decay_before_diagonal(regime, teacher, depth, init, preset, sizes, trajectory_cache, claim):
    exp = preset(regime, teacher, depth)
    cid = presets.case_id(regime, teacher, depth) + ("-aligned" if init == "aligned" else "")
    deep = regime == "saddle" and init != "aligned" and depth >= 3  # theory.init_scale item 2
    row = FAMILY.predictions["aligned" if init == "aligned" else "saddle-deep" if deep else regime]
    labels, trajs = init_ensembles.case_trajectories(exp, init, sizes.ensembles, trajectory_cache)
    read = [(spectra.end_to_end(tr.weights), tr.initial_weights, tr.checkpoint_times) for tr in trajs]  # one pass
    W = torch.stack([r[0] for r in read])  # (C, R, K, d_out, d_in)
    t, w0 = read[0][2], [r[1] for r in read]
    T = exp.teacher
    s = T.s
    n = int((s > 0).sum())
    w = modes.mode_coefficients(W, T.U, T.V)  # (C, R, K, d_out, d_in)
    times, learned, before = aligned_first(w, s, t)  # (C, R, n) each
    trapped = torch.tensor([trap.trapped_init(w, T.M) for w in w0])  # (C,) theory.trap's premises hold
    asserted = torch.ones(len(w0), n, dtype=torch.bool)
    asserted[trapped, n - 1] = False  # GD: predicted unlearned (checked below); SGD: no prediction
    gd_stays = ~trapped | ~learned[:, 0, n - 1]  # (C,)
    ok = before | ~asserted[:, None, :]
    per_init = ok.all(-1).all(-1) & gd_stays  # (C,)
    per_init_gd = ok[:, 0].all(-1) & gd_stays
    all_learned = learned.all(-1).all(-1)  # (C,)
    summary = init_ensembles.summary(per_init)
    gd_summary = init_ensembles.summary(per_init_gd)
    off = modes.row_offdiag(w, s)
    rho_at_diag = _value_at(off["rho"][..., :n], times["t_diag"], t)  # (C, R, n)

    numbers = dict(
        n_inits=summary["n_inits"],
        inits_aligned_first=summary["n_pass"],
        fraction_inits=summary["fraction"],
        fraction_ci=[summary["fraction_lo"], summary["fraction_hi"]],
        fraction_inits_gd=gd_summary["fraction"],
        inits_all_learned=int(all_learned.sum()),
        trapped_inits=[lab for lab, tr in zip(labels, trapped.tolist()) if tr],
        per_init=dict(zip(labels, summary["per_init"])),
        failing_modes_per_init={
            lab: [a + 1 for a in range(n) if not bool(ok[c, :, a].all())] + ([] if gd_stays[c] else [f"GD learned {n}"])
            for c, lab in enumerate(labels)
        },
        rho_at_t_diag_gd={lab: np.round(rho_at_diag[c, 0].tolist(), 3).tolist() for c, lab in enumerate(labels)},
        sgd_runs_per_init=W.shape[1] - 1,
        eps_rho=EPS_RHO,
        mdd_coupling=power.coupling_mdd(EPS_RHO),  # w_ab / w_aa held from the start: rejected beyond this
    )
    if regime == "saddle" and not deep:  # every init, every run: the small-init theory has no exceptions
        holds = summary["n_pass"] == summary["n_inits"]
    else:  # exploratory: only that every mode is learned (a prerequisite that can fail), GD's trapped mode excepted
        holds = bool((learned | ~asserted[:, None, :]).all() and gd_stays.all())
        if regime == "ntk":
            pred = _lazy_prediction(w0, T, s, n)  # (C, n) predicted "aligns first"
            agree = (pred == before[:, 0]).double().mean().item()
            numbers |= dict(lazy_predicted_aligned_first=pred.tolist(), lazy_agreement_gd=agree)
    failing = [lab for lab, ok in zip(labels, summary["per_init"]) if not ok]
    worst = labels.index(failing[0]) if failing else 0
    _figure(claim, t, w[worst], off["rho"][worst], times, worst, s, n, f"{cid} ({labels[worst]})")
    _table(claim, labels, times, before, rho_at_diag, n)
    lo, hi = summary["fraction_lo"], summary["fraction_hi"]
    observed = (
        f"{summary['n_pass']}/{summary['n_inits']} inits align first in GD and every SGD run "
        f"(95% CI {lo:.2f}-{hi:.2f}; GD alone {gd_summary['n_pass']}/{gd_summary['n_inits']}); "
        f"failing (init: modes) {[(lab, numbers['failing_modes_per_init'][lab]) for lab in failing]}; "
        f"every mode learned in {int(all_learned.sum())}/{len(labels)} inits; trapped (theory.trap, GD's "
        f"smallest mode predicted unlearned): {numbers['trapped_inits']}"
    )
    golden = "n/a" if row.exploratory else ("agrees" if holds else "assumption-fails")
    claim.verdict(
        prediction=row.prediction,
        exploratory=row.exploratory,
        holds=holds,
        reason=row.reason,
        observed=observed,
        golden_path=golden,
        key="fraction_inits",
        **numbers,
    )
    assert holds, f"mode decoupling failed for {cid}: {observed}; predicted {row.prediction}"


def _value_at(x: torch.Tensor, at: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x (..., K, n) read at the first checkpoint with t >= at (..., n); NaN where at is inf."""
    k = torch.searchsorted(t.contiguous(), at.clamp(max=float(t[-1])).contiguous())
    out = torch.gather(x, -2, k.unsqueeze(-2)).squeeze(-2)
    return out.where(torch.isfinite(at), float("nan"))


def _lazy_prediction(w0, T, s, n) -> torch.Tensor:
    """Per (init, mode): does the lazy model predict alignment first? See theory.modes.lazy_rho_at_diag."""
    W0 = torch.stack([spectra.end_to_end(w) for w in w0])  # W(0) per init (shared by its runs)
    w = modes.mode_coefficients(W0, T.U, T.V)
    off = modes.row_offdiag(w, s)
    offnorm = off["rho"] * torch.linalg.vector_norm(w, dim=-1)[..., : off["rho"].shape[-1]]
    w_aa = torch.diagonal(w, dim1=-2, dim2=-1)
    rho = theory_modes.lazy_rho_at_diag(w_aa[..., :n], offnorm[..., :n], s[:n], C_DIAG)
    return rho <= EPS_RHO


def _table(claim, labels, times, before, rho_at_diag, n):
    C, R, _ = before.shape
    rows = [
        {
            "init": labels[c],
            "run": r,
            "method": "GD" if r == 0 else "SGD",
            "mode": a + 1,
            "t_cross": float(times["t_cross"][c, r, a]),
            "t_diag": float(times["t_diag"][c, r, a]),
            "rho_at_t_diag": float(rho_at_diag[c, r, a]),
            "aligned_first": bool(before[c, r, a]),
        }
        for c in range(C)
        for r in range(R)
        for a in range(n)
    ]
    claim.table(
        pd.DataFrame(rows), "per_init_crossings", caption="t_cross, t_diag and rho_a(t_diag) per init, run, mode"
    )


def _figure(claim, t, w, rho, times, c, s, n, title):
    """Top row: |w_aa| (solid) and max_{b!=a}|w_ab| (dashed), GD line and SGD min-max band; bottom
    row: rho_a with the threshold EPS_RHO; t_diag (GD) marked. One init (the first failing one)."""
    fig, axes = plots.figure(
        2, n, size=(3.3 * n + 0.4, 7.0), gridspec_kw={"top": 0.9, "bottom": 0.2, "hspace": 0.55, "wspace": 0.4}
    )
    axes = np.atleast_2d(axes).reshape(2, n)
    diag = torch.diagonal(w, dim1=-2, dim2=-1)[..., :n].abs()
    offmax = modes.row_offdiag(w, s)["max"]
    x = t.numpy()
    for a in range(n):
        ax, ax_rho = axes[0, a], axes[1, a]
        for q, style, name in ((diag[..., a], "-", r"$|w_{aa}|$"), (offmax[..., a], "--", r"$\max_{b\neq a}|w_{ab}|$")):
            ax.plot(x, q[0].numpy(), color=plots.GD_COLOR, linestyle=style, label=f"GD {name}")
            if q.shape[0] > 1:
                ax.fill_between(
                    x,
                    q[1:].amin(0).numpy(),
                    q[1:].amax(0).numpy(),
                    color=plots.SGD_COLOR,
                    alpha=0.35,
                    linewidth=0,
                    hatch=None if style == "-" else "///",
                    label=f"SGD {name} (min-max)",
                )
        ax.axhline(C_DIAG * float(s[a]), color="tab:blue", linewidth=0.8, linestyle=":", label=r"$c\,s_a$")
        ax.set(yscale="log", title=f"mode {a + 1}, $s_{a + 1}$={float(s[a]):.2g}", xlabel="t = lr step")
        ax_rho.plot(x, rho[0, :, a].numpy(), color=plots.GD_COLOR, label=r"GD $\rho_a$")
        if rho.shape[0] > 1:
            ax_rho.fill_between(
                x,
                rho[1:, :, a].amin(0).numpy(),
                rho[1:, :, a].amax(0).numpy(),
                color=plots.SGD_COLOR,
                alpha=0.35,
                linewidth=0,
                label=r"SGD $\rho_a$ (min-max)",
            )
        ax_rho.axhline(EPS_RHO, color="tab:red", linewidth=1, label=r"$\epsilon_\rho$ (aligned below)")
        for ax_ in (ax, ax_rho):
            plots.mark_times(ax_, times["t_diag"][c, 0, a : a + 1], label=r"$t_{diag}$ (GD)", color="tab:blue")
        td = times["t_diag"][c, :, a]
        failing = not bool(((times["t_cross"][c, :, a] <= td) & torch.isfinite(td)).all())
        ax_rho.set(
            yscale="log",
            xlabel="t = lr step",
            ylim=(1e-4, 1.5),
            title=rf"$\rho_{a + 1}$" + (" (fails: late or unlearned)" if failing else ""),
        )
    axes[0, 0].set_ylabel("|mode coefficient|")
    axes[1, 0].set_ylabel(r"$\rho_a$ = off-diag / row norm")
    handles, names = axes[0, 0].get_legend_handles_labels()
    extra = [(h, lab) for h, lab in zip(*axes[1, 0].get_legend_handles_labels()) if lab not in names]
    fig.legend(
        handles + [h for h, _ in extra],
        names + [lab for _, lab in extra],
        loc="lower center",
        ncol=4,
        fontsize=8,
        bbox_to_anchor=(0.5, 0.0),
    )
    fig.suptitle(title, fontsize=11)
    claim.figure(
        fig,
        "mode_coefficients",
        caption="per mode: GD (black) and SGD min-max band (orange) of "
        "|w_aa| and the largest cross coefficient (top), and rho_a, which defines t_cross, with its "
        "threshold (bottom); t_diag of GD marked; the first failing init is shown",
    )
