"""Most negative Hessian eigenvalue of the loss 0.5 ||W_L...W_1 - M||_F^2 on the plateaus of a
decoupled ("aligned") DLN: the suite's own derivation, linking the plateaus of training to the
saddles of the landscape.

Decoupled point: W_l = Q_l diag(a_l) Q_{l-1}^T with orthonormal frames, Q_0 = V, Q_L = U (teacher
bases), mode alpha carrying layer scales a_{1,alpha}..a_{L,alpha}, strength u = prod_l a_l. The
Hessian splits into invariant blocks:

- mode block (L x L, perturbing each a_{l,alpha}): with p_i = prod_{l != i} a_l and
  p_ij = prod_{l != i,j} a_l, H_ij = p_i p_j - [i != j] (s - u) p_ij. Balanced (a_l = a):
  eigenvalues (s - u) a^{L-2} (L - 1 times) and a^{L-2} ((2L - 1) u - (L - 1) s).
- free-direction pairs (L = 2 only, a hidden direction h outside every mode's frame):
  dW_2 = e u_alpha h^T, dW_1 = d h v_alpha^T change W only at second order, by e d u_alpha v_alpha^T,
  so the block is [[0, -(s - u)], [-(s - u), 0]]: eigenvalues +-(s_alpha - u_alpha). For L >= 3 a
  free path needs all L layers: zero Hessian (eigenvalue 0).
- cross-mode blocks (alpha, beta): the entries (alpha <- beta), (beta <- alpha) of all layers; at
  L = 2 a learned alpha with an unlearned beta gives a_alpha^2 +- (s_beta - u_beta) > 0 when
  s_alpha > s_beta. :func:`decoupled_lambda_min` evaluates every pair block exactly
  (:func:`pair_block_min`), so it is the exact lambda_min at any decoupled point (checked against
  dense Hessians in tests/test_sgd_theory.py).

Consequences. At the exact rank-k saddle (u_alpha = s_alpha for alpha <= k, 0 beyond), L = 2:
lambda_min = -s_{k+1} (strict saddle, Baldi & Hornik 1989); L >= 3: every block is >= 0 with
zeros (the unlearned mode block is 0 at a = 0): a non-strict saddle, lambda_min = 0. On a GD
plateau the unlearned mode k+1 has a small scale a and lambda_min = a^{L-2} ((2L - 1) u - (L - 1) s)
~ -(L - 1) s_{k+1} a^{L-2} -> 0 for L >= 3, and -(s_{k+1} - u_{k+1}) for L = 2.
"""
from __future__ import annotations

import numpy as np
import torch


def mode_block(s: float, a) -> np.ndarray:
    """The L x L Hessian block of one mode with layer scales a (any signs): p_i p_j - [i!=j](s-u) p_ij."""
    a = np.asarray(a, dtype=np.float64)
    L = len(a)
    u = float(np.prod(a))
    p = np.array([np.prod(np.delete(a, i)) for i in range(L)])
    pij = np.array([[np.prod(np.delete(a, [i, j])) if i != j else 0.0 for j in range(L)] for i in range(L)])
    return np.outer(p, p) - (s - u) * pij


