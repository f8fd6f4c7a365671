"""Power of the beyond_assumptions family's checks (claims/test_beyond_assumptions.py). The rank
reading (golden_reading) at L = 3: a rank of P_13 gained in every SGD run at a plateau checkpoint is
rejected (d_r > 0 there), a move of the same singular value short of the threshold is not. The
plateau certificates (certify_plateaus) at L = 2: a minimum planted on a plateau is rejected. The
offset check (offset_reading, asserted by test_sgd_offsets_beyond_assumptions) at L = 2: an SGD mean
offset planted 5 % past its band fails, one a quarter of the band inside passes.

Planted as in tests/test_power_rank_patterns.py: the size is the log distance of the planted value
from the threshold tau; d_r's tolerance is 0 outside the ambiguous entries (theory.rank_gap)."""

from __future__ import annotations

import math
import types

import torch

from claims.test_beyond_assumptions import (
    EPS,
    certify_plateaus,
    drift_checks,
    golden_reading,
    matched_reading,
    offset_reading,
    offsets_premise,
)
from dlncheck.config.data import make_problem
from dlncheck.measure.analysis import analyze
from dlncheck.theory.assumptions import learning_times
from dlncheck.theory.sgd import truncation_tolerance
from dlncheck.theory.split_premise import balance_ratio
from tests import power

PLATEAU_T = 0.42  # a checkpoint on the first plateau: GD's P_13 has rank 0 there


def _dr_at(traj, svals, k, value):
    planted = {key: v.clone() for key, v in svals.items()}
    planted[(1, 3)][1:, k, 0] = value
    planted[(1, 3)][1:, k] = planted[(1, 3)][1:, k].sort(-1, descending=True).values
    return float(golden_reading(traj, planted, float(traj.teacher.s[0]))["dr"][k])


def test_power_beyond_assumptions_rejects_a_rank_gained_in_every_run_and_accepts_a_move_short_of_tau():
    exp, traj = power.golden(depth=3)
    svals = analyze(traj).svals
    k = int(torch.argmin((traj.checkpoint_times - PLATEAU_T).abs()))
    tau = EPS * float(exp.teacher.s[0])
    gd = float(svals[(1, 3)][0, k, 0])
    assert gd < tau, "GD's P_13 must be below the threshold on the first plateau"
    golden = golden_reading(traj, svals, float(exp.teacher.s[0]))
    assert float(golden["dr"][k]) == 0, "the golden run must agree there"
    assert _dr_at(traj, svals, k, tau * math.exp(0.05)) > 0, "a rank gained in every SGD run, 5 % past tau"
    assert _dr_at(traj, svals, k, math.sqrt(gd * tau)) == 0, "a move half-way to tau (in log) must be accepted"


def test_power_beyond_assumptions_plateaus_reject_a_minimum_on_a_plateau_and_accept_the_golden_saddles():
    """The plateau check (claims/test_beyond_assumptions.py: certify_plateaus, judged by
    saddles.plateaus.judge) at L = 2: GD's own plateau points certify as the strict saddles the
    decoupled lambda_min predicts; GD's end point (positive semi-definite Hessian, a minimum) planted
    at the first plateau's checkpoint is rejected as a plateau saddle, whatever its prediction says."""
    exp, traj = power.golden(depth=2)
    problem = make_problem(exp)
    t_learn = learning_times(analyze(traj).end_to_end[0], traj.checkpoint_times, problem, exp.teacher.rank)
    rows = certify_plateaus(traj, exp, problem, t_learn, predicted=True)
    assert len(rows) == exp.teacher.rank - 1, "the golden run must show one inner plateau per learned mode"
    assert all(r["ok"] and r["kind"] == r["expected"] == "strict" for r in rows), rows
    first = min(int(torch.argmin((traj.checkpoint_times - r["time"]).abs())) for r in rows)
    weights = [w.clone() for w in traj.weights]
    for w in weights:
        w[0, first] = w[0, -1]
    planted = types.SimpleNamespace(weights=weights, checkpoint_times=traj.checkpoint_times)
    bad = certify_plateaus(planted, exp, problem, t_learn, predicted=True)[0]
    assert bad["kind"] == "minimum" and not bad["ok"], f"a minimum on a plateau must be rejected: {bad}"


def test_power_beyond_assumptions_offsets_reject_a_shift_just_past_the_band_and_accept_one_well_inside():
    """The asserted offset check (claims/test_beyond_assumptions.py: test_sgd_offsets_beyond_assumptions, an
    init inside the premise holds when offset_reading's ``within``) at L = 2 on the golden run: whitened
    teacher data and a balanced init are inside the premise (offsets_premise, theory.split_premise), and
    every entry of its top two modes is within the band (its end-to-end sigma_3 is learned 4 time units
    before the run ends, not settled as the claim's longer runs are, so the third mode is left out). The
    SGD runs' sigma_1(P_11) moved so that its error is 1.05 bands fails the check; moved to a quarter of a
    band it passes (the band's ratio is linear in SGD's mean)."""
    exp, traj = power.golden(depth=2)
    problem = make_problem(exp)
    svals = analyze(traj).svals
    n = 2
    assert offsets_premise(problem, min(exp.widths)) == []
    s_min = float(torch.linalg.svdvals(problem.least_squares)[n - 1])
    assert balance_ratio(traj.initial_weights, s_min) <= truncation_tolerance(exp)
    golden = offset_reading(traj, svals, problem, n, learned=True)
    r0, tol0 = float(golden["ratio"][0, 0, 0]), float(golden["tol"][0, 0, 0])
    assert golden["within"] and golden["entries"] == 6, golden

    def planted(target: float) -> dict:
        out = {key: v.clone() for key, v in svals.items()}
        out[(1, 1)][1:, -1, 0] *= math.exp((r0 - target) * tol0)  # new ratio of the entry = target
        return offset_reading(traj, out, problem, n, learned=True)

    past, inside = planted(-1.05), planted(-0.25)
    assert not past["within"] and past["outside"] == 1, "an offset 5 % past the band must fail the check"
    assert inside["within"], "an offset a quarter of the band inside it must pass"


