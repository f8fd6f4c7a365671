"""The reference PyTorch path: a segment of training steps for every (config, run) row, one
batched step at a time (about ten batched matmuls per step; :mod:`dlncheck.engine._fused` is the
C kernel doing the same arithmetic). With G the batch gradient of the end-to-end map
(:mod:`dlncheck.engine._step_loop`),

    W = W_L ... W_1,   dL/dW_l = (W_L...W_{l+1})^T G (W_{l-1}...W_1)^T,   W_l <- W_l - lr dL/dW_l.
"""

from __future__ import annotations

import torch

from dlncheck.engine._batches import MomentTable


def prefix_products(W: list[torch.Tensor]) -> list[torch.Tensor]:
    """prefix[l] = W_{l+1} ... W_1 (0-based layers), batched over rows."""
    prefix = [W[0]]
    for w in W[1:]:
        prefix.append(torch.bmm(w, prefix[-1]))
    return prefix


def _descend(W: list[torch.Tensor], prefix: list[torch.Tensor], G: torch.Tensor, lr) -> None:
    """W_l <- W_l - lr (W_L...W_{l+1})^T G (W_{l-1}...W_1)^T for all l (prefix[l] = W_{l+1}...W_1).

    lr: a float, or a (rows, 1, 1) tensor (then G is scaled first). Goes from the output side
    down, carrying back = (W_L...W_{l+1})^T G; each layer's backward product is taken before
    that layer is updated, so all layers step from the same weights."""
    if isinstance(lr, torch.Tensor):
        G, lr = G * lr, 1.0
    back = G
    for l in reversed(range(1, len(W))):
        below = torch.bmm(W[l].mT, back)
        W[l].baddbmm_(back, prefix[l - 1].mT, alpha=-lr)  # fused gradient product and update
        back = below
    W[0].sub_(back, alpha=lr)


def advance_torch(W, Syx, table: MomentTable, idx, lr, residual) -> None:
    """The reference path: len(idx) steps, one batched step at a time; residual[k] = ||W - Syx||_F
    before step k. idx (k, S, B): the SGD runs' batches; rows = configs x (1 + S). On anisotropic
    inputs (the only path that takes them) ``Syx`` is the least-squares map T and the residual is
    ||(W - T) Sxx^{1/2}||_F (dlncheck.config.data.Problem.residual)."""
    Sxx, N = table.moments(idx)
    configs = W[0].shape[0] // Sxx.shape[1]
    if configs > 1:
        Sxx = Sxx.repeat(1, configs, 1, 1)
        N = None if N is None else N.repeat(1, configs, 1, 1)
    for k in range(Sxx.shape[0]):
        prefix = prefix_products(W)
        error = prefix[-1] - Syx
        root = table.problem.root
        torch.linalg.vector_norm(error if root is None else error @ root, dim=(-2, -1), out=residual[k])
        G = torch.bmm(error, Sxx[k]) if N is None else torch.baddbmm(-N[k], error, Sxx[k])
        _descend(W, prefix, G, lr)
