"""GD-vs-SGD comparison metrics (protocol 1.1, 1.3, "Distance in parameter/function space").

Every input carries runs on the leading axis, run 0 = full-batch GD and runs 1..S = SGD,
then any checkpoint axes, then matrix axes: ``weights`` is a list of L tensors
``(R, ..., d_l, d_{l-1})`` (a ``Trajectory.weights`` or ``AlignedCheckpoints.weights``).
Patterns are ``(R, ..., L, L)`` (rank, multiplicity, gap) or ``(R, ..., L, L, K)``
(log spectra) with entry ``[i-1, j-1]`` for ``P_ij``, i <= j, and zeros below the diagonal.
All metrics are computed for all runs and checkpoints at once; bands come from the
percentile bootstrap over SGD runs (resample runs with replacement, Efron & Tibshirani 1993).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from dlncheck import spectra, stats

Weights = Sequence[torch.Tensor]

#: rank entries whose gap sigma_r / sigma_{r+1} is below this are flagged ambiguous:
#: less than one decade separates the last counted singular value from the next one.
GAP_THRESHOLD = 10.0


# ------------------------------------------------------------------------ helpers
def _check_runs(x: torch.Tensor, name: str) -> None:
    if x.shape[0] < 2:
        raise ValueError(f"{name} has {x.shape[0]} run(s) on axis 0; it needs run 0 = GD and at "
                         "least one SGD run (train with S >= 1)")


def _check_weights(weights: Weights) -> None:
    if len(weights) == 0:
        raise ValueError("weights must hold at least one layer tensor (R, ..., d_l, d_{l-1})")
    for l in range(1, len(weights)):
        if weights[l].shape[-1] != weights[l - 1].shape[-2]:
            raise ValueError(f"weights do not compose: W_{l + 1} has shape "
                             f"{tuple(weights[l].shape)} but W_{l} outputs "
                             f"{weights[l - 1].shape[-2]} dims; pass layers in order W_1..W_L")
    _check_runs(weights[0], "weights[0]")


def _upper(L: int, device=None) -> torch.Tensor:
    return torch.ones(L, L, dtype=torch.bool, device=device).triu()


# ------------------------------------------------------------- rank / multiplicity (1.1)
@dataclass(frozen=True)
class RankPatterns:
    """r_ij, m_ij, the gap sigma_r / sigma_{r+1} at r = r_ij, and gap < threshold flags."""
    r: torch.Tensor           # (R, ..., L, L) int64
    m: torch.Tensor           # (R, ..., L, L) int64, clipped multiplicities
    gap: torch.Tensor         # (R, ..., L, L) float, +inf where no competing value
    ambiguous: torch.Tensor   # (R, ..., L, L) bool, gap < gap_threshold on i <= j
    gap_threshold: float


def rank_patterns(weights: Weights, eps: float, atol: float | None = None,
                  gap_threshold: float = GAP_THRESHOLD) -> RankPatterns:
    """r_ij = #{m: sigma_m(P_ij) > eps sigma_1(P_ij)}, m_ij and gaps from one batched SVD pass.

    Protocol 1.1 steps 2-3. An entry is ambiguous when sigma_r / sigma_{r+1} < gap_threshold.
    """
    return rank_patterns_from_svals(spectra.product_singular_values(weights), len(weights),
                                    eps, atol, gap_threshold)


def rank_patterns_from_svals(svals: dict[tuple[int, int], torch.Tensor], L: int, eps: float,
                             atol: float | None = None, gap_threshold: float = GAP_THRESHOLD
                             ) -> RankPatterns:
    """rank_patterns from precomputed ``spectra.product_singular_values`` (share one SVD pass)."""
    if not gap_threshold > 1:
        raise ValueError(f"gap_threshold must be > 1 (a ratio sigma_r / sigma_(r+1)), got "
                         f"{gap_threshold}; e.g. gap_threshold=10")
    ranks = {k: spectra.numerical_rank_from_svals(s, eps, atol) for k, s in svals.items()}
    gaps = {k: spectra.singular_gap(s, ranks[k]) for k, s in svals.items()}
    r = spectra.pattern_from_products(ranks, L)
    gap = spectra.pattern_from_products(gaps, L)
    gap = torch.where(_upper(L, gap.device), gap, torch.full_like(gap, float("inf")))
    return RankPatterns(r=r, m=spectra.multiplicity_pattern(r), gap=gap,
                        ambiguous=gap < gap_threshold, gap_threshold=gap_threshold)


def sgd_summary(pattern: torch.Tensor, **bootstrap_kwargs) -> dict[str, torch.Tensor]:
    """GD pattern beside the SGD mean, std, s.e.m. and bootstrap CI (lo, hi) over runs 1..S."""
    _check_runs(pattern, "pattern")
    x = pattern.to(torch.float64)
    return {"gd": x[0], **stats.summarize(x[1:], 0, **bootstrap_kwargs)}


def _l1_to_gd(pattern: torch.Tensor, weight: torch.Tensor, n_boot: int, level: float,
              seed: int) -> dict[str, torch.Tensor]:
    """sum_{i<=j} w_ij sum_k |p^GD_ij,k - mean_SGD p_ij,k| with a bootstrap band over SGD runs.

    ``pattern`` is (R, ..., L, L, K); ``weight`` is (L, L) and is zeroed below the diagonal.
    """
    _check_runs(pattern, "pattern")
    x = pattern.to(torch.float64)
    gd, sgd = x[0], x[1:]
    w = (weight.to(torch.float64) * _upper(x.shape[-2])).unsqueeze(-1)

    def distance(mean_sgd: torch.Tensor) -> torch.Tensor:
        dev = mean_sgd.device
        return (w.to(dev) * (gd.to(dev) - mean_sgd).abs()).sum((-3, -2, -1))

    lo, hi = stats.bootstrap_ci(sgd, n_boot=n_boot, level=level, seed=seed, statistic=distance)
    return {"value": distance(sgd.mean(0)), "lo": lo.to(x.device), "hi": hi.to(x.device)}


def d_r(r: torch.Tensor, n_boot: int = 1000, level: float = 0.95, seed: int = 0):
    """d_r(t_k) = sum_{i<=j} |r^GD_ij - mean_SGD r_ij| (protocol 1.1 step 5), with band."""
    return _l1_to_gd(r.unsqueeze(-1), torch.ones(r.shape[-1], r.shape[-1]), n_boot, level, seed)


def d_m(m: torch.Tensor, n_boot: int = 1000, level: float = 0.95, seed: int = 0):
    """d_m(t_k) = sum_{i<=j} |m^GD_ij - mean_SGD m_ij| (protocol 1.1 step 5), with band."""
    return _l1_to_gd(m.unsqueeze(-1), torch.ones(m.shape[-1], m.shape[-1]), n_boot, level, seed)


# ------------------------------------------------------------ singular-value patterns (1.3)
@dataclass(frozen=True)
class LogSpectra:
    """s_ij,k = log max(sigma_k(P_ij), delta) and s~_ij,k = s_ij,k - s_ij,1, k = 1..K."""
    s: torch.Tensor        # (R, ..., L, L, K)
    s_tilde: torch.Tensor  # (R, ..., L, L, K)


def log_spectra(weights: Weights, K: int, delta: float = 1e-30) -> LogSpectra:
    """Top-K log singular values of every P_ij (protocol 1.3 step 2), one batched SVD pass.

    Matches ``spectra.log_spectrum`` entrywise: K > min(m, n) pads with log(delta), and
    the shape-normalized version is log(max(sigma_k, delta) / max(sigma_1, delta)).
    """
    return log_spectra_from_svals(spectra.product_singular_values(weights), len(weights), K, delta)


def log_spectra_from_svals(svals: dict[tuple[int, int], torch.Tensor], L: int, K: int,
                           delta: float = 1e-30) -> LogSpectra:
    """log_spectra from precomputed ``spectra.product_singular_values`` (share one SVD pass)."""
    if not isinstance(K, int) or K < 1:
        raise ValueError(f"K must be a positive integer (number of top singular values), got {K!r}")
    if not delta > 0:
        raise ValueError(f"delta must be > 0 (the floor that avoids log(0)), got {delta}")
    some = next(iter(svals.values()))
    s = some.new_zeros(some.shape[:-1] + (L, L, K))
    for (i, j), sv in svals.items():
        top = torch.nn.functional.pad(sv[..., :K], (0, max(0, K - sv.shape[-1])))
        s[..., i - 1, j - 1, :] = torch.log(top.clamp(min=delta))
    s_tilde = (s - s[..., :1]) * _upper(L, s.device).unsqueeze(-1)
    return LogSpectra(s=s, s_tilde=s_tilde)


def interval_weights(L: int) -> torch.Tensor:
    """w_ij = j - i + 1 on i <= j (protocol 1.3 step 4), 0 below the diagonal, (L, L)."""
    i = torch.arange(1, L + 1, dtype=torch.float64)
    return (i[None, :] - i[:, None] + 1).clamp(min=0) * _upper(L)


def d_sigma(s: torch.Tensor, n_boot: int = 1000, level: float = 0.95, seed: int = 0):
    """d_sigma(t_k) = sum_{i<=j} sum_k |s^GD_ij,k - mean_SGD s_ij,k| (protocol 1.3 step 4)."""
    return _l1_to_gd(s, torch.ones(s.shape[-2], s.shape[-2]), n_boot, level, seed)


def d_shape(s_tilde: torch.Tensor, n_boot: int = 1000, level: float = 0.95, seed: int = 0):
    """d_shape(t_k): d_sigma applied to the shape-normalized spectra s~ (protocol 1.3 step 4)."""
    return d_sigma(s_tilde, n_boot, level, seed)


def d_sigma_w(s: torch.Tensor, n_boot: int = 1000, level: float = 0.95, seed: int = 0):
    """d_sigma,w(t_k) = sum_{i<=j} (j - i + 1) sum_k |s^GD_ij,k - mean_SGD s_ij,k|."""
    return _l1_to_gd(s, interval_weights(s.shape[-2]), n_boot, level, seed)


# ------------------------------------------------------------------ parameter space
def _flat(weights: Weights) -> torch.Tensor:
    """theta = concatenation of the flattened layers, (R, ..., P)."""
    return torch.cat([W.flatten(-2) for W in weights], dim=-1)


def theta_norm(weights: Weights) -> torch.Tensor:
    """||theta||_2 per run and checkpoint, (R, ...)."""
    return torch.linalg.vector_norm(_flat(weights), dim=-1)


def theta_distance(weights: Weights) -> torch.Tensor:
    """||theta_GD - theta_SGD||_2 for each SGD run, (S, ...); E_B is the mean over axis 0."""
    _check_weights(weights)
    theta = _flat(weights)
    return torch.linalg.vector_norm(theta[1:] - theta[:1], dim=-1)


def theta_ratio(weights: Weights) -> torch.Tensor:
    """||theta_GD - theta_SGD||_2 / ||theta_GD||_2 per SGD run, (S, ...); its mean is the
    seed's ratio E_B||theta_GD - theta_SGD|| / ||theta_GD||."""
    return theta_distance(weights) / theta_norm(weights)[:1]


