"""Predictions of three published results on SGD in deep linear networks, for this engine.

1. Corlouer, Semler, Strang & Gietelink Oldenziel, "Stochastic Gradient Descent in the
   Saddle-to-Saddle Regime of Deep Linear Networks", arXiv:2604.06366 (2026). For aligned,
   balanced weights SGD splits into one scalar SDE per teacher mode,
       du = L u^{2-2/L} (s - u) dt + sqrt(lr) sigma(u) dB,
   and (a) the diffusion along a mode is largest before the mode is learned, (b) without label
   noise a mode's stationary law is gradient flow's fixed point, with label noise it is close to
   a Boltzmann law whose temperature grows with lr x noise variance / batch size.
   Our derivation for this engine (loss 0.5||W - Syx||^2, whitened inputs): an aligned mode's
   gradient entry without label noise is (u - s)(V^T Sxx_b V)_aa, so sigma(u)^2 =
   q lambda(u)^2 (s - u)^2 with lambda(u) = L u^{2-2/L} and q = Var (V^T Sxx_b V)_aa
   (diagonal of dlncheck.theory.gradient_noise.input_noise). Linearising about the flow u(t) gives the
   run-to-run variance V(t) of the moment ODE in :func:`variance_ode`. Near the minimum with
   label noise, each entry delta of U~^T (W - Syx) V~ (Syx = U~ S~ V~^T) follows
   delta <- (1 - lr lambda) delta + lr lambda xi, lambda = sum_l s_a^{2(L-l)/L} s_b^{2(l-1)/L}
   (= L s^{2-2/L} on the diagonal: the product's tangent kernel at a balanced minimum is
   diagonal in the Syx bases), xi = -(U~^T N_b V~)_ab. With independent batches this is the
   discrete Ornstein-Uhlenbeck law N(0, lr lambda v / (2 - lr lambda)) (Boltzmann in the
   quadratic well at temperature lr v / 2 per unit curvature, v = Var xi); the engine reshuffles
   every epoch, so the m = n/B batch noises of an epoch sum to exactly 0
   (sum_k e_k x_k^T = 0) and the law is :func:`shuffled_ar1_variance` instead, smaller by about
   lr lambda m / 2 when lr lambda m << 1 (random reshuffling), at epoch boundaries. There the
   multiplicative noise Delta (V~^T Sxx_b V~ - I) enters at the same order (lr^3):
   :func:`stationary_mode_law` adds it.
2. Ziyin, Li & Ueda, "Law of Balance and Stationary Distribution of SGD" (arXiv:2308.06671;
   later "Noise Balance and ..."): with a rescaling symmetry, gradient flow conserves
   D_l = W_{l+1}^T W_{l+1} - W_l W_l^T while minibatch noise drives it toward the noise-balanced
   point; the expected drift per step is dlncheck.theory.gradient_noise.expected_balance_drift.
3. Varre, Sagitova & Flammarion, "SGD vs GD: Rank Deficiency in Linear Networks", NeurIPS 2024:
   gradient flow conserves det(Theta^T Theta), Theta = [W_1, W_2^T], label-noise SGD shrinks it
   (dlncheck.theory.gradient_noise.logdet_rate gives the rate); discrete GD loses at most
   2 sum_k -log(1 - lr^2 ||G_k||^2) (:func:`gd_logdet_bound`).
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import torch
from scipy.integrate import solve_ivp

LEARNED_FRACTION = 0.9  # a mode is learned when u reaches 0.9 s (fixed before any run)


def _geometric(r: float, j: int) -> float:
    """sum_{i<j} r^i."""
    return float(j) if r == 1 else (1 - r**j) / (1 - r)


def iid_ar1_variance(rho: float, v: float) -> float:
    """Stationary variance of x <- rho x + xi with independent xi of variance v: v / (1 - rho^2)."""
    if not abs(rho) < 1:
        raise ValueError(f"rho={rho} is invalid: the recursion is stationary only for |rho| < 1")
    return v / (1 - rho**2)


def shuffled_ar1_variance(rho: float, v: float, m: int, phase: int = 0) -> float:
    """Stationary variance of x <- rho x + xi when the xi of one epoch (m steps) are an exchangeable
    draw that sums to 0 (epoch-wise reshuffling of a finite data set) and epochs are independent.

    Var xi = v and Cov(xi_i, xi_j) = -v / (m-1) within an epoch, so a block of weights w_j adds
    v h(w), h(w) = (m sum w^2 - (sum w)^2) / (m - 1). Observed ``phase`` steps into an epoch
    (0 = at an epoch boundary), the most recent p = phase terms have weights rho^0..rho^{p-1}
    and the earlier full epochs rho^{p+me+i}:
        Var = v [h_p + rho^{2p} h_m / (1 - rho^{2m})],
        h_j = (m S2_j - S1_j^2) / (m - 1),  S1_j = sum_{i<j} rho^i,  S2_j = sum_{i<j} rho^{2i}.
    """
    if not abs(rho) < 1:
        raise ValueError(f"rho={rho} is invalid: the recursion is stationary only for |rho| < 1")
    if int(m) < 1 or not 0 <= int(phase) < int(m):
        raise ValueError(f"m={m}, phase={phase} are invalid: use m >= 1 and 0 <= phase < m")
    if m == 1:
        return 0.0  # one batch per epoch is the full data: no noise

    def h(j):
        return (m * _geometric(rho**2, j) - _geometric(rho, j) ** 2) / (m - 1)

    return v * (h(phase) + rho ** (2 * phase) * h(m) / (1 - rho ** (2 * m)))


def mode_curvatures(s_tilde, depth: int) -> torch.Tensor:
    """lambda_ab = sum_{l=1}^L s_a^{2(L-l)/L} s_b^{2(l-1)/L}: the tangent kernel of the product at a
    balanced minimum W_l = Q_l S^{1/L} Q_{l-1}^T, diagonal in the (a, b) entries of U^T W V."""
    s = torch.as_tensor(s_tilde, dtype=torch.float64).clamp_min(0)
    terms = (s[:, None] ** (2 * (depth - l) / depth) * s[None, :] ** (2 * (l - 1) / depth) for l in range(1, depth + 1))
    return cast(torch.Tensor, sum(terms))  # depth >= 1 terms


def epoch_pair_sum(m: int) -> float:
    """S(m) = sum_{i<j, k<l} c_ik c_jl, c_ik = 1 if i = k else -1/(m-1): E[(sum_{i<j} xi_i C_j)^2] / (v q)
    for two independent exchangeable zero-sum sequences xi, C of one epoch (m steps)."""
    if m < 2:
        return 0.0
    c = np.eye(m) - (1 - np.eye(m)) / (m - 1)
    prefix = np.zeros((m + 1, m + 1))
    prefix[1:, 1:] = c.cumsum(0).cumsum(1)  # prefix[j, l] = sum_{i<j, k<l} c_ik
    return float((c * prefix[:m, :m]).sum())


def stationary_mode_law(lam: torch.Tensor, v: torch.Tensor, q: torch.Tensor, lr: float, m: int) -> dict:
    """Predicted stationary variances of the diagonal deviations delta_a, at epoch boundaries.

    lam (k, k): mode_curvatures; v (k, k): Var of (U~^T N_b V~)_ab; q (k, k): Var of
    (V~^T Sxx_b V~)_ba (gradient_noise.mode_noise / input_noise); m = n / B steps per epoch.
    Entry (a, b) of Delta = U~^T (W - Syx) V~ follows Delta_ab <- Delta_ab - lr lam_ab
    (Delta + Delta C_j - N_j)_ab with C_j = V~^T Sxx_j V~ - I.

    - "iid": independent batches, additive noise only (the modewise SDE's Boltzmann law):
      (lr lam)^2 v / (1 - rho^2), rho = 1 - lr lam.
    - "shuffled": the engine's epoch reshuffling: N_j and C_j each sum to 0 over an epoch, so the
      additive part is shuffled_ar1_variance; to the next order Delta_ab,j = Delta_ab,0 + lr lam_ab
      sum_{i<j} N_ab,i within the epoch and sum_j Delta_j C_j keeps
      lr lam_ab sum_b sum_{i<j} N_ab,i C_ba,j, whose per-epoch variance is
      sigma_e^2 = (lr lam_aa)^2 sum_b (lr lam_ab)^2 v_ab q_ba S(m) (epoch_pair_sum; N and C treated
      as independent, their cross moments are odd in the label noise), adding sigma_e^2 / (1 - rho^{2m}).
    ``thin``: the lag (steps) after which rho^lag < 0.05.
    """
    lam_aa, v_aa = torch.diagonal(lam), torch.diagonal(v)
    rho = 1 - lr * lam_aa
    kappa2 = (lr * lam_aa) ** 2
    iid = torch.stack([torch.tensor(iid_ar1_variance(float(r), 1.0)) for r in rho]) * kappa2 * v_aa
    additive = torch.stack([torch.tensor(shuffled_ar1_variance(float(r), 1.0, m)) for r in rho]) * kappa2 * v_aa
    epoch = kappa2 * ((lr * lam) ** 2 * v * q.mT).sum(-1) * epoch_pair_sum(m)
    shuffled = additive + epoch / (1 - rho ** (2 * m))
    lag = torch.ceil(math.log(20) / -torch.log(rho.abs()))
    return {"rho": rho, "iid": iid, "shuffled": shuffled, "shuffled_additive": additive, "thin": lag}


def stationary_mode_mean(
    lam: torch.Tensor,
    s_tilde: torch.Tensor,
    input_moment: torch.Tensor,
    output_moment: torch.Tensor,
    noise_input: torch.Tensor,
    lr: float,
    f: float,
) -> torch.Tensor:
    """Second-order stationary mean of delta_a at a depth-2 minimum with epoch reshuffling, (k,).

    Within an epoch the layers move by first-order noise, so step j sees W_2 W_2^T and W_1^T W_1
    shifted by -lr sum_{i<j} (G_i W^T + W G_i^T) and (W^T G_i + G_i^T W); with the exact product term
    +lr^2 G_j W^T G_j and E[N_i (x) N_j] = -E_same[N (x) N] / (m - 1) for i != j (zero-sum epoch, m(m-1)/2
    pairs), the mean forcing per step is -(lr^2 / 2) (W Ahat + Bhat W) (the N W^T N terms cancel),
    Ahat = f input_moment, Bhat = f output_moment. The multiplicative term -lr K(Delta_j C_j) with
    Delta_j containing +lr sum_{i<j} K(N_i) adds +(lr^2 / 2) K(E_same[K(N) C]). Dividing the diagonal
    by lr lam_aa:
        mu_a = -lr f s_a (Ahat_aa + Bhat_aa) / (2 lam_aa) + (lr / 2) sum_b lam_ab E[N_ab C_ba],
    with moments in the Syx bases (``noise_input`` = E_same[N_ab C_ba], gradient_noise.noise_input_moment).
    Neglected: third order in the noise and the imbalance the law of balance builds up."""
    lam_aa = torch.diagonal(lam)
    first = -lr * f * s_tilde * (torch.diagonal(input_moment) + torch.diagonal(output_moment)) / (2 * lam_aa)
    return first + 0.5 * lr * (lam * noise_input).sum(-1)


def _lambda(u, depth):
    return depth * np.abs(u) ** (2 - 2 / depth)


def variance_ode(s: float, u0: float, depth: int, lr: float, q: float, t) -> dict[str, np.ndarray]:
    """Linear-noise approximation of the modewise SDE without label noise, along gradient flow:

        du/dt = f(u) = lambda(u) (s - u),   dV/dt = 2 f'(u) V + lr q lambda(u)^2 (s - u)^2,

    V(0) = 0, for the run-to-run variance V of the mode strength (independent batches). V is
    linear in lr q, so its peak time does not depend on them. Returns u, V on ``t`` and the
    peak time of V on a fine grid, the time u reaches LEARNED_FRACTION * s, and the time of the
    steepest rise (largest |du/dt|): where a pure jitter of escape times would put the variance's peak
    (theory.diffusion_peak), so t_steepest - t_peak is the SDE's lead over that null."""
    t = np.asarray(t, dtype=np.float64)

    def f(u):
        return _lambda(u, depth) * (s - u)

    def fprime(u):
        return (2 - 2 / depth) * depth * np.abs(u) ** (1 - 2 / depth) * (s - u) - _lambda(u, depth)

    def rhs(_, y):
        u, V = y
        return [f(u), 2 * fprime(u) * V + lr * q * _lambda(u, depth) ** 2 * (s - u) ** 2]

    fine = np.linspace(0, t.max(), 20001)
    grid = np.union1d(fine, t)
    sol = solve_ivp(rhs, (0, t.max()), [u0, 0.0], t_eval=grid, method="LSODA", rtol=1e-10, atol=1e-14)
    u, V = sol.y
    learned = grid[np.argmax(u >= LEARNED_FRACTION * s)] if (u >= LEARNED_FRACTION * s).any() else np.inf
    pick = np.searchsorted(grid, t)
    steepest = float(grid[np.argmax(np.abs(f(u)))])
    return {
        "u": u[pick],
        "V": V[pick],
        "t_peak": float(grid[np.argmax(V)]),
        "t_learned": float(learned),
        "t_steepest": steepest,
    }


def gd_logdet_bound(grad_sq_norms: torch.Tensor, lr: float) -> torch.Tensor:
    """Largest |change| of log det(Theta^T Theta) GD can make over steps with ||G_k||_F^2 given:
    per step the change is 2 sum_i log(1 - lr^2 sigma_i^2), and for x_i >= 0, sum x_i = X < 1,
    sum_i -log(1 - x_i) <= -log(1 - X) (convex, zero at 0), so |change| <= 2 sum_k -log(1 - lr^2 ||G_k||^2)."""
    x = lr**2 * grad_sq_norms
    if (x >= 1).any():
        raise ValueError("lr^2 ||G||^2 >= 1 at some step: the bound needs a smaller lr")
    return -2 * torch.log1p(-x).sum(-1)
