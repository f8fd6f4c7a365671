"""The band around "GD = SGD mean minus the predicted offset" (singular-pattern claim).

theory.sgd.predicted_offsets gives the expected end-of-training offset
o = E[s^SGD] - s^GD of each internal log singular value s_ij,k. GD is deterministic, so under the
prediction the measured mean over S SGD runs obeys  mean_SGD - o - s^GD ~ N(0, std^2 / S)  plus
the prediction's own error: the first-order expansion neglects terms of relative order
h = lr lambda_max (theory.sgd.truncation_tolerance), i.e. |error| <= h |o|. Asserting all n
entries of one init at family-wise level alpha (Bonferroni, two-sided) gives

    |s^GD - (mean_SGD - o)| <= z std_SGD / sqrt(S) + h |o| + atol,   z = Phi^{-1}(1 - alpha / (2 n)),

with atol = 1e-8 for the float64 round-off of the logarithm. Its minimum detectable shift is
offset_mdd (theory.power item 1). This replaces "GD is one more SGD
draw" (z std sqrt(1 + 1/S)), which ignored the systematic O(lr c_B) offset.
"""

from __future__ import annotations

import torch

from dlncheck.spectra import upper_mask
from dlncheck.theory.power import band_mdd
from dlncheck.theory.tolerances import bonferroni_z

ALPHA = 0.05
ATOL = 1e-8


def offset_tolerance(
    std: torch.Tensor, sgd_runs: int, offset: torch.Tensor, h: float, n_entries: int, alpha: float = ALPHA
) -> torch.Tensor:
    """z std / sqrt(S) + h |offset| + ATOL (module docstring), elementwise."""
    if sgd_runs < 2:
        raise ValueError(f"sgd_runs={sgd_runs!r} is invalid: the SGD spread needs at least 2 runs")
    return bonferroni_z(n_entries, alpha) * std / sgd_runs**0.5 + h * offset.abs() + ATOL


def offset_mdd(
    std: torch.Tensor, sgd_runs: int, offset: torch.Tensor, h: float, n_entries: int, alpha: float = ALPHA
) -> torch.Tensor:
    """Smallest shift of one entry's SGD mean the band rejects with probability theory.power.POWER:
    h |offset| + ATOL + lam* std / sqrt(S) (theory.power.band_mdd, Student t with S - 1 degrees of freedom)."""
    return band_mdd(sgd_runs**-0.5, bonferroni_z(n_entries, alpha), sgd_runs - 1) * std + h * offset.abs() + ATOL


def offset_check(end: torch.Tensor, offset: torch.Tensor, h: float, simple: torch.Tensor) -> dict:
    """The band applied to one init's end log singular values ``end`` (R, L, L, n) (run 0 = GD, runs
    1..S SGD) against the predicted ``offset`` (L, L, n): the entries asserted (upper triangle, modes
    whose split is predicted: ``simple`` (n,) bool), tol, ratio = (GD - (mean_SGD - offset)) / tol (0 off
    the asserted entries) and ok (|ratio| <= 1 or not asserted); plus gd, mean, std and S."""
    L, S = end.shape[1], end.shape[0] - 1
    gd, mean, std = end[0], end[1:].mean(0), end[1:].std(0)
    upper = (upper_mask(L)[..., None] & simple).expand_as(gd)
    tol = offset_tolerance(std, S, offset, h, int(upper.sum()))
    ratio = torch.where(upper, (gd - (mean - offset)) / tol, 0.0)
    return dict(upper=upper, tol=tol, ratio=ratio, ok=(ratio.abs() <= 1) | ~upper, gd=gd, mean=mean, std=std, S=S)
