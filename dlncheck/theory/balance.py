"""Balance prediction: the final balance residual implied by the conserved D_l
(protocol "Balanced assumptions"; Arora, Cohen & Hazan 2018, Thm. 1).
"""
from __future__ import annotations

import torch


def balanced_residual_prediction(D0_norm: torch.Tensor, s: torch.Tensor, depth: int) -> torch.Tensor:
    """Final r_l predicted from the conserved D_l(0): ||D_l(0)||_F / (2 (sum_a s_a^{4/L})^{1/2}).

    At convergence to a teacher with nonzero singular values s_a, balanced layers carry
    singular values s_a^{1/L}, so ||W_l W_l^T||_F = (sum_a s_a^{4/L})^{1/2} for each layer;
    D_l is conserved by the flow, so r_l(T) ~ ||D_l(0)||_F over twice that norm.
    """
    if depth < 2:
        raise ValueError(f"depth must be >= 2, got {depth}")
    s = s[s > 0]
    return D0_norm / (2 * torch.sqrt((s ** (4 / depth)).sum()))
