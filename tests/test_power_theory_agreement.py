"""Power of the theory_agreement family's escape-order check (claims/test_theory_agreement.py:
escape_order): one SGD run's escape of mode 1 delayed by a stated fraction of its escape time, L = 3.

The check is deterministic: a delay larger than the run's slack (the gap to the next mode's
escape, relative) is rejected, a smaller one is accepted; its mdd is that slack."""

from __future__ import annotations

from claims.test_theory_agreement import C_DIAG, _mode_strengths, escape_order
from dlncheck.measure import modes
from tests import power

RUN, MODE = 1, 0  # SGD run 1, the first escape


def _golden():
    exp, traj = power.golden(depth=3)
    s = exp.teacher.s
    measured = modes.crossing_times(_mode_strengths(traj), s, traj.checkpoint_times, c=C_DIAG)["t_diag"]
    return measured, modes.degenerate_blocks(s)


def _holds(measured, blocks, delay):
    planted = measured.clone()
    planted[RUN, MODE] *= 1 + delay
    in_order, escaped, _ = escape_order(planted, blocks)
    return in_order and escaped


def test_power_theory_agreement_rejects_a_delay_past_the_next_escape_and_accepts_one_well_below():
    measured, blocks = _golden()
    in_order, escaped, slack = escape_order(measured, blocks)
    assert in_order and escaped, "the golden run escapes every mode in order"
    mdd = float(slack[RUN, MODE])
    assert not _holds(measured, blocks, 1.01 * mdd), f"a delay of {1.01 * mdd:.3g} x t_esc passes the next escape"
    assert _holds(measured, blocks, mdd / 4), f"a delay of {mdd / 4:.3g} x t_esc stays before it"
    print(f"theory_agreement (order) mdd {mdd:.3g} of the escape time; largest over runs {float(slack.max()):.3g}")
