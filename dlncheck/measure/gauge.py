"""Gauge alignment: the hidden-layer orthogonal symmetry W_l -> Q_l W_l Q_{l-1}^T, solved by
alternating orthogonal Procrustes (Schoenemann 1966).

The loss depends on W = W_L ... W_1 only, so two weight lists that differ by a gauge are the
same network. :func:`procrustes_sweeps` is the one Procrustes solver of the project: GD-vs-SGD
parameter distances modulo the gauge (:func:`gauge_align`, protocol "Distance in parameter
space") and the diversity of sampled saddles (``saddles.diversity``) both call it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dlncheck.measure.compare import check_weights
from dlncheck.spectra import Weights


def polar(N: torch.Tensor) -> torch.Tensor:
    """argmax_{Q orthogonal} tr(Q^T N) = U V^T for N = U Sigma V^T (orthogonal Procrustes)."""
    U, _, Vh = torch.linalg.svd(N)
    return U @ Vh


def gauge_objective(gd: Weights, sgd: Weights) -> torch.Tensor:
    """sum_l ||G_l - B_l||_F^2 over the layers, batched."""
    return sum(torch.linalg.matrix_norm(G - B).square() for G, B in zip(gd, sgd))


def apply_gauge(sgd: Weights, Q: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """W_l -> Q_l W_l Q_{l-1}^T with Q_0 = Q_L = I (end-to-end map unchanged)."""
    L = len(sgd)
    out = []
    for l, W in enumerate(sgd, start=1):
        W = Q[l - 1] @ W if l < L else W
        out.append(W @ Q[l - 2].mT if l > 1 else W)
    return out


@dataclass(frozen=True)
class GaugeAlignment:
    """SGD weights moved to the gauge closest to GD, the hidden-layer rotations Q_1..Q_{L-1},
    and the Procrustes objective sum_l ||W_l,GD - Q_l W_l,SGD Q_{l-1}^T||_F^2 before/after."""

    weights: list[torch.Tensor]  # L tensors (R, ..., d_l, d_{l-1}); run 0 = GD unchanged
    Q: list[torch.Tensor]  # L-1 tensors (S, ..., d_l, d_l)
    objective_raw: torch.Tensor  # (S, ...)
    objective: torch.Tensor  # (S, ...)
    sweeps: int


def procrustes_sweeps(
    gd: list[torch.Tensor], sgd: list[torch.Tensor], Q: list[torch.Tensor], tol: torch.Tensor, max_sweeps: int
) -> tuple[list[torch.Tensor], torch.Tensor, int]:
    """Alternating Procrustes on a flat batch (n, ...): Q_l <- polar(G_l (B_l Q_{l-1}^T)^T +
    G_{l+1}^T Q_{l+1} B_{l+1}), l = 1..L-1. A problem leaves the active set once a sweep lowers
    its objective by less than ``tol`` (n,), so the cost follows the slow problems only."""
    L = len(gd)
    Q = [q.clone() for q in Q]
    objective = gauge_objective(gd, apply_gauge(sgd, Q))
    active = torch.arange(objective.shape[0], device=objective.device)
    sweeps = 0
    while active.numel() and sweeps < max_sweeps:
        sweeps += 1
        G, B = [x[active] for x in gd], [x[active] for x in sgd]
        q = [x[active] for x in Q]
        for l in range(1, L):
            left = B[0] if l == 1 else B[l - 1] @ q[l - 2].mT  # B_l Q_{l-1}^T
            right = B[l] if l + 1 == L else q[l] @ B[l]  # Q_{l+1} B_{l+1}
            q[l - 1] = polar(G[l - 1] @ left.mT + G[l].mT @ right)
        new = gauge_objective(G, apply_gauge(B, q))
        done = (objective[active] - new) <= tol[active]
        for full, part in zip(Q, q):
            full[active] = part
        objective[active] = new
        active = active[~done]
    return Q, objective, sweeps


def gauge_align(
    weights: Weights, max_sweeps: int = 50, rtol: float = 1e-8, start: Sequence[torch.Tensor] | None = None
) -> GaugeAlignment:
    """Align every SGD run to GD over the hidden-layer orthogonal gauge by alternating Procrustes.

    The loss depends on W = W_L ... W_1 only, so W_l -> Q_l W_l Q_{l-1}^T (Q_0 = Q_L = I,
    Q_l in O(d_l)) is a symmetry; the gauge-aligned distance is
    min_Q sum_l ||W_l,GD - Q_l W_l,SGD Q_{l-1}^T||_F^2. Block-coordinate descent: Q_l given the
    others is the orthogonal Procrustes solution (Schoenemann 1966), so no sweep increases the
    objective. The problem is non-convex, so three starts run side by side: identity (hence
    aligned <= raw always), a forward sweep fitting layer l alone from the input side and a
    backward sweep fitting layer l+1 alone from the output side; the best start wins per run
    and checkpoint. A pure gauge copy is recovered exactly when hidden widths do not grow
    from the input (forward start) or from the output (backward start); otherwise the result
    is a local optimum, i.e. an upper bound on the true gauge distance. A problem stops when
    a sweep lowers its objective by less than ``rtol`` times its raw objective.
    ``start`` (the ``Q`` of a previous alignment, shaped like this one's) replaces the forward
    and backward starts by a warm start beside the identity: along a trajectory the optimal
    rotations move little between checkpoints (:func:`gauge_align_path`).
    """
    if max_sweeps < 1:
        raise ValueError(f"max_sweeps must be >= 1, got {max_sweeps}; e.g. max_sweeps=50")
    check_weights(weights)
    L = len(weights)
    batch = weights[0].shape[1:-2]
    gd = [W[:1].expand_as(W[1:]).reshape(-1, *W.shape[-2:]) for W in weights]
    sgd = [W[1:].reshape(-1, *W.shape[-2:]) for W in weights]
    objective_raw = gauge_objective(gd, sgd)
    if L == 1:
        return GaugeAlignment(
            list(weights), [], objective_raw.reshape(-1, *batch), objective_raw.reshape(-1, *batch), 0
        )
    n = objective_raw.shape[0]
    eye = [torch.eye(B.shape[-2], dtype=B.dtype, device=B.device).expand(n, B.shape[-2], B.shape[-2]) for B in sgd[:-1]]
    if start is not None:
        if len(start) != L - 1:
            raise ValueError(f"start has {len(start)} rotations; pass the L-1 = {L - 1} Q of a previous alignment")
        starts_q = [eye, [q.reshape(n, *q.shape[-2:]).to(eye[0].dtype) for q in start]]
        return _finish(weights, gd, sgd, objective_raw, starts_q, rtol, max_sweeps, batch)
    forward, backward = list(eye), list(eye)
    for l in range(1, L):  # ||G_l - Q_l B_l Q_{l-1}^T|| alone
        left = sgd[0] if l == 1 else sgd[l - 1] @ forward[l - 2].mT
        forward[l - 1] = polar(gd[l - 1] @ left.mT)
    for l in range(L - 1, 0, -1):  # ||G_{l+1} - Q_{l+1} B_{l+1} Q_l^T||
        right = sgd[l] if l + 1 == L else backward[l] @ sgd[l]
        backward[l - 1] = polar(gd[l].mT @ right)
    return _finish(weights, gd, sgd, objective_raw, [eye, forward, backward], rtol, max_sweeps, batch)


def _finish(weights, gd, sgd, objective_raw, starts_q, rtol, max_sweeps, batch) -> GaugeAlignment:
    """Sweep every start side by side and keep the best per problem."""
    starts, n = len(starts_q), objective_raw.shape[0]
    Q, objective, sweeps = procrustes_sweeps(
        [G.repeat(starts, 1, 1) for G in gd],
        [B.repeat(starts, 1, 1) for B in sgd],
        [torch.cat(qs) for qs in zip(*starts_q)],
        rtol * objective_raw.repeat(starts),
        max_sweeps,
    )
    best = objective.reshape(starts, n).argmin(0)
    pick = best * n + torch.arange(n, device=best.device)
    Q = [q[pick] for q in Q]
    aligned = apply_gauge(sgd, Q)
    return GaugeAlignment(
        weights=[torch.cat([W[:1], A.reshape(W[1:].shape)]) for W, A in zip(weights, aligned)],
        Q=[q.reshape(-1, *batch, *q.shape[-2:]) for q in Q],
        objective_raw=objective_raw.reshape(-1, *batch),
        objective=objective[pick].reshape(-1, *batch),
        sweeps=sweeps,
    )


def gauge_align_path(weights: Weights, max_sweeps: int = 50, rtol: float = 1e-8) -> list[GaugeAlignment]:
    """:func:`gauge_align` at each checkpoint of ``weights`` (L tensors (R, K, d_l, d_{l-1})),
    the first from the three cold starts, each later one warm-started from the previous
    checkpoint's rotations (plus the identity). Pass only the checkpoints that are asserted or
    drawn: the cost is one alignment per checkpoint, and a warm start needs few sweeps."""
    check_weights(weights)
    out, start = [], None
    for k in range(weights[0].shape[1]):
        out.append(gauge_align([W[:, k] for W in weights], max_sweeps, rtol, start=start))
        start = out[-1].Q
    return out
