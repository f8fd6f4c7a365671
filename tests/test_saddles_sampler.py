"""SGLD sampler, refinement and diversity descriptors."""

import numpy as np
import pandas as pd
import pytest
import torch
from test_saddles_normal_form import teacher

from dlncheck.saddles import NormalForm
from dlncheck.saddles.diversity import aligned_distances, count_distinct, rank_signature
from dlncheck.saddles.refine import rebalance, refine
from dlncheck.saddles.sampler import SamplerDiverged, sample

M = teacher(4, 4, [3.0, 2.0, 1.5, 1.0], seed=1)


def test_zero_blocks_stay_zero_and_energy_stays_zero():
    nf = NormalForm(M, [0], [4, 5, 5, 4])
    out = sample(nf, chains=8, steps=200, step_size=0.05, beta=100.0, norm_strength=1.0, zero_blocks=(1, 3))
    assert torch.all(out.Z[0] == 0) and torch.all(out.Z[2] == 0) and torch.all(out.Z[1].abs().sum((-2, -1)) > 0)
    assert np.all(out.final.energy.values == 0.0)
    assert set(out.trace.columns) >= {"step", "chain", "energy", "grad_norm", "acceptance", "znorm_1", "znorm_3"}


def test_free_chains_descend_to_the_variety():
    """Annealed SGLD then noise-free polish: energy falls by many orders; samples stay non-trivial."""
    nf = NormalForm(M, [0], [4, 5, 4])
    out = sample(
        nf, chains=8, steps=600, step_size=0.05, beta=10.0, beta_final=1e4, norm_strength=1.0, polish=300, seed=3
    )
    E0 = out.trace[out.trace.step == 0].energy.median()
    assert out.final.energy.max() < 1e-8 * E0
    assert (out.final.znorm_1 > 0.1).all()
    acc = out.trace.acceptance.dropna()
    assert ((acc >= 0) & (acc <= 1)).all() and acc.mean() > 0.5


def test_stationary_law_of_the_prior_alone():
    """beta -> 0 with weight decay alpha: SGLD samples N(0, 1/alpha) per entry (small-step bias only)."""
    nf = NormalForm(M, [0], [4, 5, 4])
    out = sample(nf, chains=128, steps=400, step_size=1e-2 * 1e-6, beta=1e-6, alpha=4.0, seed=1, record_every=200)
    var = float(torch.cat([z.reshape(-1) for z in out.Z]).var())
    np.testing.assert_allclose(var, 0.25, rtol=0.1)


def test_diverging_chain_raises_with_step_size():
    nf = NormalForm(M, [0], [4, 5, 5, 4])
    with pytest.raises(SamplerDiverged, match="step size"):
        sample(nf, chains=2, steps=100, step_size=50.0, beta=1.0, init_scale=3.0)


def test_global_minimum_stratum_is_refused():
    nf = NormalForm(M, [0, 1, 2, 3], [4, 4, 4])
    with pytest.raises(ValueError, match="global minimum"):
        sample(nf, chains=1, steps=1)


def test_refine_keeps_exact_critical_points_and_rebalance_keeps_product():
    nf = NormalForm(M, [0], [4, 5, 5, 4])
    W = nf.weights(nf.zero_block_sample((1, 2), chains=3, seed=0))
    W2, rep = refine(W, M, steps=20, lr=1e-2, rebalance_every=5)
    assert isinstance(rep, pd.DataFrame) and (rep.grad_norm_after < 1e-12).all() and (rep.map_change < 1e-12).all()
    Wr = [torch.randn(3, 4, 4, dtype=torch.float64) for _ in range(3)]
    Rb = rebalance(Wr)
    torch.testing.assert_close(Rb[2] @ Rb[1] @ Rb[0], Wr[2] @ Wr[1] @ Wr[0])
    n = torch.stack([torch.linalg.matrix_norm(w) for w in Rb])
    torch.testing.assert_close(n, n[:1].expand_as(n))


def test_refine_reduces_gradient_near_a_critical_point():
    W = [torch.randn(2, 4, 4, dtype=torch.float64) * 0.5 for _ in range(2)]
    _, rep = refine(W, M, steps=300, lr=2e-2)
    assert (rep.grad_norm_after < rep.grad_norm_before).all()


def test_gauge_aligned_distance_is_zero_on_gauge_orbit_and_positive_otherwise():
    nf = NormalForm(M, [0], [4, 5, 5, 4])
    Z = nf.zero_block_sample((1,), chains=2, seed=4)
    g = torch.Generator().manual_seed(7)  # a gauge on which 8 restarts stopped at a local minimum
    O1 = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64, generator=g))[0]
    O2 = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64, generator=g))[0]
    Zg = [
        torch.stack([Z[0][0], O1 @ Z[0][0]]),
        torch.stack([Z[1][0], O2 @ Z[1][0] @ O1.T]),
        torch.stack([Z[2][0], Z[2][0] @ O2.T]),
    ]
    D = aligned_distances(Zg)
    assert D[0, 1] < 1e-6
    assert aligned_distances(Z)[0, 1] > 0.1
    sig = rank_signature(nf, Zg)
    assert sig[0] == sig[1] and count_distinct(sig, D) == 1
    assert count_distinct(rank_signature(nf, Z), aligned_distances(Z)) == 2
