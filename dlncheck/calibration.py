"""Calibration of the numerical rank r_eps on synthetic A = M + N (protocol 1.2, parts I and III).

The signal is M = U diag(s_1..s_r) V^T with Haar-random orthonormal U (m x r), V (n x r),
one orientation per draw (Gaussian noise is orthogonally invariant, so this changes no
statistic of A and lets exact low-rank draws differ). Noise models:

* ``"gaussian"``: A = M + sigma Z, Z_ij ~ N(0, 1). ``sigma = 0`` is the exactly low-rank
  matrix, perturbed only by rounding when held in ``dtype`` (the precision stress test).
* ``"proxy"``: the finite-sample estimate M_hat = (1/n) sum_k y_k x_k^T = Y X^T / n with
  exactly whitened inputs (X X^T / n = I) and y_k = M x_k + tau e_k. Without label noise
  (tau = 0) M_hat = M (X X^T / n) = M has exact rank r: only roundoff remains. With label
  noise, M_hat - M = (tau / n) E X^T is again i.i.d. N(0, tau^2 / n) (the rows of X / sqrt(n)
  are orthonormal), so the Gaussian theory applies at sigma_eff = tau / sqrt(n).

Theory used for predictions, for A = M + N, N_ij ~ N(0, sigma^2), m x n:

* noise edge sigma (sqrt(m) + sqrt(n)): the largest noise singular value (Bai & Yin 1993;
  Gordon's inequality makes it an upper bound of E sigma_1(N) at every size),
* detection threshold s > sigma (m n)^(1/4): only such modes leave the bulk, at
  sqrt((s^2 + sigma^2 m)(s^2 + sigma^2 n)) / s (Benaych-Georges & Nadakuditi 2012),
* roundoff floor max(m, n) * finfo(dtype).eps (NumPy ``matrix_rank``'s default tolerance),
* signal ceiling sigma_r(A) / sigma_1(A): above it r_eps < r.

So r_eps = r is predicted for eps between FLOOR_MARGIN * max(edge / sigma_1(A), roundoff)
and signal ceiling / CEILING_MARGIN. The margins (2 each) absorb the finite-size
fluctuations of the top noise value (Tracy-Widom, a few % here) and of the outliers
(O(sigma)), and are stated in every verdict.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from dlncheck import spectra, stats
from dlncheck.diagnostics import eps_plateau

NOISE_MODELS = ("gaussian", "proxy")
FLOOR_MARGIN = 2.0          # predicted interval starts at FLOOR_MARGIN x floor
CEILING_MARGIN = 2.0        # ... and ends at ceiling / CEILING_MARGIN
RECOVERY_LEVEL = 0.95       # "r is recovered reliably": P(r_eps = r) >= RECOVERY_LEVEL
FAR_BELOW_ROUNDOFF = 1e-3   # eps <= FAR_BELOW_ROUNDOFF x roundoff floor: "well below" it
_DTYPES = (torch.float32, torch.float64)


class LowRankSignal(NamedTuple):
    """M = U diag(s) V^T, batched over draws: M (D, m, n), U (D, m, r), s (r,), V (D, n, r)."""
    M: torch.Tensor
    U: torch.Tensor
    s: torch.Tensor
    V: torch.Tensor


class Sweep(NamedTuple):
    """Tidy results: ``summary`` per (noise level, eps), ``draws`` per (noise level, draw)."""
    summary: pd.DataFrame
    draws: pd.DataFrame


# ----------------------------------------------------------------------------- checks
def _check_shape(m, n, s) -> tuple[float, ...]:
    for name, v in (("m", m), ("n", n)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int (matrix dimension), got {v!r}")
    s = tuple(float(x) for x in s)
    if not s or len(s) > min(m, n):
        raise ValueError(f"s must hold 1..min(m, n)={min(m, n)} signal singular values, got "
                         f"{len(s)}; pass e.g. s=(4.0, 2.0, 1.0)")
    if any(not x > 0 for x in s) or any(a < b for a, b in zip(s, s[1:])):
        raise ValueError(f"s must be positive and non-increasing (s_1 >= ... >= s_r > 0), got "
                         f"{s}; sort it in descending order")
    return s


def _check_draws(n_draws) -> None:
    if not isinstance(n_draws, int) or n_draws < 2:
        raise ValueError(f"n_draws must be an int >= 2 (rates need several draws), got "
                         f"{n_draws!r}; e.g. n_draws=100")


def _check_dtype(dtype) -> None:
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}; pass "
                         "dtype=torch.float64 (default) or torch.float32 for the precision stress")


def _check_nonneg(name: str, value) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}; pass a value "
                         ">= 0 (0 means no noise)")


# ------------------------------------------------------------------------- generators
def orthonormal_frames(n_draws: int, dim: int, r: int, generator: torch.Generator) -> torch.Tensor:
    """Haar-random (n_draws, dim, r) frames with Q^T Q = I: QR of a Gaussian, signs of diag R fixed."""
    G = torch.randn(n_draws, dim, r, generator=generator, dtype=torch.float64)
    Q, R = torch.linalg.qr(G)
    return Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1)).unsqueeze(-2)


def low_rank_signal(m: int, n: int, s: Sequence[float], n_draws: int,
                    generator: torch.Generator) -> LowRankSignal:
    """n_draws seeded rank-r signals M = U diag(s) V^T (float64), one orientation per draw."""
    s = _check_shape(m, n, s)
    _check_draws(n_draws)
    U = orthonormal_frames(n_draws, m, len(s), generator)
    V = orthonormal_frames(n_draws, n, len(s), generator)
    s_t = torch.tensor(s, dtype=torch.float64)
    return LowRankSignal((U * s_t) @ V.transpose(-1, -2), U, s_t, V)


def whitened_inputs(d: int, n_samples: int, n_draws: int, generator: torch.Generator) -> torch.Tensor:
    """X (n_draws, d, n_samples) with X X^T / n_samples = I exactly (to roundoff).

    Gaussian samples g_k whitened by their own sample covariance: G^T = Q R (QR), X =
    sqrt(n) Q^T, i.e. x_k = sqrt(n) R^{-T} g_k.
    """
    if not isinstance(n_samples, int) or n_samples < d:
        raise ValueError(f"n_samples must be an int >= d = {d} so that X X^T / n = I can hold "
                         f"exactly, got {n_samples!r}; increase n_samples")
    _check_draws(n_draws)
    G = torch.randn(n_draws, n_samples, d, generator=generator, dtype=torch.float64)
    Q, _ = torch.linalg.qr(G)
    return math.sqrt(n_samples) * Q.transpose(-1, -2)


def proxy_matrices(M: torch.Tensor, n_samples: int, label_noise: float,
                   generator: torch.Generator, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """M_hat = Y X^T / n with Y = M X + label_noise * E, computed in ``dtype``; M (D, m, d).

    Without label noise M_hat = M (X X^T / n) = M: exact rank r up to roundoff.
    """
    _check_nonneg("label_noise", label_noise)
    _check_dtype(dtype)
    D, m, d = M.shape
    X = whitened_inputs(d, n_samples, D, generator)
    E = torch.randn(D, m, n_samples, generator=generator, dtype=torch.float64)
    X, E, Mc = (t.to(M.device, dtype) for t in (X, E, M))
    Y = Mc @ X + label_noise * E
    return Y @ X.transpose(-1, -2) / n_samples


def noisy_matrices(model: str, M: torch.Tensor, levels: Sequence[float], generator: torch.Generator,
                   label_noise: float = 0.0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A for every noise level and draw, (n_levels, D, m, n), held in ``dtype``.

    gaussian: levels are sigma, A = M + sigma Z with the same Z at every level (common
    random numbers); proxy: levels are sample counts n, A = M_hat (see proxy_matrices).
    """
    _check_dtype(dtype)
    if model not in NOISE_MODELS:
        raise ValueError(f"model must be one of {NOISE_MODELS}, got {model!r}")
    if len(levels) == 0:
        raise ValueError("levels must hold at least one noise level (sigma for 'gaussian', "
                         "sample count n for 'proxy')")
    if model == "gaussian":
        for sigma in levels:
            _check_nonneg("levels (sigma)", sigma)
        Z = torch.randn(M.shape, generator=generator, dtype=torch.float64).to(M.device, dtype)
        sigma = torch.tensor(levels, dtype=dtype, device=M.device).view(-1, 1, 1, 1)
        return M.to(dtype) + sigma * Z
    return torch.stack([proxy_matrices(M, n, label_noise, generator, dtype) for n in levels])


