"""train(): GD (run 0) and S SGD runs of a deep linear network, for one Experiment or every
config of an Ensemble, in one batched tensor program.

Rows are (config, run) pairs, row = config * R + run (R = 1 + S). At step k, with its batch
second moments Sxx_r = X_b X_b^T / B and noise moment N_r (see :mod:`dlncheck.engine._batches`; run 0,
GD: I and 0), the batch gradient of the end-to-end map is G = (W - Syx) Sxx_r - N_r, where
W - Syx is also what the full-data loss 0.5 ||W - Syx||_F^2 + offset needs. Then

    W = W_L ... W_1,   dL/dW_l = (W_L...W_{l+1})^T G (W_{l-1}...W_1)^T,

and all layers step together, W_l <- W_l - lr dL/dW_l. Prefix products are built from the
input side and the backward products from the output side, so every matmul is thin.
Config c trains steps_c steps with its own lr_c; at steps_c its rows leave the program (the
remaining steps advance only the configs still training).

The step loop runs over segments: stretches of steps between checkpoints, config ends and
batch-moment chunks. A segment is advanced either by the reference PyTorch path below or by
the fused C kernel of :mod:`dlncheck.engine._fused` (CPU, one call per segment; equal to 1e-12).
"""

from __future__ import annotations

import dataclasses
import warnings
from functools import cache

import numpy as np
import torch
from tqdm.auto import tqdm

from dlncheck.config import validation as check
from dlncheck.config.data import init_weights, make_problem
from dlncheck.config.experiment import Ensemble, Experiment
from dlncheck.config.threads import cpu_threads
from dlncheck.engine import _fused as fused
from dlncheck.engine._batches import BatchOrders, MomentTable, batch_indices  # noqa: F401  (batch_indices: public for references)
from dlncheck.engine.budget import MemoryBudgetExceeded, check_budget, grid_points
from dlncheck.engine.trajectory import EnsembleTrajectory, Trajectory  # noqa: F401  (Trajectory: public here too)

ENGINE_VERSION = 2  # bump when the numbers train() returns change (part of cache keys)
DIVERGENCE_FACTOR = 1e6  # a run diverges when its loss exceeds this times max(initial loss, 1)
BACKENDS = ("auto", "torch", "fused")
DIVERGENCE_WINDOW = 256  # every step's loss is checked at least this often (steps) ...
CHECK_ELEMENTS = 2**21  # ... and at least every this many weight entries stepped (big nets)


class TrainingDiverged(RuntimeError):
    """A run's loss became non-finite or grew past the divergence bound."""

    def __init__(self, run: int, step: int, lr: float, loss: float = float("nan"), config: int | None = None):
        self.run, self.step, self.lr, self.loss, self.config = run, step, lr, loss, config
        kind = "GD" if run == 0 else "SGD"
        where = "" if config is None else f"config {config}, "
        super().__init__(
            f"{where}run {run} ({kind}) diverged at step {step} with lr={lr:g} "
            f"(loss {loss:.3g}); lower lr (GD on this loss is stable for "
            f"lr < 2 / (largest Hessian eigenvalue)) or use a smaller init scale"
        )


def checkpoint_grid(steps: int, count: int) -> torch.Tensor:
    """``count`` log-spaced integer steps in [0, steps], always with 0 and ``steps`` (deduplicated)."""
    if count < 2:
        raise ValueError(f"checkpoints={count} is invalid: ask for at least 2 (step 0 and the last step)")
    if not grid_points(steps, count):  # so dense that every step is one (the same grid, without drawing it)
        return torch.arange(steps + 1)
    grid = np.round(np.geomspace(1, steps, count - 1)).astype(np.int64)
    return torch.from_numpy(np.unique(np.concatenate([[0], grid, [steps]])))


