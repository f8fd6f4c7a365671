"""theory.path_offset against independent references: its GD path is the engine's GD run, its band
is the Student t / Bonferroni band written out, its matched levels are the rises."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import t as student_t

from dlncheck import presets, spectra, train
from dlncheck.theory import path_offset


def test_mean_path_maps_gd_row_is_the_engine_gd_run():
    exp = presets.experiment("saddle", "lowrank", depth=2, sgd_runs=1)
    traj = train(exp, checkpoints=20)
    maps = path_offset.mean_path_maps([exp], traj.checkpoint_steps)
    W = spectra.end_to_end(traj.weights)
    assert maps.shape == (2, 1, *W.shape[1:])
    torch.testing.assert_close(maps[0, 0], W[0], rtol=0, atol=1e-12)
    assert float((maps[1, 0, -1] - maps[0, 0, -1]).norm()) > 0  # the drift moves the mean path


def test_path_check_band_is_student_bonferroni():
    gen = torch.Generator().manual_seed(0)
    sgd = torch.randn(5, 3, 2, 2, generator=gen, dtype=torch.float64)
    zero = torch.zeros(3, 2, 2, dtype=torch.float64)
    check = path_offset.path_check(sgd, zero, zero + 0.1, zero, h=0.2, comparisons=12, atol=1e-9)
    t = float(student_t.ppf(1 - 0.05 / 24, 4))
    expected = t * sgd.std(0) / math.sqrt(5) + 0.2 * 0.1 + 1e-9
    torch.testing.assert_close(check["band"], expected)
    assert check["holds"] == bool(((sgd.mean(0) - 0.1).abs() <= expected).all())
    assert bool((check["mdd"] > check["band"]).all())
    with pytest.raises(ValueError, match="shapes"):
        path_offset.path_check(sgd, zero[:2], zero, zero, 0.2, 12)


def test_compared_levels_are_the_rises():
    p = torch.tensor([0.0, 0.1, 0.5, 0.95, 1.0, 1.3, 2.0])
    assert path_offset.compared_levels(p, 0.2).tolist() == [False, False, True, False, False, True, False]
    assert path_offset.roundoff(3, 8, 1.0) == pytest.approx(2 * 28 * 2.0**-53, rel=1e-12)
