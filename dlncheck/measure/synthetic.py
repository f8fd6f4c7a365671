"""Synthetic A = M + N for the calibration of the numerical rank (protocol 1.2): seeded low-rank
signals, exactly whitened inputs and the two noise models.

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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple, cast

import numpy as np
import torch

from dlncheck.theory.rmt import check_dtype, check_signal

NOISE_MODELS = ("gaussian", "proxy")


class LowRankSignal(NamedTuple):
    """M = U diag(s) V^T, batched over draws: M (D, m, n), U (D, m, r), s (r,), V (D, n, r)."""

    M: torch.Tensor
    U: torch.Tensor
    s: torch.Tensor
    V: torch.Tensor


def _check_draws(n_draws) -> None:
    if not isinstance(n_draws, int) or n_draws < 2:
        raise ValueError(f"n_draws must be an int >= 2 (rates need several draws), got {n_draws!r}; e.g. n_draws=100")


def _check_nonneg(name: str, value) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}; pass a value >= 0 (0 means no noise)")


def orthonormal_frames(n_draws: int, dim: int, r: int, generator: torch.Generator) -> torch.Tensor:
    """Haar-random (n_draws, dim, r) frames with Q^T Q = I: QR of a Gaussian, signs of diag R fixed."""
    G = torch.randn(n_draws, dim, r, generator=generator, dtype=torch.float64)
    Q, R = torch.linalg.qr(G)
    return Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1)).unsqueeze(-2)


def low_rank_signal(m: int, n: int, s: Sequence[float], n_draws: int, generator: torch.Generator) -> LowRankSignal:
    """n_draws seeded rank-r signals M = U diag(s) V^T (float64), one orientation per draw."""
    s = check_signal(m, n, s)
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
        raise ValueError(
            f"n_samples must be an int >= d = {d} so that X X^T / n = I can hold "
            f"exactly, got {n_samples!r}; increase n_samples"
        )
    _check_draws(n_draws)
    G = torch.randn(n_draws, n_samples, d, generator=generator, dtype=torch.float64)
    Q, _ = torch.linalg.qr(G)
    return math.sqrt(n_samples) * Q.transpose(-1, -2)


def proxy_matrices(
    M: torch.Tensor, n_samples: int, label_noise: float, generator: torch.Generator, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """M_hat = Y X^T / n with Y = M X + label_noise * E, computed in ``dtype``; M (D, m, d).

    Without label noise M_hat = M (X X^T / n) = M: exact rank r up to roundoff.
    """
    _check_nonneg("label_noise", label_noise)
    check_dtype(dtype)
    D, m, d = M.shape
    X = whitened_inputs(d, n_samples, D, generator)
    E = torch.randn(D, m, n_samples, generator=generator, dtype=torch.float64)
    X, E, Mc = (t.to(M.device, dtype) for t in (X, E, M))
    Y = Mc @ X + label_noise * E
    return Y @ X.transpose(-1, -2) / n_samples


def noisy_matrices(
    model: str,
    M: torch.Tensor,
    levels: Sequence[float],
    generator: torch.Generator,
    label_noise: float = 0.0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """A for every noise level and draw, (n_levels, D, m, n), held in ``dtype``.

    gaussian: levels are sigma, A = M + sigma Z with the same Z at every level (common
    random numbers); proxy: levels are sample counts n, A = M_hat (see proxy_matrices).
    """
    check_dtype(dtype)
    if model not in NOISE_MODELS:
        raise ValueError(f"model must be one of {NOISE_MODELS}, got {model!r}")
    if len(levels) == 0:
        raise ValueError("levels must hold at least one noise level (sigma for 'gaussian', sample count n for 'proxy')")
    if model == "gaussian":
        for sigma in levels:
            _check_nonneg("levels (sigma)", sigma)
        Z = torch.randn(M.shape, generator=generator, dtype=torch.float64).to(M.device, dtype)
        sigmas = torch.tensor(levels, dtype=dtype, device=M.device).view(-1, 1, 1, 1)
        return M.to(dtype) + sigmas * Z
    # proxy levels are sample counts: whitened_inputs refuses one that is not an int
    return torch.stack([proxy_matrices(M, cast(int, n), label_noise, generator, dtype) for n in levels])


def effective_sigma(model: str, levels: Sequence[float], label_noise: float = 0.0) -> np.ndarray:
    """Entry-wise noise std of A - M: sigma (gaussian) or label_noise / sqrt(n) (proxy)."""
    values = np.asarray(levels, dtype=float)
    return values if model == "gaussian" else label_noise / np.sqrt(values)
