"""Minibatch data orders and batch second moments for all runs of an Experiment.

SGD run r (>= 1) draws its batches from a torch.Generator seeded by (experiment.seed, r): a
fresh permutation of the n samples every epoch, cut into n // B batches (the remainder is
dropped). A batch's moments are Sxx = X_b X_b^T / B and the label-noise moment
N = (Y_b - Syx X_b) X_b^T / B (exactly 0 without label noise); run 0 (GD) has I and 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .data import Problem, seed_for
from .experiment import Experiment

CHUNK_ELEMENTS = 2 ** 21  # batch-index + moment elements per chunk (16 MiB in float64)


def order_generator(experiment: Experiment, run: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed_for(experiment.seed, run))


def shuffled_batches(g: torch.Generator, epochs: int, n: int, B: int) -> torch.Tensor:
    """(epochs * (n // B), B) sample indices: a fresh permutation per epoch, the remainder dropped."""
    perms = torch.stack([torch.randperm(n, generator=g) for _ in range(epochs)])
    return perms[:, : (n // B) * B].reshape(-1, B)


def batch_indices(experiment: Experiment, run: int, steps: int) -> torch.Tensor:
    """(steps, B) sample indices SGD run ``run`` (>= 1) uses at steps 0..steps-1 (for references)."""
    per_epoch = experiment.n_samples // experiment.batch_size
    g = order_generator(experiment, run)
    return shuffled_batches(g, -(-steps // per_epoch), experiment.n_samples, experiment.batch_size)[:steps]


class BatchMoments:
    """``take(k)`` -> (Sxx (k, R, d_in, d_in), N (k, R, d_out, d_in) or None) for the next k steps.

    Moments are gathered a chunk of ``chunk`` steps (whole epochs) at a time: per-sample outer
    products [x x^T | e x^T] (e = y - Syx x), averaged over each batch by one embedding_bag for
    all runs and steps of the chunk. A request never straddles a chunk boundary (``take`` returns
    at most what is left of the current chunk; callers cut their segments at multiples of chunk).
    """

    def __init__(self, problem: Problem, experiment: Experiment, steps: int):
        n, B = experiment.n_samples, experiment.batch_size
        X = problem.X
        self.d_out, self.d_in = problem.Syx.shape
        self.noisy = experiment.label_noise > 0
        columns = [(X[:, None] * X[None]).reshape(self.d_in ** 2, n)]
        if self.noisy:
            E = problem.Y - problem.Syx @ X
            columns.append((E[:, None] * X[None]).reshape(self.d_out * self.d_in, n))
        self.outer = torch.cat(columns).T.contiguous()
        self.n, self.B, self.per_epoch = n, B, n // B
        self.epochs = max(1, CHUNK_ELEMENTS // (self.per_epoch * experiment.runs * (B + self.outer.shape[1])))
        self.chunk = self.epochs * self.per_epoch
        self.orders = [order_generator(experiment, run) for run in range(1, experiment.runs)]
        self.eye = torch.eye(self.d_in, dtype=X.dtype, device=X.device)
        self.Sxx = self.N = None
        self.left, self.remaining = 0, steps

    def _gather(self) -> None:
        epochs = min(self.epochs, -(-self.remaining // self.per_epoch))
        C, S, d_in, d_out, X = epochs * self.per_epoch, len(self.orders), self.d_in, self.d_out, self.outer
        self.remaining -= C
        Sxx = self.eye.expand(C, 1, d_in, d_in)
        N = torch.zeros(C, 1, d_out, d_in, dtype=X.dtype, device=X.device) if self.noisy else None
        if S:
            idx = torch.stack([shuffled_batches(g, epochs, self.n, self.B) for g in self.orders], dim=1)
            moments = F.embedding_bag(idx.reshape(C * S, self.B).to(X.device), X, mode="mean").view(C, S, -1)
            Sxx = torch.cat([Sxx, moments[..., : d_in * d_in].view(C, S, d_in, d_in)], dim=1)
            if self.noisy:
                N = torch.cat([N, moments[..., d_in * d_in:].reshape(C, S, d_out, d_in)], dim=1)
        self.Sxx, self.N, self.left = Sxx.contiguous(), N, C

    def take(self, k: int):
        if self.left == 0:
            self._gather()
        k = min(k, self.left)
        start = self.Sxx.shape[0] - self.left
        self.left -= k
        N = None if self.N is None else self.N[start: start + k]
        return self.Sxx[start: start + k], N
