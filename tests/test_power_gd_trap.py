"""Power of the gd_trap family's free-init check (claims/test_gd_trap.py: converged): one SGD run
that ends on a different function, W_SGD(T) = W_GD(T) + delta E with ||E||_F = 1, planted as its
final excess loss delta^2 / 2 (whitened inputs: the loss excess of a displacement delta E about the
minimum, to leading order), on golden saddle-fullrank runs at L = 2 and 3 (det W_0 det M > 0).

Deterministic: rejected once the planted excess passes the slack bound - max final loss, the mdd the
claim reports as mdd_final_loss."""

from __future__ import annotations

import math

import pytest

from claims.test_gd_trap import converged
from tests import power

RUN = 1


@pytest.mark.parametrize("depth", [2, 3])
def test_power_gd_trap_rejects_a_different_end_function_beyond_the_bound_and_accepts_one_well_below(depth):
    exp, traj = power.golden("fullrank", depth)
    loss, s = traj.loss, exp.teacher.s
    holds, bound = converged(loss, s, depth)
    assert holds, "every golden run converges"
    slack = bound - float(loss[:, -1].max())
    for excess, rejected in ((slack + 0.05 * bound, True), (slack / 4, False)):
        planted = loss.clone()
        planted[RUN, -1] = float(loss[:, -1].max()) + excess
        delta = math.sqrt(2 * excess)
        assert converged(planted, s, depth)[0] != rejected, f"end function off by ||delta E|| = {delta:.3g}"
    print(f"gd_trap (free, L={depth}) mdd: excess loss {slack:.3g}, function distance {math.sqrt(2 * slack):.3g}")
