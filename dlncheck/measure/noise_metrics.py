"""Measurements behind the published-result claims: variance peaks, drift ratios, log-determinants.

Pure functions of torch tensors with runs on the leading axis and checkpoints on the next one.
"""

from __future__ import annotations

import numpy as np
import torch

from dlncheck import spectra
from dlncheck.measure.events import first_time
from dlncheck.measure.stats import bootstrap_ci
from dlncheck.theory.diffusion_peak import jitter_null_tolerance


def peak_and_learning_times(u: torch.Tensor, s: torch.Tensor, times: torch.Tensor, fraction: float):
    """For mode strengths u (S, K, modes) of S SGD runs: the time the run-to-run variance peaks and
    the median over runs of the first time u >= fraction * s, each (modes,); also the variance (K, modes)."""
    var = u.var(0)
    t_peak = times[var.argmax(0)]
    learned = first_time((u >= fraction * s).movedim(1, -1), times)  # (S, modes), inf if never
    return t_peak, learned.median(0).values, var


def _half_time(path: np.ndarray, level: float, t: np.ndarray) -> float:
    """First time ``path`` reaches ``level`` (linear interpolation between checkpoints), nan if never."""
    k = int(np.argmax(path >= level))
    if path[k] < level:
        return float("nan")
    if k == 0:
        return float(t[0])
    return float(np.interp(level, path[k - 1 : k + 1], t[k - 1 : k + 1]))


def _spacing(t: np.ndarray, k: int) -> float:
    return float(max(t[min(k + 1, len(t) - 1)] - t[k], t[k] - t[max(k - 1, 0)]))


def jitter_null(u: torch.Tensor, s: torch.Tensor, times: torch.Tensor) -> dict[str, np.ndarray]:
    """The escape-jitter null of the run-to-run variance of mode strengths u (S, K, modes): every run is
    one common path shifted in time, u_r(t) = g(t - delta_r) (theory.diffusion_peak.jitter_null_tolerance).
    delta_r: run r's half-time (u_r = s/2) minus the runs' mean; g: the mean of the realigned runs
    u_r(t + delta_r). Returns t_peak_null (modes,), the local checkpoint spacing there, the shifts
    delta (S, modes) and the null's variance (K, modes); nan for a mode some run never half-learns."""
    t, x = times.double().cpu().numpy(), u.double().cpu().numpy()
    runs, K, modes = x.shape
    out = {"t_peak_null": np.full(modes, np.nan), "spacing_null": np.full(modes, np.nan)}
    out |= {"delta": np.full((runs, modes), np.nan), "var_null": np.full((K, modes), np.nan)}
    for a in range(modes):
        half = np.array([_half_time(r, 0.5 * float(s[a]), t) for r in x[:, :, a]])
        if not np.isfinite(half).all():
            continue
        d = half - half.mean()
        g = np.mean([np.interp(t + dd, t, r) for r, dd in zip(x[:, :, a], d)], 0)
        var = np.stack([np.interp(t - dd, t, g) for dd in d]).var(0, ddof=1)
        k = int(var.argmax())
        out["t_peak_null"][a], out["spacing_null"][a] = t[k], _spacing(t, k)
        out["delta"][:, a], out["var_null"][:, a] = d, var
    return out


def diffusion_lead_check(u: torch.Tensor, s: torch.Tensor, times: torch.Tensor, fraction: float, sde=None):
    """The diffusion-peak family's check for one init, per mode (``u`` (S, K, modes) of the SGD runs):
    the variance peaks before learning (t_peak < t_learned), and its lead over the escape-jitter null,
    lead_over_null = t_peak_null - t_peak, equals the modewise SDE's own lead over that null within
    mdd = the null's tolerance (theory.diffusion_peak.jitter_null_tolerance) + the SDE's sampling
    spread of the peak time. ``sde`` = (lead_sde, spread), each (modes,): t_steepest - t_peak of
    theory.published.variance_ode and theory.diffusion_peak.sde_peak_spread; None (no SDE prediction
    for the init): the lead is reported, not checked (``matches_sde`` True). A dict of (modes,) arrays."""
    t_peak, t_learned, var = peak_and_learning_times(u, s, times, fraction)
    null = jitter_null(u, s, times)
    t = times.double().cpu().numpy()
    spacing_peak = np.array([_spacing(t, int(k)) for k in var.argmax(0)])
    max_shift = np.nanmax(np.abs(null["delta"]), 0, initial=0.0)
    tol = np.array(
        [
            jitter_null_tolerance(hp, hn, m) if np.isfinite(hn) else np.nan
            for hp, hn, m in zip(spacing_peak, null["spacing_null"], max_shift)
        ]
    )
    lead = null["t_peak_null"] - t_peak.numpy()
    before = (t_peak < t_learned).numpy()
    if sde is None:
        matches = np.ones_like(before)
    else:
        lead_sde, spread = (np.asarray(x, dtype=np.float64) for x in sde)
        tol = tol + spread
        matches = np.abs(lead - lead_sde) <= tol  # nan (a run never half-learns: no null) fails
    return {
        "t_peak": t_peak.numpy(),
        "t_learned": t_learned.numpy(),
        "t_peak_null": null["t_peak_null"],
        "lead_over_null": lead,
        "mdd": tol,
        "jitter_sd": np.nanstd(null["delta"], 0, ddof=1),
        "before_learning": before,
        "matches_sde": matches,
        "var": var,
        "var_null": null["var_null"],
    }