def cosine(weights: Weights) -> torch.Tensor:
    """cos(theta_GD, theta_SGD) = theta_GD . theta_SGD / (||theta_GD|| ||theta_SGD||), (S, ...)."""
    _check_weights(weights)
    theta = _flat(weights)
    return torch.nn.functional.cosine_similarity(theta[1:], theta[:1], dim=-1, eps=1e-300)


def d_l(weights: Weights) -> torch.Tensor:
    """||W_l,GD - W_l,SGD||_F / ||W_l,GD||_F per SGD run and layer, (S, ..., L).

    The seed's d_l is the mean over SGD runs (axis 0); its aggregate d = mean_l d_l.
    """
    _check_weights(weights)
    per_layer = [torch.linalg.matrix_norm(W[1:] - W[:1]) / torch.linalg.matrix_norm(W[:1])
                 for W in weights]
    return torch.stack(per_layer, dim=-1)


def d(weights: Weights) -> torch.Tensor:
    """Aggregate d = (1/L) sum_l d_l per SGD run, (S, ...); E_B is the mean over axis 0."""
    return d_l(weights).mean(-1)


# ------------------------------------------------- parameter space modulo the gauge
def _polar(N: torch.Tensor) -> torch.Tensor:
    """argmax_{Q orthogonal} tr(Q^T N) = U V^T for N = U Sigma V^T (orthogonal Procrustes)."""
    U, _, Vh = torch.linalg.svd(N)
    return U @ Vh


