"""What train() returns: Trajectory (one config: losses, checkpoints, its own time axis, its
conversion to and from named arrays) and EnsembleTrajectory (one Trajectory per config)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import cast, overload

import numpy as np
import pandas as pd
import torch

from dlncheck.config import validation as check
from dlncheck.config.ensemble import Ensemble
from dlncheck.config.experiment import Experiment, Teacher

ARRAY_FIELDS = ("steps", "times", "loss", "checkpoint_steps")


@dataclass
class Trajectory:
    """Losses of every run at ``steps`` and weights at ``checkpoint_steps``: what
    ``train(experiment)`` returns. Run 0 is GD, runs 1..S are SGD; time is t = lr * step.

    Parameters
    ----------
    experiment : Experiment
        What was trained.
    steps, times : (T,) tensor
        The steps at which the loss was recorded, and their times lr * step.
    loss : (R, T) tensor
        Full-data loss 0.5 ||W - Syx||_F^2 + loss_offset of every run at ``steps``.
    checkpoint_steps : (K,) or (R, K) tensor
        Checkpoint steps, shared by all runs or per run (-1 = not reached: the weights there are NaN).
    weights : list of L tensors (R, K, d_l, d_{l-1})
        Every run's layers at its checkpoints (``checkpoint_times`` gives their times).
    initial_weights : list of L tensors (d_l, d_{l-1})
        The shared initial layers.
    loss_offset : float, default 0.0
        The part of the loss no W can remove: 0.5 (||Y||^2 / n - ||Syx||^2) (0 without label noise).
    """

    experiment: Experiment
    steps: torch.Tensor
    times: torch.Tensor
    loss: torch.Tensor
    checkpoint_steps: torch.Tensor
    weights: list[torch.Tensor]
    initial_weights: list[torch.Tensor]
    loss_offset: float = 0.0

    @property
    def teacher(self) -> Teacher:
        return self.experiment.teacher

    @property
    def runs(self) -> int:
        return self.loss.shape[0]

    @property
    def checkpoint_times(self) -> torch.Tensor:
        """t = lr * checkpoint step, (K,) or (R, K) like checkpoint_steps (NaN where skipped)."""
        t = self.experiment.lr * self.checkpoint_steps.double()
        return t.where(self.checkpoint_steps >= 0, float("nan"))

    def relative_movement(self) -> torch.Tensor:
        """(R, K): ||theta_k - theta_0|| / ||theta_0|| over all layers (lazy regime: << 1)."""
        theta0 = torch.cat([w.flatten() for w in self.initial_weights])
        moved = cast(
            torch.Tensor, sum((w - w0).pow(2).sum((-2, -1)) for w, w0 in zip(self.weights, self.initial_weights))
        )
        return moved.sqrt() / theta0.norm()

    def layer_movement(self) -> torch.Tensor:
        """(R, K, L): ||W_l,k - W_l,0||_F / ||W_l,0||_F per layer (the laziness of each layer)."""
        return torch.stack(
            [
                torch.linalg.matrix_norm(w - w0) / torch.linalg.matrix_norm(w0)
                for w, w0 in zip(self.weights, self.initial_weights)
            ],
            dim=-1,
        )

    def to_frame(self) -> pd.DataFrame:
        """Tidy losses: one row per (run, step) with columns run, method, step, time, loss."""
        R, T = self.loss.shape
        run = np.repeat(np.arange(R), T)
        return pd.DataFrame(
            {
                "run": run,
                "method": np.where(run == 0, "GD", "SGD"),
                "step": np.tile(self.steps.cpu().numpy(), R),
                "time": np.tile(self.times.cpu().numpy(), R),
                "loss": self.loss.cpu().double().numpy().ravel(),
            }
        )

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Named NumPy arrays (weights_l, initial_l per layer, loss_offset) for np.savez."""
        arrays = {name: getattr(self, name) for name in ARRAY_FIELDS}
        arrays |= {f"weights_{l}": w for l, w in enumerate(self.weights)}
        arrays |= {f"initial_{l}": w for l, w in enumerate(self.initial_weights)}
        arrays = {prefix + k: v.cpu().numpy() for k, v in arrays.items()}
        return arrays | {prefix + "loss_offset": np.asarray(self.loss_offset, dtype=np.float64)}

    @classmethod
    def from_arrays(cls, arrays, experiment: Experiment, prefix: str = "") -> Trajectory:
        """Inverse of :meth:`to_arrays` (tensors on experiment.device)."""
        check_decoded(arrays, experiment, prefix)  # shapes and finiteness, else recompute

        def t(name: str) -> torch.Tensor:
            return torch.from_numpy(np.asarray(arrays[prefix + name])).to(experiment.device)

        L = experiment.depth
        return cls(
            experiment,
            **{name: t(name) for name in ARRAY_FIELDS},
            weights=[t(f"weights_{l}") for l in range(L)],
            initial_weights=[t(f"initial_{l}") for l in range(L)],
            loss_offset=float(arrays[prefix + "loss_offset"]),
        )


