"""theory.rank_gap, theory.offset_band and init_ensembles: closed forms, references, edge cases."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from dlncheck import Init, presets
from dlncheck.suite import init_ensembles
from dlncheck.suite.tiers import NIGHTLY, QUICK
from dlncheck.theory import offset_band, rank_gap


def test_summary_counts_inits_with_the_wilson_interval():
    assert init_ensembles.summary([True] * 8)["fraction_lo"] == pytest.approx(0.6756, abs=1e-4)


def test_flip_z_union_bound():
    assert rank_gap.flip_z(8) == pytest.approx(norm.ppf(1 - 0.05 / 8))
    assert 8 * 2196 * norm.sf(rank_gap.flip_z(8 * 2196)) == pytest.approx(0.05)
    assert rank_gap.flip_z(8 * 366 * 6) == pytest.approx(4.53, abs=0.01)
    with pytest.raises(ValueError, match="chances"):
        rank_gap.flip_z(0)


def test_threshold_gap_and_ambiguity():
    # one checkpoint, GD + 3 SGD runs; values 1, 1e-3 (just above tau = 9e-4), 1e-8
    base = torch.tensor([1.0, 1e-3, 1e-8], dtype=torch.float64)
    jitter = torch.tensor([1.0, 1.3, 0.8, 1.1], dtype=torch.float64)[:, None]
    sv = (base * torch.cat([torch.ones(4, 1), jitter, torch.ones(4, 1)], 1))[:, None, :]  # (4, 1, 3)
    g, spread = rank_gap.threshold_gaps(sv, torch.tensor([2]), torch.tensor([9e-4], dtype=torch.float64))
    assert float(g) == pytest.approx(math.log(1e-3 / 9e-4))
    assert float(spread) == pytest.approx(float(torch.log(jitter[1:, 0] * 1e-3).std()))
    assert bool(rank_gap.ambiguous(g, spread, 3))
    # tau two decades from both deciding values is not ambiguous at the same spread
    g_far, _ = rank_gap.threshold_gaps(sv, torch.tensor([2]), torch.tensor([1e-5], dtype=torch.float64))
    assert not bool(rank_gap.ambiguous(g_far, spread, 3))


def test_threshold_gap_edges_rank_zero_and_full():
    sv = torch.full((3, 2, 2), 1e-6, dtype=torch.float64)
    g, spread = rank_gap.threshold_gaps(sv, torch.tensor([0, 0]), torch.full((2,), 1e-3, dtype=torch.float64))
    assert torch.allclose(g, torch.full((2,), math.log(1e3), dtype=torch.float64)) and (spread == 0).all()
    g, _ = rank_gap.threshold_gaps(sv, torch.tensor([2, 2]), torch.full((2,), 1e-9, dtype=torch.float64))
    assert torch.allclose(g, torch.full((2,), math.log(1e3), dtype=torch.float64))


def test_offset_band_formula():
    std, off = torch.tensor([0.1, 0.0]), torch.tensor([0.02, -0.5])
    tol = offset_band.offset_tolerance(std, 8, off, 0.2, 3)
    z = norm.ppf(1 - 0.05 / 6)
    np.testing.assert_allclose(tol.numpy(), [z * 0.1 / 8**0.5 + 0.004 + 1e-8, 0.1 + 1e-8], rtol=1e-6)
    with pytest.raises(ValueError, match="sgd_runs"):
        offset_band.offset_tolerance(std, 1, off, 0.2, 3)


def test_case_ensemble_sizes_and_trap_rule():
    exp = presets.experiment("saddle", "fullrank", 3)
    ens = init_ensembles.case_ensemble(exp, QUICK.ensembles)
    kinds = [i.kind for i in ens.inits]
    assert len(ens) == 8 and kinds.count("balanced") == 4 and kinds.count("gaussian") == 4
    assert len(init_ensembles.case_ensemble(exp, NIGHTLY.ensembles)) == 32
    ntk = presets.experiment("ntk", "lowrank", 3)
    assert [i.seed for i in init_ensembles.case_ensemble(ntk, QUICK.ensembles).inits] == [0, 1, 2, 3]
    # balanced W_0 = c O: trapped iff det O disagrees with det M; non-square teachers never
    M = exp.teacher.M
    flip = torch.eye(4, dtype=torch.float64)
    flip[0, 0] = -1.0 if torch.linalg.det(M) > 0 else 1.0
    weights = [flip * 0.05, torch.eye(4, dtype=torch.float64) * 0.05, torch.eye(4, dtype=torch.float64) * 0.05]
    assert init_ensembles.trapped(weights, exp, Init("balanced", 0.05))
    assert not init_ensembles.trapped(weights, exp, Init("gaussian", 0.05))
    low = presets.experiment("saddle", "lowrank", 3)
    assert not init_ensembles.trapped([torch.eye(6, dtype=torch.float64)] * 3, low, Init("balanced", 0.05))


def test_pattern_gaps_are_the_per_product_gaps():
    g = torch.Generator().manual_seed(0)
    svals = {
        (i, j): torch.rand(3, 5, 4, generator=g, dtype=torch.float64).sort(-1, descending=True).values
        for i in range(1, 3)
        for j in range(i, 3)
    }
    r_gd = torch.randint(0, 5, (5, 2, 2), generator=g)
    gaps, spread = rank_gap.pattern_gaps(svals, r_gd, 0.3, 0.05)
    for (i, j), sv in svals.items():
        tau = torch.clamp(0.3 * sv[0, :, 0], min=0.05)
        want = rank_gap.threshold_gaps(sv, r_gd[:, i - 1, j - 1], tau)
        torch.testing.assert_close(gaps[:, i - 1, j - 1], want[0], rtol=0, atol=0)
        torch.testing.assert_close(spread[:, i - 1, j - 1], want[1], rtol=0, atol=0)