def pair_block_min(s_a: float, s_b: float, a, b, phantom: bool = False) -> float:
    """lambda_min of the invariant Hessian block of modes (alpha, beta) at a decoupled point.

    Restricted to the span of modes alpha, beta, every layer is a 2 x 2 matrix diag(a_l, b_l) and the
    loss is 0.5 ||prod_l W_l - diag(s_a, s_b)||^2; its Hessian over all 4L entries at the decoupled
    point is the block (second-order terms couple an (alpha <- beta) entry only with (beta <- alpha)
    entries, first-order terms only entries that reach the same end-to-end entry). ``phantom``: beta
    is a free hidden direction (no input/output component, b = 0): only the (alpha, alpha) loss
    entry exists and the first/last layers' beta columns/rows are absent."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    L = len(a)
    base = torch.zeros(L, 2, 2, dtype=torch.float64)
    base[:, 0, 0], base[:, 1, 1] = torch.from_numpy(a), torch.from_numpy(b)
    keep = torch.ones(L, 2, 2, dtype=torch.bool)
    if phantom:
        keep[0, :, 1] = False      # no phantom input
        keep[-1, 1, :] = False     # no phantom output
    target = torch.diag(torch.tensor([s_a, s_b], dtype=torch.float64))
    idx = torch.nonzero(keep.flatten()).flatten()

    def loss(theta):
        W = base.flatten().index_put((idx,), theta).view(L, 2, 2)
        P = W[0]
        for w in W[1:]:
            P = w @ P
        R = P - target
        return 0.5 * (R[0, 0] ** 2 if phantom else (R ** 2).sum())

    H = torch.func.hessian(loss)(base.flatten()[idx])
    return float(torch.linalg.eigvalsh(H)[0])


def decoupled_lambda_min(s, scales, free_hidden: bool) -> float:
    """Exact lambda_min of the Hessian at a decoupled point: the minimum over the invariant blocks of
    all mode pairs (:func:`pair_block_min`), and of each mode with a free hidden direction when
    ``free_hidden`` (a hidden layer wider than the number of modes). scales: (L, modes)."""
    scales = np.asarray(scales, dtype=np.float64)
    L, m = scales.shape
    s = np.concatenate([np.asarray(s, dtype=np.float64), np.zeros(max(0, m - len(s)))])[:m]
    values = [np.linalg.eigvalsh(mode_block(s[0], scales[:, 0]))[0]] if m == 1 else []
    for i in range(m):
        for j in range(i + 1, m):
            values.append(pair_block_min(s[i], s[j], scales[:, i], scales[:, j]))
        if free_hidden:
            values.append(pair_block_min(s[i], 0.0, scales[:, i], np.zeros(L), phantom=True))
    return float(min(values))


def saddle_lambda_min(s, k: int, depth: int) -> float:
    """lambda_min at the exact aligned rank-k saddle with a free hidden direction: -s_{k+1} for L = 2,
    0 for L >= 3 (non-strict); s sorted descending, k = number of learned modes."""
    s = np.asarray(s, dtype=np.float64)
    return -float(s[k]) if depth == 2 else 0.0


def mode_frames_from_input(weights, V: torch.Tensor, modes: int) -> list[torch.Tensor]:
    """Hidden frames Q_1..Q_{L-1} (full orthonormal, (d_l, d_l)): Gram-Schmidt of the images
    P_l v_alpha (alpha = 1..modes, in order) completed to a basis; signs follow the images."""
    frames, P = [], None
    for w in weights[:-1]:
        P = w if P is None else w @ P
        images = P @ V[:, :modes]
        d = images.shape[0]
        filler = torch.eye(d, dtype=images.dtype)
        q, r = torch.linalg.qr(torch.cat([images, filler], dim=1), mode="reduced")
        q = q[:, :d] * torch.sign(torch.diagonal(r)[:d] + (torch.diagonal(r)[:d] == 0))
        frames.append(q)
    return frames


def decoupled_projection(weights, U: torch.Tensor, V: torch.Tensor):
    """(scales (L, m), projected weights): a_{l,alpha} = q_{l,alpha}^T W_l q_{l-1,alpha} in the frames
    of :func:`mode_frames_from_input`, m = min(widths); the projection keeps only those diagonals."""
    W = [torch.as_tensor(w, dtype=torch.float64) for w in weights]
    m = min(min(w.shape) for w in W)
    frames = [V.double()] + mode_frames_from_input(W, V.double(), m) + [U.double()]
    scales = torch.stack([torch.diagonal(Q.T @ w @ Qp)[:m] for w, Q, Qp in zip(W, frames[1:], frames[:-1])])
    projected = [Q[:, :m] @ torch.diag(a) @ Qp[:, :m].T for a, Q, Qp in zip(scales, frames[1:], frames[:-1])]
    return scales.numpy(), projected


def gradient_norms(weights, M: torch.Tensor) -> torch.Tensor:
    """||grad theta 0.5 ||W_L...W_1 - M||^2|| for weights batched on leading axes, (...,)."""
    W = [torch.as_tensor(w, dtype=torch.float64) for w in weights]
    P = [torch.eye(W[0].shape[-1], dtype=torch.float64)]
    for w in W:
        P.append(w @ P[-1])
    back, total = P[-1] - M.double(), 0.0
    for l in reversed(range(len(W))):
        total = total + (back @ P[l].mT).pow(2).sum((-2, -1))
        back = W[l].mT @ back
    return total.sqrt()
