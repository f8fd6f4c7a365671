"""train(): one GD run and S SGD runs of a deep linear network in one batched tensor program.

Every run r holds weights W_l[r] (R = 1 + S on the leading axis). At step k, with its batch
second moments Sxx_r = X_b X_b^T / B and Syx_r = Y_b X_b^T / B (run 0, GD: I and Syx = Y X^T / n),
the batch gradient G = W Sxx_r - Syx_r is written as (W - Syx) Sxx_r - N_r, where
N_r = (Y_b - Syx X_b) X_b^T / B is the label-noise moment (exactly 0 without label noise, since
then Y = M X and Syx = M); W - Syx is also what the full-data loss needs. Then

    W = W_L ... W_1,   dL/dW_l = (W_L...W_{l+1})^T G (W_{l-1}...W_1)^T,

and all layers step together, W_l <- W_l - lr dL/dW_l. Prefix products are built from the
input side and the backward products from the output side, so every matmul is thin
(O(d_l d_{l-1} d_0) per layer). The only Python loop is over steps; batch moments for a chunk
of epochs are gathered at once from per-run data orders (a torch.Generator per run, seeded
by (experiment.seed, run), reshuffled every epoch).
"""
from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import validation as check
from .budget import check_budget
from .data import Problem, init_weights, make_problem, seed_for
from .experiment import Experiment, Teacher

ENGINE_VERSION = 1        # bump when the numbers train() returns change (part of cache keys)
DIVERGENCE_FACTOR = 1e6   # a run diverges when its loss exceeds this times max(initial loss, 1)
CHUNK_ELEMENTS = 2 ** 21  # batch-index + moment elements per chunk (16 MiB in float64)
DIVERGENCE_WINDOW = 256   # every step's loss is checked at least this often (steps) ...
CHECK_ELEMENTS = 2 ** 21  # ... and at least every this many weight entries stepped (big nets)


class TrainingDiverged(RuntimeError):
    """A run's loss became non-finite or grew past the divergence bound."""

    def __init__(self, run: int, step: int, lr: float, loss: float = float("nan")):
        self.run, self.step, self.lr, self.loss = run, step, lr, loss
        kind = "GD" if run == 0 else "SGD"
        super().__init__(f"run {run} ({kind}) diverged at step {step} with lr={lr:g} "
                         f"(loss {loss:.3g}); lower lr (GD on this loss is stable for "
                         f"lr < 2 / (largest Hessian eigenvalue)) or use a smaller init scale")


@dataclass
class Trajectory:
    """Losses of every run at ``steps`` and weights at ``checkpoint_steps``.

    checkpoint_steps is (K,) (shared by all runs) or (R, K) (per run; -1 = not reached, the
    weights there are NaN). weights: list of L tensors (R, K, d_l, d_{l-1}).
    """

    experiment: Experiment
    steps: torch.Tensor
    times: torch.Tensor
    loss: torch.Tensor
    checkpoint_steps: torch.Tensor
    weights: list[torch.Tensor]
    initial_weights: list[torch.Tensor]

    @property
    def teacher(self) -> Teacher:
        return self.experiment.teacher

    @property
    def runs(self) -> int:
        return self.loss.shape[0]

    def relative_movement(self) -> torch.Tensor:
        """(R, K): ||theta_k - theta_0|| / ||theta_0|| over all layers (lazy regime: << 1)."""
        theta0 = torch.cat([w.flatten() for w in self.initial_weights])
        moved = sum((w - w0).pow(2).sum((-2, -1)) for w, w0 in zip(self.weights, self.initial_weights))
        return moved.sqrt() / theta0.norm()

    def to_frame(self) -> pd.DataFrame:
        """Tidy losses: one row per (run, step) with columns run, method, step, time, loss."""
        R, T = self.loss.shape
        run = np.repeat(np.arange(R), T)
        return pd.DataFrame({
            "run": run,
            "method": np.where(run == 0, "GD", "SGD"),
            "step": np.tile(self.steps.cpu().numpy(), R),
            "time": np.tile(self.times.cpu().numpy(), R),
            "loss": self.loss.cpu().double().numpy().ravel(),
        })


