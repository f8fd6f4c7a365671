"""Power of the scaling_saddles family's check (dlncheck.saddles.plateaus.judge) on golden GD
plateau points: a strict saddle (L = 2) mislabelled non-strict, a non-strict one (L = 3) mislabelled
strict, and a lambda_min shifted by a stated amount.

The plateau point is the golden GD checkpoint of smallest gradient norm with loss within 5 % of the
first inner plateau; its certificate and prediction come from the claim's own certify and
predicted_point. Deterministic: a shift beyond tol = Weyl bound + tau_round is rejected (the mdd the
claim reports as mdd_lambda), a relabelled kind is rejected whatever lambda_min says."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dlncheck import theory
from dlncheck.saddles.certify import certify
from dlncheck.saddles.plateaus import judge, predicted_point
from dlncheck.theory import saddle_curvature as sc
from tests import power


def _plateau_point(depth):
    exp, traj = power.golden("lowrank", depth)
    M, s = exp.teacher.M, exp.teacher.s
    W = [w[0] for w in traj.weights]
    g = sc.gradient_norms(W, M)
    P = theory.stage_plateaus(s)[1]
    near = (traj.loss[0, traj.checkpoint_steps] - P).abs() <= 0.05 * P
    i = int(torch.nonzero(near).flatten()[torch.argmin(g[near])])
    w = [x[i] for x in W]
    return certify(w, M, method="dense"), *predicted_point(w, exp)


@pytest.mark.parametrize("depth, kind, wrong", [(2, "strict", "non-strict"), (3, "non-strict", "strict")])
def test_power_scaling_saddles_rejects_a_mislabel_and_a_lambda_shift_beyond_tol(depth, kind, wrong):
    cert, lam, weyl = _plateau_point(depth)
    expected, ok, tol = judge(cert, lam, weyl, end=False)
    assert (expected, ok, cert.kind) == (kind, True, kind), f"golden L={depth} plateau certifies {cert.kind}"
    assert not judge(dataclasses.replace(cert, kind=wrong), lam, weyl, end=False)[1], f"{kind} labelled {wrong}"
    for shift, rejected in ((1.05 * tol, True), (-1.05 * tol, True), (tol / 4, False)):
        planted = dataclasses.replace(cert, lambda_min=cert.lambda_min + shift)
        assert judge(planted, lam, weyl, end=False)[1] != rejected, f"lambda_min shifted by {shift:.3g} (tol {tol:.3g})"
    print(f"scaling_saddles L={depth} mdd lambda {tol:.3g} (tau {cert.tau:.3g})")
