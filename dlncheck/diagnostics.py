"""Stagewise-dynamics diagnostics: balance, mode coefficients, rank growth, eps plateaus.

Pure functions of torch tensors, batched over any leading axes (runs, checkpoints, eps
values); a layer list ``weights`` holds L tensors ``(..., d_l, d_{l-1})`` and a time axis
is always the last batch axis (``(..., K)``). Formulas follow the protocol
(``shared/seeds/000_442b223873da0ef7.txt``): section 1.2 (DLN calibration, eps sweep),
"Balanced assumptions" and "Mode decoupling".
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from dlncheck import spectra

Weights = Sequence[torch.Tensor]


def _fro(A: torch.Tensor) -> torch.Tensor:
    return torch.linalg.matrix_norm(A, "fro")


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den with 0 / 0 = 0 (an all-zero matrix is balanced / has no cross energy)."""
    return torch.where(den > 0, num / torch.where(den > 0, den, 1.0), torch.zeros_like(num))


def _check_depth(weights: Weights, what: str) -> None:
    if len(weights) < 2:
        raise ValueError(f"{what} needs at least 2 layers (adjacent pairs), got {len(weights)}; "
                         "pass the full list [W_1, ..., W_L]")
    spectra.end_to_end(weights)  # shape / finiteness checks with actionable messages


# ------------------------------------------------------------------------------ balance
def balance_matrices(weights: Weights) -> list[torch.Tensor]:
    """D_l = W_{l+1}^T W_{l+1} - W_l W_l^T for l = 1..L-1, each (..., d_l, d_l).

    Conserved by gradient flow on any loss of the product W_L...W_1 (Arora et al. 2018,
    Thm. 1); the protocol's balance matrix is -D_l.
    """
    _check_depth(weights, "balance_matrices")
    return [Wn.transpose(-1, -2) @ Wn - W @ W.transpose(-1, -2)
            for W, Wn in zip(weights[:-1], weights[1:])]


def _balance_scales(weights: Weights) -> torch.Tensor:
    """||W_l W_l^T||_F + ||W_{l+1}^T W_{l+1}||_F per adjacent pair, (..., L-1)."""
    return torch.stack([_fro(W @ W.transpose(-1, -2)) + _fro(Wn.transpose(-1, -2) @ Wn)
                        for W, Wn in zip(weights[:-1], weights[1:])], dim=-1)


def balance_residuals(weights: Weights) -> torch.Tensor:
    """r_l = ||W_l W_l^T - W_{l+1}^T W_{l+1}||_F / (||W_l W_l^T||_F + ||W_{l+1}^T W_{l+1}||_F).

    Shape (..., L-1), entry l-1 for the pair (l, l+1); in [0, 1], invariant to scaling all
    layers by one constant, 0 for exactly balanced weights (protocol "Balanced assumptions").
    """
    D = torch.stack([_fro(D) for D in balance_matrices(weights)], dim=-1)
    return _safe_div(D, _balance_scales(weights))


def discrete_drift(updates: Weights) -> list[torch.Tensor]:
    """Exact one-step change of D_l under W_l <- W_l + Delta_l with product-gradient updates.

    With Delta_l = -lr G_l and G_l the gradient of a loss of the product, the first-order
    terms cancel (W_{l+1}^T G_{l+1} = G_l W_l^T), leaving
    D_l(k+1) - D_l(k) = Delta_{l+1}^T Delta_{l+1} - Delta_l Delta_l^T
                     = lr^2 (G_{l+1}^T G_{l+1} - G_l G_l^T).
    Holds for full-batch GD and for SGD (each step is the gradient of a mini-batch loss).
    """
    return balance_matrices(updates)


