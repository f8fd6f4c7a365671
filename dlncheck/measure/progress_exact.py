"""Matched progress read exactly: each run's weights at the step it matches GD's progress, from a
second training pass with per-run checkpoints there, instead of values interpolated between the
first pass's checkpoints (:mod:`dlncheck.measure.progress`, which these steps refine).

Protocol. GD's checkpoint k is matched as in :func:`dlncheck.measure.progress.match_times`: GD's
level q = min(P_0(t_k), min_r P_r(T)) on the running maxima P_r, T_r(q) the first time run r's P
reaches q, and run r read at tau_r = t_k + T_r(q) - T_0(q). The first pass brackets each first
reach between two of the run's checkpoints, [lo_r, hi_r] (steps). The second pass
(:func:`fine_table`) checkpoints every run at every step of its own bracket and of the window
[n_k + lo_r - hi_0, n_k + hi_r - lo_0] in which its read step can fall (n_k: GD's step at k), so
that the first reach becomes a step, n_r = the first step at which P_r >= q (P_r the running maximum
over that run's steps, started from its first-pass value at lo_r), and the read step
m_r = n_k + n_r - n_0 is one the second pass stored (:func:`read_exact`). Nothing is interpolated: the
weights read are the run's own at m_r, and what remains of the matching error is at most one
step's change of progress. The engine is deterministic, so the second pass reproduces the first's
losses bit for bit (checked, :func:`dlncheck.measure.align.check_reproduced`). The checkpoint k
read is GD's latest whose level every run reaches and whose read windows end within the runs
(:func:`latest_matched`, from the first pass alone), so no read step lies beyond a run's last step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dlncheck.measure.align import check_reproduced
from dlncheck.measure.progress import progress
from dlncheck.spectra import end_to_end
from dlncheck.theory import ArrayLike


def run_progress(traj, s: ArrayLike) -> torch.Tensor:
    """(R, K): each run's own progress p on its checkpoints, from its end-to-end map (0 at the
    skipped entries of a per-run table, whose weights are NaN)."""
    stored = (traj.checkpoint_steps >= 0).expand(traj.runs, -1)[..., None, None]
    W = end_to_end([torch.where(stored, w, 0.0) for w in traj.weights])
    U, V = traj.teacher.U.to(W), traj.teacher.V.to(W)
    return progress(U.mT @ W @ V, s)


def _levels(p: torch.Tensor) -> torch.Tensor:
    """(K,): GD's level q at each of its checkpoints, min(P_0(t_k), min_r P_r(T))."""
    running = torch.cummax(p, dim=-1).values
    return torch.minimum(running[0], running[:, -1].min())


