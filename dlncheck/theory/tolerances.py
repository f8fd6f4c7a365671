"""Tolerances of the GD-vs-SGD function-space claim, with their derivations
(protocol "Distance in function space").
"""
from __future__ import annotations

import math

#: Realizable teacher (no label noise): presets run until the slowest mode is within ~e^-10
#: of its value, so GD and every SGD run are each within ~e^-10 ||M|| of M, and by the
#: triangle inequality their relative distance is below 2 e^-10.
REALIZABLE_FUNCTION_TOL = 2 * math.exp(-10)


def sgd_function_tolerance(lr: float, depth: int, s1: float, label_noise: float, d_in: int, d_out: int,
                           batch_size: int, norm_gd: float) -> float:
    """3 sqrt(eta_max sigma^2 d_in d_out / (2 b)) / ||W_GD||_F, eta_max = lr L s_1^{2-2/L}.

    With label noise sigma, SGD fluctuates around GD's least-squares solution with stationary
    variance E||dW||_F^2 ~ (eta_max / 2) sigma^2 d_in d_out / b (linearized SGD with the
    largest kernel step eta_max = lr L s_1^{2-2/L}; Mandt, Hoffman & Blei 2017). Three
    standard deviations relative to ||W_GD||_F; scales with sqrt(lr) and sigma.
    """
    eta_max = lr * depth * s1 ** (2 - 2 / depth)
    return 3 * math.sqrt(eta_max * label_noise ** 2 * d_in * d_out / (2 * batch_size)) / norm_gd


def lazy_movement_band(residual0: float, residualT: float, theta0: float, k_min: float, k_max: float,
                       kernel_drift: float) -> tuple[float, float]:
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
