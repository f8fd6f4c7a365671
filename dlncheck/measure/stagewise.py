"""Stagewise rank growth: ranks over an eps grid, rank moves, growth statistics, the stagewise
criteria, multiplicity levels, Weyl's guaranteed rank and the eps plateau (protocol 1.2 II-III).

Ranks use the one convention of :func:`dlncheck.spectra.numerical_rank_from_svals`:
#{sigma_m > max(eps sigma_1, atol)}, with ``atol = eps * s_1(teacher)`` for the floored notion.
A time axis is the last axis of a rank sequence ``(..., K)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from dlncheck.measure.balance import frobenius
from dlncheck.measure.modes import degenerate_blocks
from dlncheck.spectra import numerical_rank_from_svals, singular_gap, singular_values


def ranks_over_eps(svals: torch.Tensor, eps: torch.Tensor, atol: torch.Tensor | float | None = None) -> torch.Tensor:
    """r_eps for every eps of a grid at once: (E, ...) from svals (..., n) and eps (E,).

    #{sigma_m > max(eps sigma_1, atol)} (protocol 1.2), ``atol`` a float or an (E,) tensor
    beside the grid (e.g. ``eps * s_1`` of the teacher, so that "rank starts at 0" is testable
    from a tiny initialisation); the same count as spectra.numerical_rank for each eps.
    """
    shape = (-1,) + (1,) * (svals.ndim - 1)
    eps = torch.as_tensor(eps, dtype=svals.dtype, device=svals.device).reshape(shape)
    if atol is not None:
        atol = torch.as_tensor(atol, dtype=svals.dtype, device=svals.device).reshape(shape)
    return numerical_rank_from_svals(svals.unsqueeze(0), eps, atol)


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
    return {
        "nonmonotone": torch.where(nonzero > 0, (moves < 0).sum(-1) / nonzero.clamp(min=1), 0.0),
        "unit": torch.where(up > 0, (moves == 1).sum(-1) / up.clamp(min=1), nan),
        "n_moves": nonzero,
        "max_jump": moves.abs().amax(-1) if moves.shape[-1] else nonzero * 0,
        "start": ranks[..., 0],
        "final": ranks[..., -1],
    }


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


def visits_levels(ranks: torch.Tensor, levels: Sequence[int], final: Sequence[int] | None = None) -> torch.Tensor:
    """The coarse staircase: True where a rank sequence (..., K) is nondecreasing, starts at
    levels[0], visits every level in order and ends in ``final`` (default: levels[-1]).

    Unlike :func:`follows_levels` it allows ranks strictly between two levels: with the
    cumulative multiplicities of a degenerate teacher this is "the same long plateaus, any
    order or timing of the sub-steps inside a repeated block" (a split or a jump).
    """
    lv = torch.as_tensor(list(levels), dtype=ranks.dtype, device=ranks.device)
    end = torch.as_tensor(list(final) if final is not None else [levels[-1]], dtype=ranks.dtype, device=ranks.device)
    visits = (ranks.unsqueeze(-1) == lv).any(-2).all(-1)
    monotone = (rank_moves(ranks) >= 0).all(-1)
    return visits & monotone & (ranks[..., 0] == lv[0]) & torch.isin(ranks[..., -1], end)


def splits_block(ranks: torch.Tensor, levels: Sequence[int]) -> torch.Tensor:
    """True where a sequence (..., K) visits a rank strictly between two consecutive levels
    (a degenerate block learned in sub-steps rather than one jump)."""
    lv = torch.as_tensor(list(levels), dtype=ranks.dtype, device=ranks.device)
    inside = (ranks > lv[0]) & (ranks < lv[-1]) & ~torch.isin(ranks, lv)
    return inside.any(-1)


def trapped_levels(levels: Sequence[int]) -> list[int]:
    """Levels of a staircase that stops one short of full rank (the GD trap, theory/trap.py):
    the last level becomes r - 1."""
    r = levels[-1]
    return [lv for lv in levels[:-1] if lv < r - 1] + [r - 1]


def staircase_outcomes(
    ranks: torch.Tensor, kind: str, levels: Sequence[int], *, trapped: bool = False, crossing: bool = False
) -> torch.Tensor:
    """Per run (run 0 = GD) of one init: does its rank sequence (R, K) match the prediction ``kind``?

    "unit" / "coarse": every run is monotone from 0 through every level to r (:func:`visits_levels`;
    with unit levels 0..r this is exactly unit steps); "multiplicity": GD additionally never
    sits between two levels (:func:`follows_levels`: it jumps), SGD runs as "coarse";
    ``trapped`` (balanced init, det(W_0) det(M) < 0): GD's staircase ends at r - 1, an SGD run's
    at r - 1 or r (its escape is not timed by theory); "none": rank >= r throughout, or, with
    ``crossing`` (det(W_0) det(M) < 0), rank >= r - 1 throughout and r at the end.
    """
    r = levels[-1]
    if kind == "none":
        if crossing:
            return (ranks >= r - 1).all(-1) & (ranks[..., -1] == r)
        return (ranks >= r).all(-1)
    if kind not in ("unit", "coarse", "multiplicity"):
        raise ValueError(f"kind={kind!r} is invalid: use 'unit', 'coarse', 'multiplicity' or 'none'")
    if trapped:
        short = trapped_levels(levels)
        ok = visits_levels(ranks, short, final=[r - 1, r])
        ok[0] = visits_levels(ranks[0], short)
        return ok
    ok = visits_levels(ranks, levels)
    if kind == "multiplicity":
        ok[0] = follows_levels(ranks[0], levels)
    return ok


def guaranteed_rank(
    W: torch.Tensor,
    M: torch.Tensor,
    s: torch.Tensor,
    eps: torch.Tensor | float,
    atol: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Weyl lower bound on the rank of W near M: #{a : s_a - ||W - M||_F > max(eps sigma_1(W), atol)}.

    sigma_a(W) >= s_a - ||W - M||_2 >= s_a - ||W - M||_F (Weyl), so ranks_over_eps(svals(W),
    eps, atol) is at least this. ``atol`` as in :func:`ranks_over_eps`. Shape (E, ...) for an
    eps grid (E,).
    """
    delta = frobenius(W - M.to(W))
    shape = (-1,) + (1,) * delta.ndim
    eps = torch.as_tensor(eps, dtype=W.dtype, device=W.device).reshape(shape)
    threshold = eps * singular_values(W)[..., 0]
    if atol is not None:
        threshold = torch.maximum(threshold, torch.as_tensor(atol, dtype=W.dtype, device=W.device).reshape(shape))
    lower = s[s > 0].to(W) - delta.unsqueeze(-1)  # (..., r)
    return (lower.unsqueeze(0) > threshold.unsqueeze(-1)).sum(-1)


def multiplicity_levels(s: torch.Tensor, rtol: float = 1e-9) -> list[int]:
    """Cumulative rank levels 0, m_1, m_1 + m_2, ... of the teacher's distinct singular values."""
    levels = [0]
    for block in degenerate_blocks(s, rtol):
        levels.append(levels[-1] + len(block))
    return levels


def transition_gaps(svals: torch.Tensor, ranks: torch.Tensor) -> torch.Tensor:
    """sigma_r / sigma_{r+1} at each checkpoint, r the rank there, nan where the rank did
    not just change (protocol 1.2 II "Gap monitoring"). svals (..., K, n), ranks (..., K)."""
    gaps = singular_gap(svals, ranks)
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
    run = k - last_false  # length of the True run ending at k
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
    return {
        "starts_at_0": ranks[..., 0] == 0,
        "monotone": (rank_moves(ranks) >= 0).all(-1),
        "staircase": follows_levels(ranks, levels),
        "reaches_r": ranks[..., -1] == r,
        "at_least_r": (ranks >= r).all(-1),
    }
