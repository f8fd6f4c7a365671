"""Power of the beyond_assumptions family's checks (claims/test_beyond_assumptions.py). The rank
reading (golden_reading) at L = 3: a rank of P_13 gained in every SGD run at a plateau checkpoint is
rejected (d_r > 0 there), a move of the same singular value short of the threshold is not. The
plateau certificates (certify_plateaus) at L = 2: a minimum planted on a plateau is rejected.

Planted as in tests/test_power_rank_patterns.py: the size is the log distance of the planted value
from the threshold tau; d_r's tolerance is 0 outside the ambiguous entries (theory.rank_gap)."""

from __future__ import annotations

import math
import types

import torch

from claims.test_beyond_assumptions import EPS, certify_plateaus, golden_reading
from dlncheck.config.data import make_problem
from dlncheck.measure.analysis import analyze
from dlncheck.theory.assumptions import learning_times
from tests import power

PLATEAU_T = 0.42  # a checkpoint on the first plateau: GD's P_13 has rank 0 there


def _dr_at(traj, svals, k, value):
    planted = {key: v.clone() for key, v in svals.items()}
    planted[(1, 3)][1:, k, 0] = value
    planted[(1, 3)][1:, k] = planted[(1, 3)][1:, k].sort(-1, descending=True).values
    return float(golden_reading(traj, types.SimpleNamespace(svals=planted), float(traj.teacher.s[0]))["dr"][k])


def test_power_beyond_assumptions_rejects_a_rank_gained_in_every_run_and_accepts_a_move_short_of_tau():
    exp, traj = power.golden(depth=3)
    svals = analyze(traj).svals
    k = int(torch.argmin((traj.checkpoint_times - PLATEAU_T).abs()))
    tau = EPS * float(exp.teacher.s[0])
    gd = float(svals[(1, 3)][0, k, 0])
    assert gd < tau, "GD's P_13 must be below the threshold on the first plateau"
    golden = golden_reading(traj, types.SimpleNamespace(svals=svals), float(exp.teacher.s[0]))
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