def checkpoint_grid(steps: int, count: int) -> torch.Tensor:
    """``count`` log-spaced integer steps in [0, steps], always with 0 and ``steps`` (deduplicated)."""
    if count < 2:
        raise ValueError(f"checkpoints={count} is invalid: ask for at least 2 (step 0 and the last step)")
    grid = np.round(np.geomspace(1, steps, count - 1)).astype(np.int64)
    return torch.from_numpy(np.unique(np.concatenate([[0], grid, [steps]])))


def _checkpoint_table(checkpoints, experiment: Experiment) -> torch.Tensor:
    if checkpoints is None:
        table = torch.tensor([0, experiment.steps])
    elif isinstance(checkpoints, (int, np.integer)):
        table = checkpoint_grid(experiment.steps, int(checkpoints))
    else:
        table = torch.as_tensor(np.asarray(checkpoints, dtype=np.int64))
    if table.ndim not in (1, 2) or (table.ndim == 2 and table.shape[0] != experiment.runs):
        raise ValueError(f"checkpoints of shape {tuple(table.shape)} is invalid: give a count, "
                         f"a list of steps, or an (R={experiment.runs}, K) table of per-run steps")
    if (table > experiment.steps).any() or (table < -1).any() or (table.ndim == 1 and (table < 0).any()):
        raise ValueError(f"checkpoints must lie in [0, steps={experiment.steps}] "
                         "(-1 marks a skipped per-run checkpoint)")
    return table


def _schedule(table: torch.Tensor, runs: int) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """step -> (run indices, checkpoint indices) to store at that step."""
    per_run = table if table.ndim == 2 else table.expand(runs, -1)
    hits = defaultdict(list)
    for r, k in zip(*torch.nonzero(per_run >= 0, as_tuple=True)):
        hits[int(per_run[r, k])].append((int(r), int(k)))
    return {s: tuple(torch.tensor(v) for v in zip(*pairs)) for s, pairs in hits.items()}


def _order_generator(experiment: Experiment, run: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed_for(experiment.seed, run))


