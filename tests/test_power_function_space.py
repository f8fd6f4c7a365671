"""Power of the function-space check along the path at matched progress (issue 26: "assert the distance
along the path, not only at the end"). The golden trajectory's SGD runs get a transient bump
delta sin(pi t / T)^4 D, D = u_1 v_2^T (unit Frobenius norm, off the teacher's modes, so the runs'
progress and their matching are unchanged), peaking mid-path and exactly 0 at t = 0 and at T: the
end-of-training check cannot see it. The check is the claim's own (measure.along_path.along_path,
theory.path_offset.path_check); its minimum detectable deviation is theory.path_offset's mdd."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dlncheck import spectra, theory
from dlncheck.measure import progress
from dlncheck.measure.along_path import NotCompared, along_path
from dlncheck.theory import path_offset, sgd
from tests import power


@pytest.fixture(scope="module")
def golden():
    """(experiment, trajectory, end-to-end maps (R, K, ...), predicted paths (2, K, ...))."""
    exp, traj = power.golden("lowrank", 2)
    predicted = path_offset.mean_path_maps([exp], traj.checkpoint_steps)[:, 0]
    return exp, traj, spectra.end_to_end(traj.weights), predicted


def _check(golden, W, matched: bool = True):
    exp, traj, _, predicted = golden
    return along_path(W, predicted, traj.checkpoint_times, exp, 1, matched)


def _bump(traj) -> torch.Tensor:
    """(K, d_out, d_in): sin(pi t / T)^4 D on the checkpoints, D = u_1 v_2^T."""
    t = traj.checkpoint_times.double()
    D = traj.teacher.U[:, :1].double() @ traj.teacher.V[:, 1:2].double().mT
    return torch.sin(math.pi * t / t[-1])[:, None, None] ** 4 * D


def _planted(golden, delta: float) -> torch.Tensor:
    _, traj, W, _ = golden
    out = W.clone()
    out[1:] += delta * _bump(traj)
    return out


def _bump_mdd(golden, reading) -> tuple[float, torch.Tensor]:
    """(delta*, profile): the bump's minimum detectable amplitude, min over compared (level, entry) of
    mdd_kj / |profile_kj| (one entry past its mdd is rejected with probability >= POWER), and the
    profile (k, ...) on the compared levels."""
    _, traj, _, _ = golden
    profile = _bump(traj)[reading.levels]
    ratio = reading.check["mdd"] / profile.abs()
    return float(ratio.min()), profile


@pytest.mark.parametrize("matched", [True, False], ids=["progress", "time"])
def test_power_function_space_path_accepts_golden_and_rejects_transient_bump(golden, matched):
    _, _, W, _ = golden
    base = _check(golden, W, matched)
    assert base.check["holds"]  # the golden SGD runs follow the first-order mean path
    mdd, _ = _bump_mdd(golden, base)
    end = (W[1:, -1] - W[0, -1]).flatten(1).norm(dim=1).mean() / W[0, -1].norm()
    assert float(end) <= theory.REALIZABLE_FUNCTION_TOL  # the end check passes the golden runs
    for delta, rejected in ((2 * mdd, True), (0.1 * mdd, False)):  # one realization (the rate at 1.05 mdd: below)
        planted = _planted(golden, delta)
        assert torch.equal(planted[:, -1], W[:, -1])  # the end of training is untouched: the end check still passes
        assert _check(golden, planted, matched).check["holds"] is not rejected


def test_power_function_space_path_mdd_over_seeds(golden):
    """Monte Carlo: SGD runs at matched progress drawn as GD + o + Gaussian noise of the golden runs'
    measured per-entry standard deviation, plus the bump's profile; rejected at 1.05 mdd with rate
    >= MC_FLOOR, accepted at 0.1 mdd with rate >= MC_FLOOR."""
    exp, _, W, _ = golden
    base = _check(golden, W)
    sd, S = base.sgd.std(0), base.sgd.shape[0]
    mdd, profile = _bump_mdd(golden, base)
    h = sgd.truncation_tolerance(exp)

    def rate(delta: float) -> float:
        def rejects(rng: np.random.Generator) -> bool:
            noise = torch.as_tensor(rng.standard_normal((S, *sd.shape))) * sd
            runs = base.gd + base.offset + noise + delta * profile
            return not path_offset.path_check(runs, base.gd, base.offset, base.gd_error, h, sd.numel(), base.atol)[
                "holds"
            ]

        return power.rejection_rate(rejects)

    assert rate(1.05 * mdd) >= power.MC_FLOOR
    assert rate(0.1 * mdd) <= 1 - power.MC_FLOOR


def test_along_path_reports_an_init_with_no_checkpoint_on_a_rise(golden):
    """An init whose GD checkpoints all lie on plateaus (frac(p) outside [h, 1 - h], theory.path_offset
    item 4) has nothing to compare at matched progress: NotCompared says so (the claim reports the init as
    not compared along the path), while the equal-time reading still compares every checkpoint."""
    exp, traj, W, predicted = golden
    t, teacher = traj.checkpoint_times, exp.teacher
    p = progress.matched_maps(W, t, teacher.U, teacher.V, teacher.s[: teacher.rank]).progress[0]
    off_rise = ~path_offset.compared_levels(p, sgd.truncation_tolerance(exp))
    assert not bool(off_rise[1:].all())  # the full grid has checkpoints on a rise: it is compared
    with pytest.raises(NotCompared, match="no GD checkpoint after t = 0 lies on a rise"):
        along_path(W[:, off_rise], predicted[:, off_rise], t[off_rise], exp, 1, True)
    assert bool(along_path(W[:, off_rise], predicted[:, off_rise], t[off_rise], exp, 1, False).levels[1:].all())
