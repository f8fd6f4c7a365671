"""The step loop of ``train``: GD (run 0) and S SGD runs of every config, in one batched tensor program.

Rows are (config, run) pairs, row = config * R + run (R = 1 + S). At step k, with its batch
second moments Sxx_r = X_b X_b^T / B and noise moment N_r (see :mod:`dlncheck.engine._batches`; run 0,
GD: the full data's Sxx, I when whitened, and 0), the batch gradient of the end-to-end map is
G = (W - T) Sxx_r - N_r (T the least-squares map, Syx when whitened), where W - T is also what the
full-data loss 0.5 ||(W - T) Sxx^{1/2}||_F^2 + offset needs. Then

    W = W_L ... W_1,   dL/dW_l = (W_L...W_{l+1})^T G (W_{l-1}...W_1)^T,

and all layers step together, W_l <- W_l - lr dL/dW_l. Prefix products are built from the
input side and the backward products from the output side, so every matmul is thin.
Config c trains steps_c steps with its own lr_c; at steps_c its rows leave the program (the
remaining steps advance only the configs still training).

The loop runs over segments: stretches of steps between checkpoints, config ends and
batch-moment chunks. A segment is advanced by the reference PyTorch path
(:mod:`dlncheck.engine._torch_path`), or by :mod:`dlncheck.engine._per_sample` (the fused C kernel
or batched GEMMs, in the moment form or the per-sample form that never forms Sxx_r); all equal to
1e-12. The latter sizes its own segments, and is told which steps' losses are kept and past
which residual a row has diverged (it computes the per-sample rows' loss only where needed).
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from dlncheck.config.data import init_weights, make_problem
from dlncheck.config.ensemble import Ensemble
from dlncheck.engine._batches import BatchOrders, MomentTable
from dlncheck.engine._checkpoints import checkpoint_events
from dlncheck.engine._divergence import CHECK_ELEMENTS, DIVERGENCE_FACTOR, DIVERGENCE_WINDOW, check_divergence
from dlncheck.engine._torch_path import prefix_products
from dlncheck.engine.trajectory import Trajectory


def step_loop(ensemble: Ensemble, tables, loss_every: int, progress: bool, advance) -> list[Trajectory]:
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
    stored = [  # NaN where a per-run table skips (-1); a shared table writes every entry
        [
            torch.full((R, t.shape[-1], *w.shape), float("nan"), dtype=w.dtype, device=w.device)
            if t.ndim == 2
            else torch.empty((R, t.shape[-1], *w.shape), dtype=w.dtype, device=w.device)
            for w in w0
        ]
        for t, w0 in zip(tables, W0)
    ]
    event_steps, events = checkpoint_events(tables, R)

    live = np.arange(C * R)  # rows still training; W_live holds their weights
    W_live = W

    def weights(l: int, c: int) -> torch.Tensor:
        at = np.searchsorted(live, c * R)
        if at < len(live) and live[at] == c * R:
            return W_live[l][int(at) : int(at) + R]
        return W[l][c * R : (c + 1) * R]

    def store(i: int) -> None:
        for c, runs, ks in events[i]:
            every = len(runs) == R and bool((ks == ks[0]).all())  # all runs, one checkpoint: a slice copy
            for l in range(L):
                if every:
                    stored[c][l][:, int(ks[0])] = weights(l, c)
                else:
                    stored[c][l][runs, ks] = weights(l, c)[runs]

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
        residual[np.searchsorted(record, step), gone] = problem.residual(prefix_products([w[gone] for w in W])[-1])
        live = live[~done]
        W_live = [w[torch.from_numpy(live)].contiguous() for w in W]

    table = MomentTable(problem, base.noisy_labels)
    orders = BatchOrders(base, n_steps, table.columns)
    # divergence is checked at the end of every segment: at least every DIVERGENCE_WINDOW steps, and
    # every CHECK_ELEMENTS weight entries stepped (a diverging big net is reported within a second);
    # engine._per_sample sizes its own windows by work (engine._cost.check_window)
    window = getattr(advance, "window", None)
    every = max(1, min(DIVERGENCE_WINDOW, CHECK_ELEMENTS // (C * R * sum(w.numel() for w in W0[0]))))
    every = min(DIVERGENCE_WINDOW, window(C * R)) if window else every
    limit = (2 * (bound - problem.loss_offset)).clamp_min(0).sqrt() * (1 - 1e-9)  # residual past the bound
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
            sparse = {}
            if getattr(advance, "sparse_loss", False):
                sparse = {"needed": np.isin(np.arange(start, stop), record), "limit": limit[torch.from_numpy(live)]}
            idx, lr = orders.take(stop - start), _lr_at(lrs[live], W[0])
            advance(W_live, problem.least_squares, table, idx, lr, step_residual, **sparse)
            lo, hi = np.searchsorted(record, [start, stop])
            kept = step_residual[torch.from_numpy(record[lo:hi] - start)]
            if len(live) == C * R:
                residual[lo:hi] = kept
            else:
                residual[lo:hi, torch.from_numpy(live)] = kept
            check_divergence(step_residual, np.arange(start, stop), problem.loss_offset, bound, lrs, R, live)
            bar.update(stop - start)
    if W_live is not W:
        for w, w_live in zip(W, W_live):
            w[torch.from_numpy(live)] = w_live
        live, W_live = np.arange(C * R), W
    if ev < len(event_steps):
        store(ev)
    end = advance.end(W) if hasattr(advance, "end") else None  # engine._per_sample may have it already
    if end is None:
        end = problem.residual(prefix_products(W)[-1])
    residual[-1] = end
    check_divergence(residual[-1:], record[-1:], problem.loss_offset, bound, lrs, R, live)
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
