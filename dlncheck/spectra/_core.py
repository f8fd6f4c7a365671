"""Products and spectra of deep-linear-network weights: chains, singular values, numerical ranks.

Every function is a pure function of torch tensors and is batched over any leading
dimensions (runs, checkpoints, eps values): a matrix argument ``A`` has shape
``(..., m, n)`` and a layer list ``weights`` holds ``L`` tensors ``(..., d_l, d_{l-1})``.
Indices in formulas are 1-based as in the protocol (P_ij, i <= j); arrays are 0-based.

Numerical rank has one convention in the whole project: r_eps = #{sigma_m > max(eps sigma_1,
atol)}, a relative threshold with an optional absolute floor ``atol`` (callers pass
``atol=eps * s_1(teacher)`` for the floored notion).

Source: protocol sections 1.1-1.2 (``shared/seeds/000_442b223873da0ef7.txt``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from dlncheck.config import arrays
from dlncheck.config import validation as check

Weights = Sequence[torch.Tensor]


# ----------------------------------------------------------------------------- checks
def _check_chain(weights: Weights, values: bool = True) -> list[torch.Tensor]:
    """The layer list, checked by :func:`dlncheck.config.arrays.layers` (named errors)."""
    return arrays.layers("weights", weights, values)


def _batch(weights: Sequence[torch.Tensor]) -> torch.Size:
    return torch.broadcast_shapes(*(W.shape[:-2] for W in weights))


# ------------------------------------------------------------------- partial products
def chain_product(mats: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """mats[-1] @ ... @ mats[0] (the DLN order, first factor applied first); None if empty.

    The empty chain stands for an identity whose size the caller knows (the saddle normal
    form multiplies residual blocks of varying ranges). Metadata only is checked (type, dtype,
    composing shapes, broadcasting batch axes; empty blocks allowed): it runs inside torch.func
    transforms, so non-finite entries are not looked for and propagate to the product.
    """
    if isinstance(mats, (list, tuple)) and len(mats) == 0:
        return None
    mats = _check_chain(mats, values=False)
    out = None
    for A in mats:
        out = A if out is None else A @ out
    return out


def partial_products(weights: Weights) -> dict[tuple[int, int], torch.Tensor]:
    """All contiguous products P_ij = W_j ... W_i for 1 <= i <= j <= L (1-based keys).

    Built by extending each prefix one layer at a time, P_{i,j} = W_j P_{i,j-1}, so the
    L(L+1)/2 products cost L(L-1)/2 batched matmuls (protocol 1.1, step 2).
    Layers whose batch shapes differ but broadcast give products expanded to the common batch
    shape; a product that overflows the dtype is refused (named error).
    """
    weights = _check_chain(weights)
    L, batch = len(weights), _batch(weights)
    products: dict[tuple[int, int], torch.Tensor] = {}
    for i in range(1, L + 1):
        P = weights[i - 1]
        products[(i, i)] = P.expand(batch + P.shape[-2:])
        for j in range(i + 1, L + 1):
            P = weights[j - 1] @ P
            products[(i, j)] = P.expand(batch + P.shape[-2:])
    arrays.finite_products("weights", ((f"P_{i}{j} = W_{j}...W_{i}", P) for (i, j), P in products.items()))
    return products


def prefix_suffix_products(weights: Weights) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """P[l] = W_{l-1}...W_1 (P[0] = I) and A[l] = W_L...W_{l+1} (A[L-1] = I), 0-based layers,
    batched over leading axes: the factors of dW/dW_l = A_l^T (.) P_l^T."""
    W = _check_chain(weights)
    P = [torch.eye(W[0].shape[-1], dtype=W[0].dtype, device=W[0].device)]
    for w in W:
        P.append(w @ P[-1])
    A = [torch.eye(W[-1].shape[-2], dtype=W[0].dtype, device=W[0].device)]
    for w in reversed(W[1:]):
        A.append(A[-1] @ w)
    arrays.finite_products("weights", [(f"W_{l}...W_1", P[l]) for l in range(1, len(W) + 1)])
    arrays.finite_products("weights", [(f"W_L...W_{l + 2}", a) for l, a in enumerate(A[1:])])
    return P, A[::-1]


def end_to_end(weights: Weights) -> torch.Tensor:
    """The network map W = W_L ... W_1, batched; an overflowing product is refused (named error)."""
    W = chain_product(_check_chain(weights))
    arrays.finite_products("weights", [("W_L...W_1", W)])
    return W


# ------------------------------------------------------------------ singular values
def singular_values(A: torch.Tensor) -> torch.Tensor:
    """Singular values in descending order, (..., min(m, n)); deterministic LAPACK svdvals."""
    arrays.matrix("A", A)
    return torch.linalg.svdvals(A)


def product_singular_values(weights: Weights) -> dict[tuple[int, int], torch.Tensor]:
    """Singular values of every partial product P_ij, keyed (i, j) 1-based.

    Products with the same shape are stacked and decomposed in one batched svdvals call.
    """
    products = partial_products(weights)
    by_shape: dict[tuple[int, ...], list[tuple[int, int]]] = {}
    for key, P in products.items():
        by_shape.setdefault(tuple(P.shape), []).append(key)
    out: dict[tuple[int, int], torch.Tensor] = {}
    for keys in by_shape.values():
        svals = torch.linalg.svdvals(torch.stack([products[k] for k in keys]))
        out.update(zip(keys, svals.unbind(0)))
    return {k: out[k] for k in products}


def numerical_rank_from_svals(
    svals: torch.Tensor, eps: float | torch.Tensor, atol: float | torch.Tensor | None = None
) -> torch.Tensor:
    """r_eps = #{m : sigma_m > max(eps * sigma_1, atol)} (protocol 1.2), int64, batched.

    ``eps`` may be a float or a tensor broadcasting against ``svals[..., 0]`` (an eps grid
    as a new leading axis); ``atol`` likewise (e.g. ``eps_grid * s_1`` beside an eps grid).
    ``atol`` is the absolute floor: the relative rank is scale invariant, so from a tiny
    initialisation it reports the spectral *shape* of the initial weights; ``atol`` (e.g.
    eps * s_1 of the teacher) makes "rank starts at 0" testable. The zero matrix has rank 0.
    """
    arrays.svals("svals", svals)
    arrays.eps("eps", eps, svals.shape[:-1])
    if atol is not None:  # an absolute singular-value floor, or a grid of them beside an eps grid
        atol = arrays.floor("atol", atol, svals.shape[:-1])
    eps_t = torch.as_tensor(eps, dtype=svals.dtype, device=svals.device)
    threshold = eps_t * svals[..., 0]
    if atol is not None:
        threshold = torch.maximum(threshold, torch.as_tensor(atol, dtype=svals.dtype, device=svals.device))
    return (svals > threshold.unsqueeze(-1)).sum(-1)


def numerical_rank(
    A: torch.Tensor, eps: float | torch.Tensor, atol: float | torch.Tensor | None = None
) -> torch.Tensor:
    """Relative-threshold rank of A: #{sigma_m > eps * sigma_1}, with optional absolute floor."""
    arrays.eps("eps", eps)  # before the SVD; its shape is checked against A's batch below
    return numerical_rank_from_svals(singular_values(A), eps, atol)


