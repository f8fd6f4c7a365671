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
golden path; it is excluded from d_r and reported (count and its own curve).

**Which spread.** delta must be SGD's noise, not the deviation the claim tests. A rank change
shared by m of the S runs moves their log sigma by D past tau; the plain standard deviation then
gains D c_m, c_m = sqrt(m (S - m) / (S (S - 1))), and the entry turns ambiguous whenever
z c_m D > g: with z c_m >= 1 (every 1 <= m < S at S = 8, z > 4) the change is excluded at any
size. A leave-one-out spread (the other runs' spread when judging one run) removes only the judged
run's shift: the other m - 1 changed runs still inflate it, so it is blind from m = 2. A robust
spread (MAD) tolerates a changed minority only (breakdown point 1/2): at m = S/2 the median lies
between the two groups and MAD ~ D/2, blind at any size again. No scale estimator of the pooled
sample separates "noise" from "a shift of a subset" once the subset is half of it. What does is
the grouping the claim itself reads: each run's count at tau, n_k = #{sigma^(k) > tau}. The
spread used is the *within-count* one, pooled over the G distinct counts of the S runs:

    delta^2 = sum_groups sum_{k in group} (log sigma^(k) - mean_group)^2 / (S - G),

per deciding value (sigma_r, sigma_{r+1}; the plain standard deviation where S - G = 0). A shift
of m runs past tau moves them into their own group and leaves delta at SGD's noise for every
1 <= m <= S (m = S: one group, the plain spread), so the rule keeps no blind window. Under the
null (one Gaussian, no planted change) the grouping truncates the noise at tau: the runs on GD's
side are a normal cut c = g / delta from its mean, standard deviation s(c) delta with
s(c) >= sqrt(1 - 2 / pi) = 0.60 for every c and s(c) >= 0.985 for c >= 2.7 (truncated normal).
An entry with g < 0.6 z delta stays ambiguous, and from there to z delta (c >= 0.6 z >= 2.7 at
z >= 4.5, a quick case) the spread is within 1.5 % of delta: the bound is kept where it decides.
Entries whose runs all share one count get the plain spread, as before; elsewhere the rule drops
the spread between counts, so disagreeing counts cannot make their own entry ambiguous.

**Power.** A rank change in m of the S SGD runs leaves the within-count spread at SGD's noise,
so it is reported at every size past tau wherever the golden path's entry is unambiguous
(g >= z delta): :func:`fewest_detectable_runs` is 1 for S >= 3 (for S = 2 the single split leaves
no within-count degree of freedom and the plain spread, with c_1 = 1 / sqrt 2, decides).
"""

from __future__ import annotations

import math

import torch
from scipy.stats import norm

from dlncheck.spectra import pattern_from_products

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
    (+inf if none), delta = max over log sigma_r, log sigma_{r+1} of the SGD runs' spread within
    their counts at tau (:func:`within_count_std`; 0 where undefined)."""
    logs = svals.clamp(min=TINY).log()
    above, below = _at(logs, r_gd - 1), _at(logs, r_gd)
    log_tau = threshold.clamp(min=TINY).log()
    g = torch.minimum((above[0] - log_tau).nan_to_num(float("inf")), (log_tau - below[0]).nan_to_num(float("inf")))
    counts = (logs[1:] > log_tau[:, None]).sum(-1)  # (S, K) each SGD run's count at tau
    spread = torch.stack([within_count_std(above[1:], counts), within_count_std(below[1:], counts)])
    return g, spread.nan_to_num(0.0).amax(0)


def within_count_std(x: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Pooled within-group standard deviation (K,) of x (S, K) over the runs grouped by their
    count counts (S, K): sqrt(sum of squares about each group's mean / (S - groups)); the plain
    standard deviation where every run is its own group (module docstring, "Which spread")."""
    members = torch.nn.functional.one_hot(counts, int(counts.max()) + 1).to(x.dtype)  # (S, K, C)
    size = members.sum(0)  # (K, C)
    mean = (members * x.unsqueeze(-1)).sum(0) / size.clamp(min=1)
    squares = ((x - (members * mean).sum(-1)) ** 2).sum(0)
    dof = x.shape[0] - (size > 0).sum(-1)
    return torch.where(dof > 0, squares / dof.clamp(min=1), x.var(0)).sqrt()


def ambiguous(g: torch.Tensor, spread: torch.Tensor, chances: int, alpha: float = ALPHA) -> torch.Tensor:
    """True where g < flip_z(chances) * spread (see the module docstring)."""
    return g < flip_z(chances, alpha) * spread


def pattern_gaps(svals: dict, r_gd: torch.Tensor, eps: float, atol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(g, delta) of every P_ij as (K, L, L) patterns: :func:`threshold_gaps` of each product's
    singular values svals[(i, j)] (R, K, k) at GD's counts r_gd (K, L, L) and GD's threshold
    tau = max(eps sigma_1, atol)."""
    L = r_gd.shape[-1]
    g, spread = {}, {}
    for (i, j), sv in svals.items():
        tau = torch.clamp(eps * sv[0, :, 0], min=atol)
        g[(i, j)], spread[(i, j)] = threshold_gaps(sv, r_gd[:, i - 1, j - 1], tau)
    return pattern_from_products(g, L), pattern_from_products(spread, L)


def fewest_detectable_runs(z: float, runs: int) -> int:
    """Smallest number m of the ``runs`` SGD runs whose shared rank change the ambiguity rule can
    report (module docstring, "Power"): 1 from 3 runs on (the within-count spread keeps a degree of
    freedom for every split); at 2 runs the plain spread decides: 1 if z / sqrt(2) < 1, else 2."""
    if runs < 2:
        raise ValueError(f"runs={runs!r} is invalid: the SGD spread needs at least 2 runs")
    return 1 if runs >= 3 or z / math.sqrt(2) < 1 else runs
