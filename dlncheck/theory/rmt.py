"""Random-matrix predictions for the numerical rank of A = M + N (protocol 1.2, parts I and III).

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

import numpy as np
import pandas as pd
import torch

FLOOR_MARGIN = 2.0  # predicted interval starts at FLOOR_MARGIN x floor
CEILING_MARGIN = 2.0  # ... and ends at ceiling / CEILING_MARGIN
_DTYPES = (torch.float32, torch.float64)
#: a float or an array of floats (numpy broadcasting)
FloatArray = float | Sequence[float] | np.ndarray


def check_signal(m: int, n: int, s: Sequence[float]) -> tuple[float, ...]:
    """Validate an m x n signal spectrum s_1 >= ... >= s_r > 0; return it as floats."""
    for name, v in (("m", m), ("n", n)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int (matrix dimension), got {v!r}")
    s = tuple(float(x) for x in s)
    if not s or len(s) > min(m, n):
        raise ValueError(
            f"s must hold 1..min(m, n)={min(m, n)} signal singular values, got {len(s)}; pass e.g. s=(4.0, 2.0, 1.0)"
        )
    if any(not x > 0 for x in s) or any(a < b for a, b in zip(s, s[1:])):
        raise ValueError(
            f"s must be positive and non-increasing (s_1 >= ... >= s_r > 0), got {s}; sort it in descending order"
        )
    return s


def check_dtype(dtype: torch.dtype) -> None:
    """Raise ValueError unless dtype is torch.float32 or torch.float64."""
    if dtype not in _DTYPES:
        raise ValueError(
            f"dtype must be torch.float32 or torch.float64, got {dtype}; pass "
            "dtype=torch.float64 (default) or torch.float32 for the precision stress"
        )


def noise_edge(sigma: FloatArray, m: int, n: int) -> np.ndarray:
    """Bai-Yin edge sigma (sqrt(m) + sqrt(n)) of the largest singular value of m x n noise."""
    return np.asarray(sigma, dtype=float) * (math.sqrt(m) + math.sqrt(n))


def detection_threshold(sigma: FloatArray, m: int, n: int) -> np.ndarray:
    """BBP / Benaych-Georges-Nadakuditi threshold sigma (m n)^(1/4): weaker modes sink into the bulk."""
    return np.asarray(sigma, dtype=float) * (m * n) ** 0.25


def outlier_location(s: FloatArray, sigma: FloatArray, m: int, n: int) -> np.ndarray:
    """Predicted sigma_i(A) of a signal value s: sqrt((s^2 + sigma^2 m)(s^2 + sigma^2 n)) / s
    above the detection threshold, the noise edge below it (Benaych-Georges & Nadakuditi 2012)."""
    s, sigma = np.broadcast_arrays(np.asarray(s, dtype=float), np.asarray(sigma, dtype=float))
    above = s > detection_threshold(sigma, m, n)
    safe_s = np.where(above, s, 1.0)
    spike = np.sqrt((s**2 + sigma**2 * m) * (s**2 + sigma**2 * n)) / safe_s
    return np.where(above, spike, noise_edge(sigma, m, n))


def relative_noise_floor(sigma: FloatArray, m: int, n: int, sigma_1: FloatArray) -> np.ndarray:
    """edge / sigma_1(A): the eps below which noise singular values are counted."""
    return noise_edge(sigma, m, n) / np.asarray(sigma_1, dtype=float)


def roundoff_floor(m: int, n: int, dtype: torch.dtype) -> float:
    """max(m, n) * finfo(dtype).eps: relative resolution of a spectrum held in ``dtype``."""
    check_dtype(dtype)
    return max(m, n) * torch.finfo(dtype).eps


def signal_ceiling(sigma_r: FloatArray, sigma_1: FloatArray) -> np.ndarray:
    """sigma_r / sigma_1: for eps at or above it the r-th mode is no longer counted."""
    return np.asarray(sigma_r, dtype=float) / np.asarray(sigma_1, dtype=float)


def theory_table(
    s: Sequence[float],
    m: int,
    n: int,
    sigma: FloatArray,
    dtype: torch.dtype,
    floor_margin: float = FLOOR_MARGIN,
    ceiling_margin: float = CEILING_MARGIN,
) -> pd.DataFrame:
    """Edges and the predicted recovery interval of eps, one row per noise std ``sigma``.

    predicted_lo = floor_margin * max(edge / sigma_1(A), roundoff floor), predicted_hi =
    (sigma_r(A) / sigma_1(A)) / ceiling_margin with sigma_i(A) = outlier_location(s_i); the
    interval is empty (lo >= hi) when s_r is below the detection threshold.
    """
    s = check_signal(m, n, s)
    for name, v in (("floor_margin", floor_margin), ("ceiling_margin", ceiling_margin)):
        if not v >= 1:
            raise ValueError(f"{name} must be >= 1 (a safety factor), got {v}; e.g. {name}=2.0")
    sigma = np.atleast_1d(np.asarray(sigma, dtype=float))
    sigma_1, sigma_r = outlier_location(s[0], sigma, m, n), outlier_location(s[-1], sigma, m, n)
    noise = relative_noise_floor(sigma, m, n, sigma_1)
    roundoff = roundoff_floor(m, n, dtype)
    ceiling = signal_ceiling(sigma_r, sigma_1)
    edge = noise_edge(sigma, m, n)
    return pd.DataFrame(
        {
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
        }
    )
