"""GD-vs-SGD comparison metrics: pattern distances d_r, d_m, d_sigma, d_shape, d_sigma_w and
parameter / function-space distances (protocol 1.1 step 5, 1.3 step 4, "Distance in parameter
space", "Distance in function space").

Every input carries runs on the leading axis, run 0 = full-batch GD and runs 1..S = SGD,
then any checkpoint axes, then matrix axes: ``weights`` is a list of L tensors
``(R, ..., d_l, d_{l-1})`` (a ``Trajectory.weights`` or ``AlignedCheckpoints.weights``).
Patterns are ``(R, ..., L, L)`` (rank, multiplicity, gap) or ``(R, ..., L, L, K)``
(log spectra) with entry ``[i-1, j-1]`` for ``P_ij``, i <= j, and zeros below the diagonal.
All metrics are computed for all runs and checkpoints at once; bands come from the
percentile bootstrap over SGD runs (resample runs with replacement, Efron & Tibshirani 1993).
Patterns come from :mod:`dlncheck.spectra`; the gauge-aligned distance from :mod:`dlncheck.measure.gauge`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from dlncheck import spectra
from dlncheck.measure import stats
from dlncheck.spectra import Weights


# ------------------------------------------------------------------------ helpers
def _check_runs(x: torch.Tensor, name: str) -> None:
    if x.shape[0] < 2:
        raise ValueError(
            f"{name} has {x.shape[0]} run(s) on axis 0; it needs run 0 = GD and at "
            "least one SGD run (train with S >= 1)"
        )


def check_weights(weights: Weights) -> None:
    """Raise ValueError unless ``weights`` compose and carry run 0 = GD plus >= 1 SGD run."""
    if len(weights) == 0:
        raise ValueError("weights must hold at least one layer tensor (R, ..., d_l, d_{l-1})")
    for l in range(1, len(weights)):
        if weights[l].shape[-1] != weights[l - 1].shape[-2]:
            raise ValueError(
                f"weights do not compose: W_{l + 1} has shape "
                f"{tuple(weights[l].shape)} but W_{l} outputs "
                f"{weights[l - 1].shape[-2]} dims; pass layers in order W_1..W_L"
            )
    _check_runs(weights[0], "weights[0]")


# ------------------------------------------------------- rank / multiplicity distances (1.1)
def sgd_summary(pattern: torch.Tensor, **bootstrap_kwargs: object) -> dict[str, torch.Tensor]:
    """GD pattern beside the SGD mean, std, s.e.m. and bootstrap CI (lo, hi) over runs 1..S."""
    _check_runs(pattern, "pattern")
    x = pattern.to(torch.float64)
    return {"gd": x[0], **stats.summarize(x[1:], 0, **bootstrap_kwargs)}


def _l1_to_gd(
    pattern: torch.Tensor, weight: torch.Tensor, n_boot: int, level: float, seed: int
) -> dict[str, torch.Tensor]:
    """sum_{i<=j} w_ij sum_k |p^GD_ij,k - mean_SGD p_ij,k| with a bootstrap band over SGD runs.

    ``pattern`` is (R, ..., L, L, K); ``weight`` is (L, L) and is zeroed below the diagonal.
    """
    _check_runs(pattern, "pattern")
    x = pattern.to(torch.float64)
    gd, sgd = x[0], x[1:]
    w = (weight.to(torch.float64) * spectra.upper_mask(x.shape[-2])).unsqueeze(-1)

    def distance(mean_sgd: torch.Tensor) -> torch.Tensor:
        dev = mean_sgd.device
        return (w.to(dev) * (gd.to(dev) - mean_sgd).abs()).sum((-3, -2, -1))

    lo, hi = stats.bootstrap_ci(sgd, n_boot=n_boot, level=level, seed=seed, statistic=distance)
    return {"value": distance(sgd.mean(0)), "lo": lo.to(x.device), "hi": hi.to(x.device)}


def d_r(r: torch.Tensor, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, torch.Tensor]:
    """d_r(t_k) = sum_{i<=j} |r^GD_ij - mean_SGD r_ij| (protocol 1.1 step 5), with band."""
    return _l1_to_gd(r.unsqueeze(-1), torch.ones(r.shape[-1], r.shape[-1]), n_boot, level, seed)


def d_m(m: torch.Tensor, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, torch.Tensor]:
    """d_m(t_k) = sum_{i<=j} |m^GD_ij - mean_SGD m_ij| (protocol 1.1 step 5), with band."""
    return _l1_to_gd(m.unsqueeze(-1), torch.ones(m.shape[-1], m.shape[-1]), n_boot, level, seed)


# ------------------------------------------------------- singular-value distances (1.3)
def interval_weights(L: int) -> torch.Tensor:
    """w_ij = j - i + 1 on i <= j (protocol 1.3 step 4), 0 below the diagonal, (L, L)."""
    i = torch.arange(1, L + 1, dtype=torch.float64)
    return (i[None, :] - i[:, None] + 1).clamp(min=0) * spectra.upper_mask(L)


def d_sigma(s: torch.Tensor, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, torch.Tensor]:
    """d_sigma(t_k) = sum_{i<=j} sum_k |s^GD_ij,k - mean_SGD s_ij,k| (protocol 1.3 step 4)."""
    return _l1_to_gd(s, torch.ones(s.shape[-2], s.shape[-2]), n_boot, level, seed)


def d_shape(s_tilde: torch.Tensor, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, torch.Tensor]:
    """d_shape(t_k): d_sigma applied to the shape-normalized spectra s~ (protocol 1.3 step 4)."""
    return d_sigma(s_tilde, n_boot, level, seed)


def d_sigma_w(s: torch.Tensor, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, torch.Tensor]:
    """d_sigma,w(t_k) = sum_{i<=j} (j - i + 1) sum_k |s^GD_ij,k - mean_SGD s_ij,k|."""
    return _l1_to_gd(s, interval_weights(s.shape[-2]), n_boot, level, seed)


# ------------------------------------------------------------------ parameter space
def _flat(weights: Weights) -> torch.Tensor:
    """theta = concatenation of the flattened layers, (R, ..., P)."""
    return torch.cat([W.flatten(-2) for W in weights], dim=-1)


def theta_norm(weights: Weights) -> torch.Tensor:
    """||theta||_2 per run and checkpoint, (R, ...)."""
    return torch.linalg.vector_norm(_flat(weights), dim=-1)


def theta_distance(weights: Weights) -> torch.Tensor:
    """||theta_GD - theta_SGD||_2 for each SGD run, (S, ...); E_B is the mean over axis 0."""
    check_weights(weights)
    theta = _flat(weights)
    return torch.linalg.vector_norm(theta[1:] - theta[:1], dim=-1)


def theta_ratio(weights: Weights) -> torch.Tensor:
    """||theta_GD - theta_SGD||_2 / ||theta_GD||_2 per SGD run, (S, ...); its mean is the
    seed's ratio E_B||theta_GD - theta_SGD|| / ||theta_GD||."""
    return theta_distance(weights) / theta_norm(weights)[:1]