def singular_gap(svals: torch.Tensor, r: int | torch.Tensor) -> torch.Tensor:
    """Gap sigma_r / sigma_{r+1} at rank r (protocol 1.1, step 2.3), sigma 1-based.

    Boundary convention: sigma_0 = +inf and sigma_{k+1} = 0 (k = min(m, n)), and x / 0 =
    +inf. So r = 0 and r = k always give +inf (no competing value on one side), and an
    exactly rank-r matrix gives +inf. ``r`` broadcasts against ``svals[..., 0]``.
    """
    arrays.svals("svals", svals)
    if not torch.is_tensor(r):
        r = check.int_sequence("r", r) if isinstance(r, (list, tuple)) else check.integral("r", r)
    elif r.is_complex() or r.dtype == torch.bool or r.numel() == 0:
        check.fail("r", r, "pass ranks as a non-empty integer tensor (or an int)")
    elif r.is_floating_point() and not bool((r == r.round()).all()):
        check.fail("r", r, "ranks are whole numbers")
    k = svals.shape[-1]
    r_t = torch.as_tensor(r, device=svals.device).to(torch.int64)
    if r_t.numel() == 0:
        check.fail("r", r, "pass at least one rank")
    arrays.broadcast("r", r_t.shape, svals.shape[:-1])
    r_t, _ = torch.broadcast_tensors(r_t, svals[..., 0])
    svals = svals.expand(r_t.shape + (k,))
    if bool(torch.any((r_t < 0) | (r_t > k))):
        check.fail("r", r, f"ranks lie in [0, {k}] (the number of singular values)")
    padded = torch.cat(
        [svals.new_full(svals.shape[:-1] + (1,), math.inf), svals, svals.new_zeros(svals.shape[:-1] + (1,))], dim=-1
    )
    upper = padded.gather(-1, r_t.unsqueeze(-1)).squeeze(-1)
    lower = padded.gather(-1, (r_t + 1).unsqueeze(-1)).squeeze(-1)
    return torch.where(lower > 0, upper / torch.where(lower > 0, lower, 1.0), torch.full_like(upper, math.inf))


def effective_rank_from_svals(svals: torch.Tensor) -> torch.Tensor:
    """r_eff = exp(-sum p_i log p_i), p_i = sigma_i / sum_j sigma_j (Roy & Vetterli 2007); 0 for
    the zero matrix. Computed on sigma / sigma_1 (scale invariant), so huge spectra do not overflow."""
    arrays.svals("svals", svals)
    top = svals[..., :1]
    svals = svals / torch.where(top > 0, top, 1.0)
    total = svals.sum(-1, keepdim=True)
    p = svals / torch.where(total > 0, total, 1.0)
    entropy = -(torch.where(p > 0, p * torch.log(torch.where(p > 0, p, 1.0)), 0.0)).sum(-1)
    return torch.where(total.squeeze(-1) > 0, torch.exp(entropy), torch.zeros_like(entropy))


def participation_ratio_from_svals(svals: torch.Tensor) -> torch.Tensor:
    """r_PR = (sum sigma_i^2)^2 / sum sigma_i^4 (protocol 1.2); 0 for the zero matrix.

    Computed on sigma / sigma_1 (r_PR is scale invariant), so tiny or huge spectra neither
    underflow nor overflow in the fourth powers.
    """
    arrays.svals("svals", svals)
    top = svals[..., :1]
    s2 = (svals / torch.where(top > 0, top, 1.0)).square()
    num, den = s2.sum(-1).square(), s2.square().sum(-1)
    return torch.where(den > 0, num / torch.where(den > 0, den, 1.0), torch.zeros_like(den))


def effective_rank(A: torch.Tensor) -> torch.Tensor:
    """Entropy effective rank of A, batched (see effective_rank_from_svals)."""
    return effective_rank_from_svals(singular_values(A))


def participation_ratio(A: torch.Tensor) -> torch.Tensor:
    """Participation ratio of A's spectrum, batched (see participation_ratio_from_svals)."""
    return participation_ratio_from_svals(singular_values(A))
