"""Mode dynamics: plateaus, mode trajectories, escape times and escape windows of a DLN
trained from a balanced, decoupled ("aligned") init (protocol 1.2 II, "Mode decoupling").

Each teacher mode alpha evolves alone (Saxe, McClelland & Ganguli 2014, "Exact solutions to
the nonlinear dynamics of learning in deep linear neural networks"): with layer scale a and
mode strength u = a^L,

    gradient flow   da/dt = (s - a^L) a^{L-1}   <=>   du/dt = L u^{2-2/L} (s - u),
    discrete GD     a <- a + lr (s - a^L) a^{L-1}   (exact for the aligned init),

with t = lr * step. For L = 2, u(t) = s e^{2st} / (e^{2st} - 1 + s/u0). The loss then sits on
plateaus 0.5 * sum_{alpha > k} s_alpha^2 between escapes, larger s first; escape times scale as
ln(s/u0) / (2s) for L = 2 and 1 / ((L-2) s u0^{(L-2)/L}) for L >= 3 (Saxe et al. 2014;
Jacot et al. 2021, "Saddle-to-saddle dynamics in deep linear networks").
All functions return float64 torch tensors; modes run along the first axis.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Union

import numpy as np
import torch
from scipy.integrate import quad, solve_ivp

#: anything np.asarray accepts: a float, a sequence of floats, an array or a tensor
ArrayLike = Union[float, Sequence[float], np.ndarray, torch.Tensor]

ESCAPE_FRACTION = 1 - 1 / math.sqrt(2)  # u = s (1 - 1/sqrt 2) halves the mode's loss 0.5 (s - u)^2


def _array(x: object) -> np.ndarray:
    return np.atleast_1d(np.asarray(x.cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64))


def plateau_losses(s: ArrayLike) -> torch.Tensor:
    """Loss plateaus P_k = 0.5 * sum_{alpha > k} s_alpha^2 for k = 0..r (r = number of non-zero s)."""
    s = np.sort(_array(s))[::-1]
    s = s[s > 0]
    tails = np.concatenate([np.cumsum((s**2)[::-1])[::-1], [0.0]])
    return torch.from_numpy(0.5 * tails)


def stage_plateaus(s: ArrayLike, rtol: float = 1e-9) -> torch.Tensor:
    """The plateaus the loss actually visits: equal singular values escape together, so
    P_k is kept only where s_k > s_{k+1} (k = 0 and the end of each group of equal values)."""
    s = np.sort(_array(s))[::-1]
    s = s[s > 0]
    keep = [0] + [k for k in range(1, len(s) + 1) if k == len(s) or s[k - 1] - s[k] > rtol * s[0]]
    return plateau_losses(s)[keep]


def discrete_gd_modes(s: ArrayLike, a0: ArrayLike, lr: float, steps: int, depth: int) -> torch.Tensor:
    """Mode strengths u_k = a_k^L of GD from an aligned init: a <- a + lr (s - a^L) a^{L-1}.

    Returns (n_modes, steps + 1); a0 is the per-layer init scale (scalar or per mode)."""
    s = _array(s)
    a = np.broadcast_to(_array(a0), s.shape).copy()
    out = np.empty((len(s), steps + 1))
    for k in range(steps + 1):
        out[:, k] = a**depth
        a = a + lr * (s - a**depth) * a ** (depth - 1)
    return torch.from_numpy(out)


def _flow(depth: int) -> tuple[Callable, Callable]:
    def f(a: np.ndarray, s: np.ndarray) -> np.ndarray:
        return (s - a**depth) * a ** (depth - 1)

    def df(a: np.ndarray, s: np.ndarray) -> np.ndarray:
        return (depth - 1) * (s - a**depth) * a ** (depth - 2) - depth * a ** (2 * depth - 2)

    return f, df


def mode_trajectory(s: ArrayLike, u0: ArrayLike, t: ArrayLike, depth: int) -> torch.Tensor:
    """Gradient-flow mode strengths u(t), shape (n_modes, len(t)), from u(0) = u0.

    L = 1: u = s + (u0 - s) e^{-t}; L = 2: Saxe's closed form; L >= 3: solve_ivp (DOP853,
    rtol 1e-12) on da/dt = (s - a^L) a^{L-1} with a = u^{1/L}."""
    s, t = _array(s), _array(t)
    u0 = np.broadcast_to(_array(u0), s.shape)
    if depth == 1:
        return torch.from_numpy(s[:, None] + (u0 - s)[:, None] * np.exp(-t))
    if depth == 2:
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            saxe = s[:, None] / (1 + (s / u0 - 1)[:, None] * np.exp(-2 * s[:, None] * t))
            decay = u0[:, None] / (1 + 2 * u0[:, None] * t)  # s = 0: du/dt = -2 u^2
        return torch.from_numpy(np.where(s[:, None] > 0, saxe, decay))
    f, _ = _flow(depth)
    sol = solve_ivp(
        lambda _, a: f(a, s),
        (0.0, float(t.max())),
        u0 ** (1 / depth),
        t_eval=t,
        method="DOP853",
        rtol=1e-12,
        atol=1e-15,
    )
    return torch.from_numpy(sol.y**depth)


def aligned_loss(s: ArrayLike, u0: ArrayLike, t: ArrayLike, depth: int) -> torch.Tensor:
    """Gradient-flow loss 0.5 * sum_alpha (s_alpha - u_alpha(t))^2 from an aligned init, (len(t),)."""
    s = _array(s)
    return 0.5 * (torch.from_numpy(s)[:, None] - mode_trajectory(s, u0, t, depth)).pow(2).sum(0)


def aligned_movement(s: ArrayLike, a0: float, t: ArrayLike, depth: int, modes: int) -> torch.Tensor:
    """||theta_t - theta_0|| / ||theta_0|| under gradient flow from the aligned init, (len(t),).

    Every layer is Q_l diag(a(t)) Q_{l-1}^T on ``modes`` = min(widths) modes (s padded with zeros),
    so ||theta_t - theta_0||^2 = L sum_alpha (a_alpha(t) - a0)^2 and ||theta_0||^2 = L modes a0^2."""
    padded = np.zeros(modes)
    values = _array(s)[:modes]
    padded[: len(values)] = values
    a = mode_trajectory(padded, a0**depth, t, depth).clamp_min(0) ** (1 / depth)
    return (a - a0).pow(2).sum(0).sqrt() / (a0 * math.sqrt(modes))


def euler_error(s: ArrayLike, u0: ArrayLike, t: ArrayLike, depth: int, lr: float) -> torch.Tensor:
    """Leading discretisation error of GD vs gradient flow, u_GD(t) - u_flow(t) = lr e(t) + O(lr^2).

    Backward error analysis of the Euler step a <- a + lr f(a): the global error E = lr e_a
    solves e_a' = f'(a) e_a - f'(a) f(a) / 2, e_a(0) = 0 (Hairer, Norsett & Wanner, Solving
    ODEs I, Thm II.8.1); in u = a^L, e = L a^{L-1} e_a. Returns lr * e, (n_modes, len(t))."""
    s, t = _array(s), _array(t)
    a0 = np.broadcast_to(_array(u0), s.shape) ** (1 / depth)
    f, df = _flow(depth)
    m = len(s)

    def rhs(_: float, y: np.ndarray) -> np.ndarray:
        a, e = y[:m], y[m:]
        return np.concatenate([f(a, s), df(a, s) * e - 0.5 * df(a, s) * f(a, s)])

    sol = solve_ivp(
        rhs, (0.0, float(t.max())), np.concatenate([a0, np.zeros(m)]), t_eval=t, method="DOP853", rtol=1e-12, atol=1e-15
    )
    a, e = sol.y[:m], sol.y[m:]
    return torch.from_numpy(lr * depth * a ** (depth - 1) * e)


def escape_time(s: ArrayLike, u0: ArrayLike, depth: int, fraction: float = ESCAPE_FRACTION) -> torch.Tensor:
    """Gradient-flow time at which mode s reaches u = fraction * s from u0 (inf if s <= u0/fraction).

    t = int_{u0}^{fraction s} du / (L u^{2-2/L} (s - u)); the default fraction is where the
    mode's loss 0.5 (s - u)^2 has halved, i.e. where the total loss crosses the midpoint
    between consecutive plateaus (as :func:`dlncheck.measure.events.escape_steps` detects it)."""
    s = _array(s)
    u0 = np.broadcast_to(_array(u0), s.shape)
    out = np.full(len(s), np.inf)
    for i, (sv, u) in enumerate(zip(s, u0)):
        target = fraction * sv
        if sv > 0 and target > u:
            if depth == 2:
                out[i] = math.log((target / u) * (sv - u) / (sv - target)) / (2 * sv)
            else:
                # in y = ln u the integrand is e^{-y(1-2/L)} / (L (s - e^y)): smooth, no endpoint singularity
                out[i] = quad(
                    lambda y, sv=sv: math.exp(-y * (1 - 2 / depth)) / (depth * (sv - math.exp(y))),
                    math.log(u),
                    math.log(target),
                    limit=200,
                    epsabs=0,
                    epsrel=1e-10,
                )[0]
    return torch.from_numpy(out)


def escape_time_asymptotic(s: ArrayLike, u0: ArrayLike, depth: int) -> torch.Tensor:
    """Small-u0 scaling: ln(s/u0) / (2s) for L = 2, 1 / ((L-2) s u0^{(L-2)/L}) for L >= 3."""
    s = _array(s)
    u0 = np.broadcast_to(_array(u0), s.shape)
    with np.errstate(divide="ignore"):
        if depth == 2:
            return torch.from_numpy(np.log(s / u0) / (2 * s))
        return torch.from_numpy(1 / ((depth - 2) * s * u0 ** ((depth - 2) / depth)))


def escape_order(s: ArrayLike, u0: ArrayLike, depth: int) -> torch.Tensor:
    """Mode indices in the order they escape (larger s first for equal u0)."""
    return torch.from_numpy(np.argsort(_array(escape_time(s, u0, depth)), kind="stable"))


def escape_halfwidth(s: ArrayLike, depth: int, width: float = 3.0) -> torch.Tensor:
    """Half-width Delta = width / (L s^{2-2/L}) of a mode's escape window, per mode.

    The project's one definition of an escape window: [t_esc - Delta, t_esc + Delta] around a
    mode's escape time (theoretical or measured). L s^{2-2/L} is the mode's rate at the
    solution (linearise du/dt = L u^{2-2/L}(s - u) at u = s); the rise through the escape is
    a logistic of that rate: for L = 2, u(t) = s / (1 + e^{-2s(t - t_mid)}) goes from 5% to
    95% of s in ln(361) / (2s) ~ 2.94 / s, and the window with width = 3 spans
    2 Delta = 3 / s, which covers that rise. Chosen over "a quarter of GD's smallest gap between
    escapes" (a spacing heuristic that depends on the neighbours, not on the escape itself):
    this one is a property of the mode and has a derivation. Source: Saxe et al. 2014.
    """
    s = torch.as_tensor(_array(s))
    return width / (depth * s ** (2 - 2 / depth))


def escape_windows(t_esc: torch.Tensor, s: torch.Tensor, depth: int, width: float = 3.0) -> torch.Tensor:
    """[t_esc - Delta, t_esc + Delta] per mode with Delta = :func:`escape_halfwidth`, (n, 2)."""
    delta = escape_halfwidth(s, depth, width).to(torch.as_tensor(t_esc).device)
    t_esc = torch.as_tensor(t_esc, dtype=torch.float64)
    return torch.stack([t_esc - delta, t_esc + delta], dim=-1)


def lazy_rho_at_diag(w_aa0: torch.Tensor, off0: torch.Tensor, s: torch.Tensor, c: float = 0.5) -> torch.Tensor:
    """rho_a at t_diag(a) predicted by the lazy (kernel) model with an isotropic tangent kernel.

    Lazy training with whitened inputs and kernel K ~ kappa I (wide LeCun layers, Jacot et al.
    2018) decays the residual uniformly: w(t) - S = (w(0) - S) f(t), f = e^{-kappa t}, in the
    teacher's mode basis (S = diag(s)). The diagonal reaches c s_a at f* = (1 - c) s_a /
    (s_a - w_aa(0)) (f* = 1, i.e. t_diag = 0, if |w_aa(0)| >= c s_a already), when row a's
    off-diagonal norm is off0 f*; hence rho_a(t_diag) = off0 f* / sqrt((off0 f*)^2 + (c s_a)^2),
    independent of kappa. The mode "aligns first" (t_cross <= t_diag) iff this is <= eps_rho.
    Anisotropy of K (its eigenvalues spread over [k_min, k_max], presets._kernel_bounds) moves
    these values; no margin is derived for it, so the prediction is exploratory.
    """
    s = s.to(w_aa0)
    reached = w_aa0.abs() >= c * s
    f = torch.where(reached, torch.ones_like(s * w_aa0), (1 - c) * s / (s - w_aa0))
    diag = torch.where(reached, w_aa0.abs(), c * s)
    off = off0 * f
    return off / torch.sqrt(off**2 + diag**2)
