"""Tolerance of the diffusion-peak claim (protocol "Beyond the protocol: ... published results";
arXiv:2604.06366): the variance peak's lead over the escape-jitter null, against the modewise SDE's
own lead over that null (theory.published.variance_ode).

Two parts, added: what the null allows (:func:`jitter_null_tolerance`: the checkpoint grid and the
realignment) and where S runs put the sample variance's peak when the SDE holds
(:func:`sde_peak_spread`: its sampling distribution, simulated from the linear-noise SDE itself).
"""

from __future__ import annotations

import numpy as np

from dlncheck.theory.published import _lambda, variance_ode


def jitter_null_tolerance(spacing_peak: float, spacing_null: float, max_shift: float) -> float:
    """Largest |t_peak - t_peak_null| the escape-jitter null allows: h_peak + h_null + max_r |delta_r|.

    The null (no diffusion at all): every run is one common path shifted in time,
    u_r(t) = g(t - delta_r), so Var_r u_r(t) = Var_r g(t - delta_r) ~ g'(t)^2 Var(delta) peaks at
    g's steepest point (u = s/2 for a logistic rise) and precedes "learned" (u = 0.9 s) whatever the
    diffusion: t_peak < t_learned alone cannot tell diffusion from jitter. The null curve is rebuilt
    from the runs themselves (measure.noise_metrics.jitter_null: delta_r from each run's half-time,
    g the mean of the realigned runs), so under the null it reproduces the measured variance curve
    and its peak up to (i) the checkpoint grid, each argmax within one local spacing (h_peak,
    h_null) of its curve's maximum, and (ii) an error in the realignment, which moves the null curve
    by at most the largest shift max_r |delta_r|.
    """
    for name, value in (("spacing_peak", spacing_peak), ("spacing_null", spacing_null), ("max_shift", max_shift)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name}={value!r} is invalid: a finite non-negative time is needed")
    return spacing_peak + spacing_null + max_shift


def sde_peak_spread(
    s: float, u0: float, depth: int, t, runs: int, level: float, reps: int = 2000, seed: int = 0
) -> float:
    """The (1 - level) quantile of |t_peak_hat - t_peak| under the modewise SDE with ``runs`` runs.

    t_peak_hat is the argmax over the checkpoints ``t`` of the sample variance of ``runs``
    independent linear-noise paths, t_peak the argmax of their expected variance on the same
    checkpoints. Linear-noise SDE along the flow u(t) (theory.published.variance_ode):
    d(delta) = f'(u) delta dt + sigma(u) dB, sigma(u)^2 = lr q lambda(u)^2 (s - u)^2; between two
    checkpoints it is exact in distribution: delta_{k+1} = Phi_k delta_k + N(0, Q_k),
    Phi_k = exp(int f'), Q_k = int exp(2 int_x f') sigma(x)^2 dx (trapezoid on variance_ode's fine
    grid). sigma^2 is linear in lr q, and the argmax of a variance does not depend on its scale, so
    lr q drops out (set to 1). ``reps`` replicate ensembles from ``seed`` (a deterministic tolerance).
    """
    if runs < 2:
        raise ValueError(f"runs={runs!r} is invalid: a sample variance needs at least 2 runs")
    if not 0 < level < 1:
        raise ValueError(f"level={level!r} is invalid: use 0 < level < 1")
    t = np.asarray(t, dtype=np.float64)
    fine = np.union1d(np.linspace(0, t.max(), 20001), t)
    u = variance_ode(s, u0, depth, 1.0, 1.0, fine)["u"]
    fprime = (2 - 2 / depth) * depth * np.abs(u) ** (1 - 2 / depth) * (s - u) - _lambda(u, depth)
    sigma2 = _lambda(u, depth) ** 2 * (s - u) ** 2
    F = np.concatenate([[0.0], np.cumsum(np.diff(fine) * (fprime[1:] + fprime[:-1]) / 2)])
    at = np.searchsorted(fine, t)
    Phi = np.exp(np.diff(F[at]))
    Q = np.empty(len(t) - 1)
    for k in range(len(t) - 1):
        x = slice(at[k], at[k + 1] + 1)
        Q[k] = np.trapezoid(np.exp(2 * (F[at[k + 1]] - F[x])) * sigma2[x], fine[x])
    rng = np.random.default_rng(seed)
    delta = np.zeros((reps, runs))
    var = np.empty((reps, len(t)))
    var[:, 0] = 0.0
    expected = np.zeros(len(t))
    for k in range(len(t) - 1):  # a loop over checkpoints; every replicate and run at once
        delta = Phi[k] * delta + np.sqrt(Q[k]) * rng.standard_normal((reps, runs))
        var[:, k + 1] = delta.var(1, ddof=1)
        expected[k + 1] = Phi[k] ** 2 * expected[k] + Q[k]
    error = np.abs(t[var.argmax(1)] - t[expected.argmax()])
    return float(np.quantile(error, 1 - level))
