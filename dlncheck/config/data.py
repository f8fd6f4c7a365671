"""The training problem of an Experiment: whitened inputs, teacher labels, initial weights.

Inputs are whitened exactly, X X^T / n = I (X = sqrt(n) (Z Z^T)^{-1/2} Z for Gaussian Z), so
the full-batch loss is 0.5 ||W - Syx||_F^2 + const with Syx = Y X^T / n (= M without noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dlncheck.config.experiment import Experiment, random_orthogonal


def seed_for(*parts: int) -> int:
    """A 63-bit seed derived from integers (NumPy SeedSequence), e.g. (experiment.seed, run)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


@dataclass(frozen=True)
class Problem:
    X: torch.Tensor  # (d_in, n), X X^T / n = I
    Y: torch.Tensor  # (d_out, n), Y = M X + noise
    Syx: torch.Tensor  # (d_out, d_in), Y X^T / n
    loss_offset: float  # full-batch loss = 0.5 ||W - Syx||^2 + loss_offset (0 without noise)

    def loss(self, W: torch.Tensor) -> torch.Tensor:
        """Full-data loss 1/(2n) sum ||y - W x||^2 for a batch of end-to-end maps W (..., d_out, d_in)."""
        return 0.5 * (W - self.Syx).pow(2).sum((-2, -1)) + self.loss_offset


def whiten(Z: torch.Tensor) -> torch.Tensor:
    """Rescale Z (d, n) so that X X^T / n = I exactly (symmetric inverse square root)."""
    evals, evecs = torch.linalg.eigh(Z @ Z.T / Z.shape[1])
    return evecs @ torch.diag(evals.rsqrt()) @ evecs.T @ Z


def make_problem(experiment: Experiment) -> Problem:
    """Whitened inputs and labels, seeded by (experiment.seed, 'data'), in experiment's dtype/device."""
    t = experiment.teacher
    g = torch.Generator().manual_seed(seed_for(experiment.seed, 0xDA7A))
    X = whiten(torch.randn(t.d_in, experiment.n_samples, generator=g, dtype=torch.float64))
    Y = t.M @ X
    if experiment.label_noise > 0:
        Y = Y + experiment.label_noise * torch.randn(Y.shape, generator=g, dtype=torch.float64)
    n = experiment.n_samples
    Syx = Y @ X.T / n
    offset = float(0.5 * (Y.pow(2).sum() / n - Syx.pow(2).sum()))
    dtype, device = experiment.torch_dtype, experiment.device
    return Problem(X.to(device, dtype), Y.to(device, dtype), Syx.to(device, dtype), offset)


def init_weights(experiment: Experiment) -> list[torch.Tensor]:
    """Initial weights [W_1, ..., W_L], W_l of shape (d_l, d_{l-1}); see :class:`dlncheck.Init`."""
    init, widths = experiment.init, experiment.widths
    g = torch.Generator().manual_seed(seed_for(init.seed, 0x1A17))
    L = len(widths) - 1
    if init.kind in ("gaussian", "lecun"):
        weights = [
            torch.randn(widths[l + 1], widths[l], generator=g, dtype=torch.float64)
            * (init.scale / (widths[l] ** 0.5 if init.kind == "lecun" else 1.0))
            for l in range(L)
        ]
    else:
        frames = [random_orthogonal(d, g) for d in widths]
        if init.kind == "aligned":
            frames[0], frames[-1] = experiment.teacher.V, experiment.teacher.U
        m = min(widths)
        weights = [init.scale * frames[l + 1][:, :m] @ frames[l][:, :m].T for l in range(L)]
    return [w.to(experiment.device, experiment.torch_dtype) for w in weights]