def _gauge_objective(gd: Weights, sgd: Weights) -> torch.Tensor:
    return sum(torch.linalg.matrix_norm(G - B).square() for G, B in zip(gd, sgd))


def _apply_gauge(sgd: Weights, Q: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """W_l -> Q_l W_l Q_{l-1}^T with Q_0 = Q_L = I (end-to-end map unchanged)."""
    L = len(sgd)
    out = []
    for l, W in enumerate(sgd, start=1):
        W = Q[l - 1] @ W if l < L else W
        out.append(W @ Q[l - 2].mT if l > 1 else W)
    return out


@dataclass(frozen=True)
class GaugeAlignment:
    """SGD weights moved to the gauge closest to GD, the hidden-layer rotations Q_1..Q_{L-1},
    and the Procrustes objective sum_l ||W_l,GD - Q_l W_l,SGD Q_{l-1}^T||_F^2 before/after."""
    weights: list[torch.Tensor]   # L tensors (R, ..., d_l, d_{l-1}); run 0 = GD unchanged
    Q: list[torch.Tensor]         # L-1 tensors (S, ..., d_l, d_l)
    objective_raw: torch.Tensor   # (S, ...)
    objective: torch.Tensor       # (S, ...)
    sweeps: int


def _procrustes_sweeps(gd: list[torch.Tensor], sgd: list[torch.Tensor], Q: list[torch.Tensor],
                       tol: torch.Tensor, max_sweeps: int) -> tuple[list[torch.Tensor], torch.Tensor, int]:
    """Alternating Procrustes on a flat batch (n, ...): Q_l <- polar(G_l (B_l Q_{l-1}^T)^T +
    G_{l+1}^T Q_{l+1} B_{l+1}), l = 1..L-1. A problem leaves the active set once a sweep lowers
    its objective by less than ``tol`` (n,), so the cost follows the slow problems only."""
    L = len(gd)
    Q = [q.clone() for q in Q]
    objective = _gauge_objective(gd, _apply_gauge(sgd, Q))
    active = torch.arange(objective.shape[0], device=objective.device)
    sweeps = 0
    while active.numel() and sweeps < max_sweeps:
        sweeps += 1
        G, B = [x[active] for x in gd], [x[active] for x in sgd]
        q = [x[active] for x in Q]
        for l in range(1, L):
            left = B[0] if l == 1 else B[l - 1] @ q[l - 2].mT              # B_l Q_{l-1}^T
            right = B[l] if l + 1 == L else q[l] @ B[l]                    # Q_{l+1} B_{l+1}
            q[l - 1] = _polar(G[l - 1] @ left.mT + G[l].mT @ right)
        new = _gauge_objective(G, _apply_gauge(B, q))
        done = (objective[active] - new) <= tol[active]
        for full, part in zip(Q, q):
            full[active] = part
        objective[active] = new
        active = active[~done]
    return Q, objective, sweeps


def gauge_align(weights: Weights, max_sweeps: int = 50, rtol: float = 1e-8) -> GaugeAlignment:
    """Align every SGD run to GD over the hidden-layer orthogonal gauge by alternating Procrustes.

    The loss depends on W = W_L ... W_1 only, so W_l -> Q_l W_l Q_{l-1}^T (Q_0 = Q_L = I,
    Q_l in O(d_l)) is a symmetry; the gauge-aligned distance is
    min_Q sum_l ||W_l,GD - Q_l W_l,SGD Q_{l-1}^T||_F^2. Block-coordinate descent: Q_l given the
    others is the orthogonal Procrustes solution (Schoenemann 1966), so no sweep increases the
    objective. The problem is non-convex, so three starts run side by side: identity (hence
    aligned <= raw always), a forward sweep fitting layer l alone from the input side and a
    backward sweep fitting layer l+1 alone from the output side; the best start wins per run
    and checkpoint. A pure gauge copy is recovered exactly when hidden widths do not grow
    from the input (forward start) or from the output (backward start); otherwise the result
    is a local optimum, i.e. an upper bound on the true gauge distance. A problem stops when
    a sweep lowers its objective by less than ``rtol`` times its raw objective.
    """
    if max_sweeps < 1:
        raise ValueError(f"max_sweeps must be >= 1, got {max_sweeps}; e.g. max_sweeps=50")
    _check_weights(weights)
    L = len(weights)
    batch = weights[0].shape[1:-2]
    gd = [W[:1].expand_as(W[1:]).reshape(-1, *W.shape[-2:]) for W in weights]
    sgd = [W[1:].reshape(-1, *W.shape[-2:]) for W in weights]
    objective_raw = _gauge_objective(gd, sgd)
    if L == 1:
        return GaugeAlignment(list(weights), [], objective_raw.reshape(-1, *batch),
                              objective_raw.reshape(-1, *batch), 0)
    n = objective_raw.shape[0]
    eye = [torch.eye(B.shape[-2], dtype=B.dtype, device=B.device).expand(n, B.shape[-2], B.shape[-2])
           for B in sgd[:-1]]
    forward, backward = list(eye), list(eye)
    for l in range(1, L):                                   # ||G_l - Q_l B_l Q_{l-1}^T|| alone
        left = sgd[0] if l == 1 else sgd[l - 1] @ forward[l - 2].mT
        forward[l - 1] = _polar(gd[l - 1] @ left.mT)
    for l in range(L - 1, 0, -1):                           # ||G_{l+1} - Q_{l+1} B_{l+1} Q_l^T||
        right = sgd[l] if l + 1 == L else backward[l] @ sgd[l]
        backward[l - 1] = _polar(gd[l].mT @ right)
    starts = 3
    Q, objective, sweeps = _procrustes_sweeps(
        [G.repeat(starts, 1, 1) for G in gd], [B.repeat(starts, 1, 1) for B in sgd],
        [torch.cat(qs) for qs in zip(eye, forward, backward)],
        rtol * objective_raw.repeat(starts), max_sweeps)
    best = objective.reshape(starts, n).argmin(0)
    pick = best * n + torch.arange(n, device=best.device)
    Q = [q[pick] for q in Q]
    aligned = _apply_gauge(sgd, Q)
    return GaugeAlignment(
        weights=[torch.cat([W[:1], A.reshape(W[1:].shape)]) for W, A in zip(weights, aligned)],
        Q=[q.reshape(-1, *batch, *q.shape[-2:]) for q in Q],
        objective_raw=objective_raw.reshape(-1, *batch),
        objective=objective[pick].reshape(-1, *batch), sweeps=sweeps)


# ------------------------------------------------------------------- function space
def function_distance(weights: Weights) -> torch.Tensor:
    """||W_GD - W_SGD||_F / ||W_GD||_F of the end-to-end maps W = W_L ... W_1, (S, ...)."""
    _check_weights(weights)
    W = spectra.end_to_end(weights)
    return torch.linalg.matrix_norm(W[1:] - W[:1]) / torch.linalg.matrix_norm(W[:1])


# ------------------------------------------------------------------------ tables
def over_runs(per_run: torch.Tensor, **bootstrap_kwargs) -> dict[str, torch.Tensor]:
    """E_B of a per-SGD-run metric (S, ...) with std, s.e.m. and bootstrap CI over runs."""
    return stats.summarize(per_run.to(torch.float64), 0, **bootstrap_kwargs)


def frame(index: dict[str, object], **metrics: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Tidy long table: one row per (index entry, metric) with the metric's summary columns.

    ``index`` maps column names (e.g. step, time, kind) to 1-d arrays of length K; each
    metric is a dict of (K,) tensors such as ``over_runs(...)`` or ``d_r(...)``.
    """
    rows = []
    for name, summary in metrics.items():
        cols = {k: np.asarray(torch.as_tensor(v).detach().cpu()) for k, v in summary.items()}
        rows.append(pd.DataFrame({**{k: np.asarray(v) for k, v in index.items()},
                                  "metric": name, **cols}))
    return pd.concat(rows, ignore_index=True)


# ------------------------------------------------------------ checkpoint windows
def escape_windows(t_esc: torch.Tensor, s: torch.Tensor, depth: int, width: float = 3.0
                   ) -> torch.Tensor:
    """[t_esc - Delta, t_esc + Delta] per mode, Delta = width / (L s^{2-2/L}), (n, 2).

    L s^{2-2/L} is the mode's rate at the solution (du/dt = L u^{2-2/L}(s - u)); for L = 2 the
    logistic rise from 5% to 95% of s spans ln(361)/(2s) ~ 2.9/s, so width = 3 covers it.
    """
    delta = width / (depth * s.to(torch.float64) ** (2 - 2 / depth))
    return torch.stack([t_esc - delta, t_esc + delta], dim=-1)


def in_windows(times: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """True where a time lies inside any window (n, 2); times (K,) -> (K,) bool."""
    t = times.to(torch.float64)[:, None]
    return ((t >= windows[:, 0]) & (t <= windows[:, 1])).any(-1)


def transition_checkpoints(r_gd: torch.Tensor) -> torch.Tensor:
    """True at checkpoints next to a change of GD's own rank pattern, r_gd (K, L, L) -> (K,).

    Checkpoint k is a transition when r(k) differs from r(k-1) or r(k+1): a singular value is
    crossing the threshold there, and SGD's small timing jitter alone can flip the count. The
    rule looks at GD only, so it cannot hide an SGD run that visits a different pattern.
    """
    changed = (r_gd[1:] != r_gd[:-1]).flatten(1).any(-1)                   # between k and k+1
    out = torch.zeros(r_gd.shape[0], dtype=torch.bool, device=r_gd.device)
    out[1:] |= changed
    out[:-1] |= changed
    return out