def effective_sigma(model: str, levels: Sequence[float], label_noise: float = 0.0) -> np.ndarray:
    """Entry-wise noise std of A - M: sigma (gaussian) or label_noise / sqrt(n) (proxy)."""
    levels = np.asarray(levels, dtype=float)
    return levels if model == "gaussian" else label_noise / np.sqrt(levels)


# ---------------------------------------------------------------------------- theory
def noise_edge(sigma, m: int, n: int):
    """Bai-Yin edge sigma (sqrt(m) + sqrt(n)) of the largest singular value of m x n noise."""
    return np.asarray(sigma, dtype=float) * (math.sqrt(m) + math.sqrt(n))


def detection_threshold(sigma, m: int, n: int):
    """BBP / Benaych-Georges-Nadakuditi threshold sigma (m n)^(1/4): weaker modes sink into the bulk."""
    return np.asarray(sigma, dtype=float) * (m * n) ** 0.25


def outlier_location(s, sigma, m: int, n: int):
    """Predicted sigma_i(A) of a signal value s: sqrt((s^2 + sigma^2 m)(s^2 + sigma^2 n)) / s
    above the detection threshold, the noise edge below it (Benaych-Georges & Nadakuditi 2012)."""
    s, sigma = np.broadcast_arrays(np.asarray(s, dtype=float), np.asarray(sigma, dtype=float))
    above = s > detection_threshold(sigma, m, n)
    safe_s = np.where(above, s, 1.0)
    spike = np.sqrt((s**2 + sigma**2 * m) * (s**2 + sigma**2 * n)) / safe_s
    return np.where(above, spike, noise_edge(sigma, m, n))


