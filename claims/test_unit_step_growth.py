"""Claim family: stagewise (unit-step) rank growth of W(t) (protocol 1.2 II, DLN calibration).

Ranks are counted with the absolute floor tied to the teacher, r = #{sigma > eps max(sigma_1,
s_1)} at EPS (spectra.numerical_rank with atol = eps s_1): the purely relative r_eps is scale
invariant and, from a tiny init, reports the initial weights' spectral shape (often full rank),
so "rank starts at 0" is only testable with the floor (test_eps_sensitivity shows both notions).

Saddle cases run twice: ``-aligned`` (the preset's aligned init, the control where a repeated
singular value is predicted to make GD jump by its multiplicity) and ``-random`` (an ensemble of
small random inits, half balanced and half Gaussian, the tier's init_ensembles.Sizes, trained together). Each
init is one draw: its outcome is "GD and every one of its SGD runs match the prediction"
(stagewise.staircase_outcomes; runs of one init are never pooled as independent draws); the
verdict reports the fraction of inits with a Wilson 95% interval and asserts every init (theory
predicts the staircase for every generic init, so one failing init contradicts it).
"""

from __future__ import annotations

import pytest
import torch

from claims import expectations
from claims import stagewise_figures as figures
from claims.stagewise_rows import rank_levels, square_fullrank, stagewise_prediction
from dlncheck import presets, spectra
from dlncheck.measure import events, stagewise, stats
from dlncheck.spectra import end_to_end
from dlncheck.suite import init_ensembles
from dlncheck.suite.family import Family
from dlncheck.theory import trap

FAMILY = Family(
    "unit_step_growth",
    question="does the unit-step growth measure what it should?",
    group="calibration",
)
pytestmark = FAMILY.mark

EPS = 1e-4  # asserted threshold (relative), floor EPS * s_1


def _variants(regime, teacher, depth):
    if regime == "saddle":
        return [("-aligned", ("aligned",)), ("-random", ("random",))]
    return [("", ("preset",))]


def trajectories(base, init: str, sizes, cache) -> list:
    """[(experiment, trajectory)] of every init of the case."""
    if init != "random":
        return [(base, cache(base, checkpoints=events.time_grid_for(base)))]
    ens = init_ensembles.case_ensemble(base, sizes)
    runs = cache.ensemble(ens, checkpoints=events.time_grid_for(ens.base))
    return [(ens.experiment(i), runs[i]) for i in range(len(ens))]