def drift_identity(weights: Weights) -> dict[str, torch.Tensor]:
    """Check the accumulated discrete-drift identity along consecutive steps.

    ``weights`` hold layers at K consecutive optimizer steps on the time axis:
    (..., K, d_l, d_{l-1}). Returns, per pair (..., L-1):
      ``error``: max_k ||D_l(k) - D_l(0) - sum_{j<k} drift_l(j)||_F / max_k scale_l(k),
                 scale_l = ||W_l W_l^T||_F + ||W_{l+1}^T W_{l+1}||_F (relative error);
      ``D0``:    ||D_l(0)||_F;
      ``drift``: (..., K, L-1) accumulated sum_{j<k} ||drift_l(j)||_F (the bound's increment);
      ``bound``: (..., K, L-1) (||D_l(0)||_F + drift) / scale_l(k), an upper bound on
                 r_l(k) implied by the identity through the triangle inequality.
    """
    _check_depth(weights, "drift_identity")
    if weights[0].ndim < 3 or weights[0].shape[-3] < 2:
        raise ValueError("drift_identity needs at least 2 consecutive steps on axis -3 "
                         "(..., K, d_l, d_{l-1}); checkpoint every step of a window")
    updates = [W[..., 1:, :, :] - W[..., :-1, :, :] for W in weights]
    steps = discrete_drift(updates)                                  # (..., K-1, d, d)
    D = balance_matrices(weights)                                    # (..., K, d, d)
    scale = _balance_scales(weights)                                 # (..., K, L-1)
    errors, drifts = [], []
    for D_l, step_l in zip(D, steps):
        predicted = torch.cumsum(step_l, dim=-3)
        errors.append(_fro(D_l[..., 1:, :, :] - D_l[..., :1, :, :] - predicted).amax(-1))
        acc = torch.cumsum(_fro(step_l), dim=-1)
        drifts.append(torch.cat([torch.zeros_like(acc[..., :1]), acc], dim=-1))
    drift = torch.stack(drifts, dim=-1)
    D0 = torch.stack([_fro(D_l[..., 0, :, :]) for D_l in D], dim=-1)
    return {"error": torch.stack(errors, dim=-1) / scale.amax(-2),
            "D0": D0, "drift": drift,
            "bound": _safe_div(D0.unsqueeze(-2) + drift, scale)}


def balanced_residual_prediction(D0_norm: torch.Tensor, s: torch.Tensor, depth: int) -> torch.Tensor:
    """Final r_l predicted from the conserved D_l(0): ||D_l(0)||_F / (2 (sum_a s_a^{4/L})^{1/2}).

    At convergence to a teacher with nonzero singular values s_a, balanced layers carry
    singular values s_a^{1/L}, so ||W_l W_l^T||_F = (sum_a s_a^{4/L})^{1/2} for each layer;
    D_l is conserved by the flow, so r_l(T) ~ ||D_l(0)||_F over twice that norm.
    """
    if depth < 2:
        raise ValueError(f"depth must be >= 2, got {depth}")
    s = s[s > 0]
    return D0_norm / (2 * torch.sqrt((s ** (4 / depth)).sum()))


# ---------------------------------------------------------------------- mode coefficients
def complete_basis(U: torch.Tensor) -> torch.Tensor:
    """Orthonormal d x d basis whose first k columns are the orthonormal columns of U (d, k).

    Complete QR (Householder) of U; column signs fixed so that Q[:, :k] = U exactly in
    exact arithmetic. The completion of the null space is deterministic.
    """
    d, k = U.shape[-2], U.shape[-1]
    if k > d:
        raise ValueError(f"U must have at most as many columns as rows, got shape {tuple(U.shape)}")
    Q, R = torch.linalg.qr(U, mode="complete")
    sign = torch.sign(torch.diagonal(R[..., :k, :k], dim1=-2, dim2=-1))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    return torch.cat([Q[..., :, :k] * sign.unsqueeze(-2), Q[..., :, k:]], dim=-1)


