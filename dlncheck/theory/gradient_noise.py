"""Moments of the engine's minibatch gradient noise at a minimum, and the quantities they drive.

The engine's batch gradient of the end-to-end map is G_b = (W - Syx) Sxx_b - N_b with the
label-noise moment N_b = (1/B) sum_{k in b} e_k x_k^T, e_k = y_k - Syx x_k (so sum_k e_k x_k^T = 0).
A batch is a uniform B-subset of the n samples (epoch-wise reshuffling), so for any matrices
P (d_out x d_out), Q (d_in x d_in), sampling without replacement gives exactly

    E[N_b] = 0,   E[N_b^T P N_b] = f (1/n) sum_k (e_k^T P e_k) x_k x_k^T,
                  E[N_b Q N_b^T] = f (1/n) sum_k (x_k^T Q x_k) e_k e_k^T,
    f = (n - B) / (B (n - 1))                       (finite-population factor),

because the off-diagonal pairs of a subset contribute (B-1)/(n-1) times
sum_{k != j} = (sum_k e_k x_k^T)^T P (sum_j e_j x_j^T) - diagonal = - diagonal.
At a minimum G_b = -N_b + O(W - Syx); every function here keeps only the N_b part.
"""

from __future__ import annotations

import torch

from dlncheck.config.data import Problem, make_problem
from dlncheck.config.experiment import Experiment


def minibatch_factor(n: int, batch_size: int) -> float:
    """c_B = (n - B) / (B (n - 1)): variance of a without-replacement batch mean over the population
    variance (Cochran 1977, Sampling Techniques, Thm 2.2); 0 for the full batch (B = n, n = 1 included),
    1 for B = 1 < n. The project's one definition of the minibatch noise factor."""
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size={batch_size} with n_samples={n} is invalid: use 1 <= batch_size <= n_samples")
    return 0.0 if batch_size == n else (n - batch_size) / (batch_size * (n - 1))


def residuals(problem: Problem) -> torch.Tensor:
    """e_k = y_k - Syx x_k, (d_out, n): the part of the labels no linear map fits."""
    return problem.Y - problem.Syx @ problem.X


def input_moment(problem: Problem, P: torch.Tensor | None = None) -> torch.Tensor:
    """(1/n) sum_k (e_k^T P e_k) x_k x_k^T, (..., d_in, d_in); P (..., d_out, d_out), default I."""
    E, X = residuals(problem), problem.X
    w = E.pow(2).sum(0) if P is None else torch.einsum("ik,...ij,jk->...k", E, P, E)
    return torch.einsum("...k,ik,jk->...ij", w, X, X) / X.shape[1]


def output_moment(problem: Problem, Q: torch.Tensor | None = None) -> torch.Tensor:
    """(1/n) sum_k (x_k^T Q x_k) e_k e_k^T, (..., d_out, d_out); Q (..., d_in, d_in), default I."""
    E, X = residuals(problem), problem.X
    w = X.pow(2).sum(0) if Q is None else torch.einsum("ik,...ij,jk->...k", X, Q, X)
    return torch.einsum("...k,ik,jk->...ij", w, E, E) / X.shape[1]


def _chain(layers, d: int, like: torch.Tensor) -> torch.Tensor:
    """layers[-1] @ ... @ layers[0], or the d x d identity (batched like ``like``) for no layers."""
    out = torch.eye(d, dtype=like.dtype, device=like.device).expand(*like.shape[:-2], d, d)
    for W in layers:
        out = W @ out
    return out


def _above_below(weights, l: int):
    """For the pair (l, l+1), 1-based: W_L ... W_{l+2} (above it) and W_{l-1} ... W_1 (below it)."""
    return (
        _chain(weights[l + 1 :], weights[l].shape[-2], weights[0]),
        _chain(weights[: l - 1], weights[0].shape[-1], weights[0]),
    )