def analyse(exp, traj, pred, levels) -> dict:
    """One init: ranks (R, K) at EPS, the det-sign rules and the per-run outcome."""
    teacher = exp.teacher
    s1 = float(teacher.s[0])
    W = spectra.end_to_end(traj.weights)
    svals = spectra.singular_values(W)
    ranks = stagewise.ranks_over_eps(svals, torch.tensor([EPS], dtype=torch.float64), atol=EPS * s1)[0]
    W0 = end_to_end(traj.initial_weights)
    wrong_sign = square_fullrank(teacher) and bool(trap.predicts_trap(W0, teacher.M))
    trapped = wrong_sign and exp.init.kind in ("balanced", "aligned") and pred.kind != "none"
    crossing = wrong_sign and pred.kind == "none"
    if pred.kind == "weyl":
        ok = ranks[:, -1] >= stagewise.guaranteed_rank(W[:, -1], teacher.M, teacher.s, EPS, atol=EPS * s1)[0]
    else:
        ok = stagewise.staircase_outcomes(ranks, pred.kind, levels, trapped=trapped, crossing=crossing)
    same = (ok == ok[0]) & (ranks[:, -1] == ranks[0, -1])
    out = {
        "exp": exp,
        "traj": traj,
        "svals": svals,
        "ranks": ranks,
        "ok": ok,
        "trapped": trapped,
        "crossing": crossing,
        "shares_gd": bool(same[1:].all()),
    }
    if crossing:
        signs = torch.linalg.slogdet(W)[0]  # (R, K)
        flip = trap.first_sign_flip(signs)
        step = (W[:, 1:] - W[:, :-1]).flatten(0, 1)
        steps_between = torch.diff(traj.checkpoint_steps).clamp(min=1).repeat(W.shape[0])
        per_step = (torch.linalg.matrix_norm(step, ord=2) / steps_between).reshape(W.shape[0], -1)
        at = per_step.gather(1, (flip - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
        out |= {
            "sign_flip_index": flip.tolist(),
            "sigma_min_min": svals[..., -1].amin(1).tolist(),
            "dip_probability": [trap.dip_below_floor_probability(EPS * s1, float(a)) for a in at],
        }
    return out


@pytest.mark.parametrize("regime, teacher, depth, init", expectations.cases(variants=_variants))
def test_unit_step_rank_growth(regime, teacher, depth, init, preset, sizes, trajectory_cache, claim):
    base = preset(regime, teacher, depth)
    case = presets.case_id(regime, teacher, depth) + ("" if init == "preset" else f"-{init}")
    pred = stagewise_prediction(regime, teacher, init)
    levels = rank_levels(pred, base.teacher.s)
    inits = [
        analyse(exp, traj, pred, levels) for exp, traj in trajectories(base, init, sizes.ensembles, trajectory_cache)
    ]
    per_init = [_init_record(a, levels) for a in inits]
    n, k = len(inits), sum(p["holds"] for p in per_init)
    lo, hi = stats.wilson_interval(k, n)
    holds = k == n
    shares = all(a["shares_gd"] for a in inits)
    figures.rank_vs_time(claim, inits, case, EPS, levels)
    figures.spectrum(claim, inits[0], base, case, EPS)
    figures.gaps(claim, inits, case, EPS)
    staircase = figures.product_staircases(claim, inits[0], case, EPS)
    failing = [
        f"init {i} ({p['init']} seed {p['seed']}): runs {p['failing_runs']} fail, final ranks {p['final']}"
        for i, p in enumerate(per_init)
        if not p["holds"]
    ]
    observed = (
        f"eps={EPS:g} (floor {EPS * float(base.teacher.s[0]):.1e}): prediction holds for {k}/{n} inits "
        f"(Wilson 95% [{lo:.2f}, {hi:.2f}]); GD splits a repeated block in "
        f"{sum(p['gd_splits'] for p in per_init)}/{n} inits, SGD runs split in "
        f"{sum(p['sgd_splits'] for p in per_init)}/{sum(p['sgd_runs'] for p in per_init)}; "
        f"trapped (balanced, det(W0) det(M) < 0): {sum(p['trapped'] for p in per_init)}, "
        f"det-sign crossings: {sum(p['crossing'] for p in per_init)}" + ("; " + "; ".join(failing) if failing else "")
    )
    claim.verdict(
        prediction=pred.prediction,
        exploratory=pred.exploratory,
        holds=holds,
        reason=pred.reason,
        observed=observed,
        golden_path="agrees" if shares else "differs",
        key="fraction_inits",
        eps=EPS,
        levels=levels,
        n_inits=n,
        inits_holding=k,
        fraction_inits=k / n,
        fraction_inits_wilson=[lo, hi],
        per_init=per_init,
        mdd_removed_fraction=max(  # a run losing more of its smallest mode at the end misses the last step
            float((1 - EPS * float(base.teacher.s[0]) / a["svals"][:, -1, base.teacher.rank - 1]).max()) for a in inits
        ),
        **staircase,
    )
    assert holds, (
        f"{case}: predicted '{pred.prediction}' at eps={EPS:g} (floor eps*s_1) holds for {k}/{n} inits; "
        + "; ".join(failing)
        + "; see rank_vs_time.png"
    )


def _init_record(a: dict, levels) -> dict:
    exp, ranks, ok = a["exp"], a["ranks"], a["ok"]
    splits = stagewise.splits_block(ranks, levels) if len(levels) > 1 else torch.zeros(len(ranks), dtype=torch.bool)
    growth = stagewise.growth_statistics(ranks)
    record = {
        "init": exp.init.kind,
        "seed": exp.init.seed,
        "holds": bool(ok.all()),
        "runs_ok": int(ok.sum()),
        "failing_runs": torch.nonzero(~ok).flatten().tolist(),
        "trapped": a["trapped"],
        "crossing": a["crossing"],
        "gd_splits": bool(splits[0]),
        "sgd_splits": int(splits[1:].sum()),
        "sgd_runs": len(ranks) - 1,
        "start": growth["start"].tolist(),
        "final": growth["final"].tolist(),
        "max_jump": growth["max_jump"].tolist(),
        "unit_fraction_gd": float(growth["unit"][0]),
    }
    for name in ("sign_flip_index", "sigma_min_min", "dip_probability"):
        if name in a:
            record[name] = a[name]
    return record
