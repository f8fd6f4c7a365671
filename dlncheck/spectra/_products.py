"""Products of deep-linear-network weights: the chain W_L ... W_1, every partial product
P_ij = W_j ... W_i, and the prefix and suffix products of the layer gradients.

A layer list ``weights`` holds ``L`` tensors ``(..., d_l, d_{l-1})``, batched over any leading
dimensions; indices in formulas are 1-based as in the protocol (P_ij, i <= j). Source: protocol
section 1.1 (docs/protocol.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dlncheck.config import arrays

Weights = Sequence[torch.Tensor]


def _check_chain(weights: Weights, values: bool = True) -> list[torch.Tensor]:
    """The layer list, checked by :func:`dlncheck.config.arrays.layers` (named errors)."""
    return arrays.layers("weights", weights, values)


def _batch(weights: Sequence[torch.Tensor]) -> torch.Size:
    return torch.broadcast_shapes(*(W.shape[:-2] for W in weights))


def chain_product(mats: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """mats[-1] @ ... @ mats[0] (the DLN order, first factor applied first); None if empty.

    The empty chain stands for an identity whose size the caller knows (the saddle normal
    form multiplies residual blocks of varying ranges). Metadata only is checked (type, dtype,
    composing shapes, broadcasting batch axes; empty blocks allowed): it runs inside torch.func
    transforms, so non-finite entries are not looked for and propagate to the product.

    Parameters
    ----------
    mats : sequence of tensors (..., d_l, d_{l-1})
        The factors, first applied first.

    Returns
    -------
    tensor (..., d_last, d_0) or None
        The product, or None for an empty chain.
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

    Parameters
    ----------
    weights : sequence of L tensors (..., d_l, d_{l-1})
        The layers W_1..W_L, finite, composing (batched over leading axes).

    Returns
    -------
    dict of (i, j) -> tensor (..., d_j, d_{i-1})
    """
    weights = _check_chain(weights)
    products: dict[tuple[int, int], torch.Tensor] = {}
    for i in range(1, len(weights) + 1):
        products |= products_from(weights, i, checked=True)
    return products


def products_from(weights: Weights, i: int, checked: bool = False) -> dict[tuple[int, int], torch.Tensor]:
    """The partial products that start at layer ``i``, P_ij = W_j P_{i,j-1} for j = i..L.

    The same matmuls in the same order as :func:`partial_products`, which joins them over i: a
    caller that reduces each product (to its singular values, say) holds one chain at a time,
    L - i + 1 products instead of L(L+1)/2.

    Parameters
    ----------
    weights : sequence of L tensors (..., d_l, d_{l-1})
        The layers W_1..W_L, finite, composing (batched over leading axes).
    i : int
        The chain's first layer, 1..L (1-based, as in the protocol).
    checked : bool
        ``weights`` already passed the layer-list check (a caller looping over i).

    Returns
    -------
    dict of (i, j) -> tensor (..., d_j, d_{i-1}), j = i..L
    """
    weights = list(weights) if checked else _check_chain(weights)
    L, batch = len(weights), _batch(weights)
    if not 1 <= i <= L:
        raise ValueError(f"i={i!r} is invalid: the chain starts at a layer 1..{L}")
    P = weights[i - 1]
    products = {(i, i): P.expand(batch + P.shape[-2:])}
    for j in range(i + 1, L + 1):
        P = weights[j - 1] @ P
        products[(i, j)] = P.expand(batch + P.shape[-2:])
    arrays.finite_products("weights", ((f"P_{i}{j} = W_{j}...W_{i}", P) for (i, j), P in products.items()))
    return products


def prefix_suffix_products(weights: Weights) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """P[l] = W_{l-1}...W_1 (P[0] = I) and A[l] = W_L...W_{l+1} (A[L-1] = I), 0-based layers,
    batched over leading axes: the factors of dW/dW_l = A_l^T (.) P_l^T.

    A product that overflows the dtype is refused (named error).

    Parameters
    ----------
    weights : sequence of L tensors (..., d_l, d_{l-1})
        The layers W_1..W_L, finite and composing (checked).

    Returns
    -------
    P : list of L + 1 tensors
        Prefix products from the input side, P[L] = W_L...W_1.
    A : list of L tensors
        Suffix products from the output side.
    """
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
    """The network map W = W_L ... W_1, batched; an overflowing product is refused (named error).

    Parameters
    ----------
    weights : sequence of L tensors (..., d_l, d_{l-1})
        The layers W_1..W_L, finite and composing (checked).

    Returns
    -------
    tensor (..., d_L, d_0)
    """
    W = chain_product(_check_chain(weights))
    assert W is not None  # arrays.layers refuses an empty chain
    arrays.finite_products("weights", [("W_L...W_1", W)])
    return W
