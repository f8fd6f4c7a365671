"""dlncheck.measure.stagewise against direct NumPy computations and exact properties."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlncheck import spectra
from dlncheck.measure import stagewise

rng = np.random.default_rng(0)


def test_growth_statistics_by_hand():
    r = torch.tensor([[0, 1, 1, 2, 3, 3], [0, 2, 1, 3, 3, 3]])
    g = stagewise.growth_statistics(r)
    assert g["unit"].tolist() == [1.0, 0.0]
    assert g["nonmonotone"].tolist() == [0.0, pytest.approx(1 / 3)]
    assert g["max_jump"].tolist() == [1, 2]
    assert g["final"].tolist() == [3, 3]
    assert math.isnan(stagewise.growth_statistics(torch.tensor([2, 2, 2]))["unit"].item())


def test_follows_levels_unit_and_multiplicity():
    r = torch.tensor([[0, 1, 2, 3], [0, 0, 2, 3], [0, 1, 3, 3], [1, 2, 3, 3]])
    assert stagewise.follows_levels(r, [0, 1, 2, 3]).tolist() == [True, False, False, False]
    assert stagewise.follows_levels(r, [0, 2, 3]).tolist() == [False, True, False, False]


def test_transition_gaps_match_numpy():
    sv = torch.tensor([[1.0, 1e-9, 1e-10], [1.0, 0.5, 1e-9], [1.0, 0.5, 1e-9]], dtype=torch.float64)
    r = torch.tensor([1, 2, 2])
    gaps = stagewise.transition_gaps(sv, r)
    assert math.isnan(gaps[0].item()) and math.isnan(gaps[2].item())
    assert gaps[1].item() == pytest.approx(0.5 / 1e-9)


def test_seed_variance():
    r = torch.tensor([[1, 2], [3, 2]])
    assert stagewise.seed_variance(r, run_dim=0).tolist() == [1.0, 0.0]


@settings(max_examples=50, deadline=None)
@given(flags=st.lists(st.booleans(), min_size=1, max_size=12))
def test_eps_plateau_is_longest_true_run(flags):
    eps = torch.logspace(-8, -8 + len(flags) - 1, len(flags), dtype=torch.float64)
    out = stagewise.eps_plateau(torch.tensor(flags), eps)
    best, cur = 0, 0
    for f in flags:
        cur = cur + 1 if f else 0
        best = max(best, cur)
    if best == 0:
        assert out["decades"] == -math.inf
    else:
        assert out["decades"] == pytest.approx(best - 1)
        lo_i = int(round(math.log10(out["lo"]))) + 8
        assert all(flags[lo_i : lo_i + best])


def test_eps_plateau_rejects_unsorted_grid():
    with pytest.raises(ValueError, match="strictly increasing"):
        stagewise.eps_plateau(torch.tensor([True, True]), torch.tensor([1e-3, 1e-5]))


def test_ranks_over_eps_matches_spectra_numerical_rank():
    A = torch.as_tensor(rng.standard_normal((3, 5, 4))) * torch.tensor([1.0, 1e-3, 1e-6, 1e-9])
    sv = spectra.singular_values(A)
    eps = torch.logspace(-8, -2, 4, dtype=torch.float64)
    rel = stagewise.ranks_over_eps(sv, eps)
    absr = stagewise.ranks_over_eps(sv, eps, atol=eps * 50.0)
    for e in range(4):
        assert torch.equal(rel[e], spectra.numerical_rank(A, eps[e].item()))
        assert torch.equal(absr[e], spectra.numerical_rank(A, eps[e].item(), atol=eps[e].item() * 50.0))


def test_guaranteed_rank_is_a_lower_bound():
    g = np.random.default_rng(7)
    U, V = np.linalg.qr(g.standard_normal((5, 5)))[0], np.linalg.qr(g.standard_normal((4, 4)))[0]
    s = np.array([3.0, 1.0, 0.1, 0.0])
    M = U[:, :4] @ np.diag(s) @ V.T
    W = torch.as_tensor(M + 0.02 * g.standard_normal((8, 5, 4)))
    eps = torch.logspace(-6, -1, 6, dtype=torch.float64)
    lower = stagewise.guaranteed_rank(W, torch.as_tensor(M), torch.as_tensor(s), eps, atol=eps * 3.0)
    actual = stagewise.ranks_over_eps(spectra.singular_values(W), eps, atol=eps * 3.0)
    assert torch.all(lower <= actual) and lower.max() == 3 and lower.min() == 2


def test_stagewise_criteria():
    r = torch.tensor([[0, 1, 2, 2], [3, 3, 2, 3], [2, 3, 3, 3]])
    c = stagewise.stagewise_criteria(r, [0, 1, 2])
    assert c["starts_at_0"].tolist() == [True, False, False]
    assert c["monotone"].tolist() == [True, False, True]
    assert c["staircase"].tolist() == [True, False, False]
    assert c["reaches_r"].tolist() == [True, False, False]
    assert c["at_least_r"].tolist() == [False, True, True]


def test_visits_levels_allows_splits_inside_a_block_only():
    levels = [0, 1, 3, 4]  # s = (4, 2, 2, 1): block of 2 at level 1 -> 3
    seqs = torch.tensor([[0, 1, 3, 4]])
    jump = torch.tensor([[0, 0, 1, 3, 3, 4]])
    split = torch.tensor([[0, 1, 2, 2, 3, 4]])
    skip_block = torch.tensor([[0, 1, 2, 2, 4, 4]])  # never at level 3
    skip_first = torch.tensor([[0, 0, 3, 3, 4, 4]])
    down = torch.tensor([[0, 1, 3, 2, 3, 4]])
    assert stagewise.visits_levels(seqs, levels).tolist() == [True]
    assert stagewise.visits_levels(jump, levels).item() and stagewise.follows_levels(jump, levels).item()
    assert stagewise.visits_levels(split, levels).item() and not stagewise.follows_levels(split, levels).item()
    assert not stagewise.visits_levels(skip_block, levels).item()
    assert not stagewise.visits_levels(skip_first, levels).item()
    assert not stagewise.visits_levels(down, levels).item()
    assert stagewise.splits_block(torch.cat([jump, split, skip_block]), levels).tolist() == [False, True, True]
    assert stagewise.visits_levels(torch.tensor([0, 1, 2, 3]), [0, 1, 2, 3], final=[3, 4]).item()
    assert not stagewise.visits_levels(torch.tensor([0, 1, 2, 3]), [0, 1, 2, 3, 4]).item()


def test_staircase_outcomes_rules():
    unit = [0, 1, 2, 3, 4]
    ranks = torch.tensor([[0, 1, 2, 3, 3], [0, 1, 2, 3, 4], [0, 1, 2, 4, 4]])
    assert stagewise.staircase_outcomes(ranks, "unit", unit).tolist() == [False, True, False]
    # trapped: GD must stop at r - 1, SGD may stop at r - 1 or go on to r
    assert stagewise.staircase_outcomes(ranks, "unit", unit, trapped=True).tolist() == [True, True, False]
    assert stagewise.trapped_levels([0, 1, 3, 4]) == [0, 1, 3]
    # multiplicity: GD jumps (no rank 2), SGD may split
    block = [0, 1, 3, 4]
    ranks = torch.tensor([[0, 1, 3, 4], [0, 2, 3, 4]])
    assert stagewise.staircase_outcomes(ranks, "multiplicity", block).tolist() == [True, False]
    ranks = torch.tensor([[0, 1, 2, 3, 4], [0, 1, 1, 3, 4]])
    assert stagewise.staircase_outcomes(ranks, "multiplicity", block).tolist() == [False, True]
    assert stagewise.staircase_outcomes(ranks, "coarse", block).tolist() == [True, True]
    # none: >= r throughout, or with a det-sign crossing >= r - 1 and r at the end
    lazy = torch.tensor([[4, 4, 4], [4, 3, 4], [4, 3, 3]])
    assert stagewise.staircase_outcomes(lazy, "none", unit).tolist() == [True, False, False]
    assert stagewise.staircase_outcomes(lazy, "none", unit, crossing=True).tolist() == [True, True, False]
    with pytest.raises(ValueError, match="kind="):
        stagewise.staircase_outcomes(lazy, "weyl", unit)