def relative_noise_floor(sigma, m: int, n: int, sigma_1):
    """edge / sigma_1(A): the eps below which noise singular values are counted."""
    return noise_edge(sigma, m, n) / np.asarray(sigma_1, dtype=float)


def roundoff_floor(m: int, n: int, dtype: torch.dtype) -> float:
    """max(m, n) * finfo(dtype).eps: relative resolution of a spectrum held in ``dtype``."""
    _check_dtype(dtype)
    return max(m, n) * torch.finfo(dtype).eps


def signal_ceiling(sigma_r, sigma_1):
    """sigma_r / sigma_1: for eps at or above it the r-th mode is no longer counted."""
    return np.asarray(sigma_r, dtype=float) / np.asarray(sigma_1, dtype=float)


def theory_table(s: Sequence[float], m: int, n: int, sigma, dtype: torch.dtype,
                 floor_margin: float = FLOOR_MARGIN,
                 ceiling_margin: float = CEILING_MARGIN) -> pd.DataFrame:
    """Edges and the predicted recovery interval of eps, one row per noise std ``sigma``.

    predicted_lo = floor_margin * max(edge / sigma_1(A), roundoff floor), predicted_hi =
    (sigma_r(A) / sigma_1(A)) / ceiling_margin with sigma_i(A) = outlier_location(s_i); the
    interval is empty (lo >= hi) when s_r is below the detection threshold.
    """
    s = _check_shape(m, n, s)
    for name, v in (("floor_margin", floor_margin), ("ceiling_margin", ceiling_margin)):
        if not v >= 1:
            raise ValueError(f"{name} must be >= 1 (a safety factor), got {v}; e.g. {name}=2.0")
    sigma = np.atleast_1d(np.asarray(sigma, dtype=float))
    sigma_1, sigma_r = outlier_location(s[0], sigma, m, n), outlier_location(s[-1], sigma, m, n)
    noise = relative_noise_floor(sigma, m, n, sigma_1)
    roundoff = roundoff_floor(m, n, dtype)
    ceiling = signal_ceiling(sigma_r, sigma_1)
    edge = noise_edge(sigma, m, n)
    return pd.DataFrame({
        "sigma_eff": sigma,
        "noise_edge": edge,
        "detection_threshold": detection_threshold(sigma, m, n),
        "detectable": s[-1] > detection_threshold(sigma, m, n),
        "sigma_1_predicted": sigma_1,
        "sigma_r_predicted": sigma_r,
        "gap_predicted": np.divide(sigma_r, edge, out=np.full_like(edge, np.inf), where=edge > 0),
        "relative_noise_floor": noise,
        "roundoff_floor": roundoff,
        "signal_ceiling": ceiling,
        "predicted_lo": floor_margin * np.maximum(noise, roundoff),
        "predicted_hi": ceiling / ceiling_margin,
    })