def _delayed(an, d: int):
    """The analysis with every SGD run replaced by GD's own path d checkpoints late (GD's init before)."""
    idx = (torch.arange(an.end_to_end.shape[1]) - d).clamp(min=0)

    def late(v):
        v = v.clone()
        v[1:] = v[:1, idx]
        return v

    return types.SimpleNamespace(svals={k: late(v) for k, v in an.svals.items()}, end_to_end=late(an.end_to_end))


def test_power_beyond_assumptions_progress_accepts_gds_path_late_and_rejects_a_rank_gained_on_it():
    """The -progress reading (matched_reading, then golden_reading) at L = 3: SGD runs that are GD's own
    path 8 checkpoints late differ from GD at equal time during the escapes but give d_r = 0 at every
    matched checkpoint; a rank of P_13 gained in every late run on the first plateau (5 % past tau) is
    still rejected there at matched progress."""
    exp, traj = power.golden(depth=3)
    problem = make_problem(exp)
    late = _delayed(analyze(traj), 8)
    s1 = float(exp.teacher.s[0])
    assert (golden_reading(traj, late.svals, s1)["dr"] > 0).any(), "a late path must differ at equal time"
    m, coordinate = matched_reading(traj, late, problem, min(exp.widths))
    assert coordinate == "modes"
    dr = golden_reading(traj, m.svals, s1)["dr"]
    assert (dr[~m.unmatched] == 0).all(), "GD's own path, late, must agree at matched progress"
    k = int(torch.argmin((traj.checkpoint_times - PLATEAU_T).abs()))
    planted = types.SimpleNamespace(svals={key: v.clone() for key, v in late.svals.items()}, end_to_end=late.end_to_end)
    planted.svals[(1, 3)][1:, : k + 20, 0] = EPS * s1 * math.exp(0.05)
    m = matched_reading(traj, planted, problem, min(exp.widths))[0]
    assert not m.unmatched[k] and golden_reading(traj, m.svals, s1)["dr"][k] > 0, "a rank gained must be rejected"


def test_power_beyond_assumptions_drift_rejects_a_planted_balance_shift_inside_the_secular_premise():
    """The drift check (claims/test_beyond_assumptions.py: drift_checks) at L = 2 on the golden run,
    inside its secular premise (theory.balance_drift.secular_share <= h: asserted on GD's path). Every
    SGD run's last W_2 scaled so that D_1(T) shifts along W_2^T W_2 by 1.05 of the check's minimum
    detectable deviation is rejected; a shift of a tenth of its tolerance is accepted. The secular share
    reads GD's path only, so the planted shift cannot move the pair out of its premise."""
    exp, traj = power.golden(depth=2)
    problem = make_problem(exp)
    h = truncation_tolerance(exp)
    golden = drift_checks(traj, exp, problem, h, n_tests=1)[0]
    assert golden["in_premise"] and golden["holds"], golden

    def check_after(shift: float) -> dict:
        weights = [w.clone() for w in traj.weights]
        w2 = weights[1][1:, -1]
        gram = float(torch.linalg.matrix_norm(w2[0].mT @ w2[0], "fro"))
        weights[1][1:, -1] = w2 * math.sqrt(1 + shift / gram)
        planted = types.SimpleNamespace(weights=weights, checkpoint_steps=traj.checkpoint_steps)
        return drift_checks(planted, exp, problem, h, n_tests=1)[0]

    rejected = check_after(1.05 * golden["mdd"])
    assert rejected["in_premise"] and not rejected["holds"], rejected
    accepted = check_after(0.1 * golden["tolerance"])
    assert accepted["in_premise"] and accepted["holds"], accepted


def test_drift_premise_at_depth_3_is_the_noise_vanishing_at_gds_minimum():
    """At L >= 3 the secular share is not derived: every pair is on GD's path where SGD's noise vanishes
    at GD's reachable minimum, and on SGD's own path (the identity, exploratory) where it persists."""
    exp, traj = power.golden(depth=3)
    problem = make_problem(exp)
    h = truncation_tolerance(exp)
    inside = drift_checks(traj, exp, problem, h, n_tests=2, noise_vanishes=True)
    outside = drift_checks(traj, exp, problem, h, n_tests=2, noise_vanishes=False)
    assert len(inside) == len(outside) == 2
    assert all(row["in_premise"] and row["secular_share"] is None for row in inside)
    assert not any(row["in_premise"] for row in outside)
    assert [row["gd_path_predicted"] for row in outside] == [row["predicted"] for row in inside]