@dataclass
class EnsembleTrajectory:
    """One Trajectory per config of ``ensemble``: what ``train(ensemble)`` returns.

    ``et[i]`` is what train(ensemble.experiment(i)) returns; iterating gives the configs in
    order; ``et.configs`` is a DataFrame with one row per config.

    Parameters
    ----------
    ensemble : Ensemble
        What was trained.
    trajectories : sequence of Trajectory
        One per config, in the ensemble's order (a list, or the trajectory cache's
        config-by-config OnDemand sequence, store.lazy).
    """

    ensemble: Ensemble
    trajectories: Sequence[Trajectory]

    def __len__(self) -> int:
        return len(self.trajectories)

    @overload
    def __getitem__(self, i: int) -> Trajectory: ...

    @overload
    def __getitem__(self, i: slice) -> list[Trajectory]: ...

    def __getitem__(self, i: int | slice) -> Trajectory | list[Trajectory]:
        return list(self.trajectories[i]) if isinstance(i, slice) else self.trajectories[i]

    def __iter__(self) -> Iterator[Trajectory]:
        return iter(self.trajectories)

    @property
    def configs(self) -> pd.DataFrame:
        """Columns config, init, scale, init_seed, lr, steps, time (= lr * steps)."""
        e = self.ensemble
        return pd.DataFrame(
            {
                "config": range(len(e)),
                "init": [i.kind for i in e.inits],
                "scale": [i.scale for i in e.inits],
                "init_seed": [i.seed for i in e.inits],
                "lr": list(e.lrs),
                "steps": list(e.steps),
                "time": [lr * s for lr, s in zip(e.lrs, e.steps)],
            }
        )


def check_decoded(arrays, experiment, prefix: str = "") -> None:
    """Check cached trajectory arrays against ``experiment`` (raise InvalidArgument otherwise):
    weights_l (R, K, d_l, d_{l-1}), initial_l (d_l, d_{l-1}), loss (R, T); loss, initial weights
    and every stored checkpoint (checkpoint step >= 0) finite."""

    def get(name):
        return arrays[prefix + name]

    R, widths = experiment.runs, experiment.widths
    loss, table = get("loss"), get("checkpoint_steps")
    if loss.ndim != 2 or loss.shape[0] != R or not np.isfinite(loss).all():
        check.fail(f"{prefix}loss", loss.shape, f"a cached loss is a finite ({R}, T) array; delete the entry")
    stored = np.broadcast_to(table >= 0, (R, table.shape[-1]))
    for l in range(experiment.depth):
        shape = (widths[l + 1], widths[l])
        w, w0 = get(f"weights_{l}"), get(f"initial_{l}")
        if w.shape != (R, table.shape[-1], *shape) or w0.shape != shape:
            check.fail(
                f"{prefix}weights_{l}",
                w.shape,
                f"expected ({R}, {table.shape[-1]}, {shape[0]}, {shape[1]}) for this experiment; delete the entry",
            )
        if not (np.isfinite(w0).all() and np.isfinite(w[stored]).all()):
            check.fail(f"{prefix}weights_{l}", "non-finite", "cached weights must be finite; delete the entry")
