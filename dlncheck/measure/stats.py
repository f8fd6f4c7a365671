"""Summary statistics over the run axis: mean, std, s.e.m., bootstrap confidence intervals.

The bootstrap resamples *runs* with replacement (protocol 1.1 step 4 and 1.3 step 3):
each resample is a multinomial count vector over the S runs, so all ``n_boot`` resampled
means are one matrix product ``counts @ x`` — vectorized, seeded, no loop over resamples.
Intervals are percentile intervals (Efron & Tibshirani 1993, ch. 13).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.stats import norm


def _runs_first(x: torch.Tensor | np.ndarray, dim: int) -> torch.Tensor:
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.to(torch.float64)
    if x.ndim == 0:
        raise ValueError("x must have a run axis; got a scalar")
    if x.shape[dim] == 0:
        raise ValueError(f"x has no runs along dim={dim}; pass at least one run")
    return x.movedim(dim, 0)


def mean(x: torch.Tensor | np.ndarray, dim: int = 0) -> torch.Tensor:
    """Mean over runs."""
    return _runs_first(x, dim).mean(0)


def std(x: torch.Tensor | np.ndarray, dim: int = 0) -> torch.Tensor:
    """Sample standard deviation over runs (ddof = 1; 0 for a single run)."""
    x = _runs_first(x, dim)
    return x.std(0, correction=1) if x.shape[0] > 1 else torch.zeros_like(x[0])


def sem(x: torch.Tensor | np.ndarray, dim: int = 0) -> torch.Tensor:
    """Standard error of the mean, std / sqrt(S)."""
    x = _runs_first(x, dim)
    return std(x, 0) / x.shape[0] ** 0.5


def bootstrap_ci(
    x: torch.Tensor | np.ndarray,
    dim: int = 0,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    statistic: Callable[[torch.Tensor], torch.Tensor] | None = None,
    chunk_elems: int = 2**24,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Percentile bootstrap interval (lo, hi) of ``statistic(mean over runs)`` along ``dim``.

    Resampled means = (C / S) @ x with C ~ Multinomial(S, 1/S) per resample, processed in
    chunks of at most ``chunk_elems`` numbers; ``statistic`` maps a batch of resampled means
    (n, *shape) to (n, *out) (default: the mean itself), e.g. d_r of the mean rank pattern.
    lo and hi are the (1 - level)/2 and (1 + level)/2 quantiles over resamples.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}; e.g. level=0.95")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}; e.g. n_boot=2000")
    x = _runs_first(x, dim)
    S, shape = x.shape[0], x.shape[1:]
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, S, (n_boot, S), generator=gen)
    weights = (
        torch.zeros(n_boot, S, dtype=torch.float64)
        .scatter_add_(1, idx, torch.ones(n_boot, S, dtype=torch.float64))
        .div_(S)
    )
    flat = x.detach().to("cpu", torch.float64).reshape(S, -1)
    statistic = statistic or (lambda means: means)
    step = max(1, chunk_elems // max(flat.shape[1], 1))
    boot = torch.cat([statistic((w @ flat).reshape((-1, *shape))) for w in weights.split(step)])
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boot.numpy(), [alpha, 1 - alpha], axis=0)
    return torch.as_tensor(lo, dtype=x.dtype, device=x.device), torch.as_tensor(hi, dtype=x.dtype, device=x.device)


def summarize(x: torch.Tensor | np.ndarray, dim: int = 0, **bootstrap_kwargs: Any) -> dict[str, torch.Tensor]:
    """Mean, std, s.e.m. and bootstrap (lo, hi) over runs, as a dict of tensors."""
    lo, hi = bootstrap_ci(x, dim, **bootstrap_kwargs)
    return {"mean": mean(x, dim), "std": std(x, dim), "sem": sem(x, dim), "lo": lo, "hi": hi}


def safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den with 0 / 0 = 0 (an all-zero matrix is balanced / has no cross energy)."""
    return torch.where(den > 0, num / torch.where(den > 0, den, 1.0), torch.zeros_like(num))


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial fraction k / n (Wilson 1927; Brown, Cai & DasGupta
    2001): (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z the two-sided normal
    quantile; (0, 1) for n = 0. Used for fractions over independent draws (e.g. inits)."""

    if n < 0 or not 0 <= successes <= max(n, 0):
        raise ValueError(f"successes={successes} and n={n} are invalid: need 0 <= successes <= n")
    if n == 0:
        return 0.0, 1.0
    z = float(norm.ppf(0.5 + level / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))
