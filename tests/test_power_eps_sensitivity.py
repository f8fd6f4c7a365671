"""Power of the eps_sensitivity family's effective-rank check (claims/test_eps_sensitivity.py:
effective_rank_holds, with the claim's tolerance theory.ranks.effective_rank_tolerance at the claim's
delta_bound): one SGD run that ends on a different function, its smallest learned singular value
scaled by 1 - f (a function distance f sigma_r from where it ended).

Deterministic: rejected once |ln r_eff - ln r_eff(M)| exceeds the tolerance, which happens at the
f* solved for below (the mdd, reported with its function distance f* sigma_r); f = f* / 4 is
accepted."""

from __future__ import annotations

from scipy.optimize import brentq

from claims.test_eps_sensitivity import delta_bound, effective_rank_holds
from dlncheck import spectra
from dlncheck.spectra import end_to_end
from dlncheck.theory import ranks as th
from tests import power

RUN = 1


def _golden():
    exp, traj = power.golden("lowrank", 2)
    svals = spectra.singular_values(spectra.end_to_end(traj.weights))[:, -1]  # (R, n) at the end
    tol = th.effective_rank_tolerance(
        exp.teacher.s.numpy(), delta_bound("saddle", exp, end_to_end(traj.initial_weights))
    )
    return svals, exp.teacher.s, tol, exp.teacher.rank - 1


def _planted(svals, r, f):
    out = svals.clone()
    out[RUN, r] *= 1 - f
    return out


def test_power_eps_sensitivity_rejects_a_different_end_function_beyond_the_bound_and_accepts_one_well_below():
    svals, s, tol, r = _golden()
    assert effective_rank_holds(svals, s, tol)[0], "every golden run ends at the teacher's effective rank"
    f_star = brentq(lambda f: float(effective_rank_holds(_planted(svals, r, f), s, tol)[1][RUN]) - tol, 0.0, 0.999)
    assert not effective_rank_holds(_planted(svals, r, 1.05 * f_star), s, tol)[0], f"f = 1.05 x {f_star:.3g}"
    assert effective_rank_holds(_planted(svals, r, f_star / 4), s, tol)[0], f"f = {f_star / 4:.3g}"
    print(
        f"eps_sensitivity mdd f = {f_star:.3g} (function distance {f_star * float(svals[RUN, r]):.3g}; tol {tol:.3g})"
    )