def mean_displacement(weights: Weights) -> tuple[float, float]:
    """(||mean_r delta_r||, sqrt(mean_r ||delta_r - mean delta||^2)) / ||theta_GD||, delta_r = theta_r - theta_GD:
    the SGD runs' mean displacement from GD (run 0) and their rms spread about it, relative to GD's norm."""
    theta = _flat(weights)
    delta = theta[1:] - theta[:1]
    mean = delta.mean(0)
    norm = float(theta[0].norm())
    return float(mean.norm()) / norm, float((delta - mean).square().sum(1).mean().sqrt()) / norm


def cosine(weights: Weights) -> torch.Tensor:
    """cos(theta_GD, theta_SGD) = theta_GD . theta_SGD / (||theta_GD|| ||theta_SGD||), (S, ...)."""
    check_weights(weights)
    theta = _flat(weights)
    return torch.nn.functional.cosine_similarity(theta[1:], theta[:1], dim=-1, eps=1e-300)


def d_l(weights: Weights) -> torch.Tensor:
    """||W_l,GD - W_l,SGD||_F / ||W_l,GD||_F per SGD run and layer, (S, ..., L).

    The seed's d_l is the mean over SGD runs (axis 0); its aggregate d = mean_l d_l.
    """
    check_weights(weights)
    per_layer = [torch.linalg.matrix_norm(W[1:] - W[:1]) / torch.linalg.matrix_norm(W[:1]) for W in weights]
    return torch.stack(per_layer, dim=-1)


def d(weights: Weights) -> torch.Tensor:
    """Aggregate d = (1/L) sum_l d_l per SGD run, (S, ...); E_B is the mean over axis 0."""
    return d_l(weights).mean(-1)


# ------------------------------------------------------------------- function space
def function_distance(weights: Weights) -> torch.Tensor:
    """||W_GD - W_SGD||_F / ||W_GD||_F of the end-to-end maps W = W_L ... W_1, (S, ...)."""
    check_weights(weights)
    W = spectra.end_to_end(weights)
    return torch.linalg.matrix_norm(W[1:] - W[:1]) / torch.linalg.matrix_norm(W[:1])


# ------------------------------------------------------------------------ tables
def over_runs(per_run: torch.Tensor, **bootstrap_kwargs: object) -> dict[str, torch.Tensor]:
    """E_B of a per-SGD-run metric (S, ...) with std, s.e.m. and bootstrap CI over runs."""
    return stats.summarize(per_run.to(torch.float64), 0, **bootstrap_kwargs)


def frame(index: dict[str, object], **metrics: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Tidy long table: one row per (index entry, metric) with the metric's summary columns.

    ``index`` maps column names (e.g. step, time, kind) to 1-d arrays of length K; each
    metric is a dict of (K,) tensors such as ``over_runs(...)`` or ``d_r(...)``.
    """
    rows = []
    for name, summary in metrics.items():
        cols = {k: np.asarray(torch.as_tensor(v).detach().cpu()) for k, v in summary.items()}
        rows.append(pd.DataFrame({**{k: np.asarray(v) for k, v in index.items()}, "metric": name, **cols}))
    return pd.concat(rows, ignore_index=True)
