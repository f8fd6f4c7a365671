"""Alignment: crossings on hand-made losses, events on the aligned-init theory, two-pass exactness."""

import math

import pytest
import torch

from dlncheck import presets, theory
from dlncheck.engine._train import train
from dlncheck.measure import align, events


def test_first_crossing_on_known_losses():
    loss = torch.tensor([[5.0, 4.0, 2.0, 2.0, 0.5], [5.0, 5.0, 5.0, 3.0, 3.0]], dtype=torch.float64)
    steps = torch.tensor([0, 10, 20, 30, 40])
    got = events.first_crossing(loss, steps, [4.5, 2.0, 1.0])
    assert got.tolist() == [[10, 20, 40], [30, -1, -1]]


def test_plateau_and_escape_levels():
    s = torch.tensor([4.0, 2.0, 2.0, 1.0, 0.0])
    torch.testing.assert_close(theory.plateau_losses(s), torch.tensor([12.5, 4.5, 2.5, 0.5, 0.0], dtype=torch.float64))
    torch.testing.assert_close(theory.stage_plateaus(s), torch.tensor([12.5, 4.5, 0.5, 0.0], dtype=torch.float64))
    torch.testing.assert_close(events.escape_levels(s), torch.tensor([8.5, 2.5, 0.25], dtype=torch.float64))


def test_escape_steps_match_the_exact_scalar_map():
    """Aligned-init GD: the loss is sum 0.5 (s - u_k)^2 of the scalar map, so the escape steps are
    known exactly; align must find them for GD (and SGD runs must escape in the same order)."""
    exp = presets.experiment("saddle", "lowrank", 3, sgd_runs=2)
    traj = train(exp)
    s = exp.teacher.s
    u = theory.discrete_gd_modes(s, exp.init.scale, exp.lr, exp.steps, 3)
    map_loss = 0.5 * (s[:, None] - u).pow(2).sum(0)[None]
    expected = events.escape_steps(map_loss, traj.steps, s)
    found = events.escape_steps(traj.loss, traj.steps, s)
    assert (expected >= 0).all()
    assert found[0].tolist() == expected[0].tolist()
    assert (found[1:] > 0).all() and (found.diff(dim=1) > 0).all()


def test_aligned_checkpoints_two_pass_and_fields():
    exp = presets.experiment("saddle", "degenerate", 2, sgd_runs=3)
    a = align.aligned_checkpoints(exp, points_per_window=1)
    R, K = a.steps.shape
    assert R == 4 and K == len(a.labels) == len(a.kinds)
    assert a.kinds.count("plateau") == 4 and a.kinds.count("escape") == 3  # 2 and 2 escape together
    assert set(a.kinds) == {"plateau", "escape", "window"}
    first = train(exp)
    assert torch.equal(a.trajectory.loss, first.loss), "second pass must reproduce the first bit for bit"
    full = train(exp, checkpoints=list(range(exp.steps + 1)))
    for r in range(R):
        for k in range(K):
            step = int(a.steps[r, k])
            assert torch.equal(a.weights[1][r, k], full.weights[1][r, step])
            assert a.loss[r, k] == first.loss[r, step]
    esc = [a.steps[:, k] for k, kind in enumerate(a.kinds) if kind == "escape"]
    torch.testing.assert_close(torch.stack(esc, 1).double() * exp.lr, a.escape_times)
    lo, hi = a.windows[0]
    assert math.isclose(hi - lo, 2 * a.window) and lo < float(a.escape_times[0, 0]) < hi
    # at each escape the loss has just crossed the midpoint level
    levels = events.escape_levels(exp.teacher.s)
    for j, k in enumerate(k for k, kind in enumerate(a.kinds) if kind == "escape"):
        assert (a.loss[:, k] <= levels[j]).all()


def test_aligned_checkpoints_rejects_bad_window():
    with pytest.raises(ValueError, match="window"):
        align.aligned_checkpoints(presets.experiment("saddle", "lowrank", 2, sgd_runs=0), window=-1.0)