def _kernel_factors(weights) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(A_l A_l^T, B_l^T B_l) for l = 1..L, A_l = W_L..W_{l+1}, B_l = W_{l-1}..W_1: the tangent kernel
    K(G) = sum_l A_l A_l^T G B_l^T B_l of the end-to-end map."""
    out = []
    for l in range(len(weights)):
        A = _chain(weights[l + 1 :], weights[l].shape[-2], weights[0])
        B = _chain(weights[:l], weights[0].shape[-1], weights[0])
        out.append((A @ A.mT, B.mT @ B))
    return out


def gradient_moments(weights, problem: Problem, f: float, P: torch.Tensor, Q: torch.Tensor, lr: float = 0.0):
    """(E[G^T P G], E[G Q G^T]) of the batch gradient at a minimum under epoch reshuffling.

    G_j = Delta_j Sxx_j - N_j, and within an epoch Delta_j = Delta_0 + lr sum_{i<j} K(N_i) + ...
    with E[N_j (x) N_i] = -E_same[N (x) N] / (m-1) for i != j; averaging j/(m-1) over the epoch (1/2):
        E[G^T P G] = f Ahat(P) + (lr/2)(X + X^T),  X = f sum_l Ahat(P A_l A_l^T) B_l^T B_l,
        E[G Q G^T] = f Bhat(Q) + (lr/2)(Y + Y^T),  Y = f sum_l A_l A_l^T Bhat(B_l^T B_l Q),
    dropping O(E||Delta||^2) (relative (lr lambda)^2). lr = 0 gives the independent-batch moments."""
    GPG, GQG = f * input_moment(problem, P), f * output_moment(problem, Q)
    if lr:
        for AA, BB in _kernel_factors(weights):
            X = f * input_moment(problem, P @ AA) @ BB
            Y = f * AA @ output_moment(problem, BB @ Q)
            GPG = GPG + 0.5 * lr * (X + X.mT)
            GQG = GQG + 0.5 * lr * (Y + Y.mT)
    return GPG, GQG


def expected_balance_drift(
    weights, experiment: Experiment, problem: Problem | None = None, reshuffled: bool = True
) -> list[torch.Tensor]:
    """E[D_l(k+1) - D_l(k)] / lr^2 at a minimum, per pair l = 1..L-1, each (..., d_l, d_l).

    D_l = W_{l+1}^T W_{l+1} - W_l W_l^T moves by lr^2 (g_{l+1}^T g_{l+1} - g_l g_l^T) per step
    (dlncheck.measure.balance.discrete_drift), g_l = A_l^T G B_l^T with A_l = W_L..W_{l+1},
    B_l = W_{l-1}..W_1, so
        E = B_{l+1} E[G^T A_{l+1} A_{l+1}^T G] B_{l+1}^T - A_l^T E[G B_l^T B_l G^T] A_l
    with the moments of :func:`gradient_moments` (``reshuffled``: the engine's epoch reshuffling,
    first order in lr; else independent batches). This is the noise ("Ito") drift behind the law of
    balance of Ziyin, Li & Ueda (arXiv:2308.06671): zero at the noise-balanced point.
    """
    problem = problem or make_problem(experiment)
    f = minibatch_factor(experiment.n_samples, experiment.batch_size)
    lr = experiment.lr if reshuffled else 0.0
    out = []
    for l in range(1, len(weights)):
        A_next, B_l = _above_below(weights, l)  # A_{l+1} = W_L..W_{l+2}, B_l = W_{l-1}..W_1
        A_l, B_next = A_next @ weights[l], weights[l - 1] @ B_l
        GPG, GQG = gradient_moments(weights, problem, f, A_next @ A_next.mT, B_l.mT @ B_l, lr)
        out.append(B_next @ GPG @ B_next.mT - A_l.mT @ GQG @ A_l)
    return out


def logdet_rate(
    weights, experiment: Experiment, pair: int = 1, problem: Problem | None = None, reshuffled: bool = True
) -> torch.Tensor:
    """Expected d/dt log det(Theta_l^T Theta_l) per unit time t = lr * step at a minimum, (...).

    Theta_l = [W_l, W_{l+1}^T] (d_l x (d_{l-1} + d_{l+1})). One engine step is exactly
    Theta <- Theta (I - lr J), J = [[0, Gt^T], [Gt, 0]], Gt = A^T G B^T (A = W_L..W_{l+2},
    B = W_{l-1}..W_1), since both layers step from the same weights. J's eigenvalues are
    +-sigma_i(Gt), so log det changes by exactly 2 sum_i log(1 - lr^2 sigma_i(Gt)^2) per step
    (Varre, Sagitova & Flammarion, NeurIPS 2024: gradient flow conserves this determinant,
    label-noise SGD shrinks it). To leading order in lr^2 ||Gt||^2 this is -2 lr^2 ||Gt||_F^2,
    E||Gt||^2 = tr(E[G^T A A^T G] B^T B) (:func:`gradient_moments`), so the rate per unit time is
    -2 lr tr(E[G^T A A^T G] B^T B); with independent batches at the minimum
    -2 lr f (1/n) sum_k (e_k^T A A^T e_k)(x_k^T B^T B x_k).
    """
    if not 1 <= pair < len(weights):
        raise ValueError(f"pair={pair} is invalid: use 1 <= pair <= L-1 = {len(weights) - 1}")
    problem = problem or make_problem(experiment)
    f = minibatch_factor(experiment.n_samples, experiment.batch_size)
    A, B = _above_below(weights, pair)
    BB = B.mT @ B
    GPG, _ = gradient_moments(weights, problem, f, A @ A.mT, BB, experiment.lr if reshuffled else 0.0)
    return -2 * experiment.lr * (GPG * BB).sum((-2, -1))


def mode_noise(problem: Problem, U: torch.Tensor, V: torch.Tensor, n: int, batch_size: int) -> torch.Tensor:
    """Var of (U^T N_b V)_{ab} over batches, (k, k) for k columns of U and V:
    f (1/n) sum_k (u_a^T e_k)^2 (v_b^T x_k)^2 (population mean of each entry is 0)."""
    E, X = residuals(problem), problem.X
    ue, vx = U.mT @ E, V.mT @ X
    return minibatch_factor(n, batch_size) * torch.einsum("ak,bk->ab", ue.pow(2), vx.pow(2)) / X.shape[1]


def input_noise(problem: Problem, V: torch.Tensor, n: int, batch_size: int) -> torch.Tensor:
    """q_ab = Var of (V^T Sxx_b V)_ab over batches, (k, k): f ((1/n) sum_k (v_a^T x_k)^2 (v_b^T x_k)^2 - delta_ab)
    (whitened inputs: the population mean of (V^T x x^T V)_ab is delta_ab).

    The multiplicative noise: without label noise G_b = (W - M) Sxx_b, so an aligned mode's gradient
    entry is (u - s)(V^T Sxx_b V)_aa, of mean (u - s) and variance (u - s)^2 q_aa."""
    vx = V.mT @ problem.X
    fourth = torch.einsum("ak,bk->ab", vx.pow(2), vx.pow(2)) / vx.shape[1]
    return minibatch_factor(n, batch_size) * (fourth - torch.eye(vx.shape[0], dtype=vx.dtype, device=vx.device))


def noise_input_moment(problem: Problem, U: torch.Tensor, V: torch.Tensor, n: int, batch_size: int) -> torch.Tensor:
    """E[(U^T N_b V)_ab (V^T Sxx_b V)_ba] over batches, (k, k): f (1/n) sum_k (u_a^T e_k)(v_b^T x_k)^2 (v_a^T x_k)
    (a third moment: odd in the label noise, but not zero for one finite data set)."""
    ue, vx = U.mT @ residuals(problem), V.mT @ problem.X
    return minibatch_factor(n, batch_size) * torch.einsum("ak,bk,ak->ab", ue, vx.pow(2), vx) / vx.shape[1]
