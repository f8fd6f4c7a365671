"""The training problem of an Experiment: inputs, teacher labels, initial weights.

Inputs are whitened exactly, X_0 X_0^T / n = I (X_0 = sqrt(n) (Z Z^T)^{-1/2} Z for Gaussian Z), so
the full-batch loss is 0.5 ||W - Syx||_F^2 + const with Syx = Y X^T / n (= M without noise).
Anisotropic inputs (``Experiment.input_condition`` kappa > 1) are X = Q diag(lambda)^{1/2} Q^T X_0,
lambda geometric from 1 to 1 / kappa, Q the teacher's V or a seeded Haar basis: the true moments
Sxx = X X^T / n and Syx = Y X^T / n give the loss 0.5 ||(W - T) Sxx^{1/2}||_F^2 + const with the
least-squares map T = Syx Sxx^{-1} (= M without noise), the full-batch gradient (W - T) Sxx.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from dlncheck.config import datasets
from dlncheck.config import validation as check
from dlncheck.config.experiment import Experiment, Teacher, random_orthogonal


def seed_for(*parts: int) -> int:
    """A 63-bit seed derived from integers (NumPy SeedSequence), e.g. (experiment.seed, run)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


@dataclass(frozen=True)
class Problem:
    X: torch.Tensor  # (d_in, n), X X^T / n = Sxx
    Y: torch.Tensor  # (d_out, n), Y = M X + noise
    Syx: torch.Tensor  # (d_out, d_in), Y X^T / n
    loss_offset: float  # full-batch loss = 0.5 ||(W - target) root||^2 + loss_offset (0 without noise)
    Sxx: torch.Tensor | None = None  # X X^T / n; None: whitened (exactly I)
    target: torch.Tensor | None = None  # least-squares map Syx Sxx^{-1}; None: Syx (whitened)
    root: torch.Tensor | None = None  # Sxx^{1/2} (symmetric); None: whitened

    @property
    def whitened(self) -> bool:
        return self.Sxx is None

    @property
    def least_squares(self) -> torch.Tensor:
        """T = Syx Sxx^{-1}, the end-to-end map of least loss (Syx when whitened)."""
        return self.Syx if self.target is None else self.target

    def residual(self, W: torch.Tensor) -> torch.Tensor:
        """||(W - T) Sxx^{1/2}||_F for a batch of end-to-end maps W (..., d_out, d_in)."""
        error = W - self.least_squares
        if self.root is not None:
            error = error @ self.root
        return torch.linalg.vector_norm(error, dim=(-2, -1))

    def loss(self, W: torch.Tensor) -> torch.Tensor:
        """Full-data loss 1/(2n) sum ||y - W x||^2 for a batch of end-to-end maps W (..., d_out, d_in)."""
        return 0.5 * self.residual(W).square() + self.loss_offset


def whiten(Z: torch.Tensor) -> torch.Tensor:
    """Rescale Z (d, n) so that X X^T / n = I exactly (symmetric inverse square root)."""
    evals, evecs = torch.linalg.eigh(Z @ Z.T / Z.shape[1])
    return evecs @ torch.diag(evals.rsqrt()) @ evecs.T @ Z


def input_spectrum(experiment: Experiment) -> tuple[torch.Tensor, torch.Tensor]:
    """(lambda, Q): the eigenvalues (descending, geometric from 1 to 1 / input_condition) and
    eigenvectors (columns) that the anisotropic inputs' Sxx is built with (module docstring)."""
    d, kappa = experiment.teacher.d_in, experiment.input_condition
    lam = torch.logspace(0.0, -math.log10(kappa), d, dtype=torch.float64)
    if experiment.input_basis == "teacher":
        return lam, experiment.teacher.V
    g = torch.Generator().manual_seed(seed_for(experiment.seed, 0xBA515))
    return lam, random_orthogonal(d, g)


def make_problem(experiment: Experiment) -> Problem:
    """Inputs and labels, seeded by (experiment.seed, 'data'), in experiment's dtype/device."""
    t = experiment.teacher
    g = torch.Generator().manual_seed(seed_for(experiment.seed, 0xDA7A))
    if experiment.dataset != "teacher":  # a data set's own inputs and labels (config.datasets)
        X, Y = (torch.from_numpy(a.copy()) for a in datasets.digits())
        X = whiten(X) if experiment.whitened else X
    else:
        X = whiten(torch.randn(t.d_in, experiment.n_samples, generator=g, dtype=torch.float64))
        if not experiment.whitened:
            lam, Q = input_spectrum(experiment)
            X = Q @ torch.diag(lam.sqrt()) @ Q.T @ X
        Y = t.M @ X
    if experiment.label_noise > 0:
        Y = Y + experiment.label_noise * torch.randn(Y.shape, generator=g, dtype=torch.float64)
    n = experiment.n_samples
    Syx = Y @ X.T / n
    dtype, device = experiment.torch_dtype, experiment.device
    if experiment.whitened:
        offset = float(0.5 * (Y.pow(2).sum() / n - Syx.pow(2).sum()))
        return Problem(X.to(device, dtype), Y.to(device, dtype), Syx.to(device, dtype), offset)
    Sxx = X @ X.T / n
    evals, evecs = torch.linalg.eigh(Sxx)
    root = evecs @ torch.diag(evals.sqrt()) @ evecs.T
    T = torch.linalg.solve(Sxx, Syx.T).T  # Syx Sxx^{-1} (Sxx symmetric)
    offset = float(0.5 * (Y.pow(2).sum() / n - (T * Syx).sum()))
    X, Y, Syx, Sxx, T, root = (a.to(device, dtype) for a in (X, Y, Syx, Sxx, T, root))
    return Problem(X, Y, Syx, offset, Sxx=Sxx, target=T, root=root)


def digits_teacher() -> Teacher:
    """The 10 x 16 Teacher of the digits data: the singular values of their least-squares map in
    whitened coordinates, Syx Sxx^{-1/2} (6 significant digits; the same for both variants), which
    set the rank floor and the presets' step size; its frames are seeded, not the data's (labels come
    from the data, ``Experiment.dataset``)."""
    X, Y = datasets.digits()
    n = X.shape[1]
    evals, evecs = np.linalg.eigh(X @ X.T / n)
    values = np.linalg.svd((Y @ X.T / n) @ evecs @ np.diag(evals**-0.5) @ evecs.T, compute_uv=False)
    kept = [float(f"{v:.6g}") for v in values if v > 1e-9 * values[0]]
    return Teacher(datasets.DIGITS_CLASSES, datasets.DIGITS_COMPONENTS, tuple(kept))


def imbalance(factor: float, depth: int) -> tuple[float, ...]:
    """Layer factors c_l = factor^((L + 1 - 2l) / (2 (L - 1))), l = 1..L: geometric, product 1, the
    first layer ``factor`` times the last (``Init.layer_scales``); (1.0,) for L = 1."""
    factor = check.finite_float("factor", factor, positive=True)
    depth = check.depth("depth", depth)
    if depth == 1:
        return (1.0,)
    return tuple(factor ** ((depth + 1 - 2 * l) / (2 * (depth - 1))) for l in range(1, depth + 1))


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
    weights = [w * c for w, c in zip(weights, init.layer_scales)] if init.layer_scales else weights
    return [w.to(experiment.device, experiment.torch_dtype) for w in weights]
