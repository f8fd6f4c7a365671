"""Patterns over all partial products: rank, multiplicity and gap arrays.

A pattern holds one value per contiguous product P_ij (1 <= i <= j <= L) as an
``(..., L, L)`` array, entry ``[i-1, j-1]`` for i <= j and zeros below the diagonal (the top-K
log spectra, ``(..., L, L, K)``, are in :mod:`dlncheck.spectra._log_spectra`). Every pattern is
built from one batched SVD pass (:func:`dlncheck.spectra.product_singular_values`); the
``*_from_svals`` variants share a precomputed pass.

Source: protocol section 1.1 (rank and multiplicity patterns, steps 2-3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, overload

import torch

from dlncheck.config import arrays
from dlncheck.config import validation as check
from dlncheck.spectra._products import Weights
from dlncheck.spectra._ranks import (
    numerical_rank_from_svals,
    product_singular_values,
    singular_gap,
)

#: rank entries whose gap sigma_r / sigma_{r+1} is below this are flagged ambiguous:
#: less than one decade separates the last counted singular value from the next one.
GAP_THRESHOLD = 10.0


def upper_mask(L: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(L, L) bool, True on i <= j: the entries of a pattern that hold a product.

    Parameters
    ----------
    L : int
        Depth.
    device : torch.device or str, optional

    Returns
    -------
    bool tensor (L, L)
    """
    L = check.integral("L", L, min=1, max=check.MAX_DEPTH)
    if device is not None:
        device = check.device("device", device)
    return torch.ones(L, L, dtype=torch.bool, device=device).triu()


def pattern_from_products(values: dict[tuple[int, int], torch.Tensor], L: int) -> torch.Tensor:
    """Stack per-product values {(i, j): (...)} into an (..., L, L) upper-triangular pattern.

    Values are placed as given (any dtype, nan included); they share one shape and dtype.

    Parameters
    ----------
    values : dict of (i, j) -> tensor (...)
        One value per product P_ij, keys 1-based (as :func:`partial_products`).
    L : int
        Depth.

    Returns
    -------
    tensor (..., L, L)
        Entry [..., i-1, j-1] = values[(i, j)]; 0 where no key is given.
    """
    L = check.integral("L", L, min=1, max=check.MAX_DEPTH)
    if not isinstance(values, dict) or not values:
        check.fail("values", values, "pass a non-empty dict {(i, j): tensor} keyed by 1-based products")
    for key, v in values.items():
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(i, int) for i in key)):
            check.fail("values", key, "keys are 1-based (i, j) pairs of ints")
        if not 1 <= key[0] <= key[1] <= L:
            check.fail("values", key, f"keys (i, j) satisfy 1 <= i <= j <= L={L}")
        if not torch.is_tensor(v) or v.is_complex():
            check.fail(f"values[{key}]", v, "pass a real tensor per product")
    some = next(iter(values.values()))
    for key, v in values.items():
        if v.shape != some.shape or v.dtype != some.dtype:
            check.fail(
                f"values[{key}]", v, f"every value shares one shape and dtype ({tuple(some.shape)}, {some.dtype})"
            )
    out = some.new_zeros(some.shape + (L, L))
    for (i, j), v in values.items():
        out[..., i - 1, j - 1] = v
    return out


# ------------------------------------------------------------ rank / multiplicity (1.1)
def rank_pattern(weights: Weights, eps: float | torch.Tensor, atol: float | torch.Tensor | None = None) -> torch.Tensor:
    """r_ij = r_eps(P_ij) as an (..., L, L) int64 array, entry [i-1, j-1] for i <= j, 0 below.

    Parameters
    ----------
    weights : sequence of L tensors (..., d_l, d_{l-1})
        The layers W_1..W_L.
    eps : float or tensor
        Relative threshold; may carry leading axes of its own (an eps grid), broadcast against the batch.
    atol : float or tensor, optional
        Absolute floor (see :func:`numerical_rank_from_svals`).

    Returns
    -------
    int64 tensor (..., L, L)
    """
    arrays.eps("eps", eps)  # before the SVDs (its shape is checked against the batch after)
    if atol is not None:
        arrays.floor("atol", atol)
    svals = product_singular_values(weights)
    ranks = {k: numerical_rank_from_svals(s, eps, atol) for k, s in svals.items()}
    return pattern_from_products(ranks, len(weights))


@overload
def multiplicity_pattern(r: torch.Tensor, return_clipped: Literal[False] = False) -> torch.Tensor: ...


@overload
def multiplicity_pattern(r: torch.Tensor, return_clipped: Literal[True]) -> tuple[torch.Tensor, torch.Tensor]: ...


@overload
def multiplicity_pattern(r: torch.Tensor, return_clipped: bool) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]: ...


