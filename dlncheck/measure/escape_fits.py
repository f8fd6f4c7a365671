"""Fits of escape time against the init scale a0 (protocol "Init scale"; the laws and the band are
derived in :mod:`dlncheck.theory.init_scale`).

- L = 2, :func:`log_law_fit`: t = k ln(1/a0) + c by least squares; exponent = s_a k (the law
  predicts 1), its standard error s_a se(k), K - 2 degrees of freedom for K scales.
- L >= 3, :func:`power_law_fit`: t = C a0^p + D by least squares on ln t (relative errors: the
  times span decades), started from the two-parameter log-log line; exponent = p, its standard
  error from the fit's covariance, K - 3 degrees of freedom. D absorbs the escape's O(1) offset.

Scales whose escape never happened (t = inf) are dropped; a fit with no spare scale (dof < 1) has
exponent NaN and infinite standard error (reported as "not resolved").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.optimize import curve_fit


@dataclass(frozen=True)
class ExponentFit:
    exponent: float
    se: float
    dof: int
    constant: float  # k (L = 2) or C (L >= 3)
    offset: float  # c (L = 2) or D (L >= 3)
    n_points: int


def _finite(a0s, times) -> tuple[np.ndarray, np.ndarray]:
    a0s, times = np.asarray(a0s, dtype=np.float64), np.asarray(times, dtype=np.float64)
    if a0s.shape != times.shape or not np.all(a0s > 0):
        raise ValueError(f"a0s {a0s!r} and times {times!r} are invalid: give one time per scale a0 > 0")
    keep = np.isfinite(times) & (times > 0)
    return a0s[keep], times[keep]


def _unresolved(n: int) -> ExponentFit:
    return ExponentFit(math.nan, math.inf, 0, math.nan, math.nan, n)


def log_law_fit(a0s, times, s: float) -> ExponentFit:
    """t = k ln(1/a0) + c; exponent s k with standard error s se(k) (module docstring)."""
    a0s, times = _finite(a0s, times)
    if len(a0s) < 3:
        return _unresolved(len(a0s))
    fit = stats.linregress(-np.log(a0s), times)
    return ExponentFit(s * fit.slope, s * fit.stderr, len(a0s) - 2, fit.slope, fit.intercept, len(a0s))


def power_law_fit(a0s, times, s: float | None = None) -> ExponentFit:
    """t = C a0^p + D by least squares on ln t; exponent p (module docstring). ``s`` is unused (the
    signature matches :func:`log_law_fit`)."""
    a0s, times = _finite(a0s, times)
    if len(a0s) < 4:
        return _unresolved(len(a0s))
    x, y = np.log(a0s), np.log(times)
    line = stats.linregress(x, y)

    def model(x, log_c, p, d):
        return np.log(np.maximum(np.exp(log_c + p * x) + d, 1e-300))

    try:
        (log_c, p, d), cov = curve_fit(model, x, y, p0=(line.intercept, line.slope, 0.0), maxfev=20000)
    except RuntimeError:  # no convergence: the law does not describe these times
        return _unresolved(len(a0s))
    se = float(np.sqrt(cov[1, 1])) if np.isfinite(cov[1, 1]) else math.inf
    return ExponentFit(float(p), se, len(a0s) - 3, float(math.exp(log_c)), float(d), len(a0s))


def escape_law_fit(depth: int):
    """The fit of the depth's law: :func:`log_law_fit` at L = 2, :func:`power_law_fit` at L >= 3."""
    return log_law_fit if depth == 2 else power_law_fit


def loglog_slope(a0s, values) -> ExponentFit:
    """Least-squares slope of ln(value) on ln(a0) (how fast a quantity shrinks as a0 -> 0: the claims'
    exponent_window and exponent_rho); non-finite or non-positive values are dropped."""
    a0s, values = np.asarray(a0s, dtype=np.float64), np.asarray(values, dtype=np.float64)
    keep = np.isfinite(values) & (values > 0)
    if keep.sum() < 3:
        return _unresolved(int(keep.sum()))
    fit = stats.linregress(np.log(a0s[keep]), np.log(values[keep]))
    return ExponentFit(fit.slope, fit.stderr, int(keep.sum()) - 2, math.exp(fit.intercept), math.nan, int(keep.sum()))
