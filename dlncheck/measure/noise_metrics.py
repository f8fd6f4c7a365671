"""Measurements behind the published-result claims: variance peaks, drift ratios, log-determinants.

Pure functions of torch tensors with runs on the leading axis and checkpoints on the next one.
"""

from __future__ import annotations

import torch

from dlncheck import spectra
from dlncheck.measure.events import first_time


def peak_and_learning_times(u: torch.Tensor, s: torch.Tensor, times: torch.Tensor, fraction: float):
    """For mode strengths u (S, K, modes) of S SGD runs: the time the run-to-run variance peaks and
    the median over runs of the first time u >= fraction * s, each (modes,); also the variance (K, modes)."""
    var = u.var(0)
    t_peak = times[var.argmax(0)]
    learned = first_time((u >= fraction * s).movedim(1, -1), times)  # (S, modes), inf if never
    return t_peak, learned.median(0).values, var


def projected_ratio(measured: torch.Tensor, predicted: torch.Tensor):
    """<measured, predicted> / ||predicted||^2 and the cosine between them, over the last two axes."""
    inner = (measured * predicted).sum((-2, -1))
    m, p = measured.flatten(-2).norm(dim=-1), predicted.flatten(-2).norm(dim=-1)
    return inner / p.square(), inner / (m * p)


def accumulated_drift(per_step: torch.Tensor, steps: torch.Tensor, scale: float, cumulative: bool = False):
    """scale * sum over steps of a per-step drift known at checkpoint ``steps`` (axis 1), by the
    trapezoid rule: (R, ...) total, or (R, K, ...) running total from the first checkpoint."""
    if not cumulative:
        return scale * torch.trapezoid(per_step, steps, dim=1)
    run = scale * torch.cumulative_trapezoid(per_step, steps, dim=1)
    return torch.cat([torch.zeros_like(run[:, :1]), run], 1)


def theta(weights, pair: int = 1) -> torch.Tensor:
    """Theta_l = [W_l, W_{l+1}^T] (..., d_l, d_{l-1} + d_{l+1}), 1-based pair l (Varre et al. 2024)."""
    if not 1 <= pair < len(weights):
        raise ValueError(f"pair={pair} is invalid: use 1 <= pair <= L-1 = {len(weights) - 1}")
    return torch.cat([weights[pair - 1], weights[pair].mT], dim=-1)


def logdet_gram(A: torch.Tensor) -> torch.Tensor:
    """log det(A^T A) = 2 sum_i log sigma_i(A) for a tall A (..., m, n), m >= n."""
    if A.shape[-2] < A.shape[-1]:
        raise ValueError(f"A of shape {tuple(A.shape[-2:])} is wide: A^T A is singular; pass a tall matrix")
    return 2 * spectra.singular_values(A).log().sum(-1)


def slope(y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Least-squares slope of y (..., K) against t (K,)."""
    tc = t - t.mean()
    return ((y - y.mean(-1, keepdim=True)) * tc).sum(-1) / tc.square().sum()


def spectral_norm_sq(W: torch.Tensor) -> float:
    """max over all leading indices of ||W||_2^2 (a bound over the checkpoints of one run)."""
    return float(torch.linalg.matrix_norm(W, ord=2).amax()) ** 2


def departure_times(patterns: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """For rank patterns (R, K, L, L) with run 0 = GD: per SGD run (R-1,), the first checkpoint time
    from which the run's pattern differs from GD's at every later checkpoint (departed for good);
    inf where it equals GD's at the last checkpoint."""
    differs = (patterns[1:] != patterns[:1]).flatten(2).any(-1)  # (R-1, K)
    for_good = differs.flip(1).int().cummin(1).values.flip(1).bool()  # differs from k on
    first = for_good.int().argmax(1)
    return torch.where(for_good[:, -1], times[first].double(), torch.tensor(float("inf"), dtype=torch.float64))
