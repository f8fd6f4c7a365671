"""Singular values and the numbers read off them: numerical rank, gaps, effective rank and
participation ratio, of one matrix or of every partial product P_ij.

Every function is a pure function of torch tensors and is batched over any leading
dimensions (runs, checkpoints, eps values): a matrix argument ``A`` has shape ``(..., m, n)``.
Indices in formulas are 1-based as in the protocol (P_ij, i <= j); arrays are 0-based.

Numerical rank has one convention in the whole project: r_eps = #{sigma_m > max(eps sigma_1,
atol)}, a relative threshold with an optional absolute floor ``atol`` (callers pass
``atol=eps * s_1(teacher)`` for the floored notion).

Source: protocol sections 1.1-1.2 (``docs/protocol.md``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from dlncheck.config import arrays
from dlncheck.config import validation as check
from dlncheck.spectra._products import Weights, products_from

#: on the CPU, the batch of :func:`product_singular_values` goes through in pieces of at most this many
#: bytes per product: a chain's products, stacked for one LAPACK call, then stay under the 4 MiB mmap
#: threshold the suite pins (report.peak_memory) up to L = 8 (timed in tests/test_bench_spectra.py)
CPU_PIECE_BYTES = 512 * 1024


# ------------------------------------------------------------------ singular values
def singular_values(A: torch.Tensor) -> torch.Tensor:
    """Singular values in descending order, (..., min(m, n)); deterministic LAPACK svdvals.

    Parameters
    ----------
    A : tensor (..., m, n)
        A finite, non-empty real (float32/float64) matrix, batched over leading axes.

    Returns
    -------
    tensor (..., min(m, n))
    """
    arrays.matrix("A", A)
    return torch.linalg.svdvals(A)


def grouped_singular_values(
    products: dict[tuple[int, int], torch.Tensor], transpose: bool = False
) -> dict[tuple[int, int], torch.Tensor]:
    """sigma(P) for every product, one batched svdvals call per shape.

    Parameters
    ----------
    products : dict of (i, j) -> tensor (..., m, n)
        The products, e.g. :func:`products_from` or :func:`partial_products`.
    transpose : bool
        Decompose a wide (m < n) product as P^T (sigma(P) = sigma(P^T)), so shapes equal up to a
        transpose share one call: fewer, larger LAPACK batches (each matrix's values are the same).

    Returns
    -------
    dict of (i, j) -> tensor (..., min(m, n))
        Descending singular values, in the order of ``products``.
    """
    groups: dict[tuple[int, ...], list[tuple[int, int]]] = {}
    for key, P in products.items():
        m, n = P.shape[-2:]
        shape = (n, m) if transpose and m < n else (m, n)
        groups.setdefault(P.shape[:-2] + shape, []).append(key)
    out: dict[tuple[int, int], torch.Tensor] = {}
    for keys in groups.values():
        mats = [
            products[k].mT if transpose and products[k].shape[-2] < products[k].shape[-1] else products[k] for k in keys
        ]
        out.update(zip(keys, torch.linalg.svdvals(torch.stack(mats)).unbind(0)))
    return {k: out[k] for k in products}


def product_singular_values(weights: Weights, transpose: bool = False) -> dict[tuple[int, int], torch.Tensor]:
    """Singular values of every partial product P_ij, keyed (i, j) 1-based.

    The products are formed a chain P_i. at a time (:func:`products_from`: L - i + 1 of them held,
    not L(L+1)/2) and each chain's are decomposed by :func:`grouped_singular_values`. On the CPU the
    batch goes through in pieces of at most :data:`CPU_PIECE_BYTES` per product, so the products and
    LAPACK's copies come from the heap and are reused instead of being mapped, faulted in and unmapped
    for every product (the suite pins glibc's mmap threshold: ``report.peak_memory``).

    Parameters
    ----------
    weights : sequence of L tensors (..., d_l, d_{l-1})
        The layers W_1..W_L.
    transpose : bool
        Group wide products with the tall ones of the transposed shape (the same values).

    Returns
    -------
    dict of (i, j) -> tensor (..., min(d_j, d_{i-1}))
        Descending singular values of P_ij = W_j ... W_i.
    """
    weights = arrays.layers("weights", weights)
    batch = torch.broadcast_shapes(*(W.shape[:-2] for W in weights))
    flat = [W.expand(batch + W.shape[-2:]).reshape((-1,) + W.shape[-2:]) for W in weights]
    widest = max(W.shape[-2] for W in weights) * max(W.shape[-1] for W in weights) * weights[0].element_size()
    n = flat[0].shape[0]
    rows = max(1, CPU_PIECE_BYTES // widest) if weights[0].device.type == "cpu" else n
    pieces = [
        _chains_singular_values([W[start : start + rows] for W in flat], transpose) for start in range(0, n, rows)
    ]
    return {key: torch.cat([piece[key] for piece in pieces]).reshape(batch + (-1,)) for key in pieces[0]}


def _chains_singular_values(weights: list[torch.Tensor], transpose: bool) -> dict[tuple[int, int], torch.Tensor]:
    """sigma(P_ij) of one piece of the batch, a chain P_i. at a time."""
    out: dict[tuple[int, int], torch.Tensor] = {}
    for i in range(1, len(weights) + 1):
        out |= grouped_singular_values(products_from(weights, i, checked=True), transpose)
    return out


def numerical_rank_from_svals(
    svals: torch.Tensor, eps: float | torch.Tensor, atol: float | torch.Tensor | None = None
) -> torch.Tensor:
    """r_eps = #{m : sigma_m > max(eps * sigma_1, atol)} (protocol 1.2), int64, batched.

    The relative rank is scale invariant, so from a tiny initialisation it reports the spectral
    *shape* of the initial weights; ``atol`` (e.g. eps * s_1 of the teacher) makes "rank starts at
    0" testable. The zero matrix has rank 0.

    Parameters
    ----------
    svals : tensor (..., k)
        Descending singular values (:func:`singular_values`).
    eps : float or tensor
        Relative threshold in (0, 1); a tensor broadcasts against ``svals[..., 0]`` (an eps grid as
        a new leading axis).
    atol : float or tensor, optional
        Absolute floor (>= 0), broadcast like ``eps`` (e.g. ``eps_grid * s_1`` beside an eps grid).

    Returns
    -------
    int64 tensor, the broadcast shape of eps, atol and ``svals[..., 0]``
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
    """Relative-threshold rank of A: #{sigma_m > max(eps * sigma_1, atol)} (protocol 1.2).

    Parameters
    ----------
    A : tensor (..., m, n)
        The matrices, batched.
    eps : float or tensor
        Relative threshold in (0, 1) (see :func:`numerical_rank_from_svals`).
    atol : float or tensor, optional
        Absolute floor.

    Returns
    -------
    int64 tensor (...)
    """
    arrays.eps("eps", eps)  # before the SVD; its shape is checked against A's batch below
    return numerical_rank_from_svals(singular_values(A), eps, atol)


def singular_gap(svals: torch.Tensor, r: int | Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Gap sigma_r / sigma_{r+1} at rank r (protocol 1.1, step 2.3), sigma 1-based.

    Boundary convention: sigma_0 = +inf and sigma_{k+1} = 0 (k = min(m, n)), and x / 0 =
    +inf. So r = 0 and r = k always give +inf (no competing value on one side), and an
    exactly rank-r matrix gives +inf.

    Parameters
    ----------
    svals : tensor (..., k)
        Descending singular values.
    r : int, list of int or tensor
        Rank(s) in [0, k], broadcast against ``svals[..., 0]``.

    Returns
    -------
    tensor, the broadcast shape of r and ``svals[..., 0]``
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
    """r_eff = exp(-sum p_i log p_i), p_i = sigma_i / sum_j sigma_j (Roy & Vetterli 2007); 0 for the
    zero matrix.

    Computed on sigma / sigma_1 (r_eff is scale invariant), so huge spectra do not overflow.

    Parameters
    ----------
    svals : tensor (..., k)
        Descending singular values.

    Returns
    -------
    tensor (...)
    """
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

    Parameters
    ----------
    svals : tensor (..., k)
        Descending singular values.

    Returns
    -------
    tensor (...)
    """
    arrays.svals("svals", svals)
    top = svals[..., :1]
    s2 = (svals / torch.where(top > 0, top, 1.0)).square()
    num, den = s2.sum(-1).square(), s2.square().sum(-1)
    return torch.where(den > 0, num / torch.where(den > 0, den, 1.0), torch.zeros_like(den))


def effective_rank(A: torch.Tensor) -> torch.Tensor:
    """Entropy effective rank of A, batched (see :func:`effective_rank_from_svals`).

    Parameters
    ----------
    A : tensor (..., m, n)

    Returns
    -------
    tensor (...)
    """
    return effective_rank_from_svals(singular_values(A))


def participation_ratio(A: torch.Tensor) -> torch.Tensor:
    """Participation ratio of A's spectrum, batched (see :func:`participation_ratio_from_svals`).

    Parameters
    ----------
    A : tensor (..., m, n)

    Returns
    -------
    tensor (...)
    """
    return participation_ratio_from_svals(singular_values(A))
