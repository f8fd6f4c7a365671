"""Ensemble: configs that share one Experiment's data and settings and differ in their init (and
learning rate); ``train(ensemble)`` steps all their (config, run) rows in one batched program.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dlncheck.config import validation as check
from dlncheck.config.experiment import Experiment, Init

_fail = check.fail


@dataclass(frozen=True, init=False)
class Ensemble:
    """Configs that share one Experiment's teacher, data, depth, widths, batch size, sample
    count, SGD runs, data seed, dtype and device, and differ in their init (and learning rate).

    Config i has init ``inits[i]`` and lr ``lrs[i]`` (:meth:`grid` crosses inits x lrs). With
    ``same_time`` it trains steps_i = round(T / lr_i) steps, T = experiment.lr * experiment.steps,
    so every config covers the same time t = lr * step. ``train(ensemble)`` steps all
    (config, run) pairs in one batched program; ``ensemble.experiment(i)`` is config i alone.

    Parameters
    ----------
    experiment : Experiment
        The shared settings (its init and lr are replaced per config).
    inits : sequence of Init
        One init per config (non-empty).
    lrs : sequence of float, optional
        One lr per config, zipped with ``inits``; None: every config uses experiment.lr.
    same_time : bool, default True
        Train every config to the same time T (else every config trains experiment.steps).
    """

    base: Experiment
    inits: tuple[Init, ...]
    lrs: tuple[float, ...]
    same_time: bool

    def __init__(self, experiment: Experiment, inits, lrs=None, same_time: bool = True):
        if not isinstance(experiment, Experiment):
            _fail("experiment", experiment, "pass a dlncheck.Experiment (the configs' shared settings)")
        inits = tuple(inits) if isinstance(inits, (list, tuple)) else inits
        if not isinstance(inits, tuple) or not inits or not all(isinstance(i, Init) for i in inits):
            _fail("inits", inits, "give a non-empty list of dlncheck.Init, one per config")
        if lrs is None:
            lrs = (experiment.lr,) * len(inits)
        if not isinstance(lrs, (list, tuple)) or len(lrs) != len(inits):
            _fail(
                "lrs",
                lrs,
                f"give one lr per init ({len(inits)} values), None for experiment.lr, "
                "or use Ensemble.grid(experiment, inits, lrs) to cross inits and lrs",
            )
        lrs = tuple(float(lr) for lr in lrs)
        if not all(lr > 0 for lr in lrs):
            _fail("lrs", lrs, "use learning rates > 0")
        for name, value in (("base", experiment), ("inits", inits), ("lrs", lrs), ("same_time", bool(same_time))):
            object.__setattr__(self, name, value)
        for i, steps in enumerate(self.steps):
            if steps < 1:
                _fail(
                    "lrs",
                    lrs,
                    f"config {i} (lr={lrs[i]:g}) would train round(T / lr) = {steps} steps "
                    f"over T = {self.time:g}: use a smaller lr or a longer experiment",
                )

    @classmethod
    def grid(cls, experiment: Experiment, inits, lrs, same_time: bool = True) -> Ensemble:
        """Every (init, lr) pair, init-major: config i * len(lrs) + j has inits[i] and lrs[j]."""
        inits, lrs = list(inits), list(lrs)
        return cls(experiment, [i for i in inits for _ in lrs], lrs * len(inits), same_time)

    @property
    def time(self) -> float:
        """T = lr * steps of the base experiment: the time every config covers with same_time."""
        return self.base.lr * self.base.steps

    @property
    def steps(self) -> tuple[int, ...]:
        """Steps of each config: round(T / lr_i) with same_time, else experiment.steps."""
        if not self.same_time:
            return (self.base.steps,) * len(self)
        return tuple(int(round(self.time / lr)) for lr in self.lrs)

    def __len__(self) -> int:
        return len(self.inits)

    def experiment(self, i: int) -> Experiment:
        """The Experiment of config i: train(ensemble)[i] equals train(ensemble.experiment(i))."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"config {i} is out of range: the ensemble has {len(self)} configs")
        return dataclasses.replace(self.base, init=self.inits[i], lr=self.lrs[i], steps=self.steps[i])

    @property
    def experiments(self) -> list[Experiment]:
        return [self.experiment(i) for i in range(len(self))]

    def subset(self, indices) -> Ensemble:
        """The ensemble of configs ``indices`` (same base, so the same steps per config)."""
        indices = list(indices)
        return Ensemble(self.base, [self.inits[i] for i in indices], [self.lrs[i] for i in indices], self.same_time)
