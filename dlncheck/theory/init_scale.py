"""Escape time against the init scale a0 (protocol "Init scale"): the law, its constants for
balanced inits, the finite-scale and finite-lr corrections of a fitted exponent, and its band.
The suite's own derivation; the L = 2 law and the decoupled mode ODE are Saxe, McClelland & Ganguli
(2014), the L >= 3 power law is the small-init limit of Jacot et al. (2021), "Saddle-to-saddle
dynamics in deep linear networks".

1. Law. Let the layers start at W_l = a0 w_l with a fixed shape w_l (balanced frames, or one iid
   Gaussian draw). With w = W / a0 and tau = a0^{L-2} t, gradient flow reads
   dw_l/dtau = A_w^T (M - a0^L W_w) P_w^T: the a0^L term matters only once a mode is O(1), i.e. during
   its escape, which lasts O(1) in t. Hence, for L >= 3,
       t_a(a0) = C_a a0^{-(L-2)} + D_a + o(1),                exponent d ln t / d ln a0 -> -(L-2),
   C_a fixed by the a0-free early flow of the shape w, D_a by the escape itself. For L = 2 the early
   flow is linear (dW_1/dt = W_2^T M, dW_2/dt = M W_1^T): mode a grows as e^{2 s_a t} from an initial
   strength kappa_a a0^2, so t_a = (1/s_a) ln(1/a0) + c_a + O(a0^2), logarithmic with coefficient
   1/s_a for every shape; the reported exponent is s_a dt / d ln(1/a0) -> 1.
2. Constants for balanced inits with teacher-aligned frames (decoupled: every mode solves
   du/dt = L u^{2-2/L} (s - u) from u0 = a0^L; escape at u = f s, f = ESCAPE_FRACTION, the loss
   midpoint; theory.escape_time): splitting 1 / (s - u) = 1/s + u / (s (s - u)),
       C_a = 1 / ((L - 2) s_a),
       D_a = int_0^{f s_a} u^{2/L - 1} du / (L s_a (s_a - u)) - (f s_a)^{-(L-2)/L} / ((L - 2) s_a),
   with remainder O(a0^2) (:func:`escape_constant`, :func:`escape_offset`); at L = 2,
   t = [ln(s/u0) + ln(f/(1-f)) + ln(1 - u0/s)] / (2 s) exactly. Random frames (balanced or
   Gaussian) are not decoupled: their C_a is an O(1) multiple of the above, set by the shape's early
   flow; the claims report the measured ratio. It is not the silent-alignment proxy's either
   (measure.modes.initial_mode_strength): at L >= 3 alignment and escape share the time scale
   a0^{-(L-2)}, so nothing lets the first finish before the second (item 4).
3. Fit and band. L >= 3: p from t = C a0^p + D by least squares on ln t (three parameters: D is the
   escape's O(1) offset of item 1, so its bend of the log-log curve is not read as exponent), L = 2:
   t = k ln(1/a0) + c, p = s_a k (:mod:`dlncheck.measure.scaling_fits`); SE from the fit, dof = K - 3 and
   K - 2 for K scales. The finite-scale and finite-lr corrections are derived by fitting the same way
   the escape times of GD's exact decoupled map (the scalar map of theory.discrete_gd_modes at the engine's lr, u0 = a0^L)
   over the same grid: p_GD (:func:`decoupled_exponent`); delta = p_GD - p_flow collects the
   discrete growth factor (at L = 2 the coefficient is lr / ln(1 + lr s), i.e. p = lr s / ln(1 + lr s)),
   the lr ln(1/a0) delay of the discrete blow-up at L >= 3, and the a0^2 remainders. A random init has
   corrections of the same origin and no larger (its C is larger, so the same additive delays bend ln t
   less), so every (init, escape) fit is asserted as |p - p_GD| <= t_{1 - alpha/(2K'), dof} SE + |delta|,
   Bonferroni over the K' fits of the case (:func:`exponent_band`). A fit is "resolved" when that band
   is below 1/2, so that it tells neighbouring laws apart.
4. The L >= 3 contradictions that cite escape windows or alignment (claims/expectations.py), as
   a0 -> 0. (a) Windows are centred on escape_time from the proxy u0: by item 1 t_GD / t_proxy tends
   to C_init / C_proxy, a constant generically != 1, so the offset in window half-widths grows like
   a0^{-(L-2)}: the contradiction stays (the proxy fails, not finite a0). At L = 2 the proxy is exact
   as a0 -> 0 (t_GD / t_proxy - 1 = O(1 / ln(1/a0))). (b) Alignment (rho_a at t_diag): while mode a
   rises, its layer scale b grows as d ln b / dtau = s_a b^{L-2}; a later mode c (s_c < s_a) reaches
   row a through the output and input layers' c-components x, y, which grow as
   dx/dtau ~ s_c b^{L-2} y, dy/dtau ~ s_c b^{L-2} x, i.e. like b^{s_c / s_a}. Row a's entry in column c
   is then ~ b^{L-1} y against the diagonal b^L, and b ~ 1/a0 (scaled) at t_diag, so
       rho_a(t_diag) = O(a0^{q_a}),   q_a = 1 - s_{a+1} / s_a   (:func:`alignment_exponent`),
   s_{a+1} the next smaller distinct teacher value (q_a = 1 for the last mode: only O(a0) initial
   components are left); the same at L = 2 (growth e^{s_c t} against e^{s_a t}). A finite-init
   effect, slow where s_{a+1} / s_a is near 1. Row a's norm mixes columns that shrink at q_a and faster
   (later modes, null directions: a0^1), so over a finite a0 range its slope lies between q_a and 1,
   nearer 1 while the fast columns' prefactors dominate (tests/test_init_scale_theory.py checks the
   per-column rates). The claims report the log-log slope of each quantity
   against a0 (``exponent_window``, ``exponent_rho``); a series shrinks when its slope exceeds half
   its derived rate (q_a for rho, the L - 2 of the O(a0^{L-2}) finite-scale terms for the windows),
   and stays when it is below.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.integrate import quad
from scipy.stats import t as student_t

from dlncheck.theory.escape_lag import crossing_time, escape_levels, escape_values
from dlncheck.theory.mode_dynamics import ESCAPE_FRACTION

ALPHA = 0.05
RESOLVED = 0.5  # a band below half the spacing of neighbouring integer exponents


def alignment_exponent(s, rtol: float = 1e-9) -> np.ndarray:
    """q_a = 1 - s_{a+1} / s_a per non-zero teacher value (item 4b): the rate of rho_a(t_diag) -> 0 as
    a0^{q_a}; s_{a+1} is the next smaller distinct non-zero value (the block of a repeated value is
    excluded from rho), q_a = 1 for the smallest."""
    s = np.sort(np.asarray(s, dtype=np.float64).reshape(-1))[::-1]
    s = s[s > 0]
    out = np.ones(len(s))
    for a, v in enumerate(s):
        smaller = s[s < v - rtol * s[0]]
        if len(smaller):
            out[a] = 1 - smaller[0] / v
    return out


def flow_exponent(depth: int) -> float:
    """The a0 -> 0 exponent of item 1: 1 (L = 2, in units of 1/s_a per ln(1/a0)) or -(L - 2)."""
    if depth < 2:
        raise ValueError(f"depth={depth!r} is invalid: the init-scale law needs L >= 2")
    return 1.0 if depth == 2 else -(depth - 2.0)


def escape_constant(s: float, depth: int) -> float:
    """C_a of item 2: 1 / ((L - 2) s) for L >= 3; 1 / s (the coefficient of ln(1/a0)) for L = 2."""
    flow_exponent(depth)
    return 1 / s if depth == 2 else 1 / ((depth - 2) * s)


def escape_offset(s: float, depth: int, fraction: float = ESCAPE_FRACTION) -> float:
    """D_a of item 2 (L >= 3), or c_a = [ln s + ln(f / (1 - f))] / (2 s) at L = 2 (u0 = a0^2)."""
    if depth == 2:
        return (math.log(s) + math.log(fraction / (1 - fraction))) / (2 * s)
    flow_exponent(depth)
    inner = quad(lambda u: u ** (2 / depth - 1) / (depth * s * (s - u)), 0, fraction * s, limit=200)[0]
    return inner - (fraction * s) ** (-(depth - 2) / depth) / ((depth - 2) * s)


def decoupled_escape_times(s, a0s, depth: int, lr: float) -> np.ndarray:
    """(len(a0s), n_escapes): escape times of GD's exact decoupled map a <- a + lr (s - a^L) a^{L-1}
    from a = a0 on every mode (the aligned init; give s padded with zeros for the modes of a zero
    teacher value, which decay), measured as the data are: the loss 0.5 sum_a (s_a - a^L)^2 crossing
    the midpoints between visited plateaus (theory.escape_lag), with the crossing step linearly
    interpolated. Stops once the last level is passed."""
    s = np.atleast_1d(np.asarray(s, dtype=np.float64))
    levels = escape_levels(s)
    out = np.empty((len(a0s), len(levels)))
    for i, a0 in enumerate(a0s):
        a, losses = np.full(len(s), float(a0)), []
        while True:
            losses.append(0.5 * np.square(s - a**depth).sum())
            if losses[-1] < levels[-1] and len(losses) > 1:
                break
            a = a + lr * (s - a**depth) * a ** (depth - 1)
        times = lr * np.arange(len(losses))
        out[i] = [crossing_time(np.asarray(losses), times, float(v)) for v in levels]
    return out


def decoupled_exponent(s, a0s, depth: int, lr: float, fit) -> tuple[np.ndarray, np.ndarray]:
    """(p_GD, delta) per escape (item 3): the exponent that ``fit(a0s, times, s)`` (the claims' fit,
    returning an object with ``exponent``) gives on GD's exact decoupled map over the same grid (s as in
    :func:`decoupled_escape_times`), and its departure from the flow's asymptote :func:`flow_exponent`."""
    times = decoupled_escape_times(s, a0s, depth, lr)
    p = np.array([fit(a0s, times[:, k], float(v)).exponent for k, v in enumerate(escape_values(s))])
    return p, p - flow_exponent(depth)


def exponent_band(se, dof, comparisons: int, delta, alpha: float = ALPHA) -> np.ndarray:
    """t_{1 - alpha/(2K), dof} SE + |delta| (item 3), elementwise; inf where dof < 1 (no spare scale)."""
    se, dof, delta = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (se, dof, delta)))
    q = student_t.ppf(1 - alpha / (2 * max(comparisons, 1)), np.maximum(dof, 1))
    with np.errstate(invalid="ignore"):
        return np.where(dof >= 1, q * se + np.abs(delta), np.inf)
