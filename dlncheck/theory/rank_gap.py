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
1 <= m <= S (m = S: one group, the plain spread), so the rule keeps no blind window.

**Which quantile.** The plain spread contains the run it judges, which bounds how far that run can
sit from the others (Samuelson: (S - 1) / sqrt(S) spreads) and made the normal z conservative.
The within-count spread does not contain a run that crossed alone, so the run's distance in units
of it is Student t with nu = S - G degrees of freedom (a new normal draw over an independent
chi-square spread), and the bound becomes  g >= t_nu delta,  t_nu = t_nu^{-1}(1 - alpha / (N S))
(:func:`flip_t`; S = 8, G = 2 at a quick case's z = 4.53: t_6 = 14.9). Monte Carlo under the null
(S = 8 Gaussian runs around GD, tau c spreads away, c = 0.5..4): with z the missed crossings per
entry reach 200 x alpha / N, with t_nu they stay below alpha / N (tests/test_rank_gap.py). Where
the runs share one count (G = 1) the rule is unchanged, z on the plain spread: a count then
differs from GD's only if all S runs do, probability Phi(-g / delta)^S under the null, far inside
the bound. Entries whose runs all agree are thus excluded exactly as before; where counts differ
the rule drops the spread between counts, so disagreeing counts cannot make their own entry
ambiguous, and pays for the fewer degrees of freedom with t_nu.

**Power.** A rank change in m of the S SGD runs leaves the within-count spread at SGD's noise,
so it is reported at every size past tau wherever GD's entry stands clear of that noise
(g >= t_nu delta): :func:`fewest_detectable_runs` is 1 for S >= 3 (for S = 2 the single split leaves
no within-count degree of freedom and the plain spread, with c_1 = 1 / sqrt 2, decides).
"""

from __future__ import annotations

import math

import torch
from scipy.stats import norm
from scipy.stats import t as student_t

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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(g, delta, dof), each (K,), for one product: svals (R, K, k) with run 0 = GD, r_gd (K,) GD's
    count, threshold (K,) GD's tau. g = log-distance of tau to GD's nearer deciding value
    (+inf if none), delta = max over log sigma_r, log sigma_{r+1} of the SGD runs' spread within
    their counts at tau (:func:`within_count_std`; 0 where undefined), dof its degrees of freedom
    (inf: the plain spread, one count)."""
    logs = svals.clamp(min=TINY).log()
    above, below = _at(logs, r_gd - 1), _at(logs, r_gd)
    log_tau = threshold.clamp(min=TINY).log()
    g = torch.minimum((above[0] - log_tau).nan_to_num(float("inf")), (log_tau - below[0]).nan_to_num(float("inf")))
    counts = (logs[1:] > log_tau[:, None]).sum(-1)  # (S, K) each SGD run's count at tau
    (spread_above, dof), (spread_below, _) = within_count_std(above[1:], counts), within_count_std(below[1:], counts)
    return g, torch.stack([spread_above, spread_below]).nan_to_num(0.0).amax(0), dof


def within_count_std(x: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(std, dof), each (K,): the pooled within-group standard deviation of x (S, K) over the runs
    grouped by their counts (S, K), sqrt(sum of squares about each group's mean / (S - groups)),
    and its degrees of freedom S - groups; where the runs share one count (or every run is its own
    group) the plain standard deviation and dof = inf (module docstring, "Which spread")."""
    members = torch.nn.functional.one_hot(counts, int(counts.max()) + 1).to(x.dtype)  # (S, K, C)
    size = members.sum(0)  # (K, C)
    mean = (members * x.unsqueeze(-1)).sum(0) / size.clamp(min=1)
    squares = ((x - (members * mean).sum(-1)) ** 2).sum(0)
    groups = (size > 0).sum(-1)
    dof = (x.shape[0] - groups).to(x.dtype)
    split = (groups > 1) & (dof > 0)
    return torch.where(split, squares / dof.clamp(min=1), x.var(0)).sqrt(), torch.where(split, dof, math.inf)


def flip_t(chances: int, dof: torch.Tensor, alpha: float = ALPHA) -> torch.Tensor:
    """Student t's t_dof^{-1}(1 - alpha / chances), elementwise over dof: :func:`flip_z` for a spread
    estimated with dof degrees of freedom (dof = inf: flip_z itself)."""
    flip_z(chances, alpha)  # the same checks of chances and alpha
    nu = dof.clamp(min=1).cpu().numpy()  # below a pattern's diagonal dof is 0 and unused: read as 1
    return torch.as_tensor(student_t.isf(alpha / chances, nu), dtype=torch.float64)


def ambiguous(
    g: torch.Tensor, spread: torch.Tensor, dof: torch.Tensor, chances: int, alpha: float = ALPHA
) -> torch.Tensor:
    """True where g < flip_t(chances, dof) * spread (see the module docstring)."""
    return g < flip_t(chances, dof, alpha) * spread


def pattern_gaps(
    svals: dict, r_gd: torch.Tensor, eps: float, atol: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(g, delta, dof) of every P_ij as (K, L, L) patterns: :func:`threshold_gaps` of each product's
    singular values svals[(i, j)] (R, K, k) at GD's counts r_gd (K, L, L) and GD's threshold
    tau = max(eps sigma_1, atol)."""
    L = r_gd.shape[-1]
    g, spread, dof = {}, {}, {}
    for (i, j), sv in svals.items():
        tau = torch.clamp(eps * sv[0, :, 0], min=atol)
        g[(i, j)], spread[(i, j)], dof[(i, j)] = threshold_gaps(sv, r_gd[:, i - 1, j - 1], tau)
    return pattern_from_products(g, L), pattern_from_products(spread, L), pattern_from_products(dof, L)


def fewest_detectable_runs(z: float, runs: int) -> int:
    """Smallest number m of the ``runs`` SGD runs whose shared rank change the ambiguity rule can
    report (module docstring, "Power"): 1 from 3 runs on (the within-count spread keeps a degree of
    freedom for every split); at 2 runs the plain spread decides: 1 if z / sqrt(2) < 1, else 2."""
    if runs < 2:
        raise ValueError(f"runs={runs!r} is invalid: the SGD spread needs at least 2 runs")
    return 1 if runs >= 3 or z / math.sqrt(2) < 1 else runs
