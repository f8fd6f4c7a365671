"""Progress along the staircase: a per-run coordinate, and GD-vs-SGD comparison at matched progress
instead of at equal time t = lr * step (protocol 1.1 "Matched progress"; issue #25 item 1).

Formula. The teacher M = sum_a s_a u_a v_a^T has stages b = 1..n_b, the groups of equal non-zero
singular values (one per visited plateau, as :func:`dlncheck.theory.stage_plateaus`: a degenerate
block escapes as one). A run's own end-to-end map W(t), projected on the teacher's modes, gives each
stage's learned fraction

    f_b(t) = clip( tr(U_b^T W(t) V_b) / (|b| s_b), 0, 1 )

(the block's mean mode strength u_a = u_a^T W v_a over s_b; the trace makes it independent of a
rotation inside a degenerate block), and the run's progress

    p(t) = sum_b f_b(t).

On the saddle-to-saddle staircase the stages already escaped have f = 1 and the later ones f = 0, so
p = k + f_{k+1}: the escape index k plus the fraction of stage k + 1 learned; p is continuous, lies in
[0, n_b] and is non-decreasing wherever every f_b is. The escape index itself, :func:`escape_index`,
counts the run's own loss-midpoint escapes (:func:`dlncheck.measure.events.escape_times`), and the
loss level is the run's own loss; both are reported beside p as checks of the matching.

Protocol. For each GD checkpoint t_k, with P(t) = max_{t' <= t} p(t') (the running maximum; a run
whose p dips does not go back) and T_r(q) the first time run r's P reaches q (linear in time between
the run's checkpoints):

    tau_r(k) = t_k + T_r(P_0(t_k)) - T_0(P_0(t_k))     (run 0 = GD)

i.e. run r is read at the time GD's progress level was first reached, shifted by how long GD has
stayed at that level (on a stretch where GD's P is flat the shift is held: at t = 0 every run shares
the init, P is equal and the shift 0). tau_r(k) = t_k for GD. GD's levels are capped at the lowest
final P of any run, P_c = min_r P_r(T): beyond it the shift at P_c is held (a settled run approaches
n_b from below at its own rate and need not reach GD's last value exactly). A tau beyond the run's
last checkpoint is an unmatched point (NaN when read, counted by the claims). Quantities are then read at tau by
linear interpolation in time between run r's checkpoints (:func:`at_times`; log singular values
interpolate in log).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dlncheck.measure.events import escape_times
from dlncheck.theory import ArrayLike
from dlncheck.theory.escape_lag import escape_values


def stage_fractions(mode_coefficients: torch.Tensor, s: ArrayLike) -> torch.Tensor:
    """(..., n_b): f_b = clip(tr(U_b^T W V_b) / (|b| s_b), 0, 1) per stage, from the mode
    coefficients U^T W V (..., d_out, d_in) in the teacher's singular bases (descending s)."""
    s = torch.as_tensor(s, dtype=mode_coefficients.dtype, device=mode_coefficients.device).reshape(-1)
    diag = torch.diagonal(mode_coefficients, dim1=-2, dim2=-1)[..., : len(s)]
    values = torch.as_tensor(escape_values(s.cpu()), dtype=s.dtype, device=s.device)
    positive = s > 0
    member = torch.isclose(s[None, :], values[:, None], rtol=1e-9, atol=0) & positive  # (n_b, n)
    weights = member / (member.sum(-1, keepdim=True) * values[:, None])
    return (diag[..., : member.shape[-1]] @ weights.mT).clamp(0, 1)


def progress(mode_coefficients: torch.Tensor, s: ArrayLike) -> torch.Tensor:
    """p = sum_b f_b (module docstring), shape (...) of the mode coefficients' leading axes."""
    return stage_fractions(mode_coefficients, s).sum(-1)


def escape_index(loss: torch.Tensor, loss_times: torch.Tensor, s: ArrayLike, at: torch.Tensor) -> torch.Tensor:
    """(R, K): per run, how many of its own escapes (loss-midpoint crossings, interpolated) lie at
    or before each time of ``at`` (K,); ``loss`` (R, T) sampled at ``loss_times`` (T,)."""
    t_esc = torch.as_tensor(escape_times(loss, loss_times, s))  # (R, n_b), inf if never
    return (t_esc[:, None, :] <= at.to(t_esc)[None, :, None]).sum(-1)