def multiplicity_pattern(
    r: torch.Tensor, return_clipped: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """m_ij = r_ij - r_{i,j+1} - r_{i-1,j} + r_{i-1,j+1} (protocol 1.1 step 3).

    Zero boundary: r_{0,j} = r_{i,L+1} = 0. Negative values (rank noise) are clipped to 0.

    Parameters
    ----------
    r : tensor (..., L, L)
        A rank pattern (:func:`rank_pattern`).
    return_clipped : bool, default False
        Also return the clipped mass per pattern (the sum of the negative parts).

    Returns
    -------
    m : tensor (..., L, L)
        Clipped multiplicities, upper triangular.
    clipped : tensor (...)
        Only with ``return_clipped=True``.
    """
    arrays.rank_pattern("r", r)
    check.flag("return_clipped", return_clipped)
    L = r.shape[-1]
    r = torch.triu(r)
    padded = torch.nn.functional.pad(r, (0, 1, 1, 0))  # row 0 = (i=0), col L = (j=L+1)
    core = padded[..., 1:, :L]  # r_{i,j}
    right = padded[..., 1:, 1:]  # r_{i,j+1}
    up = padded[..., :L, :L]  # r_{i-1,j}
    diag = padded[..., :L, 1:]  # r_{i-1,j+1}
    m = torch.triu(core - right - up + diag)
    clipped = (-m).clamp(min=0).sum((-2, -1))
    m = m.clamp(min=0)
    return (m, clipped) if return_clipped else m


@dataclass(frozen=True)
class RankPatterns:
    """r_ij, m_ij, the gap sigma_r / sigma_{r+1} at r = r_ij, and gap < threshold flags."""

    r: torch.Tensor  # (..., L, L) int64
    m: torch.Tensor  # (..., L, L) int64, clipped multiplicities
    gap: torch.Tensor  # (..., L, L) float, +inf where no competing value
    ambiguous: torch.Tensor  # (..., L, L) bool, gap < gap_threshold on i <= j
    gap_threshold: float


def rank_patterns(
    weights: Weights, eps: float, atol: float | None = None, gap_threshold: float = GAP_THRESHOLD
) -> RankPatterns:
    """r_ij = #{m: sigma_m(P_ij) > max(eps sigma_1(P_ij), atol)}, m_ij and gaps from one SVD pass.

    Protocol 1.1 steps 2-3. An entry is ambiguous when sigma_r / sigma_{r+1} < gap_threshold.

    Parameters
    ----------
    weights : sequence of L tensors (..., d_l, d_{l-1})
        The layers W_1..W_L.
    eps : float
        Relative threshold in (0, 1).
    atol : float, optional
        Absolute floor.
    gap_threshold : float, default GAP_THRESHOLD (10)
        Ratio sigma_r / sigma_{r+1} (> 1) below which an entry is flagged ambiguous.

    Returns
    -------
    RankPatterns
        r, m, gap and ambiguous, each (..., L, L).
    """
    _check_pattern_args(eps, atol, gap_threshold)  # before the SVDs
    return rank_patterns_from_svals(product_singular_values(weights), len(weights), eps, atol, gap_threshold)


def rank_patterns_from_svals(
    svals: dict[tuple[int, int], torch.Tensor],
    L: int,
    eps: float,
    atol: float | None = None,
    gap_threshold: float = GAP_THRESHOLD,
) -> RankPatterns:
    """:func:`rank_patterns` from precomputed ``product_singular_values`` (share one SVD pass).

    Parameters
    ----------
    svals : dict of (i, j) -> tensor (..., k)
        :func:`product_singular_values` of the layers.
    L : int
        Depth.
    eps, atol, gap_threshold
        As in :func:`rank_patterns`.

    Returns
    -------
    RankPatterns
    """
    _check_pattern_args(eps, atol, gap_threshold)
    svals, L = arrays.svals_by_product("svals", svals, L)
    ranks = {k: numerical_rank_from_svals(s, eps, atol) for k, s in svals.items()}
    gaps = {k: singular_gap(s, ranks[k]) for k, s in svals.items()}
    r = pattern_from_products(ranks, L)
    gap = pattern_from_products(gaps, L)
    gap = torch.where(upper_mask(L, gap.device), gap, torch.full_like(gap, float("inf")))
    return RankPatterns(
        r=r, m=multiplicity_pattern(r), gap=gap, ambiguous=gap < gap_threshold, gap_threshold=gap_threshold
    )


def _check_pattern_args(eps, atol, gap_threshold) -> None:
    arrays.eps("eps", eps)
    if atol is not None:
        arrays.floor("atol", atol)
    if not check.finite_float("gap_threshold", gap_threshold) > 1:
        check.fail("gap_threshold", gap_threshold, "pass a ratio sigma_r / sigma_(r+1) > 1, e.g. gap_threshold=10")
