"""theory.split_premise: the balance ratio against closed forms and a NumPy reference, and its
argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlncheck.config.validation import InvalidArgument
from dlncheck.theory import split_premise


def test_balance_ratio_of_diagonal_layers_is_the_largest_scale_gap():
    a, b = torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64), torch.tensor([1.0, 1.5, 0.5], dtype=torch.float64)
    W = [torch.diag(a), torch.diag(b)]  # D_1 = diag(b^2 - a^2) = diag(-3, 1.25, 0)
    assert split_premise.balance_ratio(W, s_min=0.25) == pytest.approx(3.0 / 0.25**1.0, rel=1e-15)


def test_balance_ratio_matches_a_numpy_reference_at_depth_three():
    rng = np.random.default_rng(0)
    W = [rng.standard_normal(shape) for shape in ((5, 4), (6, 5), (3, 6))]
    ref = max(np.linalg.norm(w2.T @ w2 - w1 @ w1.T, 2) for w1, w2 in zip(W[:-1], W[1:])) / 0.7 ** (2 / 3)
    got = split_premise.balance_ratio([torch.as_tensor(w) for w in W], s_min=0.7)
    assert got == pytest.approx(ref, rel=1e-12)


def test_balanced_layers_meet_the_premise_and_a_planted_gap_does_not():
    q = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))[0]
    W = [0.1 * q, 0.1 * q.mT]  # W_2^T W_2 = W_1 W_1^T = 0.01 I: balanced
    assert split_premise.balance_ratio(W, 1.0) < 1e-15
    assert split_premise.split_premise_holds(W, 1.0, h=0.2)
    assert not split_premise.split_premise_holds([W[0], 2.0 * W[1]], 0.01, h=0.2)  # D = 0.03 I against 0.01


@pytest.mark.parametrize(
    "weights, s_min, h",
    [
        ([torch.eye(3, dtype=torch.float64)], 1.0, 0.2),  # one layer: no balance matrix
        ([torch.eye(3, dtype=torch.float64)] * 2, 0.0, 0.2),
        ([torch.eye(3, dtype=torch.float64)] * 2, 1.0, -0.1),
        (torch.eye(3, dtype=torch.float64), 1.0, 0.2),  # a stacked tensor, not a layer list
    ],
)
def test_malformed_arguments_name_the_field(weights, s_min, h):
    with pytest.raises(InvalidArgument):
        split_premise.split_premise_holds(weights, s_min, h)
