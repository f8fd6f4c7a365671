"""Minibatch data orders and batch second moments for all runs of an Experiment.

SGD run r (>= 1) draws its batches from a torch.Generator seeded by (experiment.seed, r). With
``experiment.batches == "reshuffle"`` (the default) every epoch is a fresh permutation of the n
samples (torch.randperm), cut into n // B batches (the remainder is dropped); with "independent"
every step is a uniform B-subset of its own (the first B of a uniform random order of the n
samples: torch.rand(n).argsort()), independent of every other step. (NumPy's Generator.permuted would draw a chunk's epochs in one call,
about 0.1-0.25 us per run-step cheaper, but would change every SGD draw of existing results.) A batch's moments are
Sxx = X_b X_b^T / B and the label-noise moment N = (Y_b - T X_b) X_b^T / B (T the least-squares
map, Syx when whitened; exactly 0 without label noise); run 0 (GD) has the full data's moments,
Sxx (I when whitened) and 0. Then G = (W - T) Sxx_b - N_b = W Sxx_b - Y_b X_b^T / B on any data.
"""

from __future__ import annotations

from functools import cached_property

import torch
import torch.nn.functional as F

from dlncheck.config.data import Problem, seed_for
from dlncheck.config.experiment import Experiment

CHUNK_ELEMENTS = 2**21  # batch-index + moment elements per chunk (16 MiB in float64)


def order_generator(experiment: Experiment, run: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed_for(experiment.seed, run))


def shuffled_batches(g: torch.Generator, epochs: int, n: int, B: int) -> torch.Tensor:
    """(epochs * (n // B), B) sample indices: a fresh permutation per epoch, the remainder dropped."""
    perms = torch.stack([torch.randperm(n, generator=g) for _ in range(epochs)])
    return perms[:, : (n // B) * B].reshape(-1, B)


def independent_batches(g: torch.Generator, steps: int, n: int, B: int) -> torch.Tensor:
    """(steps, B) sample indices: each row a uniform B-subset of the n samples, rows independent."""
    return torch.rand(steps, n, generator=g, dtype=torch.float64).argsort(dim=1)[:, :B]


def draw_batches(experiment: Experiment, g: torch.Generator, epochs: int) -> torch.Tensor:
    """The next ``epochs * (n // B)`` steps' (steps, B) indices of one run, as ``experiment.batches`` says."""
    n, B = experiment.n_samples, experiment.batch_size
    if experiment.batches == "independent":
        return independent_batches(g, epochs * (n // B), n, B)
    return shuffled_batches(g, epochs, n, B)


def batch_indices(experiment: Experiment, run: int, steps: int) -> torch.Tensor:
    """(steps, B) sample indices SGD run ``run`` (>= 1) uses at steps 0..steps-1 (for references)."""
    per_epoch = experiment.n_samples // experiment.batch_size
    return draw_batches(experiment, order_generator(experiment, run), -(-steps // per_epoch))[:steps]


class BatchOrders:
    """``take(k)`` -> (k, S, B) sample indices of every SGD run for the next k steps.

    Drawn a chunk of whole epochs at a time (``chunk`` steps, sized so a chunk's indices and
    moments stay near CHUNK_ELEMENTS); a request never straddles a chunk boundary: callers cut
    their segments at multiples of ``chunk``.
    """

    def __init__(self, experiment: Experiment, steps: int, moment_columns: int):
        self.experiment, self.n, self.B = experiment, experiment.n_samples, experiment.batch_size
        self.per_epoch = self.n // self.B
        self.epochs = max(1, CHUNK_ELEMENTS // (self.per_epoch * experiment.runs * (self.B + moment_columns)))
        self.chunk = self.epochs * self.per_epoch
        self.generators = [order_generator(experiment, run) for run in range(1, experiment.runs)]
        self.idx, self.left, self.remaining = torch.empty(0, 0, self.B, dtype=torch.long), 0, steps

    def take(self, k: int) -> torch.Tensor:
        if self.left == 0:
            epochs = min(self.epochs, -(-self.remaining // self.per_epoch))
            self.left = epochs * self.per_epoch
            self.remaining -= self.left
            orders = [draw_batches(self.experiment, g, epochs) for g in self.generators]
            self.idx = torch.stack(orders, dim=1) if orders else torch.empty(self.left, 0, self.B, dtype=torch.long)
        if k > self.left:
            raise RuntimeError(
                f"a segment of {k} steps straddles a batch-order chunk ({self.left} steps left): "
                "cut segments at multiples of BatchOrders.chunk"
            )
        start = self.idx.shape[0] - self.left
        self.left -= k
        return self.idx[start : start + k]


class MomentTable:
    """Per-sample outer products [x x^T | e x^T] (e = y - T x), one row per sample: a batch's
    moments are the mean of its rows (``outer``: (n, d_in^2 [+ d_out d_in]), built on first use);
    ``xt``, ``yt``: the samples themselves, X^T (n, d_in) and Y^T (n, d_out), for the per-sample form."""

    def __init__(self, problem: Problem, noisy: bool):
        self.problem = problem
        self.d_out, self.d_in = problem.Syx.shape
        self.noisy = noisy
        self.columns = self.d_in**2 + (self.d_out * self.d_in if noisy else 0)
        self.xt, self.yt = problem.X.T.contiguous(), problem.Y.T.contiguous()

    @cached_property
    def outer(self) -> torch.Tensor:
        X = self.problem.X
        columns = [(X[:, None] * X[None]).reshape(self.d_in**2, -1)]
        if self.noisy:
            E = self.problem.Y - self.problem.least_squares @ X
            columns.append((E[:, None] * X[None]).reshape(self.d_out * self.d_in, -1))
        return torch.cat(columns).T.contiguous()

    @cached_property
    def padded_outer(self) -> torch.Tensor:
        """``outer`` with every matrix row (d_in entries) zero-padded to a multiple of 32 bytes:
        the layout of the fused kernel (dlncheck/engine/csrc/fused_step.c)."""
        lanes = 32 // self.outer.element_size()
        n, pad = self.outer.shape[0], -self.d_in % lanes
        return F.pad(self.outer.view(n, -1, self.d_in), (0, pad)).reshape(n, -1).contiguous()

    def moments(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Sxx (k, R, d_in, d_in) and N (k, R, d_out, d_in) or None, for indices idx (k, S, B);
        run 0 (GD) gets the full data's Sxx (I when whitened) and 0. One fused gather-and-mean
        (embedding_bag) for all of them."""
        k, S, B = idx.shape
        d_in, d_out, X = self.d_in, self.d_out, self.outer
        full = self.problem.Sxx if self.problem.Sxx is not None else torch.eye(d_in, dtype=X.dtype, device=X.device)
        Sxx = full.expand(k, 1, d_in, d_in)
        N = torch.zeros(k, 1, d_out, d_in, dtype=X.dtype, device=X.device) if self.noisy else None
        if S:
            moments = F.embedding_bag(idx.reshape(k * S, B).to(X.device), X, mode="mean").view(k, S, -1)
            Sxx = torch.cat([Sxx, moments[..., : d_in * d_in].view(k, S, d_in, d_in)], dim=1)
            if N is not None:  # label noise
                N = torch.cat([N, moments[..., d_in * d_in :].reshape(k, S, d_out, d_in)], dim=1)
        return Sxx, N
