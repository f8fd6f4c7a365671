"""Power of the rank_patterns family's check (claims/test_rank_patterns.py: evaluate) at L = 3: an
extra rank of P_13 and a missing rank of P_23 planted in m of the S SGD runs at one plateau
checkpoint, for every m = 1..S.

Planting: the planted runs' log sigma_{index+1}(P_key) move by one common shift, so each keeps its
own SGD deviation (the noise the ambiguity rule measures): the planted run farthest from tau lands
0.05 past it in log (every planted run changes rank), or the nearest one half its way to tau (no
run changes rank). The check's tolerance on d_r is 0 outside the ambiguous entries
(theory.rank_gap), whose spread is SGD's noise within the runs' counts (Student t quantile), so a rank change in any
number of runs must be rejected (the claim's mdd_rank_change_runs is 1) and a move short of tau
accepted."""

from __future__ import annotations

import math
import types

import pytest
import torch

from claims.test_rank_patterns import EPS, evaluate
from dlncheck.measure.analysis import analyze
from dlncheck.theory import rank_gap
from tests import power

PLATEAU_T = 0.42  # a checkpoint on the first plateau: GD's P_13 has rank 0 there, P_23 rank 6
PAST = 0.05  # log distance past tau of the planted run nearest to it: a 5 % rank change


def _golden():
    exp, traj = power.golden(depth=3)
    k = int(torch.argmin((traj.checkpoint_times - PLATEAU_T).abs()))
    return traj, analyze(traj).svals, k, EPS * float(exp.teacher.s[0])


def _holds(traj, svals, key, k, index, tau, sign, past, runs):
    """evaluate on svals with log sigma_{index+1}(P_key) of SGD runs 1..runs shifted in common toward
    tau (direction ``sign``): past > 0, the run farthest from tau ends ``past`` beyond it; past < 0,
    the run nearest tau ends ``-past`` short of it."""
    planted = {kk: v.clone() for kk, v in svals.items()}
    logs = planted[key][1 : 1 + runs, k, index].log()
    anchor = (sign * logs).min() if past > 0 else (sign * logs).max()  # farthest / nearest run
    shift = math.log(tau) + sign * past - float(anchor * sign)
    planted[key][1 : 1 + runs, k, index] = (logs + shift).exp()
    assert torch.equal(planted[key][1:, k], planted[key][1:, k].sort(-1, descending=True).values), "order kept"
    result = evaluate(traj, types.SimpleNamespace(svals=planted), "plateaus", False)
    assert bool(result["scope"][k]), "the planted checkpoint must be asserted (a plateau checkpoint)"
    return result["holds"]


@pytest.mark.parametrize(
    "key, index, sign",
    [((1, 3), 0, +1), ((2, 3), 5, -1)],
    ids=["extra-rank-P13", "missing-rank-P23"],
)
def test_power_rank_patterns_rejects_a_rank_change_in_any_number_of_runs_and_accepts_a_move_short_of_tau(
    key, index, sign
):
    traj, svals, k, tau = _golden()
    golden = evaluate(traj, types.SimpleNamespace(svals=svals), "plateaus", False)
    assert golden["holds"], "golden run must hold"
    S = traj.runs - 1
    assert rank_gap.fewest_detectable_runs(golden["z"], S) == 1  # the claim's mdd_rank_change_runs
    gd = float(svals[key][0, k, index])
    assert sign * math.log(tau / gd) > 0, "the planted value must start on GD's side of tau"
    for m in range(1, S + 1):
        assert not _holds(traj, svals, key, k, index, tau, sign, PAST, m), f"rank change 5 % past tau in {m}/{S} runs"
        nearest = float((sign * svals[key][1 : 1 + m, k, index].log()).max() * sign)
        short = -abs(math.log(tau) - nearest) / 2  # half the nearest planted run's way to tau
        assert _holds(traj, svals, key, k, index, tau, sign, short, m), f"a move short of tau in {m}/{S} runs"
    print(f"rank_patterns mdd: a rank change 5 % past tau in any 1..{S} of {S} SGD runs (z {golden['z']:.2f})")