def _first_reach(levels: torch.Tensor, running: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """(R, Q): first time each run's non-decreasing ``running`` (R, K) reaches ``levels`` (R, Q),
    linear between checkpoints ``times`` (K,); NaN where never."""
    idx = torch.searchsorted(running.contiguous(), levels.contiguous(), side="left")
    K = running.shape[-1]
    hi = idx.clamp(max=K - 1)
    lo = (idx - 1).clamp(min=0)
    p_lo, p_hi = running.gather(-1, lo), running.gather(-1, hi)
    gap = p_hi - p_lo
    frac = torch.where(gap > 0, (levels - p_lo) / torch.where(gap > 0, gap, 1.0), 0.0).clamp(0, 1)
    t = times[lo] + frac * (times[hi] - times[lo])
    t = torch.where(idx == 0, times[0].expand_as(t), t)
    return torch.where(idx >= K, torch.full_like(t, float("nan")), t)


def match_times(p: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """(R, K): tau_r(k), the time at which run r matches GD's (run 0's) progress at checkpoint k
    (module docstring; may exceed the last checkpoint); p (R, K) per run on the shared checkpoint
    times (K,), increasing."""
    if p.ndim != 2 or p.shape[-1] != times.shape[-1]:
        raise ValueError(f"p has shape {tuple(p.shape)}: use (runs, checkpoints) matching times {tuple(times.shape)}")
    times = times.to(p)
    running = torch.cummax(p, dim=-1).values
    levels = torch.minimum(running[:1], running[:, -1].min()).expand_as(running)
    reach = _first_reach(levels, running, times)
    return times + reach - reach[:1]


def at_times(values: torch.Tensor, times: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """values (R, K, ...) on checkpoint times (K,), read per run at tau (R, Q) by linear
    interpolation in time; (R, Q, ...), NaN where tau is NaN or outside [times[0], times[-1]]."""
    times = times.to(values.dtype)
    outside = tau.isnan() | (tau < times[0]) | (tau > times[-1])
    t = torch.where(outside, times[0], tau).to(values.dtype)
    hi = torch.searchsorted(times, t.contiguous(), side="left").clamp(1, len(times) - 1)
    lo = hi - 1
    frac = ((t - times[lo]) / (times[hi] - times[lo])).clamp(0, 1)
    extra = values.shape[2:]

    def expand(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(*x.shape, *[1] * len(extra))

    def gather(i: torch.Tensor) -> torch.Tensor:
        return values.gather(1, expand(i).expand(*i.shape, *extra))

    out = gather(lo) * (1 - expand(frac)) + gather(hi) * expand(frac)
    return torch.where(expand(outside), float("nan"), out)


@dataclass(frozen=True)
class Matched:
    """An analysis read at matched progress: ``tau`` (R, K) per-run times (row 0 = GD's checkpoint
    times), ``progress`` (R, K) each run's own p on the checkpoints, ``svals`` {(i, j): (R, K, m)}
    and ``end_to_end`` (R, K, d_L, d_0) read at tau (row 0 GD's own values), ``unmatched`` (K,)
    True where some run never reaches GD's progress (those points take GD's values: never compare
    them)."""

    tau: torch.Tensor
    progress: torch.Tensor
    svals: dict
    end_to_end: torch.Tensor
    unmatched: torch.Tensor


def matched(analysis, times: torch.Tensor, s: ArrayLike) -> Matched:
    """:class:`Matched` of a :class:`dlncheck.measure.analysis.Analysis` on checkpoint ``times``
    (K,) for a teacher with singular values ``s``: singular values interpolate in log (a floor of
    1e-300 keeps log finite), the end-to-end map linearly."""
    return matched_on(analysis, times, progress(analysis.mode_coefficients, s))


def loss_progress(loss: torch.Tensor, loss_min: float) -> torch.Tensor:
    """(R, K): the fraction of the reducible loss each run has shed, (L_0(0) - L_r(t)) / (L_0(0) -
    loss_min), from the runs' full-data losses (R, K) on the checkpoints (run 0 = GD; every run starts
    at GD's init): the loss-level coordinate of the protocol's matching, for data whose modes couple
    (no per-mode staircase, so :func:`progress` has no stage meaning there)."""
    start = loss[0, 0]
    return (start - loss) / (start - loss_min)


def matched_on(analysis, times: torch.Tensor, p: torch.Tensor) -> Matched:
    """:func:`matched` on a given per-run coordinate ``p`` (R, K) (the stage progress, or
    :func:`loss_progress`), matched by :func:`match_times`."""
    tau = match_times(p, times)
    unmatched = (tau.isnan() | (tau > times[-1])).any(0)

    def read(values: torch.Tensor) -> torch.Tensor:
        out = at_times(values, times, tau)
        out[0] = values[0]
        return torch.where(out.isnan(), values[:1], out)

    svals = {}
    for key, v in analysis.svals.items():  # one entry per product P_ij (L(L+1)/2), not per run
        svals[key] = read(v.clamp_min(1e-300).log()).exp()
        svals[key][0] = v[0]
    return Matched(tau, p, svals, read(analysis.end_to_end), unmatched)


@dataclass(frozen=True)
class _Maps:
    """The fields of an analysis that :func:`matched` reads, for end-to-end maps alone."""

    mode_coefficients: torch.Tensor
    end_to_end: torch.Tensor
    svals: dict


def matched_maps(W: torch.Tensor, times: torch.Tensor, U: torch.Tensor, V: torch.Tensor, s: ArrayLike) -> Matched:
    """:func:`matched` of end-to-end maps alone, W (R, K, d_L, d_0) on checkpoint ``times`` (K,), for a
    teacher with singular bases U, V and values ``s`` (no singular values read)."""
    return matched(_Maps(U.to(W).mT @ W @ V.to(W), W, {}), times, s)


__all__ = [
    "Matched",
    "at_times",
    "escape_index",
    "loss_progress",
    "match_times",
    "matched",
    "matched_maps",
    "matched_on",
    "progress",
    "stage_fractions",
]
