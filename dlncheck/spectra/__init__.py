"""Spectra of deep-linear-network weights: the only place products, singular values, ranks,
gaps, multiplicities and log spectra are computed.

``_products``: the product chain, partial products, prefix and suffix products. ``_ranks``:
singular values, numerical rank (one floor convention), gaps, effective rank and participation
ratio. ``_patterns``: ranks, multiplicities and gaps over all partial products P_ij as
(..., L, L) arrays. ``_log_spectra``: top-K log singular values of a matrix and of every P_ij.
Protocol sections 1.1-1.3.
"""

from __future__ import annotations

from dlncheck.spectra._log_spectra import (
    LogSpectra,
    log_spectra,
    log_spectra_from_svals,
    log_spectrum,
    log_spectrum_from_svals,
)
from dlncheck.spectra._patterns import (
    GAP_THRESHOLD,
    RankPatterns,
    multiplicity_pattern,
    pattern_from_products,
    rank_pattern,
    rank_patterns,
    rank_patterns_from_svals,
    upper_mask,
)
from dlncheck.spectra._products import (
    Weights,
    chain_product,
    end_to_end,
    partial_products,
    prefix_suffix_products,
    products_from,
)
from dlncheck.spectra._ranks import (
    effective_rank,
    effective_rank_from_svals,
    grouped_singular_values,
    numerical_rank,
    numerical_rank_from_svals,
    participation_ratio,
    participation_ratio_from_svals,
    product_singular_values,
    singular_gap,
    singular_values,
)

__all__ = [
    "GAP_THRESHOLD",
    "LogSpectra",
    "RankPatterns",
    "Weights",
    "chain_product",
    "effective_rank",
    "effective_rank_from_svals",
    "end_to_end",
    "log_spectra",
    "log_spectra_from_svals",
    "log_spectrum",
    "log_spectrum_from_svals",
    "multiplicity_pattern",
    "numerical_rank",
    "numerical_rank_from_svals",
    "partial_products",
    "products_from",
    "participation_ratio",
    "prefix_suffix_products",
    "participation_ratio_from_svals",
    "pattern_from_products",
    "grouped_singular_values",
    "product_singular_values",
    "rank_pattern",
    "rank_patterns",
    "rank_patterns_from_svals",
    "singular_gap",
    "singular_values",
    "upper_mask",
]
