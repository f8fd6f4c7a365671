"""Refinement on the true DLN loss (protocol section 2, optional step).

Gradient descent W_l <- W_l - lr dL/dW_l on L = 0.5 ||W_L...W_1 - M||_F^2, batched over a leading
chain axis, re-balancing every `rebalance_every` steps by W_l <- (g / ||W_l||_F) W_l with
g = (prod_l ||W_l||_F)^{1/L} (the product is unchanged; the scalar gauge drift is removed).
Reports, per chain, the gradient norm and the relative change of the end-to-end map.
"""

from __future__ import annotations

from typing import cast

import pandas as pd
import torch

from dlncheck.saddles.normal_form import chain_product


def _product(W: list[torch.Tensor]) -> torch.Tensor:
    P = chain_product(W)
    if P is None:
        raise ValueError("W must hold at least one layer")
    return P


def _loss_and_grads(W, M):
    W = [w.detach().requires_grad_(True) for w in W]
    loss = 0.5 * ((_product(W) - M) ** 2).sum((-2, -1))
    return loss.detach(), [g.detach() for g in torch.autograd.grad(loss.sum(), W)]


def _grad_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    return torch.sqrt(cast(torch.Tensor, sum((g**2).sum((-2, -1)) for g in grads)))


def rebalance(W):
    """Scale layers to equal Frobenius norm, keeping their product (layers with norm 0 are left alone)."""
    norms = [torch.linalg.matrix_norm(w) for w in W]
    if any(bool((n == 0).any()) for n in norms):
        return list(W)
    g = torch.exp(cast(torch.Tensor, sum(torch.log(n) for n in norms)) / len(W))
    return [w * (g / n)[..., None, None] for w, n in zip(W, norms)]


def refine(W, M, *, steps: int = 200, lr: float = 1e-2, rebalance_every: int = 50):
    """Short GD from weights W (list of (C, d_l, d_{l-1})); returns (refined W, per-chain DataFrame)."""
    if steps < 0 or lr <= 0 or rebalance_every < 1:
        raise ValueError(f"steps={steps} (>= 0), lr={lr} (> 0), rebalance_every={rebalance_every} (>= 1) out of range")
    M = torch.as_tensor(M, dtype=W[0].dtype)
    P0 = _product(W).detach()
    loss0, grads = _loss_and_grads(W, M)
    g0 = _grad_norm(grads)
    W = [w.detach().clone() for w in W]
    for t in range(steps):
        loss, grads = _loss_and_grads(W, M)
        if not torch.isfinite(loss).all():
            raise FloatingPointError(f"refinement diverged at step {t} with lr={lr}; lower lr")
        W = [w - lr * g for w, g in zip(W, grads)]
        if (t + 1) % rebalance_every == 0:
            W = rebalance(W)
    loss1, grads = _loss_and_grads(W, M)
    P1 = _product(W)
    change = torch.linalg.matrix_norm(P1 - P0) / torch.linalg.matrix_norm(P0).clamp_min(torch.finfo(P0.dtype).tiny)
    report = pd.DataFrame(
        {
            "chain": range(len(loss0)),
            "loss_before": loss0.tolist(),
            "loss_after": loss1.tolist(),
            "grad_norm_before": g0.tolist(),
            "grad_norm_after": _grad_norm(grads).tolist(),
            "map_change": change.tolist(),
        }
    )
    return W, report
