"""Power of the unit_step_growth family's check (claims/test_unit_step_growth.py: analyse): one SGD
run that misses the last rank step, planted by removing a fraction f of the smallest teacher mode
from its output layer, W_L <- (I - f u_r u_r^T) W_L, at every checkpoint after GD's midpoint.

Deterministic: sigma_r(W) of that run becomes (1 - f) sigma_r, below the floor EPS s_1 (the rank
step missing) once f > 1 - EPS s_1 / sigma_r, the mdd (the claim's mdd_removed_fraction, the largest
over runs); a removal well short of it is accepted."""

from __future__ import annotations

import types

import torch

from claims.stagewise_rows import rank_levels, stagewise_prediction
from claims.test_unit_step_growth import EPS, analyse
from dlncheck import spectra
from tests import power

RUN = 1


def _analyse(f):
    exp, traj = power.golden("lowrank", 2)
    T = exp.teacher
    u = T.U[:, T.rank - 1]
    weights = [w.clone() for w in traj.weights]
    late = slice(traj.checkpoint_steps.numel() // 2, None)
    weights[-1][RUN, late] -= f * torch.outer(u, u) @ weights[-1][RUN, late]
    planted = types.SimpleNamespace(
        weights=weights, initial_weights=traj.initial_weights, checkpoint_steps=traj.checkpoint_steps
    )
    pred = stagewise_prediction("saddle", "lowrank", "aligned")
    result = analyse(exp, planted, pred, rank_levels(pred, T.s))
    sigma_r = float(spectra.singular_values(spectra.end_to_end([w[RUN, -1] for w in traj.weights]))[T.rank - 1])
    return bool(result["ok"].all()), 1 - EPS * float(T.s[0]) / sigma_r


def test_power_unit_step_growth_rejects_a_missing_rank_step_and_accepts_a_removal_well_short_of_it():
    holds, mdd = _analyse(0.0)
    assert holds, "every golden run climbs the staircase to rank r"
    assert not _analyse(mdd + 0.05 * (1 - mdd))[0], f"mode removed past the floor (f > {mdd:.6f})"
    assert _analyse(mdd / 4)[0], f"mode removed by f = {mdd / 4:.3g}"
    print(f"unit_step_growth mdd: removed fraction f = {mdd:.6f} of the smallest mode")
