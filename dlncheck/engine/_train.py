"""train(): GD (run 0) and S SGD runs of a deep linear network, for one Experiment or every
config of an Ensemble, in one batched tensor program: arguments checked, the memory budgeted,
the backend chosen (:mod:`dlncheck.engine._torch_path`, or the fused C kernel or BLAS path of
:mod:`dlncheck.engine._per_sample` in the moment or per-sample form, by the cost model of
:mod:`dlncheck.engine._cost`), then the step loop of :mod:`dlncheck.engine._step_loop`, where
the update rule is derived.
"""

from __future__ import annotations

import dataclasses
import warnings
from functools import cache
from typing import overload

import numpy as np
import torch

from dlncheck.config import validation as check
from dlncheck.config.ensemble import Ensemble
from dlncheck.config.experiment import Experiment
from dlncheck.config.threads import cpu_threads
from dlncheck.engine import _cost as cost
from dlncheck.engine import _fused as fused
from dlncheck.engine._batches import batch_indices  # noqa: F401  (public for references)
from dlncheck.engine._checkpoints import CheckpointSpec, checkpoint_table
from dlncheck.engine._per_sample import FormPath
from dlncheck.engine._step_loop import step_loop
from dlncheck.engine._torch_path import advance_torch
from dlncheck.engine.budget import MemoryBudgetExceeded, check_budget
from dlncheck.engine.trajectory import EnsembleTrajectory, Trajectory  # noqa: F401  (Trajectory: public here too)

ENGINE_VERSION = 3  # bump when the numbers train() returns change (part of cache keys)
BACKENDS = ("auto", "torch", "fused", "blas", "fused-per-sample", "blas-per-sample")


@overload
def train(
    spec: Experiment,
    checkpoints: CheckpointSpec = None,
    loss_every: int = 1,
    progress: bool = False,
    backend: str = "auto",
    memory_budget: int | str | None = None,
) -> Trajectory: ...


@overload
def train(
    spec: Ensemble,
    checkpoints: CheckpointSpec | dict[int, CheckpointSpec] = None,
    loss_every: int = 1,
    progress: bool = False,
    backend: str = "auto",
    memory_budget: int | str | None = None,
) -> EnsembleTrajectory: ...


def train(
    spec: Experiment | Ensemble,
    checkpoints: CheckpointSpec | dict[int, CheckpointSpec] = None,
    loss_every: int = 1,
    progress: bool = False,
    backend: str = "auto",
    memory_budget: int | str | None = None,
) -> Trajectory | EnsembleTrajectory:
    """Train GD (run 0) and the SGD runs of an Experiment, or of every config of an Ensemble in
    one batched program. Each step is W_l <- W_l - lr dL/dW_l on the full-data (GD) or minibatch
    (SGD) loss 0.5 ||W_L...W_1 X - Y||_F^2 / n (:mod:`dlncheck.engine._step_loop`).

    Parameters
    ----------
    spec : Experiment or Ensemble
        What to train: one config, or configs sharing data and settings (differing in init and lr).
    checkpoints : None, int, list of int, (R, K) array or dict, optional
        Steps at which the weights are kept. None: steps 0 and last; a count: a log-spaced grid
        with 0 and last (per config, over its own steps); a list of steps; an (R, K) table of
        per-run steps (-1 = skip). For an Ensemble also ``{config index: one of these}``.
    loss_every : int, default 1
        Record the full-data loss every ``loss_every`` steps (and at the last).
    progress : bool, default False
        Show a progress bar.
    backend : {"auto", "torch", "fused", "blas", "fused-per-sample", "blas-per-sample"}, default "auto"
        "torch": the reference path; "fused": the C kernel (CPU only); "blas": batched GEMMs
        through torch; all in the moment form; "fused-per-sample", "blas-per-sample": those
        kernels in the per-sample form (:mod:`dlncheck.engine._per_sample`); all equal to 1e-12.
        "auto": on the CPU the form and kernel of least cost (:mod:`dlncheck.engine._cost`),
        torch on GPUs.
    memory_budget : int or str, optional
        Bytes (or e.g. "4G") the run may hold (:mod:`dlncheck.engine.budget`). A larger request is
        refused before any work, except that an Ensemble trains as programs of half its configs.

    Returns
    -------
    Trajectory or EnsembleTrajectory
        A Trajectory for an Experiment; for an Ensemble, ``et[i]`` equals
        ``train(ensemble.experiment(i))``.

    Raises
    ------
    TrainingDiverged
        A run's loss turned non-finite or exceeded 1e6 x max(initial loss, 1).
    MemoryBudgetExceeded
        The estimate exceeds ``memory_budget`` (for an Ensemble: even for a single config).
    InvalidArgument
        An argument of the wrong type or value; the message names the fix.
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
    tables = [checkpoint_table(spec, e) for spec, e in zip(specs, ensemble.experiments)]
    with cpu_threads(ensemble.base.device):
        advance = _advance_for(ensemble.base, backend, loss_every)
        trajectories = step_loop(ensemble, tables, int(loss_every), progress, advance)
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


def _advance_for(experiment: Experiment, backend: str, loss_every: int = 1):
    if backend == "torch" or (backend == "auto" and not experiment.whitened):
        return advance_torch  # the fused and BLAS paths take GD's Sxx = I and an unweighted residual
    if not experiment.whitened:
        raise ValueError(
            f"backend={backend!r} assumes whitened inputs (Sxx = I), but input_condition="
            f"{experiment.input_condition:g}: use backend='torch' or 'auto'"
        )
    kernel, _, form = backend.partition("-")
    if backend == "auto":  # the form and kernel of least cost (engine._cost)
        form = cost.formulation(experiment.widths, experiment.batch_size, loss_every)
        item = torch.finfo(experiment.torch_dtype).bits // 8
        kernel = cost.kernel(experiment.widths, torch.device(experiment.device).type, form, item)
        if kernel == "torch":
            return advance_torch
    if kernel == "blas":
        return FormPath(experiment, form or "moment", "blas")
    reason = fused.why_not(experiment)
    if backend != "auto" and reason:
        raise ValueError(
            f"backend={backend!r} is unavailable for device={experiment.device!r}, "
            f"dtype={experiment.dtype!r} ({reason}): use backend='torch'"
        )
    if reason and torch.device(experiment.device).type == "cpu":
        _warn_once(
            f"the fused CPU kernel is unavailable ({reason}); training on the PyTorch path "
            "(the same numbers to 1e-12, about 3x slower per run-step)"
        )
    if reason:
        return advance_torch
    return FormPath(experiment, form or "moment", "fused")


@cache
def _warn_once(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=4)
