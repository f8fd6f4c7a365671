"""Predictions and derived tolerances for sampling DLN saddle points (protocol section 2, issue 16).

Every threshold the claim family `claims/test_saddle_sampling.py` asserts is computed here, with its
derivation in the docstring.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def ula_stationary_covariance(A, eps: float) -> np.ndarray:
    """Stationary covariance of unadjusted Langevin (SGLD with exact gradients) on U(z) = z^T A z / 2.

    The update z' = B z + sqrt(eps) xi, B = I - eps A / 2, xi ~ N(0, I) is a Gaussian AR(1); its stationary
    covariance solves S = B S B^T + eps I. B commutes with A, so S = eps (I - B^2)^{-1}
        = eps (eps A - eps^2 A^2 / 4)^{-1} = A^{-1} (I - eps A / 4)^{-1},
    i.e. the target A^{-1} inflated by 1 / (1 - eps lambda / 4) along each eigenvector of A (stable iff
    eps lambda_max < 4). With the MALA correction the stationary law is the target A^{-1} exactly."""
    A = np.atleast_2d(np.asarray(A, dtype=np.float64))
    lam = np.linalg.eigvalsh(A)
    if eps * lam.max() >= 4:
        raise ValueError(f"eps * lambda_max(A) = {eps * lam.max():.3g} >= 4: unadjusted Langevin diverges; lower eps")
    n = A.shape[0]
    return np.linalg.inv(A) @ np.linalg.inv(np.eye(n) - eps * A / 4)


def burn_in_steps(eps: float, lam_min: float, mismatch: float, tol: float = 1e-3) -> int:
    """Steps after which a Gaussian Langevin chain's covariance is within relative `tol` of stationary.

    The covariance error of the AR(1) above contracts by B^2 per step, slowest factor (1 - eps lam_min/2)^2,
    from an initial relative mismatch `mismatch`: T = ln(mismatch / tol) / (-2 ln(1 - eps lam_min / 2)).
    MALA rejections slow this by at most the inverse acceptance rate; callers double T for that."""
    rate = -2.0 * math.log1p(-eps * lam_min / 2)
    return max(1, math.ceil(math.log(max(mismatch, tol) / tol) / rate))


def family_level(level: float, n_tests: int) -> float:
    """Per-test level of a Bonferroni family: the family-wise false-rejection rate is <= level."""
    return level / n_tests


def boltzmann_energy_tolerance(beta: float, dof: int, delta: float) -> float:
    """E below which a chain at stationarity under p_beta ~ exp(-beta E) pi lies with probability >= 1 - delta.

    Near a smooth point of the variety E(Z) = 0, E = n^T H n / 2 in the k <= dof normal coordinates n; the
    prior varies on the O(1) scale, so at large beta p_beta(n) ~ exp(-beta n^T H n / 2) and 2 beta E ~ chi2(k)
    exactly. Where the variety is singular E grows faster than quadratically along some normal directions
    (homogeneous of degree p > 2), which only makes 2 beta E stochastically smaller. chi2(k) <= chi2(dof)
    stochastically, so P(E > chi2_{1-delta}(dof) / (2 beta)) <= delta. Holds at stationarity: annealed chains
    must be held at the final beta long enough to relax (the claim holds them; lagging chains fail it)."""
    return float(stats.chi2.ppf(1 - delta, dof) / (2 * beta))


def max_failures(chains: int, delta: float, level: float) -> int:
    """Largest number of chains above the tolerance consistent, at `level`, with each failing w.p. <= delta:
    the (1 - level) quantile of Binomial(chains, delta)."""
    return int(stats.binom.ppf(1 - level, chains, delta))


def jackknife_se(values: np.ndarray) -> float:
    """Delete-one jackknife standard error of a statistic computed C times with one chain left out:
    se^2 = (C - 1)/C sum_c (t_(c) - mean t)^2 (Efron & Stein 1981). For the mean pairwise distance of C
    independent chains (a U-statistic) it scales as 1/sqrt(C): this is the margin the diversity claim uses."""
    t = np.asarray(values, dtype=np.float64)
    C = t.size
    return float(np.sqrt((C - 1) / C * ((t - t.mean()) ** 2).sum()))


def diversity_margin(se_sampled: float, se_null: float, level: float) -> float:
    """One-sided margin z_{1-level} sqrt(se_s^2 + se_0^2): the sampled diversity must exceed the collapsed
    null by this much (difference of two independent, asymptotically normal statistics)."""
    return float(stats.norm.ppf(1 - level) * math.hypot(se_sampled, se_null))


def map_error_bound(dM_fro: float, dM_op: float, s_op: float, gap: float) -> float:
    """Bound on ||P^_S M^ - P_S M||_F for a top-r set S when M^ = M + dM (end-to-end map of the stratum).

    P^ M^ - P M = P^ dM + (P^ - P) M, so the distance is <= ||dM||_F + ||P^ - P||_F ||M||_2, and by Wedin's
    sin-theta theorem ||P^ - P||_F = sqrt(2) ||sin Theta||_F <= sqrt(2) sqrt(2) ||dM||_F / delta with
    delta = s_r - s_{r+1} - ||dM||_2 > 0 (Weyl). Hence <= ||dM||_F (1 + 2 ||M||_2 / delta)."""
    delta = gap - dM_op
    if delta <= 0:
        return math.inf
    return float(dM_fro * (1 + 2 * s_op / delta))


def cross_covariance_error_pvalue(n_dM_sq_over_noise: np.ndarray, d_in: int, d_out: int) -> float:
    """Two-sided p-value of the exact law n ||M^ - M||_F^2 / s_noise^2 ~ chi2(d_in d_out) for whitened inputs.

    With X X^T = n I and Y = M X + N, N iid N(0, s_noise^2): M^ = Y X^T / n = M + N X^T / n, whose rows are
    N(0, s_noise^2 X X^T / n^2) = N(0, s_noise^2 / n I). Summed over R independent data sets: chi2(R d_in d_out).
    This is the 1/sqrt(n) rate of the empirical cross-covariance, E ||dM||_F^2 = s_noise^2 d_in d_out / n."""
    x = np.asarray(n_dM_sq_over_noise, dtype=np.float64)
    k = x.size * d_in * d_out
    cdf = stats.chi2.cdf(x.sum(), k)
    return float(2 * min(cdf, 1 - cdf))


def rounding_gradient_bound(h_norm, theta_norm, unit_roundoff: float):
    """Gradient norm that storing an exact critical point theta* in a floating-point dtype can leave.

    Rounding each entry gives theta = theta* + d with ||d|| <= u ||theta*|| (u the dtype's unit roundoff), and
    grad L(theta) = H d + O(||d||^2), so ||grad L(theta)|| <= ||H||_2 u ||theta|| to first order. In float64 this
    is ~1e-15 ||H|| ||theta||; in float32 ~1e-7 ||H|| ||theta||, which is what a float32 normal-form sample shows."""
    return np.asarray(h_norm, dtype=np.float64) * unit_roundoff * np.asarray(theta_norm, dtype=np.float64)


def criticality_check(grad_norm, h_norm, theta_norm, unit_roundoff: float, energy_tol: float) -> dict:
    """The strict-saddle family's criticality check of each low-energy sample: ||grad L|| <= mdd, with
    mdd = sqrt(2 E_tol) + :func:`rounding_gradient_bound` per sample.

    At mu = 0 the normal form's residual energy is E = 0.5 ||grad L||^2 exactly, so a sample with
    E <= E_tol has ||grad L|| <= sqrt(2 E_tol) up to the rounding of its weights. The gradient is
    computed independently (autograd of the loss at the sample's weights, saddles.certify), so the
    check fails on any point that is not critical: a gradient norm above mdd is rejected with
    probability 1 (deterministic), which makes mdd the minimum detectable deviation. Returns
    {"holds": bool (every sample), "mdd": per-sample thresholds (np.ndarray), "excess": max ||grad|| / mdd}.
    """
    grad = np.asarray(grad_norm, dtype=np.float64)
    mdd = np.sqrt(2 * energy_tol) + rounding_gradient_bound(h_norm, theta_norm, unit_roundoff)
    excess = float((grad / mdd).max()) if grad.size else 0.0
    return {"holds": bool((grad <= mdd).all()), "mdd": mdd, "excess": excess}
