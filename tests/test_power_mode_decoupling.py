"""Power of the mode_decoupling family's check (claims/test_mode_decoupling.py: aligned_first): a
cross-mode coupling w_12 = k |w_11| planted in one SGD run of a golden (decoupled, aligned-init) run
from the start, so it grows before, and with, the diagonal it couples to.

The check is deterministic: rho_1 = k / sqrt(1 + k^2) never falls to EPS_RHO when k exceeds
theory.power.coupling_mdd(EPS_RHO), and mode 1 is then not aligned before it is learned."""

from __future__ import annotations

from claims.test_mode_decoupling import EPS_RHO, aligned_first
from dlncheck import spectra
from dlncheck.measure import modes
from dlncheck.theory import power
from tests import power as golden_runs

RUN = 1


def _golden():
    exp, traj = golden_runs.golden(depth=2)
    T = exp.teacher
    w = modes.mode_coefficients(spectra.end_to_end(traj.weights), T.U, T.V)[None]  # (1, R, K, d, d)
    return w, T.s, traj.checkpoint_times


def _holds(w, s, t, k):
    planted = w.clone()
    planted[:, RUN, :, 0, 1] = k * planted[:, RUN, :, 0, 0].abs()
    return bool(aligned_first(planted, s, t)[2].all())


def test_power_mode_decoupling_rejects_a_coupling_above_eps_rho_and_accepts_one_well_below():
    w, s, t = _golden()
    assert bool(aligned_first(w, s, t)[2].all()), "the golden run aligns every mode before learning it"
    mdd = power.coupling_mdd(EPS_RHO)
    assert not _holds(w, s, t, 1.05 * mdd), f"coupling {1.05 * mdd:.3g} x the diagonal"
    assert _holds(w, s, t, mdd / 4), f"coupling {mdd / 4:.3g} x the diagonal"
    print(f"mode_decoupling mdd {mdd:.4g} (coupling / diagonal)")
