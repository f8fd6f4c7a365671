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
  (:func:`pair_block_mins`), so it is the exact lambda_min at any decoupled point (checked against
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


def chain_hessian(W: np.ndarray, R_weight: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Hessian of 0.5 sum_ij w_ij ((W_L...W_1 - T)_ij)^2 over all entries of the chain, batched:
    W (n, L, k, k), w (k, k) 0/1 entry mask, T (n, k, k) -> (n, L k^2, L k^2).

    H = J^T diag(w) J + sum_ij w_ij R_ij d^2 P_ij, with dP/dW_l[p,q] = A_l[:, p] B_l[q, :],
    d^2 P / dW_l[p,q] dW_m[p',q'] = A_m[:, p'] C_ml[q', p] B_l[q, :] (l < m), A_l = W_L..W_{l+1},
    B_l = W_{l-1}..W_1, C_ml = W_{m-1}..W_{l+1}."""
    n, L, k, _ = W.shape
    eye = np.broadcast_to(np.eye(k), (n, k, k))

    def prod(lo, hi):  # W_{hi-1} ... W_lo (0-based, empty = I)
        out = eye
        for l in range(lo, hi):
            out = W[:, l] @ out
        return out

    A = [prod(l + 1, L) for l in range(L)]
    B = [prod(0, l) for l in range(L)]
    R = (prod(0, L) - target) * R_weight
    J = np.stack([np.einsum("nip,nqj->nijpq", A[l], B[l]) for l in range(L)], axis=3)  # (n,k,k,L,k,k)
    Jw = J * R_weight[None, :, :, None, None, None]
    J = J.reshape(n, k * k, L * k * k)
    H = np.einsum("nea,neb->nab", Jw.reshape(n, k * k, -1), J)
    H = H.reshape(n, L, k, k, L, k, k)
    for l in range(L):
        for m in range(l + 1, L):
            C = prod(l + 1, m)
            block = np.einsum("nij,nip,nqr,nsj->npqrs", R, A[m], C, B[l])  # (p', q', p, q) order below
            # block[n, p', q', ...]: A_m[i,p'] C[q',p] B_l[q,j] R[i,j] -> index (m,p',q'), (l,p,q)
            H[:, m, :, :, l, :, :] += block
            H[:, l, :, :, m, :, :] += block.transpose(0, 3, 4, 1, 2)
    return H.reshape(n, L * k * k, L * k * k)


def pair_block_mins(s_a, s_b, a, b, phantom: bool = False) -> np.ndarray:
    """lambda_min of the invariant Hessian blocks of mode pairs (alpha, beta) at a decoupled point,
    batched over pairs: s_a, s_b (P,), a, b (P, L).

    Restricted to the span of modes alpha, beta, every layer is a 2 x 2 matrix diag(a_l, b_l) and the
    loss is 0.5 ||prod_l W_l - diag(s_a, s_b)||^2; its Hessian over all 4L entries at the decoupled
    point is the block (second-order terms couple an (alpha <- beta) entry only with (beta <- alpha)
    entries, first-order terms only entries that reach the same end-to-end entry). ``phantom``: beta
    is a free hidden direction (no input/output component, b = 0): only the (alpha, alpha) loss
    entry exists and the first/last layers' beta columns/rows are absent."""
    a, b = np.atleast_2d(np.asarray(a, dtype=np.float64)), np.atleast_2d(np.asarray(b, dtype=np.float64))
    n, L = a.shape
    W = np.zeros((n, L, 2, 2))
    W[..., 0, 0], W[..., 1, 1] = a, b
    target = np.zeros((n, 2, 2))
    target[:, 0, 0], target[:, 1, 1] = s_a, s_b
    weight = np.array([[1.0, 0.0], [0.0, 0.0]]) if phantom else np.ones((2, 2))
    H = chain_hessian(W, weight, target)
    if phantom:
        keep = np.ones((L, 2, 2), dtype=bool)
        keep[0, :, 1] = False  # no phantom input
        keep[-1, 1, :] = False  # no phantom output
        idx = np.flatnonzero(keep)
        H = H[:, idx][:, :, idx]
    return np.linalg.eigvalsh(H)[:, 0]


def decoupled_lambda_min(s, scales, free_hidden: bool) -> float:
    """Exact lambda_min of the Hessian at a decoupled point: the minimum over the invariant blocks of
    all mode pairs (:func:`pair_block_mins`), and of each mode with a free hidden direction when
    ``free_hidden`` (a hidden layer wider than the number of modes). scales: (L, modes)."""
    scales = np.asarray(scales, dtype=np.float64)
    L, m = scales.shape
    s = np.concatenate([np.asarray(s, dtype=np.float64), np.zeros(max(0, m - len(s)))])[:m]
    values = [np.linalg.eigvalsh(mode_block(s[0], scales[:, 0]))[0]] if m == 1 else []
    i, j = np.triu_indices(m, 1)
    if len(i):
        values.extend(pair_block_mins(s[i], s[j], scales[:, i].T, scales[:, j].T))
    if free_hidden:
        values.extend(pair_block_mins(s, np.zeros(m), scales.T, np.zeros((m, L)), phantom=True))
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


def gradient_norms(weights, M: torch.Tensor, sxx: torch.Tensor | None = None) -> torch.Tensor:
    """||grad theta 0.5 ||(W_L...W_1 - M) Sxx^{1/2}||^2|| for weights batched on leading axes, (...,);
    ``sxx`` None: whitened inputs (Sxx = I). The loss's gradient in W is (W - M) Sxx."""
    W = [torch.as_tensor(w, dtype=torch.float64) for w in weights]
    P = [torch.eye(W[0].shape[-1], dtype=torch.float64)]
    for w in W:
        P.append(w @ P[-1])
    back = P[-1] - M.double() if sxx is None else (P[-1] - M.double()) @ sxx.double()
    total = torch.zeros((), dtype=torch.float64)
    for l in reversed(range(len(W))):
        total = total + (back @ P[l].mT).pow(2).sum((-2, -1))
        back = W[l].mT @ back
    return total.sqrt()
