"""The width fit of the lazy regime (the law is derived in :mod:`dlncheck.theory.lazy_width`).

ln m = ln A + p ln h + c h^-1/2 by ordinary least squares over every (width, init) point; the
standard error of p from the residual variance, n - 3 degrees of freedom. Non-finite or
non-positive movements are dropped; fewer than three distinct widths leave p unresolved (NaN,
infinite standard error).
"""

from __future__ import annotations

import math

import numpy as np

from dlncheck.measure.escape_fits import ExponentFit
from dlncheck.theory import lazy_width


def width_law_fit(widths, movements) -> ExponentFit:
    """Fit of the movements (W, I) (per width, per init) against the widths (W,); ``constant`` A,
    ``offset`` c (module docstring)."""
    h = np.asarray(widths, dtype=np.float64)
    m = np.asarray(movements, dtype=np.float64)
    if h.ndim != 1 or m.ndim != 2 or m.shape[0] != h.shape[0] or not np.all(h > 0):
        raise ValueError(f"widths {h.shape} and movements {m.shape} are invalid: give (W,) widths > 0 and (W, I)")
    hh = np.broadcast_to(h[:, None], m.shape)
    keep = np.isfinite(m) & (m > 0)
    x, y = hh[keep], np.log(m[keep])
    if len(np.unique(x)) < 3 or len(y) < 4:
        return ExponentFit(math.nan, math.inf, 0, math.nan, math.nan, len(y))
    X = np.stack([np.ones_like(x), np.log(x), x**-0.5], axis=1)
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    dof = len(y) - 3
    resid = y - X @ beta
    cov = (resid @ resid / dof) * np.linalg.inv(X.T @ X)
    return ExponentFit(float(beta[1]), float(math.sqrt(cov[1, 1])), dof, math.exp(beta[0]), float(beta[2]), len(y))


def width_law_check(widths, movements) -> tuple[ExponentFit, float, bool]:
    """(fit, band, holds): the claim's check, |p - LAZY_EXPONENT| <= exponent_band(SE, dof)."""
    fit = width_law_fit(widths, movements)
    band = lazy_width.exponent_band(fit.se, fit.dof)
    return fit, band, bool(abs(fit.exponent - lazy_width.LAZY_EXPONENT) <= band)