def mode_coefficients(W: torch.Tensor, U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """w_ab = u_a^T W v_b in the teacher's full singular bases: U^T W V, (..., d_out, d_in).

    U, V may be thin (teacher's nonzero modes only); they are completed to full bases.
    """
    if U.shape[-2] != W.shape[-2] or V.shape[-2] != W.shape[-1]:
        raise ValueError(f"bases do not match W: W is {tuple(W.shape[-2:])}, U is "
                         f"{tuple(U.shape)}, V is {tuple(V.shape)}; pass the teacher's U (d_out, k) "
                         "and V (d_in, k)")
    U, V = complete_basis(U).to(W), complete_basis(V).to(W)
    return U.transpose(-1, -2) @ W @ V


def _block_mask(s: torch.Tensor, n_rows: int, n_cols: int, rtol: float) -> torch.Tensor:
    """(n_rows, n_cols) bool: True where (a, b) lie in one degenerate block of s (a != b incl.)."""
    n = s.shape[-1]
    same = torch.zeros(n_rows, n_cols, dtype=torch.bool, device=s.device)
    a, b = min(n_rows, n), min(n_cols, n)
    close = (s[:a, None] - s[None, :b]).abs() <= rtol * s[0]
    same[:a, :b] = close & (s[:a, None] > 0)
    return same | torch.eye(n_rows, n_cols, dtype=torch.bool, device=s.device)


def degenerate_blocks(s: torch.Tensor, rtol: float = 1e-9) -> list[list[int]]:
    """Groups of 0-based indices of nonzero singular values equal within rtol * s_1."""
    blocks: list[list[int]] = []
    for a, value in enumerate(s.tolist()):
        if value <= 0:
            break
        if blocks and abs(s[blocks[-1][0]].item() - value) <= rtol * s[0].item():
            blocks[-1].append(a)
        else:
            blocks.append([a])
    return blocks


def cross_energy(w: torch.Tensor) -> dict[str, torch.Tensor]:
    """E_cross = sum_{a != b} w_ab^2, E_tot = sum_ab w_ab^2 and their ratio, each (...)."""
    total = w.square().sum((-2, -1))
    diag = torch.diagonal(w, dim1=-2, dim2=-1).square().sum(-1)
    cross = total - diag
    return {"cross": cross, "total": total, "ratio": _safe_div(cross, total)}


def row_offdiag(w: torch.Tensor, s: torch.Tensor, rtol: float = 1e-9) -> dict[str, torch.Tensor]:
    """Per teacher mode a (rows a < #nonzero s): off-diagonal content of row a of w.

    ``max``: max_{b not in block(a)} |w_ab| (the protocol's absolute statistic);
    ``rho``: ||w_{a, b not in block(a)}|| / ||w_{a,:}||, the scale-free version.
    Pairs inside a degenerate block of s have no preferred basis and are excluded
    (block(a) = {a} for a simple singular value). Shapes (..., n_modes).
    """
    n_modes = int((s > 0).sum())
    rows = w[..., :n_modes, :]
    off = ~_block_mask(s, n_modes, w.shape[-1], rtol)
    off_part = rows * off
    return {"max": off_part.abs().amax(-1),
            "rho": _safe_div(torch.linalg.vector_norm(off_part, dim=-1),
                             torch.linalg.vector_norm(rows, dim=-1))}


def first_time(condition: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """inf{t_k : condition[..., k]} along the last axis; +inf where it never holds.

    ``times`` is (K,) or broadcasts against ``condition`` (per-run aligned times).
    """
    times = torch.as_tensor(times, dtype=torch.float64, device=condition.device)
    times = times.expand(condition.shape)
    idx = condition.to(torch.int8).argmax(-1, keepdim=True)
    t = times.gather(-1, idx).squeeze(-1)
    return torch.where(condition.any(-1), t, torch.full_like(t, math.inf))


def crossing_times(w: torch.Tensor, s: torch.Tensor, times: torch.Tensor, *, eps_rho: float = 0.1,
                   eps_abs: float | None = None, c: float = 0.5) -> dict[str, torch.Tensor]:
    """t_cross(a) and t_diag(a) from mode coefficients w (..., K, d_out, d_in).

    t_diag(a)  = inf{t : |w_aa(t)| >= c s_a}                            (protocol, c = 0.5)
    t_cross(a) = inf{t : rho_a(t) <= eps_rho}                            (scale-free)
    t_cross_abs(a) = inf{t : max_{b != a} |w_ab(t)| <= eps_abs}          (protocol's absolute
                 form, only if eps_abs is given). Shapes (..., n_modes).
    """
    if not 0 < c < 1:
        raise ValueError(f"c must lie in (0, 1), got {c}; the protocol uses c = 0.5")
    n = int((s > 0).sum())
    off = row_offdiag(w, s)
    diag = torch.diagonal(w, dim1=-2, dim2=-1)[..., :n].abs()
    times = torch.as_tensor(times, dtype=torch.float64, device=w.device).unsqueeze(-2)  # (..., 1, K)
    first = lambda cond: first_time(cond.movedim(-2, -1), times)                       # over K
    out = {"t_diag": first(diag >= c * s[:n].to(w)), "t_cross": first(off["rho"] <= eps_rho)}
    if eps_abs is not None:
        out["t_cross_abs"] = first(off["max"] <= eps_abs)
    return out


def initial_mode_strength(weights: Weights, U: torch.Tensor, V: torch.Tensor, n_modes: int) -> torch.Tensor:
    """Effective initial strength u0(a) of teacher mode a from the initial layers, (..., n_modes).

    u0(a) = ||W_L^T u_a|| * prod_{l=2}^{L-1} ||W_l||_F / sqrt(min(d_l, d_{l-1})) * ||W_1 v_a||:
    the end layers' projections on the mode's input/output directions times the middle
    layers' rms singular value, i.e. the mode strength a balanced, aligned network with the
    same projections would start from (silent alignment during the plateau, Atanasov et
    al. 2022). For L = 2 it is ||W_2^T u_a|| ||W_1 v_a||.
    """
    _check_depth(weights, "initial_mode_strength")
    first = torch.linalg.vector_norm(weights[0] @ V[:, :n_modes].to(weights[0]), dim=-2)
    last = torch.linalg.vector_norm(weights[-1].transpose(-1, -2) @ U[:, :n_modes].to(weights[0]), dim=-2)
    middle = torch.ones_like(first[..., :1])
    for W in weights[1:-1]:
        middle = middle * rms_singular_value(W).unsqueeze(-1)
    return first * middle * last


def rms_singular_value(W: torch.Tensor) -> torch.Tensor:
    """Root-mean-square singular value ||W||_F / sqrt(min(m, n)), (...)."""
    return _fro(W) / min(W.shape[-2:]) ** 0.5


def rho_upper_bound(W: torch.Tensor, M: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Guaranteed rho_a <= delta / (s_a - delta), delta = ||W - M||_F (inf where s_a <= delta).

    Row a of U^T M V is s_a e_a, so ||off part of row a|| <= delta and ||row a|| >= s_a - delta.
    """
    delta = _fro(W - M.to(W)).unsqueeze(-1)
    s = s[s > 0].to(W)
    return torch.where(s > delta, delta / (s - delta).clamp(min=1e-300), torch.full_like(s - delta, math.inf))


def time_grid(steps: int, n_linear: int = 300, n_log: int = 120, max_points: int | None = None) -> list[int]:
    """Checkpoint steps for stagewise diagnostics: a linear grid (plateaus and escapes late in
    training) united with a log grid (early escapes), sorted, with 0 and ``steps``. When the
    grid would exceed ``max_points``, both parts shrink in proportion."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    grid = _grid(steps, n_linear, n_log)
    if max_points is not None and len(grid) > max_points:
        shrink = max_points / (n_linear + n_log)
        grid = _grid(steps, max(1, int(n_linear * shrink)), max(2, int(n_log * shrink)))
    return grid


def _grid(steps: int, n_linear: int, n_log: int) -> list[int]:
    lin = np.linspace(0, steps, n_linear + 1)
    log = np.geomspace(1, steps, n_log)
    return sorted({int(round(x)) for x in np.concatenate([lin, log, [0, steps]])})


def time_grid_for(experiment, budget_bytes: int = 2 ** 28) -> list[int]:
    """:func:`time_grid` for an experiment, capped so the stored weights of all runs at all
    checkpoints fit in ``budget_bytes`` (wide NTK nets with 33 runs would otherwise store
    gigabytes, and their partial products several times more)."""
    widths = experiment.widths
    per_checkpoint = experiment.runs * sum(a * b for a, b in zip(widths[1:], widths[:-1])) \
        * torch.finfo(experiment.torch_dtype).bits // 8
    return time_grid(experiment.steps, max_points=max(16, budget_bytes // per_checkpoint))


# ------------------------------------------------------------------------- rank growth
def ranks_over_eps(svals: torch.Tensor, eps: torch.Tensor, floor_scale: float | None = None) -> torch.Tensor:
    """r_eps for every eps of a grid at once: (E, ...) from svals (..., n) and eps (E,).

    Relative notion (floor_scale None): #{sigma_m > eps sigma_1} (protocol 1.2).
    Absolute floor: #{sigma_m > max(eps sigma_1, eps * floor_scale)}, i.e.
    spectra.numerical_rank(A, eps, atol=eps * floor_scale) with floor_scale = s_1 of the
    teacher, so that "rank starts at 0" is testable from a tiny initialisation.
    """
    eps = torch.as_tensor(eps, dtype=svals.dtype, device=svals.device).reshape((-1,) + (1,) * (svals.ndim - 1))
    top = svals[..., 0].unsqueeze(0)
    if floor_scale is not None:
        top = top.clamp(min=float(floor_scale))
    return (svals.unsqueeze(0) > (eps * top).unsqueeze(-1)).sum(-1)


def rank_moves(ranks: torch.Tensor) -> torch.Tensor:
    """Rank changes between consecutive checkpoints, diff along the last (time) axis."""
    return torch.diff(ranks, dim=-1)


def growth_statistics(ranks: torch.Tensor) -> dict[str, torch.Tensor]:
    """Stagewise diagnostics of rank sequences (..., K) (protocol 1.2 II "Outcome").

    ``nonmonotone``: fraction of moves (nonzero changes) that decrease the rank;
    ``unit``: fraction of increases that are +1 (nan if no increase);
    ``n_moves``, ``max_jump``; ``start``, ``final`` ranks. All (...).
    """
    moves = rank_moves(ranks)
    nonzero = (moves != 0).sum(-1)
    up = (moves > 0).sum(-1)
    nan = torch.full(nonzero.shape, math.nan, dtype=torch.float64, device=ranks.device)
    return {"nonmonotone": torch.where(nonzero > 0, (moves < 0).sum(-1) / nonzero.clamp(min=1), 0.0),
            "unit": torch.where(up > 0, (moves == 1).sum(-1) / up.clamp(min=1), nan),
            "n_moves": nonzero, "max_jump": moves.abs().amax(-1) if moves.shape[-1] else nonzero * 0,
            "start": ranks[..., 0], "final": ranks[..., -1]}


def follows_levels(ranks: torch.Tensor, levels: Sequence[int]) -> torch.Tensor:
    """True where a rank sequence (..., K) is nondecreasing, starts at levels[0], ends at
    levels[-1], visits every level and never sits strictly between two consecutive levels.

    With levels 0, 1, ..., r this is unit-step growth; with the cumulative multiplicities of
    a degenerate teacher (0, m_1, m_1 + m_2, ...) it is growth by multiplicity steps.
    """
    lv = torch.as_tensor(list(levels), dtype=ranks.dtype, device=ranks.device)
    on_level = torch.isin(ranks, lv).all(-1)
    visits = (ranks.unsqueeze(-1) == lv).any(-2).all(-1)
    monotone = (rank_moves(ranks) >= 0).all(-1)
    return on_level & visits & monotone & (ranks[..., 0] == lv[0]) & (ranks[..., -1] == lv[-1])


def guaranteed_rank(W: torch.Tensor, M: torch.Tensor, s: torch.Tensor, eps, floor_scale: float) -> torch.Tensor:
    """Weyl lower bound on the floored rank of W near M: #{a : s_a - ||W - M||_F > eps max(sigma_1(W), floor)}.

    sigma_a(W) >= s_a - ||W - M||_2 >= s_a - ||W - M||_F (Weyl), so ranks_over_eps(svals(W), eps,
    floor) is at least this. Shape (E, ...) for an eps grid (E,).
    """
    delta = _fro(W - M.to(W))
    top = spectra.singular_values(W)[..., 0].clamp(min=float(floor_scale))
    eps = torch.as_tensor(eps, dtype=W.dtype, device=W.device).reshape((-1,) + (1,) * delta.ndim)
    lower = s[s > 0].to(W) - delta.unsqueeze(-1)                    # (..., r)
    return (lower.unsqueeze(0) > (eps * top).unsqueeze(-1)).sum(-1)


def multiplicity_levels(s: torch.Tensor, rtol: float = 1e-9) -> list[int]:
    """Cumulative rank levels 0, m_1, m_1 + m_2, ... of the teacher's distinct singular values."""
    levels = [0]
    for block in degenerate_blocks(s, rtol):
        levels.append(levels[-1] + len(block))
    return levels


def transition_gaps(svals: torch.Tensor, ranks: torch.Tensor) -> torch.Tensor:
    """sigma_r / sigma_{r+1} at each checkpoint, r the rank there, nan where the rank did
    not just change (protocol 1.2 II "Gap monitoring"). svals (..., K, n), ranks (..., K)."""
    gaps = spectra.singular_gap(svals, ranks)
    changed = torch.zeros_like(ranks, dtype=torch.bool)
    changed[..., 1:] = rank_moves(ranks) != 0
    return torch.where(changed, gaps.to(torch.float64), torch.full_like(gaps, math.nan, dtype=torch.float64))


def seed_variance(ranks: torch.Tensor, run_dim: int = -2) -> torch.Tensor:
    """Variance of ranks across SGD runs (population variance, 0 for one run)."""
    return ranks.to(torch.float64).var(dim=run_dim, correction=0)


def eps_plateau(ok: torch.Tensor, eps: torch.Tensor) -> dict[str, float]:
    """Longest run of consecutive grid eps values where ``ok`` holds (sensitivity sweep III).

    ``ok`` (E,) bool over an increasing log grid ``eps`` (E,). Returns lo, hi (nan if none)
    and the width in decades log10(hi / lo) (0 for a single point, -inf for none).
    """
    ok = torch.as_tensor(ok, dtype=torch.bool).reshape(-1)
    eps = torch.as_tensor(eps, dtype=torch.float64).reshape(-1)
    if ok.shape != eps.shape:
        raise ValueError(f"ok and eps must have the same length, got {ok.shape[0]} and {eps.shape[0]}")
    if torch.any(torch.diff(eps) <= 0):
        raise ValueError("eps must be strictly increasing (a log-spaced grid, e.g. logspace(-7, -3, 5))")
    k = torch.arange(len(ok))
    last_false = torch.cummax(torch.where(ok, -1, k), dim=0).values
    run = k - last_false                                  # length of the True run ending at k
    best = int(run.max()) if len(ok) else 0
    if best == 0:
        return {"lo": math.nan, "hi": math.nan, "decades": -math.inf}
    end = int(run.argmax())
    lo, hi = eps[end - best + 1].item(), eps[end].item()
    return {"lo": lo, "hi": hi, "decades": math.log10(hi / lo)}


def stagewise_criteria(ranks: torch.Tensor, levels: Sequence[int]) -> dict[str, torch.Tensor]:
    """The calibration criteria of protocol 1.2 II/III for rank sequences (..., K), each (...):

    ``starts_at_0`` (rank 0 at the first checkpoint), ``monotone`` (no decreasing move),
    ``staircase`` (follows_levels: exactly the predicted levels, e.g. 0, 1, ..., r, in order),
    ``reaches_r`` (final rank = levels[-1]), ``at_least_r`` (rank >= levels[-1] throughout:
    no stagewise growth, the NTK prediction).
    """
    r = levels[-1]
    return {"starts_at_0": ranks[..., 0] == 0,
            "monotone": (rank_moves(ranks) >= 0).all(-1),
            "staircase": follows_levels(ranks, levels),
            "reaches_r": ranks[..., -1] == r,
            "at_least_r": (ranks >= r).all(-1)}
