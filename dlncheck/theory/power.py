"""Minimum detectable deviations (mdd) of the claims' checks (protocol "Power of the checks").

A check's mdd is the smallest planted deviation it rejects with probability >= POWER over seeds.
Four check shapes have it in closed form:

1. **Band on a mean** |mean - p| <= q s / sqrt(n) + c, s the sample standard deviation (ddof 1) of
   n Gaussian draws of standard deviation sd, q a fixed quantile (Student or Bonferroni normal), c a
   fixed allowance (h |p|, round-off). A planted shift d of the mean is rejected on its own side
   when (d - c + e) / (s / sqrt(n)) > q, e ~ N(0, sd^2 / n): the left side is noncentral Student t
   with n - 1 degrees of freedom and noncentrality lam = (d - c) sqrt(n) / sd, so
       mdd = c + lam* sd / sqrt(n),   P(t'_{n-1}(lam*) > q) = POWER
   (the other tail only adds rejections, so this is conservative); as df -> inf lam* -> q + z_POWER,
   the usual (z_{1-a/2} + z_{0.95}) sd / sqrt(n). The same holds for a fitted coefficient with a
   Gaussian error, se = sd / sqrt(n) its standard error estimated on df degrees of freedom.
2. **Interval on a variance ratio** ratio = s^2 / v in [lo, hi] with nu s^2 / v ~ chi^2_nu
   (theory.spread.variance_ratio_interval): a planted factor k on the variance is rejected above when
   k chi^2_nu / nu > hi, so  mdd_factor = hi nu / chi^2_{1 - POWER, nu}.
3. **Fixed threshold on a deterministic reading** (a ratio <= eps, a loss <= bound): the mdd is the
   threshold itself, e.g. a coupling w_ab = k w_aa of one row pushes rho = k / sqrt(1 + k^2) past
   eps_rho exactly at k = eps_rho / sqrt(1 - eps_rho^2).
4. **Interval on a log-log slope** [lo - b, hi + b] must contain the predicted p (lo, hi the
   bootstrap interval of the fitted slope, b the truncation band): multiplying every discrepancy of
   noise value x by x^d (the exponent off by d) scales the run means of each configuration by one
   factor, so every bootstrap slope, hence lo and hi, moves by exactly d (the statistics are
   homogeneous of degree 1). On the measured data a shift d is rejected iff it exceeds
   b + max(p - lo, hi - p) in its direction: that is the mdd of both directions.
"""

from __future__ import annotations

import math

from scipy.optimize import brentq
from scipy.stats import chi2, nct

POWER = 0.95


def band_mdd(se: float, quantile: float, df: float, allowance: float = 0.0) -> float:
    """Item 1: c + lam* se for the band q se_hat + c, se = sd / sqrt(n) the standard error of the mean
    (or of a fitted coefficient) and df the degrees of freedom of its estimate."""
    if not se >= 0 or not df > 0:
        raise ValueError(f"se={se}, df={df} are invalid: need a finite standard error >= 0 and df > 0")
    hi = 2 * quantile + 10.0  # grown until it brackets lam* (few degrees of freedom: heavy tails)
    while nct.sf(quantile, df, hi) < POWER:
        hi *= 2
    lam = brentq(lambda x: float(nct.sf(quantile, df, x)) - POWER, quantile, hi)
    return allowance + lam * se


def variance_factor_mdd(hi: float, nu: float) -> float:
    """Item 2: the variance factor k rejected above ``hi`` with probability POWER, hi nu / chi^2_{1-POWER, nu}."""
    if not nu > 0:
        raise ValueError(f"nu={nu!r} is invalid: the chi-square law needs nu > 0 degrees of freedom")
    return hi * nu / float(chi2.ppf(1 - POWER, nu))


def coupling_mdd(eps_rho: float) -> float:
    """Item 3: the cross-mode coupling k = w_ab / w_aa at which rho = k / sqrt(1 + k^2) reaches eps_rho."""
    if not 0 < eps_rho < 1:
        raise ValueError(f"eps_rho={eps_rho!r} is invalid: the alignment threshold must lie in (0, 1)")
    return eps_rho / math.sqrt(1 - eps_rho**2)


def slope_mdd(lo: float, hi: float, predicted: float, band: float) -> float:
    """Item 4: band + max(predicted - lo, hi - predicted), the exponent shift rejected in either direction."""
    return band + max(predicted - lo, hi - predicted)
