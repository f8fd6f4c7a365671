"""Tolerances of the GD-vs-SGD function-space and parameter-space claims, with their derivations
(protocol "Distance in function space", "Distance in parameter space").
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import norm

from dlncheck.theory import gradient_noise as gn
from dlncheck.theory import published as pub

#: Realizable teacher (no label noise): presets run until the slowest mode is within ~e^-10
#: of its value, so GD and every SGD run are each within ~e^-10 ||M|| of M, and by the
#: triangle inequality their relative distance is below 2 e^-10.
REALIZABLE_FUNCTION_TOL = 2 * math.exp(-10)


def split_distance(a2_gd, a2_sgd, theta_gd_norm: float) -> float:
    """Predicted ||E[theta_SGD(T)] - theta_GD(T)|| / ||theta_GD(T)|| at the end of training.

    Every batch loss depends on the product only, so its gradient is orthogonal to the gauge
    orbit W_l -> Q_l W_l Q_{l-1}^T at the current point (the pair identity
    W_l g_l^T = g_{l+1}^T W_{l+1} holds batch by batch): to first order in lr no step, GD or SGD,
    moves along the gauge. What SGD changes at first order in lr c_B is the balance
    D_l = W_{l+1}^T W_{l+1} - W_l W_l^T (dlncheck.theory.sgd, item 1), and at a minimum that moves
    only the split of each learned mode's strength over the layers: in GD's gauge mode alpha of
    layer l is a_{l,alpha} q_{l,alpha} q_{l-1,alpha}^T, so the mean displacement has norm
    sqrt(sum_{l,alpha} (a_{l,alpha}[SGD] - a_{l,alpha}[GD])^2), a from theory.sgd.predicted_offsets
    (no SGD run used). Unlearned directions are not moved at first order (their noise vanishes
    with the residual at the minimum). Assumes whitened data, noise-free labels, decoupled modes.
    """

    diff = np.sqrt(np.asarray(a2_sgd)) - np.sqrt(np.asarray(a2_gd))
    return float(np.sqrt((diff**2).sum())) / theta_gd_norm


def offset_match_tolerance(predicted: float, spread: float, n_runs: int, h: float, z: float) -> float:
    """|m - p| <= z sqrt(tr Sigma / S) + h p for the measured mean displacement m = ||mean_r delta_r||.

    Within one init the S SGD runs are iid (own batch orders), so the mean vector deviates from
    E[delta] by a vector of expected squared norm tr Sigma / S (``spread`` = sqrt(tr Sigma), the
    runs' rms distance from their mean, relative to ||theta_GD||), and by the triangle inequality
    | ||mean delta|| - ||E delta|| | <= ||mean delta - E delta||: z standard errors (Gaussian
    concentration of the norm, z Bonferroni over the inits of a case). ``h`` is the relative size
    of the neglected higher orders of the first-order prediction (theory.sgd.truncation_tolerance).
    """
    return z * spread / math.sqrt(n_runs) + h * predicted


def offset_check(measured: float, predicted: float, spread: float, n_runs: int, h: float, z: float) -> dict:
    """The parameter-space family's check of one init, with its power against a zero offset.

    holds: |m - p| <= tol, tol = :func:`offset_match_tolerance`. The same concentration bound puts
    a measured m within z se (se = spread / sqrt(S)) of the true offset, so a true offset o is
    rejected (at the family-wise level of z) once |o - p| > tol + z se: mdd = 2 z se + h p is the
    minimum detectable deviation from the prediction. The check can reject a zero offset (and any
    offset >= 2p, 4p among them) only if p itself exceeds it: ``powered`` = p > mdd. Without power
    a pass says nothing (a zero offset would pass too); a failure stays a valid rejection.
    """
    tol = offset_match_tolerance(predicted, spread, n_runs, h, z)
    mdd = 2 * z * spread / math.sqrt(n_runs) + h * predicted
    return {"holds": abs(measured - predicted) <= tol, "tolerance": tol, "mdd": mdd, "powered": predicted > mdd}


def reshuffled_function_variance(problem, lr: float, depth: int, steps: int, batch_size: int, learned) -> float:
    """Predicted spread E||W_SGD(T) - E W_SGD(T)||_F^2 with label noise under epoch-wise reshuffling.

    Near the minimum each entry Delta_ab of U~^T (W - Syx) V~ (Syx = U~ S~ V~^T) follows
    Delta_ab <- (1 - lr lam_ab) Delta_ab + lr lam_ab (N_ab - (Delta C)_ab) (theory.published, item 1:
    lam_ab = mode_curvatures, N the label-noise moment, C = V~^T Sxx_b V~ - I). The engine
    reshuffles every epoch (m = n / B batches), so one epoch's N sum to exactly 0 and the additive
    part is published.shuffled_ar1_variance (observed ``steps mod m`` into an epoch), not the
    independent-batch (lr lam v / 2) (which is about 2 / (lr lam m) times larger); the
    multiplicative part keeps, within an epoch, lr lam_ab sum_c lr lam_ac sum_{i<j} N_ac,i C_cb,j,
    of per-epoch variance (lr lam_ab)^2 sum_c (lr lam_ac)^2 v_ac q_cb S(m) (published.epoch_pair_sum),
    accumulated over epochs as 1 / (1 - rho^{2m}). Summed over the entries with a or b a learned
    direction (``learned``, (k,) bool: GD's end map reached published.LEARNED_FRACTION of s~_a);
    the block of unlearned directions (the label noise's own small s~) still sits on its saddle,
    where this linearisation about W* does not hold, and moves by O(its tiny kernel) only. The
    kernel is taken at GD's end point: learned modes at the balanced minimum, unlearned ones at
    ~0 (s~_b -> 0 in mode_curvatures), so a cross entry's lam_ab keeps only the learned side's term.
    Not included: the O(lr) stationary mean of the runs (published.stationary_mode_mean, derived at
    depth 2 only; its square is O(lr^2) and dominates E||W_SGD - W*||^2 as lr -> 0, so the claim
    asserts the spread and reports the bias), the label-noise x input-noise third moments E[N C]
    (same order as the epoch term; about 10 % in tests/test_distance_tolerances.py) and higher
    orders (relative lr lam). Square teachers (k = d_in = d_out) only.
    """

    n = problem.X.shape[1]
    U, s, Vh = torch.linalg.svd(problem.Syx.double(), full_matrices=False)
    V = Vh.mT
    lam = pub.mode_curvatures(torch.where(torch.as_tensor(learned), s, 0.0), depth)
    v = gn.mode_noise(problem, U, V, n, batch_size).double()
    q = gn.input_noise(problem, V, n, batch_size).double()
    m, phase = n // batch_size, steps % max(n // batch_size, 1)
    k = lr * lam
    pair = pub.epoch_pair_sum(m)
    total = 0.0
    for a in range(lam.shape[0]):
        for b in range(lam.shape[1]):
            if not (bool(learned[a]) or bool(learned[b])) or not float(lam[a, b]) > 0:
                continue
            rho = 1 - float(k[a, b])
            additive = float(k[a, b]) ** 2 * float(v[a, b]) * pub.shuffled_ar1_variance(rho, 1.0, m, phase)
            epoch = float(k[a, b]) ** 2 * float((k[a] ** 2 * v[a] * q[:, b]).sum()) * pair / (1 - rho ** (2 * m))
            total += additive + epoch
    return total


def lazy_movement_band(
    residual0: float, residualT: float, theta0: float, k_min: float, k_max: float, kernel_drift: float
) -> tuple[float, float]:
    """Band for the relative weight movement ||theta_T - theta_0|| / ||theta_0|| of a lazy run.

    Linearised (kernel) training on 0.5 ||W - M||_F^2 with whitened inputs: d theta/dt = -J^T e,
    de/dt = -K e, K = J J^T the tangent kernel at init, e = vec(W - M). The movement is
    theta_T - theta_0 = J^T K^{-1} (e_0 - e_T), so ||theta_T - theta_0||^2 = (e_0 - e_T)^T K^{-1} (e_0 - e_T)
    lies in [||e_0 - e_T||^2 / k_max, ||e_0 - e_T||^2 / k_min] (Jacot et al. 2018; Lee et al. 2019),
    with k_min <= lambda_min(K), k_max >= lambda_max(K) the kernel bounds at init
    (presets._kernel_bounds); ||e_0 - e_T|| is within residual0 -+ residualT. Beyond the
    linearisation the kernel changes by a relative ``kernel_drift`` (first order: 2 (L - 1) times
    the relative movement, K being a sum of products of L - 1 layer Gram matrices), which widens
    the bounds by sqrt(1 -+ kernel_drift).
    """
    lo = max(residual0 - residualT, 0.0) / math.sqrt(k_max * (1 + kernel_drift)) / theta0
    hi = (residual0 + residualT) / math.sqrt(k_min * max(1 - kernel_drift, 1e-12)) / theta0
    return lo, hi


def lazy_dwell_bound(rtol: float, k_min: float, time: float, spacing: float = 0.0) -> float:
    """Largest fraction of a lazy run the loss can spend within rtol of any level.

    With de/dt = -K e and K >= k_min, d ln ||e||^2 / dt = -2 e^T K e / ||e||^2 <= -2 k_min, so
    ln(loss) falls at rate >= 2 k_min and crosses the band [(1 - rtol) P, (1 + rtol) P] in at most
    ln((1 + rtol) / (1 - rtol)) / (2 k_min); as a fraction of the run time T that is the bound.
    A dwell measured from losses recorded ``spacing`` apart (events.dwell_times, midpoint rule:
    each point stands for half the interval on each side) overcounts by at most one spacing,
    which is added (as a fraction of T).
    """
    return (math.log((1 + rtol) / (1 - rtol)) / (2 * k_min) + spacing) / time


def aligned_flow_rtol(h: float) -> float:
    """Relative tolerance of an aligned-init run's plateau dwell and movement against gradient flow: h.

    From the aligned init GD is, per mode, the explicit Euler map of the mode ODE
    a <- a + lr (s - a^L) a^{L-1} (theory.discrete_gd_modes); its global error in the time at which
    a mode passes a level is first order, of relative size h/2 with h = lr lambda_max the step in
    units of the fastest rate (theory.sgd.truncation_tolerance), and so is the error of the final
    layer norms. SGD adds its noise drift, of relative order lr c_B <= h/2 (c_B <= 1). Total <= h;
    dwell fractions measured on a loss grid add one grid spacing each (events.dwell_times).
    """
    return h


def bonferroni_z(n_tests: int, level: float = 0.05) -> float:
    """z = Phi^{-1}(1 - level / (2 n)): the two-sided normal quantile that keeps the family-wise
    error of n simultaneous tests at ``level`` (Bonferroni)."""

    if n_tests < 1:
        raise ValueError(f"n_tests={n_tests!r} is invalid: need at least one asserted test")
    return float(norm.ppf(1 - level / (2 * n_tests)))