def _checkpoint_table(checkpoints, experiment: Experiment) -> torch.Tensor:
    check.checkpoints("checkpoints", checkpoints, experiment.steps, experiment.runs)
    if checkpoints is None:
        table = torch.tensor([0, experiment.steps])
    elif isinstance(checkpoints, (int, np.integer)):
        table = checkpoint_grid(experiment.steps, int(checkpoints))
    else:
        table = torch.as_tensor(np.asarray(checkpoints, dtype=np.int64))
    if table.ndim not in (1, 2) or (table.ndim == 2 and table.shape[0] != experiment.runs):
        raise ValueError(
            f"checkpoints of shape {tuple(table.shape)} is invalid: give a count, "
            f"a list of steps, or an (R={experiment.runs}, K) table of per-run steps"
        )
    if (table > experiment.steps).any() or (table < -1).any() or (table.ndim == 1 and (table < 0).any()):
        raise ValueError(
            f"checkpoints must lie in [0, steps={experiment.steps}] (-1 marks a skipped per-run checkpoint)"
        )
    return table


def train(
    spec: Experiment | Ensemble,
    checkpoints=None,
    loss_every: int = 1,
    progress: bool = False,
    backend: str = "auto",
    memory_budget=None,
) -> Trajectory | EnsembleTrajectory:
    """Train GD (run 0) and the SGD runs of an Experiment (-> Trajectory), or of every config of
    an Ensemble in one program (-> EnsembleTrajectory, ``et[i]`` = train(ensemble.experiment(i))).

    checkpoints: None (steps 0 and last), a count (log-spaced grid with 0 and last), a list of
    steps, or an (R, K) table of per-run steps (-1 = skip); for an Ensemble it applies to every
    config (a count gives each config its own grid over its steps), or give a dict
    {config index: spec}. loss_every: record the full-data loss every k steps (and at the last).
    backend: "torch" (the reference path), "fused" (the C kernel; CPU only), or "auto" (fused on
    CPU when it builds, else torch). memory_budget: bytes (or '4G') the run may hold, see
    :mod:`dlncheck.engine.budget`; a larger request is refused before any work, except that an
    Ensemble over the budget trains as programs of half its configs (same trajectories).
    """
    if not isinstance(spec, (Ensemble, Experiment)):
        check.fail("experiment", spec, "pass a dlncheck.Experiment or dlncheck.Ensemble")
    loss_every = check.integral("loss_every", loss_every, min=1, max=check.MAX_STEPS, why=" (record every k steps)")
    check.flag("progress", progress)
    if backend not in BACKENDS:
        check.fail("backend", backend, f"choose one of {BACKENDS}")
    ensemble = spec if isinstance(spec, Ensemble) else Ensemble(spec, [spec.init], same_time=False)
    per_config = checkpoints if isinstance(checkpoints, dict) else {}
    if per_config and not set(per_config) <= set(range(len(ensemble))):
        raise ValueError(f"checkpoints has keys {sorted(per_config)}: use config indices 0..{len(ensemble) - 1}")
    specs = [per_config.get(c) if per_config else checkpoints for c in range(len(ensemble))]
    sizes = [check.checkpoints("checkpoints", spec, e.steps, e.runs) for spec, e in zip(specs, ensemble.experiments)]
    # budgeted before any table is built: a count as given (it sizes the grid it draws), else K steps
    widest = specs[int(np.argmax(sizes))]
    if not isinstance(widest, (int, np.integer)) or isinstance(widest, bool):
        widest = np.zeros(max(sizes), dtype=np.int64)
    # the ensemble holds every config's rows: budget it as one experiment of C x R runs, longest steps
    rows = dataclasses.replace(
        ensemble.base, sgd_runs=len(ensemble) * ensemble.base.runs - 1, steps=max(ensemble.steps)
    )
    try:
        check_budget(rows, widest, loss_every, memory_budget)
    except MemoryBudgetExceeded:
        if len(ensemble) == 1:
            raise
        return _train_in_halves(ensemble, per_config, checkpoints, loss_every, progress, backend, memory_budget)
    tables = [_checkpoint_table(spec, e) for spec, e in zip(specs, ensemble.experiments)]
    with cpu_threads(ensemble.base.device):
        trajectories = _train(ensemble, tables, int(loss_every), progress, _advance_for(ensemble.base, backend))
    return EnsembleTrajectory(ensemble, trajectories) if isinstance(spec, Ensemble) else trajectories[0]


