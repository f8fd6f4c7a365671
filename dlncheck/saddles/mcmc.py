"""MCMC convergence diagnostics: split R-hat and effective sample size across chains.

Formulas of Gelman et al., Bayesian Data Analysis 3rd ed. (2013), Sec. 11.4-11.5, as implemented by
Stan and ArviZ (`ess_mean`, `rhat` without rank normalisation; Vehtari et al. 2021, Bayesian Anal. 16):
draws x[m, t] of M chains, each split in two halves of n draws (2M chains):

    W = mean_m s_m^2,  B/n = var_m(xbar_m),  var+ = (n-1)/n W + B/n,  R-hat = sqrt(var+ / W);
    rho_t = 1 - (W - mean_m acov_m(t)) / var+       (acov_m biased, FFT; acov_m(0) n/(n-1) = s_m^2),
    tau = -1 + 2 sum_k P_k,  P_k = rho_2k + rho_2k+1 over Geyer's initial positive, monotone sequence,
    ESS = 2M n / tau.

For an AR(1) chain x_t = phi x_{t-1} + noise, tau = (1 + phi) / (1 - phi) (tests check this).
"""

from __future__ import annotations

import numpy as np


def _split(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 4:
        raise ValueError(
            f"draws must have shape (chains, draws) with >= 4 draws, got {x.shape}; record more steps per chain"
        )
    n = x.shape[1] // 2
    return np.concatenate([x[:, :n], x[:, x.shape[1] - n :]], axis=0)


def _autocovariance(x: np.ndarray) -> np.ndarray:
    """Biased autocovariance (1/n) sum_t (x_t - xbar)(x_{t+k} - xbar) of every row, by FFT."""
    n = x.shape[1]
    y = x - x.mean(1, keepdims=True)
    f = np.fft.rfft(y, n=2 * n, axis=1)
    return np.fft.irfft(f * np.conj(f), n=2 * n, axis=1)[:, :n] / n


def split_rhat(x) -> float:
    """Split R-hat of draws x (chains, draws); ~1 when the chains agree, > 1.01 flags disagreement."""
    y = _split(x)
    n = y.shape[1]
    W = y.var(1, ddof=1).mean()
    var_plus = (n - 1) / n * W + y.mean(1).var(ddof=1)
    return float(np.sqrt(var_plus / W)) if W > 0 else float("nan")


def ess(x) -> float:
    """Effective sample size of the mean of draws x (chains, draws), Geyer initial monotone sequence."""
    y = _split(x)
    m, n = y.shape
    acov = _autocovariance(y)
    W = (acov[:, 0] * n / (n - 1)).mean()
    var_plus = (n - 1) / n * W + (y.mean(1).var(ddof=1) if m > 1 else 0.0)
    if var_plus <= 0:
        return float("nan")
    rho = 1.0 - (W - acov.mean(0)) / var_plus
    rho[0] = 1.0
    pairs = rho[: 2 * (n // 2)].reshape(-1, 2).sum(1)
    positive = np.cumprod(pairs > 0).astype(bool)  # initial positive sequence
    P = np.minimum.accumulate(pairs[positive])  # initial monotone sequence
    tau = max(-1.0 + 2.0 * P.sum(), 1.0 / np.log10(m * n))  # Stan's floor on tau
    return float(m * n / tau)