def _brackets(p: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi), each (R, Q): checkpoint indices bracketing each run's first reach of each level
    of q (Q,) on its running maximum (lo = hi at a reach on the first checkpoint; hi = K: never)."""
    running = torch.cummax(p, dim=-1).values
    hi = torch.searchsorted(running.contiguous(), q.expand(len(p), -1).contiguous(), side="left")
    return (hi - 1).clamp(min=0), hi


def latest_matched(p: torch.Tensor, steps: torch.Tensor, last: int) -> int:
    """GD's latest checkpoint index whose level every run reaches and whose read window (module
    docstring) ends by step ``last``, so every read step lies in the run (p (R, K) on shared
    checkpoint ``steps`` (K,)); chosen from the first pass alone."""
    lo, hi = _brackets(p, _levels(p))
    K = p.shape[-1]
    ends = steps + steps[hi.clamp(max=K - 1)].max(0).values - steps[lo[0]]
    ok = (hi < K).all(0) & (ends <= last)
    if not bool(ok.any()):
        raise ValueError("no GD checkpoint is matched by every run within its steps")
    return int(torch.nonzero(ok).max())


def fine_table(p: torch.Tensor, steps: torch.Tensor, k: int, last: int) -> torch.Tensor:
    """(R, N) per-run checkpoint steps (-1 padded) of the second pass: every step of each run's
    bracket and of its read window (module docstring), within [0, last]."""
    lo, hi = (x[:, 0] for x in _brackets(p, _levels(p)[k : k + 1]))
    lo_s, hi_s = steps[lo], steps[hi]
    win_lo = (steps[k] + lo_s - hi_s[0]).clamp(0, last)
    win_hi = (steps[k] + hi_s - lo_s[0]).clamp(0, last)
    width = int(torch.maximum(hi_s - lo_s, win_hi - win_lo).max()) + 1
    offset = torch.arange(width)
    bracket = torch.where(offset <= (hi_s - lo_s)[:, None], lo_s[:, None] + offset, -1)
    window = torch.where(offset <= (win_hi - win_lo)[:, None], win_lo[:, None] + offset, -1)
    table = torch.cat([bracket, window], dim=1).sort(dim=1).values
    dup = torch.cat([torch.zeros_like(table[:, :1], dtype=torch.bool), table[:, 1:] == table[:, :-1]], dim=1)
    return torch.where(dup, -1, table).sort(dim=1).values


@dataclass(frozen=True)
class ExactPoint:
    """One init read exactly at GD's checkpoint ``index``: ``steps`` (R,) the step each run is read
    at (row 0: GD's checkpoint step), ``weights`` L tensors (R, d_l, d_{l-1}) there, ``progress``
    (R,) each run's own p there and ``level`` GD's progress level matched."""

    index: int
    steps: torch.Tensor
    weights: list[torch.Tensor]
    progress: torch.Tensor
    level: float


def read_exact(coarse, fine, k: int, s: ArrayLike) -> ExactPoint:
    """The exact reading of GD's checkpoint k from the first-pass trajectory ``coarse`` (shared
    checkpoints) and the second-pass ``fine`` (checkpoints :func:`fine_table`)."""
    check_reproduced(coarse.loss, fine.loss)
    steps = coarse.checkpoint_steps
    p = run_progress(coarse, s)
    q = _levels(p)[k]
    lo = _brackets(p, q[None])[0][:, 0]
    table = fine.checkpoint_steps  # (R, N)
    p_fine = run_progress(fine, s).where(table >= 0, float("-inf"))
    in_bracket = (table >= steps[lo][:, None]) | (table < 0)
    start = torch.cummax(p, dim=-1).values.gather(1, lo[:, None])  # the running maximum carried in
    running = torch.cummax(torch.where(in_bracket, p_fine, float("-inf")), dim=1).values.maximum(start)
    reached = (running >= q) & (table >= steps[lo][:, None])
    first = torch.where(reached, table, torch.iinfo(table.dtype).max).min(dim=1).values  # n_r
    read = steps[k] + first - first[0]
    read[0] = steps[k]
    hit = table == read[:, None]
    if not bool(hit.any(1).all()):
        raise RuntimeError("a read step was not stored by the second pass (is the table from fine_table?)")
    col = hit.int().argmax(1)

    def at(x: torch.Tensor) -> torch.Tensor:
        return x[torch.arange(len(col)), col]

    weights = [at(w) for w in fine.weights]
    weights_gd = [w[0, k] for w in coarse.weights]
    for w, g in zip(weights, weights_gd):
        w[0] = g
    return ExactPoint(k, read, weights, at(p_fine), float(q))


def exact_matched_ends(cache, ens, coarse: list, inits: list[int], s: ArrayLike) -> dict[int, ExactPoint]:
    """{init: :class:`ExactPoint`} at GD's latest matched checkpoint of each of ``inits`` of the
    ensemble ``ens`` (first-pass trajectories ``coarse[i]`` on shared checkpoints): their second
    passes train as one program through ``cache.ensemble`` (cached like the first)."""
    p = {i: run_progress(coarse[i], s) for i in inits}
    k = {i: latest_matched(p[i], coarse[i].checkpoint_steps, ens.experiment(i).steps) for i in inits}
    tables = {
        j: fine_table(p[i], coarse[i].checkpoint_steps, k[i], ens.experiment(i).steps) for j, i in enumerate(inits)
    }
    fine = cache.ensemble(ens.subset(inits), checkpoints=tables)
    return {i: read_exact(coarse[i], fine[j], k[i], s) for j, i in enumerate(inits)}


__all__ = ["ExactPoint", "exact_matched_ends", "fine_table", "latest_matched", "read_exact", "run_progress"]