def ratio_check(ratio: torch.Tensor, tol_rel: float, **bootstrap) -> dict[str, float | bool]:
    """The published family's check of a measured / predicted ratio per SGD run, (R,): the mean is 1
    within the bootstrap interval's half-width + ``tol_rel`` (the prediction's truncation).
    Minimum detectable deviation: the interval's half-width is z_0.975 se, so a true mean 1 + d is
    rejected with probability >= 95% once d >= half + tol_rel + z_0.95 se, i.e.
    mdd = tol_rel + half (1 + 1.645 / 1.96). Returns mean, lo, hi, holds, mdd."""
    lo, hi = bootstrap_ci(ratio, **bootstrap)
    mean, half = float(ratio.mean()), float(hi - lo) / 2
    return {
        "mean": mean,
        "lo": float(lo),
        "hi": float(hi),
        "holds": abs(mean - 1) <= half + tol_rel,
        "mdd": tol_rel + half * (1 + 1.6448536269514722 / 1.959963984540054),
    }


def projected_ratio(measured: torch.Tensor, predicted: torch.Tensor):
    """<measured, predicted> / ||predicted||^2 and the cosine between them, over the last two axes."""
    inner = (measured * predicted).sum((-2, -1))
    m, p = measured.flatten(-2).norm(dim=-1), predicted.flatten(-2).norm(dim=-1)
    return inner / p.square(), inner / (m * p)


def accumulated_drift(per_step: torch.Tensor, steps: torch.Tensor, scale: float, cumulative: bool = False):
    """scale * sum over steps of a per-step drift known at checkpoint ``steps`` (axis 1), by the
    trapezoid rule: (R, ...) total, or (R, K, ...) running total from the first checkpoint."""
    if not cumulative:
        return scale * torch.trapezoid(per_step, steps, dim=1)
    run = scale * torch.cumulative_trapezoid(per_step, steps, dim=1)
    return torch.cat([torch.zeros_like(run[:, :1]), run], 1)


def theta(weights, pair: int = 1) -> torch.Tensor:
    """Theta_l = [W_l, W_{l+1}^T] (..., d_l, d_{l-1} + d_{l+1}), 1-based pair l (Varre et al. 2024)."""
    if not 1 <= pair < len(weights):
        raise ValueError(f"pair={pair} is invalid: use 1 <= pair <= L-1 = {len(weights) - 1}")
    return torch.cat([weights[pair - 1], weights[pair].mT], dim=-1)


def logdet_gram(A: torch.Tensor) -> torch.Tensor:
    """log det(A^T A) = 2 sum_i log sigma_i(A) for a tall A (..., m, n), m >= n."""
    if A.shape[-2] < A.shape[-1]:
        raise ValueError(f"A of shape {tuple(A.shape[-2:])} is wide: A^T A is singular; pass a tall matrix")
    return 2 * spectra.singular_values(A).log().sum(-1)


def slope(y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Least-squares slope of y (..., K) against t (K,)."""
    tc = t - t.mean()
    return ((y - y.mean(-1, keepdim=True)) * tc).sum(-1) / tc.square().sum()


def spectral_norm_sq(W: torch.Tensor) -> float:
    """max over all leading indices of ||W||_2^2 (a bound over the checkpoints of one run)."""
    return float(torch.linalg.matrix_norm(W, ord=2).amax()) ** 2


def departure_times(patterns: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """For rank patterns (R, K, L, L) with run 0 = GD: per SGD run (R-1,), the first checkpoint time
    from which the run's pattern differs from GD's at every later checkpoint (departed for good);
    inf where it equals GD's at the last checkpoint."""
    differs = (patterns[1:] != patterns[:1]).flatten(2).any(-1)  # (R-1, K)
    for_good = differs.flip(1).int().cummin(1).values.flip(1).bool()  # differs from k on
    first = for_good.int().argmax(1)
    return torch.where(for_good[:, -1], times[first].double(), torch.tensor(float("inf"), dtype=torch.float64))
