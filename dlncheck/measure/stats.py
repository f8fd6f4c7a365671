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

from dlncheck.config import validation as check
from dlncheck.engine.budget import memory_budget


def _runs_first(x: torch.Tensor | np.ndarray, dim: int) -> torch.Tensor:
    """``x`` as a real tensor with the run axis ``dim`` first: finite, non-empty; integer, bool and
    half inputs in float64. Anything else raises InvalidArgument naming x or dim."""
    try:
        x = torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError):
        check.fail("x", x, "pass a tensor or array of numbers (runs along dim)")
    if x.is_complex():
        check.fail("x", x, "pass real values (x.real or x.abs() if that is meant)")
    if x.dtype not in (torch.float32, torch.float64):
        x = x.to(torch.float64)
    if x.ndim == 0:
        check.fail("x", x, "x must have a run axis; got a scalar")
    dim = check.integral("dim", dim, min=-x.ndim, max=x.ndim - 1, why=" (an axis of x)")
    if x.shape[dim] == 0:
        check.fail("x", tuple(x.shape), f"x has no runs along dim={dim}; pass at least one run")
    if x.numel() == 0:
        check.fail("x", tuple(x.shape), "x has no entries; pass at least one value per run")
    if not bool(torch.isfinite(x).all()):
        check.fail("x", x, "it has non-finite entries (nan or inf); select the finite runs first")
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


#: resampled means per chunk of :func:`bootstrap_ci`, in numbers: 512 KB of float64, so a chunk's
#: temporaries stay in cache and under the pinned mmap threshold (report.peak_memory): a reducing
#: statistic (a distance to GD per checkpoint) runs several times faster than in 2**24-number chunks.
CHUNK_ELEMS = 2**16


def bootstrap_ci(
    x: torch.Tensor | np.ndarray,
    dim: int = 0,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    statistic: Callable[[torch.Tensor], torch.Tensor] | None = None,
    chunk_elems: int = CHUNK_ELEMS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Percentile bootstrap interval (lo, hi) of ``statistic(mean over runs)`` along ``dim``.

    Resampled means = (C / S) @ x with C ~ Multinomial(S, 1/S) per resample, processed in
    chunks of at most ``chunk_elems`` numbers; ``statistic`` maps a batch of resampled means
    (n, *shape) to (n, *out) (default: the mean itself), e.g. d_r of the mean rank pattern.
    lo and hi are the (1 - level)/2 and (1 + level)/2 quantiles over resamples.
    """
    level = _level(level)
    n_boot = check.integral("n_boot", n_boot, min=1, why=" (resamples, e.g. n_boot=2000)")
    seed = check.seed("seed", seed)
    chunk_elems = check.integral("chunk_elems", chunk_elems, min=1)
    if statistic is not None and not callable(statistic):
        check.fail("statistic", statistic, "pass a function of the resampled means (n, *shape) -> (n, *out)")
    x = _runs_first(x, dim)
    S, shape = x.shape[0], x.shape[1:]
    need = n_boot * (16 * S + 16 * max(1, x[0].numel()))  # indices and weights, resampled statistics
    limit, source = memory_budget(None, "cpu")
    if need > limit:
        check.fail("n_boot", n_boot, f"{n_boot} resamples of {S} runs need about {need / 1e9:.3g} GB, over {source}")
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
    """num / den with 0 / 0 = 0 (an all-zero matrix is balanced / has no cross energy).

    Real tensors whose shapes broadcast; values are not read (non-finite ones follow IEEE)."""
    for field, value in (("num", num), ("den", den)):
        if not torch.is_tensor(value) or value.is_complex():
            check.fail(field, value, "pass a real torch.Tensor")
    try:
        torch.broadcast_shapes(num.shape, den.shape)
    except RuntimeError:
        check.fail("den", tuple(den.shape), f"its shape does not broadcast against num's {tuple(num.shape)}")
    return torch.where(den > 0, num / torch.where(den > 0, den, 1.0), torch.zeros_like(num))


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial fraction k / n (Wilson 1927; Brown, Cai & DasGupta
    2001): (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z the two-sided normal
    quantile; (0, 1) for n = 0. Used for fractions over independent draws (e.g. inits)."""
    n = check.integral("n", n, min=0)
    successes = check.integral("successes", successes, min=0, max=n, why=" (at most n)")
    level = _level(level)
    if n == 0:
        return 0.0, 1.0
    z = float(norm.ppf(0.5 + level / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def _level(level) -> float:
    level = check.finite_float("level", level)
    if not 0 < level < 1:
        check.fail("level", level, "a confidence level lies in (0, 1), e.g. level=0.95")
    return level
