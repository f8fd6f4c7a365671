"""When a rank count carries no evidence: the gap at the threshold against SGD's spread.

Setting (protocol 1.1, ranks at a threshold tau = max(eps sigma_1, atol)): r = #{sigma_m > tau}.
GD counts r_GD. Each SGD run's values near tau scatter around their mean: model the log values
of run k as  log sigma_m^(k) = mu_m + delta_m xi_mk,  xi ~ N(0, 1), delta_m the SGD standard
deviation of log sigma_m across runs at that checkpoint (measured, per entry).

**Threshold gap.** The evidence a count carries depends on how far tau is from the two values
that decide it: g = min(log(sigma_r / tau), log(tau / sigma_{r+1})) (r = r_GD, sigma from GD;
a side with no value is +inf). exp(g) is "the gap sigma_r / sigma_{r+1} at the threshold",
the ratio of the nearer deciding value to tau.

**Bound.** A run's count differs from GD's by chance when one of the two values crosses tau,
probability Phi(-g / delta) for the nearer one (delta = max(delta_r, delta_{r+1})). The claim
asserts d_r = 0 at N (checkpoint, entry) pairs for S SGD runs each; for the whole assertion to
fail by chance with probability <= alpha, the union bound over all N S (pair, run) chances gives
N S Phi(-g / delta) <= alpha, i.e.  g >= z delta,  z = Phi^{-1}(1 - alpha / (N S))  (alpha = 0.05;
e.g. S = 8, N = 366 x 6: z = 4.53). An entry with g < z delta is *ambiguous*: a rank difference
there is what SGD's spread produces by chance, so it is evidence neither for nor against the
golden path; it is excluded from d_r and reported (count and its own curve). The rule looks at the
spread, not at whether the counts agree, so it cannot select agreeing entries.

**Power.** A rank change in m of the S SGD runs moves their log sigma by D > g past tau and leaves
the others: the SGD standard deviation becomes D c_m, c_m = sqrt(m (S - m) / (S (S - 1))), so the
entry is ambiguous whenever z c_m D > g. For m < S that holds at every D > g once z c_m >= 1, and
for large D in any case: such a change is caught, if at all, only for g < D <= g / (z c_m).
:func:`fewest_detectable_runs` gives the smallest m with any window (m = S: the spread is unchanged).
"""

from __future__ import annotations

import math

import torch
from scipy.stats import norm

ALPHA = 0.05
TINY = 1e-300  # log floor for exactly-zero singular values


def flip_z(chances: int, alpha: float = ALPHA) -> float:
    """z = Phi^{-1}(1 - alpha / chances): the margin, in SGD standard deviations, that keeps every
    (asserted entry, SGD run) on GD's side of the threshold with probability >= 1 - alpha (union
    bound; chances = asserted (checkpoint, entry) pairs x SGD runs)."""
    if chances < 1:
        raise ValueError(f"chances={chances!r} is invalid: the bound needs at least one (entry, run) pair")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} is invalid: use a probability in (0, 1), e.g. 0.05")
    return float(norm.ppf(1 - alpha / chances))


def _at(logs: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """logs (R, K, k) at per-checkpoint index (K,) (0-based; out of range -> NaN), (R, K)."""
    k = logs.shape[-1]
    ok = (index >= 0) & (index < k)
    picked = logs.gather(-1, index.clamp(0, k - 1).expand(logs.shape[0], -1).unsqueeze(-1)).squeeze(-1)
    return picked.where(ok, float("nan"))


def threshold_gaps(
    svals: torch.Tensor, r_gd: torch.Tensor, threshold: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(g, delta), each (K,), for one product: svals (R, K, k) with run 0 = GD, r_gd (K,) GD's
    count, threshold (K,) GD's tau. g = log-distance of tau to GD's nearer deciding value
    (+inf if none), delta = max SGD std of log sigma_r, log sigma_{r+1} (0 where undefined)."""
    logs = svals.clamp(min=TINY).log()
    above, below = _at(logs, r_gd - 1), _at(logs, r_gd)
    log_tau = threshold.clamp(min=TINY).log()
    g = torch.minimum((above[0] - log_tau).nan_to_num(float("inf")), (log_tau - below[0]).nan_to_num(float("inf")))
    spread = torch.stack([above[1:].std(0), below[1:].std(0)]).nan_to_num(0.0).amax(0)
    return g, spread


def ambiguous(g: torch.Tensor, spread: torch.Tensor, chances: int, alpha: float = ALPHA) -> torch.Tensor:
    """True where g < flip_z(chances) * spread (see the module docstring)."""
    return g < flip_z(chances, alpha) * spread


def fewest_detectable_runs(z: float, runs: int) -> int:
    """Smallest number m of the ``runs`` SGD runs whose shared rank change the ambiguity rule can
    report (module docstring, "Power"): the smallest m < runs with z c_m < 1, else runs."""
    if runs < 2:
        raise ValueError(f"runs={runs!r} is invalid: the SGD spread needs at least 2 runs")
    c = [math.sqrt(m * (runs - m) / (runs * (runs - 1))) for m in range(1, runs)]
    return next((m for m, cm in enumerate(c, start=1) if z * cm < 1), runs)
