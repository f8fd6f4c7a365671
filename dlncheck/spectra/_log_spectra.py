"""Log spectra (protocol 1.3): the top-K log singular values s_k = log max(sigma_k, delta) of a
matrix, and of every partial product P_ij with their shape-normalized s~_k = s_k - s_1.

Batched over leading axes like the rest of :mod:`dlncheck.spectra`; ``delta`` is the floor that
avoids log(0). Source: protocol section 1.3 (docs/protocol.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dlncheck.config import arrays
from dlncheck.config import validation as check
from dlncheck.spectra._patterns import upper_mask
from dlncheck.spectra._products import Weights
from dlncheck.spectra._ranks import product_singular_values, singular_values


def _check_log_args(K: int, delta: float, normalized: bool = False) -> int:
    check.finite_float("delta", delta, positive=True)  # the floor that avoids log(0)
    check.flag("normalized", normalized)
    return arrays.top_k("K", K)


def log_spectrum_from_svals(
    svals: torch.Tensor, K: int, delta: float = 1e-30, normalized: bool = False
) -> torch.Tensor:
    """Top-K s_k = log max(sigma_k, delta) from descending singular values (..., k) -> (..., K).

    Parameters
    ----------
    svals : tensor (..., k)
        Descending singular values.
    K : int
        Number of values kept, 1 <= K <= MAX_TOP_K; K > k pads with log(delta) (sigma_k = 0).
    delta : float, default 1e-30
        Floor that avoids log(0).
    normalized : bool, default False
        Subtract log max(sigma_1, delta): the shape-normalized s~_k.

    Returns
    -------
    tensor (..., K)
    """
    K = _check_log_args(K, delta, normalized)
    arrays.svals("svals", svals)
    top = torch.nn.functional.pad(svals[..., :K], (0, max(0, K - svals.shape[-1])))
    logs = torch.log(top.clamp(min=delta))
    return logs - logs[..., :1] if normalized else logs


def log_spectrum(A: torch.Tensor, K: int, delta: float = 1e-30, normalized: bool = False) -> torch.Tensor:
    """Top-K log singular values s_k = log max(sigma_k, delta) of A (protocol 1.3 step 2.3).

    ``normalized=True`` gives the shape-normalized s~_k = log(max(sigma_k, delta) /
    max(sigma_1, delta)). K larger than min(m, n) pads with log(delta) (sigma_k = 0).

    Parameters
    ----------
    A : tensor (..., m, n)
    K : int
    delta : float, default 1e-30
    normalized : bool, default False
        As in :func:`log_spectrum_from_svals`.

    Returns
    -------
    tensor (..., K)
    """
    K = _check_log_args(K, delta, normalized)
    return log_spectrum_from_svals(singular_values(A), K, delta, normalized)


@dataclass(frozen=True)
class LogSpectra:
    """s_ij,k = log max(sigma_k(P_ij), delta) and s~_ij,k = s_ij,k - s_ij,1, k = 1..K."""

    s: torch.Tensor  # (..., L, L, K)
    s_tilde: torch.Tensor  # (..., L, L, K)


def log_spectra(weights: Weights, K: int, delta: float = 1e-30) -> LogSpectra:
    """Top-K log singular values of every P_ij (protocol 1.3 step 2), one batched SVD pass.

    Parameters
    ----------
    weights : sequence of L tensors (..., d_l, d_{l-1})
        The layers W_1..W_L.
    K : int
        Number of values per product.
    delta : float, default 1e-30
        Floor that avoids log(0).

    Returns
    -------
    LogSpectra
        s and s_tilde, each (..., L, L, K); zero below the diagonal.
    """
    _check_log_args(K, delta)  # before the SVDs
    return log_spectra_from_svals(product_singular_values(weights), len(weights), K, delta)


def log_spectra_from_svals(
    svals: dict[tuple[int, int], torch.Tensor], L: int, K: int, delta: float = 1e-30
) -> LogSpectra:
    """:func:`log_spectra` from precomputed ``product_singular_values`` (share one SVD pass).

    Parameters
    ----------
    svals : dict of (i, j) -> tensor (..., k)
        :func:`product_singular_values` of the layers.
    L, K : int
        Depth and number of values per product.
    delta : float, default 1e-30

    Returns
    -------
    LogSpectra
    """
    K = _check_log_args(K, delta)
    svals, L = arrays.svals_by_product("svals", svals, L)
    some = next(iter(svals.values()))
    s = some.new_zeros(some.shape[:-1] + (L, L, K))
    for (i, j), sv in svals.items():
        s[..., i - 1, j - 1, :] = log_spectrum_from_svals(sv, K, delta)
    s_tilde = (s - s[..., :1]) * upper_mask(L, s.device).unsqueeze(-1)
    return LogSpectra(s=s, s_tilde=s_tilde)
