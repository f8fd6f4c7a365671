"""Calibration of the numerical rank r_eps on synthetic A = M + N (protocol 1.2, parts I and III):
the sweep of recovery rates over noise levels x eps, per-level summaries, the eps plateau where
r is recovered, and that plateau beside the predicted interval.

The matrices (low-rank signals, the "gaussian" and "proxy" noise models) come from
:mod:`dlncheck.measure.synthetic`, re-exported here. Predictions (noise edge, detection
threshold, outlier location, floors, the predicted eps interval) live in :mod:`dlncheck.theory.rmt`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple, cast

import numpy as np
import pandas as pd
import torch

from dlncheck import spectra
from dlncheck.measure import stats
from dlncheck.measure.stagewise import eps_plateau
from dlncheck.measure.synthetic import (  # noqa: F401  (re-exported: calibration.low_rank_signal etc.)
    NOISE_MODELS,
    LowRankSignal,
    effective_sigma,
    low_rank_signal,
    noisy_matrices,
    orthonormal_frames,
    proxy_matrices,
    whitened_inputs,
)
from dlncheck.theory.rmt import (
    CEILING_MARGIN,
    FLOOR_MARGIN,
    theory_table,
)

RECOVERY_LEVEL = 0.95  # "r is recovered reliably": P(r_eps = r) >= RECOVERY_LEVEL
FAR_BELOW_ROUNDOFF = 1e-3  # eps <= FAR_BELOW_ROUNDOFF x roundoff floor: "well below" it


class Sweep(NamedTuple):
    """Tidy results: ``summary`` per (noise level, eps), ``draws`` per (noise level, draw)."""

    summary: pd.DataFrame
    draws: pd.DataFrame


# --------------------------------------------------------------------------- sweep
def eps_grid(lo: float = 1e-13, hi: float = 1e-1, per_decade: int = 1) -> torch.Tensor:
    """Log-spaced eps grid from lo to hi (both included), ``per_decade`` points per decade."""
    if not (0 < lo < hi < 1):
        raise ValueError(f"need 0 < lo < hi < 1 for an eps grid, got lo={lo}, hi={hi}")
    if not isinstance(per_decade, int) or per_decade < 1:
        raise ValueError(f"per_decade must be a positive int, got {per_decade!r}; e.g. 1 or 4")
    k = round(math.log10(hi / lo) * per_decade) + 1
    return torch.logspace(math.log10(lo), math.log10(hi), k, dtype=torch.float64)


def draw(
    model: str,
    *,
    m: int,
    n: int,
    s: Sequence[float],
    levels: Sequence[float],
    n_draws: int,
    seed: int = 0,
    label_noise: float = 0.0,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, LowRankSignal]:
    """The seeded matrices of a sweep, A (n_levels, n_draws, m, n), and their signal."""
    generator = torch.Generator().manual_seed(seed)
    signal = low_rank_signal(m, n, s, n_draws, generator)
    A = noisy_matrices(model, signal.M.to(device), levels, generator, label_noise, dtype)
    return A, signal


def sweep(
    model: str,
    *,
    m: int,
    n: int,
    s: Sequence[float],
    levels: Sequence[float],
    eps: torch.Tensor,
    n_draws: int,
    seed: int = 0,
    label_noise: float = 0.0,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> Sweep:
    """Recovery of r = len(s) by r_eps over noise levels x eps, all draws in one batch.

    ``summary`` (per noise level and eps): recovery_rate = P(r_eps = r), rank_mean,
    rank_var, rank_q05 / rank_q95 over draws, and the eps-free gap_median, effective-rank
    and participation-ratio means beside them. ``draws`` (per level and draw): sigma_1,
    sigma_r, sigma_{r+1}, gap sigma_r / sigma_{r+1}, effective rank, participation ratio.
    """
    eps = torch.as_tensor(eps, dtype=torch.float64)
    if eps.ndim != 1 or len(eps) < 2 or torch.any(torch.diff(eps) <= 0):
        raise ValueError(
            "eps must be a strictly increasing 1-d grid of >= 2 values; build it "
            "with calibration.eps_grid(lo, hi, per_decade)"
        )
    A, _ = draw(
        model,
        m=m,
        n=n,
        s=s,
        levels=levels,
        n_draws=n_draws,
        seed=seed,
        label_noise=label_noise,
        dtype=dtype,
        device=device,
    )
    r = len(s)
    svals = spectra.singular_values(A)  # (Lv, D, k)
    ranks = spectra.numerical_rank_from_svals(svals, eps.view(-1, 1, 1)).to(torch.float64).cpu()
    rate = (ranks == r).to(torch.float64).mean(-1)  # (E, Lv)
    q05, q95 = torch.quantile(ranks, torch.tensor([0.05, 0.95], dtype=torch.float64), dim=-1)
    s64 = svals.to(torch.float64).cpu()
    gap = spectra.singular_gap(s64, r)
    r_eff = spectra.effective_rank_from_svals(s64)
    r_pr = spectra.participation_ratio_from_svals(s64)

    E, Lv, D = ranks.shape
    level = np.asarray(levels, dtype=float)
    sigma = effective_sigma(model, levels, label_noise)
    tag = dict(noise_model=model, dtype=str(dtype).removeprefix("torch."))
    summary = pd.DataFrame(
        {
            **tag,
            "noise_level": np.tile(level, E),
            "sigma_eff": np.tile(sigma, E),
            "eps": np.repeat(eps.numpy(), Lv),
            "recovery_rate": rate.numpy().ravel(),
            "rank_mean": stats.mean(ranks, dim=-1).numpy().ravel(),
            "rank_var": stats.std(ranks, dim=-1).square().numpy().ravel(),
            "rank_q05": q05.numpy().ravel(),
            "rank_q95": q95.numpy().ravel(),
            "gap_median": np.tile(gap.median(-1).values.numpy(), E),
            "effective_rank_mean": np.tile(stats.mean(r_eff, dim=-1).numpy(), E),
            "participation_ratio_mean": np.tile(stats.mean(r_pr, dim=-1).numpy(), E),
            "n_draws": D,
        }
    )
    draws = pd.DataFrame(
        {
            **tag,
            "noise_level": np.repeat(level, D),
            "sigma_eff": np.repeat(sigma, D),
            "draw": np.tile(np.arange(D), Lv),
            "sigma_1": s64[..., 0].numpy().ravel(),
            "sigma_r": s64[..., r - 1].numpy().ravel(),
            "sigma_r_plus_1": (s64[..., r] if r < s64.shape[-1] else torch.zeros(Lv, D)).numpy().ravel(),
            "gap": gap.numpy().ravel(),
            "effective_rank": r_eff.numpy().ravel(),
            "participation_ratio": r_pr.numpy().ravel(),
        }
    )
    return Sweep(summary, draws)


def level_summary(draws: pd.DataFrame) -> pd.DataFrame:
    """Per noise level: mean and 5-95 % quantiles over draws of r_eff, r_PR and log10 gap."""
    frame = draws.assign(log10_gap=np.log10(draws["gap"]))
    grouped = frame.groupby(["noise_model", "dtype", "noise_level", "sigma_eff"], sort=False)
    columns = ["effective_rank", "participation_ratio", "log10_gap"]
    parts = [
        grouped[columns].mean().add_suffix("_mean"),
        grouped[columns].quantile(0.05).add_suffix("_q05"),
        grouped[columns].quantile(0.95).add_suffix("_q95"),
    ]
    return pd.concat(parts, axis=1).reset_index()


# -------------------------------------------------------------------------- plateaus
def recovery_plateau(
    eps: Sequence[float] | np.ndarray, rate: Sequence[float] | np.ndarray, level: float = RECOVERY_LEVEL
) -> dict[str, float]:
    """Longest contiguous run of grid eps with P(r_eps = r) >= level: lo, hi, decades (nan if none)."""
    if not 0 < level <= 1:
        raise ValueError(f"level must lie in (0, 1], got {level}; e.g. level=0.95")
    return eps_plateau(torch.tensor(np.asarray(rate, dtype=float)) >= level, torch.tensor(np.asarray(eps, dtype=float)))


def plateau_table(
    summary: pd.DataFrame,
    s: Sequence[float],
    m: int,
    n: int,
    level: float = RECOVERY_LEVEL,
    floor_margin: float = FLOOR_MARGIN,
    ceiling_margin: float = CEILING_MARGIN,
) -> pd.DataFrame:
    """Measured plateau beside the predicted one, per noise level of a sweep summary.

    predicted_grid_lo/hi/points: grid eps inside [predicted_lo, predicted_hi];
    contains_prediction: that set is non-empty and inside the measured plateau;
    max_recovery: best P(r_eps = r) over the grid; max_recovery_far_below_roundoff: best
    P(r_eps = r) for eps <= FAR_BELOW_ROUNDOFF x roundoff floor (nan if no such grid eps).
    """
    rows = []
    for key, part in summary.groupby(["noise_model", "dtype", "noise_level", "sigma_eff"], sort=False):
        model, dtype_name, lvl, sigma = cast(tuple[str, str, float, float], key)
        part = part.sort_values("eps")
        eps, rate = part["eps"].to_numpy(), part["recovery_rate"].to_numpy()
        theory = theory_table(s, m, n, sigma, getattr(torch, dtype_name), floor_margin, ceiling_margin).iloc[0]
        inside = eps[(eps >= theory.predicted_lo) & (eps <= theory.predicted_hi)]
        plateau = recovery_plateau(eps, rate, level)
        far_below = rate[eps <= FAR_BELOW_ROUNDOFF * theory.roundoff_floor]
        contains = bool(len(inside) and plateau["lo"] <= inside[0] and inside[-1] <= plateau["hi"])
        rows.append(
            {
                "noise_model": model,
                "dtype": dtype_name,
                "noise_level": lvl,
                **theory.to_dict(),
                "predicted_grid_lo": inside[0] if len(inside) else math.nan,
                "predicted_grid_hi": inside[-1] if len(inside) else math.nan,
                "predicted_grid_points": len(inside),
                "plateau_lo": plateau["lo"],
                "plateau_hi": plateau["hi"],
                "plateau_decades": plateau["decades"],
                "max_recovery": rate.max(),
                "max_recovery_far_below_roundoff": far_below.max() if len(far_below) else math.nan,
                "contains_prediction": contains,
            }
        )
    return pd.DataFrame(rows)