def _train_in_halves(
    ensemble: Ensemble, per_config: dict, checkpoints, loss_every, progress, backend, memory_budget
) -> EnsembleTrajectory:
    """An ensemble over the memory budget, as two programs of half the configs each (recursively):
    configs are independent, so every trajectory is the one the whole program would give."""
    half = len(ensemble) // 2
    out = []
    for part in (range(half), range(half, len(ensemble))):
        spec = {j: per_config.get(i) for j, i in enumerate(part)} if per_config else checkpoints
        out += list(train(ensemble.subset(part), spec, loss_every, progress, backend, memory_budget))
    return EnsembleTrajectory(ensemble, out)


def _advance_for(experiment: Experiment, backend: str):
    if backend == "torch":
        return _advance_torch
    reason = fused.why_not(experiment)
    if backend == "fused" and reason:
        raise ValueError(
            f"backend='fused' is unavailable for device={experiment.device!r}, "
            f"dtype={experiment.dtype!r} ({reason}): use backend='torch'"
        )
    if reason and torch.device(experiment.device).type == "cpu":
        _warn_once(
            f"the fused CPU kernel is unavailable ({reason}); training on the PyTorch path "
            "(the same numbers to 1e-12, about 3x slower per run-step)"
        )
    return _advance_torch if reason else fused.advance


@cache
def _warn_once(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=4)


def _prefix_products(W: list[torch.Tensor]) -> list[torch.Tensor]:
    """prefix[l] = W_{l+1} ... W_1 (0-based layers), batched over rows."""
    prefix = [W[0]]
    for w in W[1:]:
        prefix.append(torch.bmm(w, prefix[-1]))
    return prefix


def _descend(W: list[torch.Tensor], prefix: list[torch.Tensor], G: torch.Tensor, lr) -> None:
    """W_l <- W_l - lr (W_L...W_{l+1})^T G (W_{l-1}...W_1)^T for all l (prefix[l] = W_{l+1}...W_1).

    lr: a float, or a (rows, 1, 1) tensor (then G is scaled first). Goes from the output side
    down, carrying back = (W_L...W_{l+1})^T G; each layer's backward product is taken before
    that layer is updated, so all layers step from the same weights."""
    if isinstance(lr, torch.Tensor):
        G, lr = G * lr, 1.0
    back = G
    for l in reversed(range(1, len(W))):
        below = torch.bmm(W[l].mT, back)
        W[l].baddbmm_(back, prefix[l - 1].mT, alpha=-lr)  # fused gradient product and update
        back = below
    W[0].sub_(back, alpha=lr)


def _advance_torch(W, Syx, table: MomentTable, idx, lr, residual) -> None:
    """The reference path: len(idx) steps, one batched step at a time; residual[k] = ||W - Syx||_F
    before step k. idx (k, S, B): the SGD runs' batches; rows = configs x (1 + S)."""
    Sxx, N = table.moments(idx)
    configs = W[0].shape[0] // Sxx.shape[1]
    if configs > 1:
        Sxx = Sxx.repeat(1, configs, 1, 1)
        N = None if N is None else N.repeat(1, configs, 1, 1)
    for k in range(Sxx.shape[0]):
        prefix = _prefix_products(W)
        error = prefix[-1] - Syx
        torch.linalg.vector_norm(error, dim=(-2, -1), out=residual[k])
        G = torch.bmm(error, Sxx[k]) if N is None else torch.baddbmm(-N[k], error, Sxx[k])
        _descend(W, prefix, G, lr)


