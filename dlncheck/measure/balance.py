"""Balance of adjacent layers: D_l = W_{l+1}^T W_{l+1} - W_l W_l^T, its relative residual and
the exact discrete drift identity of GD/SGD (protocol "Balanced assumptions"; Arora, Cohen &
Hazan 2018, Thm. 1). The prediction of the final residual is
:func:`dlncheck.theory.balanced_residual_prediction`.

Pure functions of torch tensors, batched over leading axes; a layer list holds L tensors
``(..., d_l, d_{l-1})``.
"""

from __future__ import annotations

import torch

from dlncheck.config import arrays
from dlncheck.measure.stats import safe_ratio
from dlncheck.spectra import Weights


def frobenius(A: torch.Tensor) -> torch.Tensor:
    """||A||_F over the last two axes."""
    return torch.linalg.matrix_norm(A, "fro")


def check_depth(weights: Weights, what: str) -> None:
    """Raise ValueError unless ``weights`` hold >= 2 composing, finite layers."""
    if len(weights) < 2:
        raise ValueError(
            f"{what} needs at least 2 layers (adjacent pairs), got {len(weights)}; pass the full list [W_1, ..., W_L]"
        )
    arrays.layers("weights", weights)  # shape / finiteness checks with actionable messages, no product formed


def balance_matrices(weights: Weights) -> list[torch.Tensor]:
    """D_l = W_{l+1}^T W_{l+1} - W_l W_l^T for l = 1..L-1, each (..., d_l, d_l).

    Conserved by gradient flow on any loss of the product W_L...W_1 (Arora et al. 2018,
    Thm. 1); the protocol's balance matrix is -D_l.
    """
    check_depth(weights, "balance_matrices")
    return [Wn.transpose(-1, -2) @ Wn - W @ W.transpose(-1, -2) for W, Wn in zip(weights[:-1], weights[1:])]


def balance_residuals(weights: Weights) -> torch.Tensor:
    """r_l = ||W_l W_l^T - W_{l+1}^T W_{l+1}||_F / (||W_l W_l^T||_F + ||W_{l+1}^T W_{l+1}||_F).

    Shape (..., L-1), entry l-1 for the pair (l, l+1); in [0, 1], invariant to scaling all
    layers by one constant, 0 for exactly balanced weights (protocol "Balanced assumptions").
    Each Gram matrix is formed once and serves both the difference and the scale.
    """
    check_depth(weights, "balance_residuals")
    pairs = _gram_pairs(weights)
    D = torch.stack([frobenius(after - before) for before, after in pairs], dim=-1)
    return safe_ratio(D, _scales(pairs))


def _gram_pairs(weights: Weights) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(W_l W_l^T, W_{l+1}^T W_{l+1}) per adjacent pair."""
    return [(W @ W.transpose(-1, -2), Wn.transpose(-1, -2) @ Wn) for W, Wn in zip(weights[:-1], weights[1:])]


def _scales(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """||W_l W_l^T||_F + ||W_{l+1}^T W_{l+1}||_F per pair, (..., L-1)."""
    return torch.stack([frobenius(before) + frobenius(after) for before, after in pairs], dim=-1)


def discrete_drift(updates: Weights) -> list[torch.Tensor]:
    """Exact one-step change of D_l under W_l <- W_l + Delta_l with product-gradient updates.

    With Delta_l = -lr G_l and G_l the gradient of a loss of the product, the first-order
    terms cancel (W_{l+1}^T G_{l+1} = G_l W_l^T), leaving
    D_l(k+1) - D_l(k) = Delta_{l+1}^T Delta_{l+1} - Delta_l Delta_l^T
                     = lr^2 (G_{l+1}^T G_{l+1} - G_l G_l^T).
    Holds for full-batch GD and for SGD (each step is the gradient of a mini-batch loss).
    """
    return balance_matrices(updates)


def drift_identity(weights: Weights) -> dict[str, torch.Tensor]:
    """Check the accumulated discrete-drift identity along consecutive steps.

    ``weights`` hold layers at K consecutive optimizer steps on the time axis:
    (..., K, d_l, d_{l-1}). Returns, per pair (..., L-1):
      ``error``: max_k ||D_l(k) - D_l(0) - sum_{j<k} drift_l(j)||_F / max_k scale_l(k),
                 scale_l = ||W_l W_l^T||_F + ||W_{l+1}^T W_{l+1}||_F (relative error);
      ``D0``:    ||D_l(0)||_F;
      ``drift``: (..., K, L-1) accumulated sum_{j<k} ||drift_l(j)||_F (the bound's increment);
      ``bound``: (..., K, L-1) (||D_l(0)||_F + drift) / scale_l(k), an upper bound on
                 r_l(k) implied by the identity through the triangle inequality.
    """
    check_depth(weights, "drift_identity")
    if weights[0].ndim < 3 or weights[0].shape[-3] < 2:
        raise ValueError(
            "drift_identity needs at least 2 consecutive steps on axis -3 "
            "(..., K, d_l, d_{l-1}); checkpoint every step of a window"
        )
    updates = [W[..., 1:, :, :] - W[..., :-1, :, :] for W in weights]
    steps = discrete_drift(updates)  # (..., K-1, d, d)
    D = balance_matrices(weights)  # (..., K, d, d)
    scale = _scales(_gram_pairs(weights))  # (..., K, L-1)
    errors, drifts = [], []
    for D_l, step_l in zip(D, steps):
        predicted = torch.cumsum(step_l, dim=-3)
        errors.append(frobenius(D_l[..., 1:, :, :] - D_l[..., :1, :, :] - predicted).amax(-1))
        acc = torch.cumsum(frobenius(step_l), dim=-1)
        drifts.append(torch.cat([torch.zeros_like(acc[..., :1]), acc], dim=-1))
    drift = torch.stack(drifts, dim=-1)
    D0 = torch.stack([frobenius(D_l[..., 0, :, :]) for D_l in D], dim=-1)
    return {
        "error": torch.stack(errors, dim=-1) / scale.amax(-2),
        "D0": D0,
        "drift": drift,
        "bound": safe_ratio(D0.unsqueeze(-2) + drift, scale),
    }