# --------------------------------------------------------------------------- sweep
def eps_grid(lo: float = 1e-13, hi: float = 1e-1, per_decade: int = 1) -> torch.Tensor:
    """Log-spaced eps grid from lo to hi (both included), ``per_decade`` points per decade."""
    if not (0 < lo < hi < 1):
        raise ValueError(f"need 0 < lo < hi < 1 for an eps grid, got lo={lo}, hi={hi}")
    if not isinstance(per_decade, int) or per_decade < 1:
        raise ValueError(f"per_decade must be a positive int, got {per_decade!r}; e.g. 1 or 4")
    k = round(math.log10(hi / lo) * per_decade) + 1
    return torch.logspace(math.log10(lo), math.log10(hi), k, dtype=torch.float64)


def draw(model: str, *, m: int, n: int, s: Sequence[float], levels: Sequence[float], n_draws: int,
         seed: int = 0, label_noise: float = 0.0, dtype: torch.dtype = torch.float64,
         device="cpu") -> tuple[torch.Tensor, LowRankSignal]:
    """The seeded matrices of a sweep, A (n_levels, n_draws, m, n), and their signal."""
    generator = torch.Generator().manual_seed(seed)
    signal = low_rank_signal(m, n, s, n_draws, generator)
    A = noisy_matrices(model, signal.M.to(device), levels, generator, label_noise, dtype)
    return A, signal


def sweep(model: str, *, m: int, n: int, s: Sequence[float], levels: Sequence[float],
          eps: torch.Tensor, n_draws: int, seed: int = 0, label_noise: float = 0.0,
          dtype: torch.dtype = torch.float64, device="cpu") -> Sweep:
    """Recovery of r = len(s) by r_eps over noise levels x eps, all draws in one batch.

    ``summary`` (per noise level and eps): recovery_rate = P(r_eps = r), rank_mean,
    rank_var, rank_q05 / rank_q95 over draws, and the eps-free gap_median, effective-rank
    and participation-ratio means beside them. ``draws`` (per level and draw): sigma_1,
    sigma_r, sigma_{r+1}, gap sigma_r / sigma_{r+1}, effective rank, participation ratio.
    """
    eps = torch.as_tensor(eps, dtype=torch.float64)
    if eps.ndim != 1 or len(eps) < 2 or torch.any(torch.diff(eps) <= 0):
        raise ValueError("eps must be a strictly increasing 1-d grid of >= 2 values; build it "
                         "with calibration.eps_grid(lo, hi, per_decade)")
    A, _ = draw(model, m=m, n=n, s=s, levels=levels, n_draws=n_draws, seed=seed,
                label_noise=label_noise, dtype=dtype, device=device)
    r = len(s)
    svals = spectra.singular_values(A)                                        # (Lv, D, k)
    ranks = spectra.numerical_rank_from_svals(svals, eps.view(-1, 1, 1)).to(torch.float64).cpu()
    rate = (ranks == r).to(torch.float64).mean(-1)                            # (E, Lv)
    q05, q95 = torch.quantile(ranks, torch.tensor([0.05, 0.95], dtype=torch.float64), dim=-1)
    s64 = svals.to(torch.float64).cpu()
    gap = spectra.singular_gap(s64, r)
    r_eff = spectra.effective_rank_from_svals(s64)
    r_pr = spectra.participation_ratio_from_svals(s64)

    E, Lv, D = ranks.shape
    level = np.asarray(levels, dtype=float)
    sigma = effective_sigma(model, levels, label_noise)
    tag = dict(noise_model=model, dtype=str(dtype).removeprefix("torch."))
    summary = pd.DataFrame({
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
    })
    draws = pd.DataFrame({
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
    })
    return Sweep(summary, draws)