def _shuffled_batches(g: torch.Generator, epochs: int, n: int, B: int) -> torch.Tensor:
    """(epochs * (n // B), B) sample indices: a fresh permutation per epoch, the remainder dropped."""
    perms = torch.stack([torch.randperm(n, generator=g) for _ in range(epochs)])
    return perms[:, : (n // B) * B].reshape(-1, B)


def batch_indices(experiment: Experiment, run: int, steps: int) -> torch.Tensor:
    """(steps, B) sample indices SGD run ``run`` (>= 1) uses at steps 0..steps-1 (for references)."""
    per_epoch = experiment.n_samples // experiment.batch_size
    g = _order_generator(experiment, run)
    return _shuffled_batches(g, -(-steps // per_epoch), experiment.n_samples, experiment.batch_size)[:steps]


def _batch_moments(problem: Problem, experiment: Experiment):
    """Yield (Sxx, N) for successive chunks of C steps: Sxx (C, R, d_in, d_in), and the noise
    moments N (C, R, d_out, d_in), or None without label noise. Run 0 (GD) gets I and 0."""
    n, B, S = experiment.n_samples, experiment.batch_size, experiment.sgd_runs
    d_out, d_in = problem.Syx.shape
    noisy = experiment.label_noise > 0
    X = problem.X
    # per-sample outer products [x x^T | e x^T] (e = y - Syx x): a batch's moments are the mean of
    # its rows, one fused gather-and-mean (embedding_bag) for all runs and steps of a chunk
    columns = [(X[:, None] * X[None]).reshape(d_in * d_in, n)]
    if noisy:
        E = problem.Y - problem.Syx @ X
        columns.append((E[:, None] * X[None]).reshape(d_out * d_in, n))
    outer = torch.cat(columns).T.contiguous()
    per_epoch = n // B
    cap = max(1, CHUNK_ELEMENTS // (per_epoch * experiment.runs * (B + outer.shape[1])))
    remaining = experiment.steps
    eye = torch.eye(d_in, dtype=X.dtype, device=X.device)
    orders = [_order_generator(experiment, run) for run in range(1, S + 1)]
    while True:
        epochs = min(cap, -(-remaining // per_epoch))
        C, remaining = epochs * per_epoch, remaining - epochs * per_epoch
        Sxx = eye.expand(C, 1, d_in, d_in)
        N = torch.zeros(C, 1, d_out, d_in, dtype=X.dtype, device=X.device) if noisy else None
        if S:
            idx = torch.stack([_shuffled_batches(g, epochs, n, B) for g in orders], dim=1)  # (C, S, B)
            moments = F.embedding_bag(idx.reshape(C * S, B).to(X.device), outer, mode="mean").view(C, S, -1)
            Sxx = torch.cat([Sxx, moments[..., : d_in * d_in].view(C, S, d_in, d_in)], dim=1)
            if noisy:
                N = torch.cat([N, moments[..., d_in * d_in:].reshape(C, S, d_out, d_in)], dim=1)
        yield Sxx, N


def _descend(W: list[torch.Tensor], prefix: list[torch.Tensor], G: torch.Tensor, lr: float) -> None:
    """W_l <- W_l - lr (W_L...W_{l+1})^T G (W_{l-1}...W_1)^T for all l (prefix[l] = W_{l+1}...W_1).

    Goes from the output side down, carrying back = (W_L...W_{l+1})^T G; each layer's backward
    product is taken before that layer is updated, so all layers step from the same weights."""
    back = G
    for l in reversed(range(1, len(W))):
        below = torch.bmm(W[l].mT, back)
        W[l].baddbmm_(back, prefix[l - 1].mT, alpha=-lr)    # fused gradient product and update
        back = below
    W[0].sub_(back, alpha=lr)


@contextmanager
def _cpu_threads(device: str, n: int = 1):
    """Run with n intra-op CPU threads: the engine's matmuls are tiny, and threading them only
    adds synchronisation (25x slower per step on a busy 2-core machine, measured)."""
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train(experiment: Experiment, checkpoints=None, loss_every: int = 1,
          progress: bool = False, memory_budget=None) -> Trajectory:
    """Train GD (run 0) and experiment.sgd_runs SGD runs together; see the module docstring.

    checkpoints: None (steps 0 and last), a count (log-spaced grid with 0 and last), a list of
    steps, or an (R, K) table of per-run steps (-1 = skip). loss_every: record the full-data
    loss every k steps (and at the last step). memory_budget: bytes (or '4G') the run may hold,
    see :mod:`dlncheck.budget`; a larger request is refused before any work.
    """
    if not isinstance(experiment, Experiment):
        check.fail("experiment", experiment, "pass a dlncheck.Experiment")
    loss_every = check.integral("loss_every", loss_every, min=1, why=" (record the loss every k steps)")
    check.flag("progress", progress)
    check_budget(experiment, checkpoints, loss_every, memory_budget)
    with _cpu_threads(experiment.device):
        return _train(experiment, checkpoints, loss_every, progress)


def _train(experiment: Experiment, checkpoints, loss_every: int, progress: bool) -> Trajectory:
    problem = make_problem(experiment)
    W0 = init_weights(experiment)
    R, L, lr, n_steps = experiment.runs, experiment.depth, experiment.lr, experiment.steps
    W = [w.expand(R, *w.shape).clone() for w in W0]

    table = _checkpoint_table(checkpoints, experiment)
    schedule = _schedule(table, R)
    stored = [torch.full((R, table.shape[-1], *w.shape), float("nan"), dtype=w.dtype, device=w.device)
              for w in W0]
    record = np.unique(np.append(np.arange(0, n_steps + 1, int(loss_every)), n_steps))
    record_at = {int(s): i for i, s in enumerate(record)}
    residual = torch.empty(len(record), R, dtype=W0[0].dtype, device=W0[0].device)  # ||W - Syx||_F

    loss0 = problem.loss(torch.linalg.multi_dot(W0[::-1]) if L > 1 else W0[0])
    bound = DIVERGENCE_FACTOR * max(float(loss0), 1.0)

    def observe(step: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Prefix products and W - Syx at ``step``; records its loss and checkpoints."""
        prefix = [W[0]]
        for w in W[1:]:
            prefix.append(torch.bmm(w, prefix[-1]))
        error = prefix[-1] - problem.Syx
        if step in record_at:
            torch.linalg.vector_norm(error, dim=(-2, -1), out=residual[record_at[step]])
        if step in schedule:
            runs, ks = schedule[step]
            for l in range(L):
                stored[l][runs, ks] = W[l][runs]
        return prefix, error

    every = max(1, min(DIVERGENCE_WINDOW, CHECK_ELEMENTS // (R * sum(w.numel() for w in W0))))
    window = torch.empty(every, R, dtype=W0[0].dtype, device=W0[0].device)  # ||W - Syx||_F per step
    step = 0
    with tqdm(total=n_steps, desc="train", disable=not progress, leave=False) as bar:
        for Sxx, N in _batch_moments(problem, experiment):
            first = step
            for k in range(Sxx.shape[0]):
                prefix, error = observe(step)
                torch.linalg.vector_norm(error, dim=(-2, -1), out=window[step % every])
                G = torch.bmm(error, Sxx[k]) if N is None else torch.baddbmm(-N[k], error, Sxx[k])
                _descend(W, prefix, G, lr)
                step += 1
                if step % every == 0:
                    _check_window(window, step - every, step, problem, lr, bound)
                if step == n_steps:
                    break
            _check_window(window, step - step % every, step, problem, lr, bound)
            _check_divergence(residual, record, first, step, W, problem, lr, bound)
            bar.update(step - first)
            if step == n_steps:
                break
    observe(n_steps)
    _check_divergence(residual, record, n_steps, n_steps + 1, W, problem, lr, bound)
    loss = 0.5 * residual.T.square() + problem.loss_offset
    steps_t = torch.from_numpy(record)
    return Trajectory(experiment, steps_t, lr * steps_t.double(), loss, table, stored, W0)


def _check_window(window, lo, hi, problem, lr, bound) -> None:
    """Raise TrainingDiverged at the first step in [lo, hi) whose loss is non-finite or > bound;
    window[s % len(window)] holds ||W - Syx||_F of every step s (hi - lo <= len(window))."""
    if hi <= lo:
        return
    loss = 0.5 * window[torch.arange(lo, hi) % len(window)].square() + problem.loss_offset
    bad = ~torch.isfinite(loss) | (loss > bound)
    if bad.any():
        i, run = (int(v) for v in torch.nonzero(bad)[0])
        raise TrainingDiverged(run, lo + i, lr, float(loss[i, run]))


def _check_divergence(residual, record, lo, hi, W, problem, lr, bound) -> None:
    """Raise TrainingDiverged for the first recorded loss in steps [lo, hi) that is non-finite or > bound."""
    rows = slice(*np.searchsorted(record, [lo, hi]))
    loss = 0.5 * residual[rows].square() + problem.loss_offset
    bad = ~torch.isfinite(loss) | (loss > bound)
    if bad.any():
        i, run = (int(v) for v in torch.nonzero(bad)[0])
        raise TrainingDiverged(run, int(record[rows][i]), lr, float(loss[i, run]))
    finite = torch.stack([torch.isfinite(w).flatten(1).all(1) for w in W]).all(0)
    if not finite.all():
        raise TrainingDiverged(int(torch.nonzero(~finite)[0]), hi, lr)