def _checkpoint_events(tables: list[torch.Tensor], runs: int):
    """Sorted unique checkpoint steps, and per step a list of (config, runs, checkpoint indices)."""
    hits = []
    for c, table in enumerate(tables):
        per_run = (table if table.ndim == 2 else table.expand(runs, -1)).numpy()
        r, k = np.nonzero(per_run >= 0)
        hits.append(np.stack([per_run[r, k], np.full_like(r, c), r, k], axis=1))
    hits = np.concatenate(hits)
    hits = hits[np.lexsort((hits[:, 1], hits[:, 0]))]  # by step, then config
    steps, first = np.unique(hits[:, 0], return_index=True)
    events = []
    for block in np.split(hits, first[1:]) if len(hits) else []:
        configs, starts = np.unique(block[:, 1], return_index=True)
        events.append(
            [
                (
                    int(c),
                    torch.from_numpy(np.ascontiguousarray(rows[:, 2])),
                    torch.from_numpy(np.ascontiguousarray(rows[:, 3])),
                )
                for c, rows in zip(configs, np.split(block, starts[1:]))
            ]
        )
    return steps, events


def _train(ensemble: Ensemble, tables, loss_every: int, progress: bool, advance) -> list[Trajectory]:
    base, exps = ensemble.base, ensemble.experiments
    problem = make_problem(base)
    C, R, L = len(exps), base.runs, base.depth
    W0 = [init_weights(e) for e in exps]
    W = [torch.stack([w0[l] for w0 in W0]).repeat_interleave(R, 0).contiguous() for l in range(L)]
    ends = np.repeat(np.asarray(ensemble.steps, dtype=np.int64), R)
    lrs = np.repeat(np.asarray(ensemble.lrs), R)
    n_steps = int(ends.max())

    own_records = [np.unique(np.append(np.arange(0, s + 1, loss_every), s)) for s in ensemble.steps]
    record = np.unique(np.concatenate(own_records))
    residual = torch.empty(len(record), C * R, dtype=W[0].dtype, device=W[0].device)  # ||W - Syx||_F
    loss0 = torch.stack([problem.loss(torch.linalg.multi_dot(w0[::-1]) if L > 1 else w0[0]) for w0 in W0])
    bound = DIVERGENCE_FACTOR * loss0.clamp_min(1.0).repeat_interleave(R)
    stored = [
        [torch.full((R, t.shape[-1], *w.shape), float("nan"), dtype=w.dtype, device=w.device) for w in w0]
        for t, w0 in zip(tables, W0)
    ]
    event_steps, events = _checkpoint_events(tables, R)

    live = np.arange(C * R)  # rows still training; W_live holds their weights
    W_live = W

    def weights(l: int, c: int, runs: torch.Tensor) -> torch.Tensor:
        at = np.searchsorted(live, c * R)
        if at < len(live) and live[at] == c * R:
            return W_live[l][int(at) + runs]
        return W[l][c * R + runs]

    def store(i: int) -> None:
        for c, runs, ks in events[i]:
            for l in range(L):
                stored[c][l][runs, ks] = weights(l, c, runs)

    def retire(step: int) -> None:
        """Write back the rows of configs whose steps are done, with their loss at ``step``, and
        keep only the others in the program."""
        nonlocal live, W_live
        done = ends[live] <= step
        if not done.any():
            return
        if W_live is not W:
            for w, w_live in zip(W, W_live):
                w[torch.from_numpy(live)] = w_live
        gone = torch.from_numpy(live[done])
        residual[np.searchsorted(record, step), gone] = torch.linalg.vector_norm(
            _prefix_products([w[gone] for w in W])[-1] - problem.Syx, dim=(-2, -1)
        )
        live = live[~done]
        W_live = [w[torch.from_numpy(live)].contiguous() for w in W]

    table = MomentTable(problem, base.label_noise > 0)
    orders = BatchOrders(base, n_steps, table.outer.shape[1])
    # divergence is checked at the end of every segment: at least every DIVERGENCE_WINDOW steps, and
    # every CHECK_ELEMENTS weight entries stepped (a diverging big net is reported within a second)
    every = max(1, min(DIVERGENCE_WINDOW, CHECK_ELEMENTS // (C * R * sum(w.numel() for w in W0[0]))))
    bounds = np.unique(
        np.concatenate(
            [
                event_steps,
                ensemble.steps,
                [0, n_steps],
                np.arange(0, n_steps, orders.chunk),
                np.arange(0, n_steps, every),
            ]
        )
    )
    ev = 0
    with tqdm(total=n_steps, desc="train", disable=not progress, leave=False) as bar:
        for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            retire(start)
            if ev < len(event_steps) and event_steps[ev] == start:
                store(ev)
                ev += 1
            step_residual = torch.empty(stop - start, len(live), dtype=W[0].dtype, device=W[0].device)
            advance(W_live, problem.Syx, table, orders.take(stop - start), _lr_at(lrs[live], W[0]), step_residual)
            lo, hi = np.searchsorted(record, [start, stop])
            kept = step_residual[torch.from_numpy(record[lo:hi] - start)]
            if len(live) == C * R:
                residual[lo:hi] = kept
            else:
                residual[lo:hi, torch.from_numpy(live)] = kept
            _check_divergence(step_residual, np.arange(start, stop), problem.loss_offset, bound, lrs, R, live)
            bar.update(stop - start)
    if W_live is not W:
        for w, w_live in zip(W, W_live):
            w[torch.from_numpy(live)] = w_live
        live, W_live = np.arange(C * R), W
    if ev < len(event_steps):
        store(ev)
    residual[-1] = torch.linalg.vector_norm(_prefix_products(W)[-1] - problem.Syx, dim=(-2, -1))
    _check_divergence(residual[-1:], record[-1:], problem.loss_offset, bound, lrs, R, live)
    return [
        _trajectory(
            exps[c],
            residual[np.searchsorted(record, own), c * R : (c + 1) * R],
            own,
            tables[c],
            stored[c],
            W0[c],
            problem.loss_offset,
        )
        for c, own in enumerate(own_records)
    ]


def _lr_at(lrs: np.ndarray, like: torch.Tensor):
    """The step size of every row still training: a float when all share it (the scalar path),
    else a (rows, 1, 1) tensor."""
    if (lrs == lrs[0]).all():
        return float(lrs[0])
    return torch.as_tensor(lrs, dtype=like.dtype, device=like.device).view(-1, 1, 1)


def _trajectory(exp, residual, record, table, stored, W0, offset) -> Trajectory:
    loss = (0.5 * residual.T.square() + offset).contiguous()
    steps = torch.from_numpy(record)
    return Trajectory(exp, steps, exp.lr * steps.double(), loss, table, stored, W0, offset)


def _check_divergence(residual, record, offset, bound, lrs, R, rows) -> None:
    """Raise TrainingDiverged for the first loss (every step of a segment, recorded or not) that
    is non-finite or > bound; column j of ``residual`` is the program's row ``rows[j]``.

    Weights need no check of their own: a NaN or inf entry in any layer makes every entry of the
    end-to-end product non-finite (IEEE: NaN * 0 = NaN, inf * 0 = NaN), so the loss before the
    next step, or the final loss after the last, is non-finite at that step."""
    loss = 0.5 * residual.square() + offset
    bad = ~torch.isfinite(loss) | (loss > bound[torch.from_numpy(rows)])
    if bad.any():
        i, j = (int(v) for v in torch.nonzero(bad)[0])
        _diverged(int(rows[j]), int(record[i]), lrs, R, float(loss[i, j]))


def _diverged(row: int, step: int, lrs: np.ndarray, R: int, loss: float = float("nan")):
    configs = len(lrs) // R
    raise TrainingDiverged(row % R, step, float(lrs[row]), loss, row // R if configs > 1 else None)
