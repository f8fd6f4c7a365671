"""Products of deep-linear-network weights: the chain W_L ... W_1, every partial product
P_ij = W_j ... W_i, and the prefix and suffix products of the layer gradients.

A layer list ``weights`` holds ``L`` tensors ``(..., d_l, d_{l-1})``, batched over any leading
dimensions; indices in formulas are 1-based as in the protocol (P_ij, i <= j). Source: protocol
section 1.1 (``shared/seeds/000_442b223873da0ef7.txt``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dlncheck.config import validation as check

Weights = Sequence[torch.Tensor]


def _check_chain(weights: Weights) -> None:
    check.layers("weights", weights)
    for k in range(1, len(weights)):
        below, above = weights[k - 1], weights[k]
        if above.shape[-1] != below.shape[-2]:
            raise ValueError(
                f"weights do not compose: W_{k + 1} has shape {tuple(above.shape)} and maps "
                f"from {above.shape[-1]} dims, but W_{k} outputs {below.shape[-2]}; layer l "
                "must have shape (..., d_l, d_{l-1})"
            )


def chain_product(mats: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """mats[-1] @ ... @ mats[0] (the DLN order, first factor applied first); None if empty.

    The empty chain stands for an identity whose size the caller knows (the saddle normal
    form multiplies residual blocks of varying ranges); no shape checks, any batch axes.

    Parameters
    ----------
    mats : sequence of tensors (..., d_l, d_{l-1})
        The factors, first applied first.

    Returns
    -------
    tensor (..., d_last, d_0) or None
        The product, or None for an empty chain.
    """
    out = None
    for A in mats:
        out = A if out is None else A @ out
    return out


def partial_products(weights: Weights) -> dict[tuple[int, int], torch.Tensor]:
    """All contiguous products P_ij = W_j ... W_i for 1 <= i <= j <= L (1-based keys).

    Built by extending each prefix one layer at a time, P_{i,j} = W_j P_{i,j-1}, so the
    L(L+1)/2 products cost L(L-1)/2 batched matmuls (protocol 1.1, step 2).

    Parameters
    ----------
    weights : sequence of L tensors (..., d_l, d_{l-1})
        The layers W_1..W_L, finite, composing (batched over leading axes).

    Returns
    -------
    dict of (i, j) -> tensor (..., d_j, d_{i-1})
    """
    _check_chain(weights)
    L = len(weights)
    products: dict[tuple[int, int], torch.Tensor] = {}
    for i in range(1, L + 1):
        P = weights[i - 1]
        products[(i, i)] = P
        for j in range(i + 1, L + 1):
            P = weights[j - 1] @ P
            products[(i, j)] = P
    return products


def prefix_suffix_products(weights: Weights) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """P[l] = W_{l-1}...W_1 (P[0] = I) and A[l] = W_L...W_{l+1} (A[L-1] = I), 0-based layers,
    batched over leading axes: the factors of dW/dW_l = A_l^T (.) P_l^T.

    Parameters
    ----------
    weights : sequence of L tensors (..., d_l, d_{l-1})
        The layers W_1..W_L (not checked: the callers' own products).

    Returns
    -------
    P : list of L + 1 tensors
        Prefix products from the input side, P[L] = W_L...W_1.
    A : list of L tensors
        Suffix products from the output side.
    """
    W = list(weights)
    P = [torch.eye(W[0].shape[-1], dtype=W[0].dtype, device=W[0].device)]
    for w in W:
        P.append(w @ P[-1])
    A = [torch.eye(W[-1].shape[-2], dtype=W[0].dtype, device=W[0].device)]
    for w in reversed(W[1:]):
        A.append(A[-1] @ w)
    return P, A[::-1]


def end_to_end(weights: Weights) -> torch.Tensor:
    """The network map W = W_L ... W_1, batched.

    Parameters
    ----------
    weights : sequence of L tensors (..., d_l, d_{l-1})
        The layers W_1..W_L, finite and composing (checked).

    Returns
    -------
    tensor (..., d_L, d_0)
    """
    _check_chain(weights)
    W = chain_product(weights)
    assert W is not None  # check.layers refuses an empty chain
    return W
