"""Power of the beyond_assumptions family's rank reading (claims/test_beyond_assumptions.py:
golden_reading) at L = 3: a rank of P_13 gained in every SGD run at a plateau checkpoint is
rejected (d_r > 0 there), a move of the same singular value short of the threshold is not.

Planted as in tests/test_power_rank_patterns.py: the size is the log distance of the planted value
from the threshold tau; d_r's tolerance is 0 outside the ambiguous entries (theory.rank_gap)."""

from __future__ import annotations

import math
import types

import torch

from claims.test_beyond_assumptions import EPS, golden_reading
from dlncheck.measure.analysis import analyze
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