def level_summary(draws: pd.DataFrame) -> pd.DataFrame:
    """Per noise level: mean and 5-95 % quantiles over draws of r_eff, r_PR and log10 gap."""
    frame = draws.assign(log10_gap=np.log10(draws["gap"]))
    grouped = frame.groupby(["noise_model", "dtype", "noise_level", "sigma_eff"], sort=False)
    columns = ["effective_rank", "participation_ratio", "log10_gap"]
    parts = [grouped[columns].mean().add_suffix("_mean"),
             grouped[columns].quantile(0.05).add_suffix("_q05"),
             grouped[columns].quantile(0.95).add_suffix("_q95")]
    return pd.concat(parts, axis=1).reset_index()


# -------------------------------------------------------------------------- plateaus
def recovery_plateau(eps, rate, level: float = RECOVERY_LEVEL) -> dict[str, float]:
    """Longest contiguous run of grid eps with P(r_eps = r) >= level: lo, hi, decades (nan if none)."""
    if not 0 < level <= 1:
        raise ValueError(f"level must lie in (0, 1], got {level}; e.g. level=0.95")
    return eps_plateau(torch.tensor(np.asarray(rate, dtype=float)) >= level,
                       torch.tensor(np.asarray(eps, dtype=float)))


def plateau_table(summary: pd.DataFrame, s: Sequence[float], m: int, n: int,
                  level: float = RECOVERY_LEVEL, floor_margin: float = FLOOR_MARGIN,
                  ceiling_margin: float = CEILING_MARGIN) -> pd.DataFrame:
    """Measured plateau beside the predicted one, per noise level of a sweep summary.

    predicted_grid_lo/hi/points: grid eps inside [predicted_lo, predicted_hi];
    contains_prediction: that set is non-empty and inside the measured plateau;
    max_recovery: best P(r_eps = r) over the grid; max_recovery_far_below_roundoff: best
    P(r_eps = r) for eps <= FAR_BELOW_ROUNDOFF x roundoff floor (nan if no such grid eps).
    """
    rows = []
    for (model, dtype_name, lvl, sigma), part in summary.groupby(
            ["noise_model", "dtype", "noise_level", "sigma_eff"], sort=False):
        part = part.sort_values("eps")
        eps, rate = part["eps"].to_numpy(), part["recovery_rate"].to_numpy()
        theory = theory_table(s, m, n, sigma, getattr(torch, dtype_name),
                              floor_margin, ceiling_margin).iloc[0]
        inside = eps[(eps >= theory.predicted_lo) & (eps <= theory.predicted_hi)]
        plateau = recovery_plateau(eps, rate, level)
        far_below = rate[eps <= FAR_BELOW_ROUNDOFF * theory.roundoff_floor]
        contains = bool(len(inside) and plateau["lo"] <= inside[0] and inside[-1] <= plateau["hi"])
        rows.append({
            "noise_model": model, "dtype": dtype_name, "noise_level": lvl, **theory.to_dict(),
            "predicted_grid_lo": inside[0] if len(inside) else math.nan,
            "predicted_grid_hi": inside[-1] if len(inside) else math.nan,
            "predicted_grid_points": len(inside),
            "plateau_lo": plateau["lo"], "plateau_hi": plateau["hi"],
            "plateau_decades": plateau["decades"],
            "max_recovery": rate.max(),
            "max_recovery_far_below_roundoff": far_below.max() if len(far_below) else math.nan,
            "contains_prediction": contains,
        })
    return pd.DataFrame(rows)
