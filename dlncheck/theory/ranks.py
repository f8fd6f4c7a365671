"""Where a rank claim on W(t) must hold in eps, and how close the effective rank must end to the
teacher's (protocol 1.2 III "eps sensitivity", continuous measures).

Ranks are r_eps = #{sigma > eps max(sigma_1, s_1)} (the absolute floor eps s_1 of
dlncheck.measure.stagewise). Margins are the calibration's (theory.rmt): FLOOR_MARGIN below,
CEILING_MARGIN above.
"""

from __future__ import annotations

import math

import numpy as np

from dlncheck.theory.rmt import CEILING_MARGIN, FLOOR_MARGIN

#: Required width of the predicted eps interval, in decades. A rank statement read at one
#: threshold is a property of the dynamics, not of the threshold, only if it holds when the
#: threshold moves by a factor 10 either way (the floor's position is known to about a decade:
#: u0 and the roundoff set it). Two decades sampled at GRID_PER_DECADE = 3 points per decade are
#: >= 7 consecutive grid points, so two lucky points (the old 1 decade on a 1-per-decade grid)
#: can no longer make a plateau.
MIN_DECADES = 2.0
GRID_PER_DECADE = 3


def staircase_interval(sigma1_init: float, s, dtype_eps: float, dims: tuple[int, int]) -> tuple[float, float]:
    """eps interval where a saddle staircase 0 -> ... -> r is predicted to be read correctly:

    lower: every run starts at rank 0, i.e. the floor eps s_1 lies above the largest initial
    singular value: eps >= FLOOR_MARGIN * sigma_1(W(0)) / s_1 (and above roundoff, FLOOR_MARGIN
    max(m, n) u); upper: every learned mode ends above the floor, eps <= (s_r / s_1) / CEILING_MARGIN
    (at convergence sigma_r(W) = s_r). In between the modes cross the floor in their escape
    order, one (or one block) at a time (Saxe et al. 2014)."""
    s = np.asarray(s, dtype=np.float64)
    s = s[s > 0]
    lo = FLOOR_MARGIN * max(sigma1_init / s[0], max(dims) * dtype_eps)
    return float(lo), float(s[-1] / s[0] / CEILING_MARGIN)


def lazy_interval(sigma_r_init: float, s, dtype_eps: float, dims: tuple[int, int]) -> tuple[float, float]:
    """eps interval where "rank >= r throughout" is predicted in the lazy (NTK) regime: the run
    starts full rank and ends at M, so the floor must sit below both the r-th initial singular
    value and s_r: eps <= min(sigma_r(W(0)), s_r) / (CEILING_MARGIN s_1), above roundoff.
    (Where det(W_0) det(M) < 0 pass sigma_{r-1}(W(0)): the rule there is rank >= r - 1.)"""
    s = np.asarray(s, dtype=np.float64)
    s = s[s > 0]
    lo = FLOOR_MARGIN * max(dims) * dtype_eps
    return float(lo), float(min(sigma_r_init, s[-1]) / s[0] / CEILING_MARGIN)


def effective_rank_tolerance(s, delta_f: float) -> float:
    """Bound on |ln r_eff(W) - ln r_eff(M)| when ||W - M||_F <= delta_f, r_eff = exp H(sigma / sum sigma).

    Mirsky: ||sigma(W) - s||_2 <= ||W - M||_F, so ||sigma - s||_1 <= sqrt(n) delta_f; for
    normalised p = sigma / sum sigma, q = s / sum s: T = ||p - q||_1 / 2 <= ||sigma - s||_1 / sum s;
    Fannes-Audenaert (Audenaert 2007, J. Phys. A 40, 8127): |H(p) - H(q)| <= T ln(n - 1) + h(T),
    h the binary entropy (T <= 1/2 needed; beyond it the bound is ln n)."""
    s = np.asarray(s, dtype=np.float64)
    n = len(s)
    T = math.sqrt(n) * delta_f / float(s.sum())
    if T >= 0.5:
        return math.log(n)
    h = 0.0 if T == 0 else -T * math.log(T) - (1 - T) * math.log(1 - T)
    return T * math.log(max(n - 1, 1)) + h


def grid(lo: float, hi: float, per_decade: int) -> np.ndarray:
    """Log grid from lo to hi with ``per_decade`` points per decade (both ends included)."""
    n = int(round(math.log10(hi / lo) * per_decade)) + 1
    return np.logspace(math.log10(lo), math.log10(hi), n)


def grid_inside(eps: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Mask of the grid values inside [lo, hi]."""
    eps = np.asarray(eps, dtype=np.float64)
    return (eps >= lo * (1 - 1e-12)) & (eps <= hi * (1 + 1e-12))
