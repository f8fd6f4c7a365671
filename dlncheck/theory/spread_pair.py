"""The second-order term of SGD's spread under epoch reshuffling that the first-order LNA
(dlncheck.theory.spread) leaves out, at the same order lr^3 in variance.

Within an epoch SGD's deviation from GD carries the displacement w_k = -lr sum_{j<k} sum_i' a_ji' g_i'
of the epoch's earlier batches; the batch-gradient noise evaluated there differs from that at GD's
point by -lr sum_i a_ki H_i w_k (H_i the per-sample Hessian). Read through the adjoint lambda
(theory.spread item 2), with the path frozen over the epoch (error O(lr m) relative):

    Y1 = -lr sum_k a_k . z_k                  (the LNA: exact law, theory.spread.path_covariance)
    Y2 = lr^2 sum_{j<k} a_k^T Q a_j,          Q_ii' = lambda^T H_i g_i'

and the epoch adds Var(Y1 + Y2) = Var(Y1) + Var(Y2) + 2 Cov(Y1, Y2). A frozen path makes Y1 ~ 0
at every epoch's end while Y2 does not vanish: it is the multiplicative noise acting on the zero-sum
bridge, so its variance (lr^4 per epoch, lr^3 over t / (lr m) epochs) has the LNA's order. Neglected:
the drift's curvature on w (lr^3 m^2 per epoch, O(lr m) smaller), the change of z and Q within the
epoch beyond Y1 (O(lr m) relative; Q is frozen over the longest epoch of the batch sizes asked), and
the drift's curvature on the accumulated deviation (theory.spread item 5). Var(Y2) and Cov(Y1, Y2)
need fourth and third moments of a uniform balanced partition; they are estimated by Monte-Carlo
over ``draws`` shuffles per epoch (independent across epochs: the relative error of the path sum
is ~ sqrt(2 / (draws x epochs))).

Q for l (layers, 0-based) with A_l, P_l the products above and below layer l, K-blocks
AA_l = A_l A_l^T, PP_l = P_l^T P_l, r_i = (W - M) x_i, Omega = J_W lambda:
    lambda^T H_i v = <Omega x_i, (J_W v) x_i> + <d^2 W[lambda, v], r_i x_i^T>,  v = g_i',
    first part: sum_l (x_i^T Omega^T AA_l r_i') (x_i'^T PP_l x_i),
    second part, pairs l < m: (r_i^T AA_m r_i') (x_i'^T P_m^T Mid(m, l) lambda_l P_l x_i),
                 pairs l > m: (r_i^T A_l lambda_l Mid(l, m) A_m^T r_i') (x_i'^T PP_m x_i),
Mid(a, b) = W_{a-1} ... W_{b+1} (identity when a = b + 1).
"""

from __future__ import annotations

import numpy as np
import torch

from dlncheck.spectra import prefix_suffix_products


def _mid(W, a: int, b: int) -> torch.Tensor:
    out = torch.eye(W[b].shape[0], dtype=W[0].dtype)
    for l in range(b + 1, a):
        out = W[l] @ out
    return out


def pair_matrix(W, M: torch.Tensor, X: torch.Tensor, lam) -> torch.Tensor:
    """Q (J, n, n), Q[j, i, i'] = lambda_j^T H_i g_i' for adjoints lam (list of (J, *W_l.shape))."""
    L = len(W)
    P, A = prefix_suffix_products(W)
    R = (P[L] - M) @ X  # (d_out, n)
    omega = sum(A[l] @ lam[l] @ P[l] for l in range(L))  # (J, d_out, d_in)
    AA = [A[l] @ A[l].mT for l in range(L)]
    PP = [X.mT @ P[l].mT @ P[l] @ X for l in range(L)]  # (n, n), symmetric
    Q = sum((X.mT @ omega.mT @ AA[l] @ R) * PP[l] for l in range(L))
    for l in range(L):
        for m in range(L):
            if l < m:
                phi = P[m].mT @ _mid(W, m, l) @ lam[l] @ P[l]  # (J, d_in, d_in)
                Q = Q + (R.mT @ AA[m] @ R) * (X.mT @ phi @ X).mT
            elif l > m:
                psi = A[l] @ lam[l] @ _mid(W, l, m) @ A[m].mT  # (J, d_out, d_out)
                Q = Q + (R.mT @ psi @ R) * PP[m]
    return Q


def epoch_pair_covariance(z, Q, n: int, B: int, lr: float, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Monte-Carlo Cov(Y2) + Cov(Y1, Y2) + Cov(Y2, Y1) (module docstring) summed over a batch of
    epochs, (J, J): z (E, J, steps <= n // B, n) the first-order projections of each epoch's steps,
    Q (E, J, n, n) its pair matrix; ``draws`` independent shuffles per epoch."""
    z, Q = torch.as_tensor(z, dtype=torch.float64), torch.as_tensor(Q, dtype=torch.float64)
    E, J, used, _ = z.shape
    perms = np.argsort(rng.random((E, draws, n)), axis=-1)
    batch_of = np.empty((E, draws, n), dtype=np.int64)
    np.put_along_axis(batch_of, perms, np.arange(n) // B, axis=-1)  # n // B for dropped positions
    a = torch.as_tensor((batch_of[:, :, None, :] == np.arange(used)[:, None]) / B - 1 / n)  # (E, D, used, n)
    c = torch.cumsum(a, dim=2) - a  # sum_{j<k} a_j
    y1 = -lr * torch.einsum("edkn,ejkn->edj", a, z)
    aQ = a.reshape(E, 1, -1, n) @ Q  # (E, J, D * used, n)
    y2 = lr**2 * (aQ * c.reshape(E, 1, -1, n)).reshape(E, J, draws, -1).sum(-1).mT  # (E, D, J)
    y1c, y2c = y1 - y1.mean(1, keepdim=True), y2 - y2.mean(1, keepdim=True)
    cross = (y1c.mT @ y2c).sum(0) / (draws - 1)
    return ((y2c.mT @ y2c).sum(0) / (draws - 1) + cross + cross.T).numpy()
