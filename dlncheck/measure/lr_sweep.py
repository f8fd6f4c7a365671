"""Learning-rate x batch-size sweeps at equal training time, and log-log slope fits with a nested
bootstrap interval.

A sweep replaces the preset's lr eta by eta * f for f in LR_FRACTIONS = (1, 1/2, 1/4, 1/8) and
its batch size by each of ``batch_sizes``, with steps / f steps, so every run covers the same
time T = lr * steps (f = 2^-k keeps the step counts integer). Checkpoints are given as fractions
of T and land on the same times at every lr.

Slope fit: for discrepancy values y(config, run) and the noise variable x(config), the slope of
log(mean_runs y) on log x by least squares; its interval is a percentile bootstrap that
resamples the SGD runs within each config (runs are nested in their config's init; several
inits resample inits first, then runs within each resampled init).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from dlncheck import engine
from dlncheck.config.ensemble import Ensemble
from dlncheck.config.experiment import Experiment
from dlncheck.engine._train import Trajectory

LR_FRACTIONS = (1.0, 0.5, 0.25, 0.125)


@dataclass(frozen=True)
class SweepPoint:
    experiment: Experiment
    lr_fraction: float

    @property
    def lr(self) -> float:
        return self.experiment.lr

    @property
    def batch_size(self) -> int:
        return self.experiment.batch_size


def sweep_points(experiment: Experiment, batch_sizes, lr_fractions=LR_FRACTIONS) -> list[SweepPoint]:
    """One Experiment per (batch size, lr fraction), steps scaled so lr * steps is constant."""
    points = []
    for B in batch_sizes:
        for f in lr_fractions:
            steps = experiment.steps / f
            if abs(steps - round(steps)) > 1e-9:
                raise ValueError(
                    f"lr_fractions={lr_fractions!r} is invalid: steps / f must be an "
                    f"integer (steps={experiment.steps}); use powers of 1/2"
                )
            points.append(
                SweepPoint(
                    dataclasses.replace(experiment, lr=experiment.lr * f, steps=round(steps), batch_size=int(B)), f
                )
            )
    return points


def checkpoint_steps(experiment: Experiment, time_fractions) -> list[int]:
    """Steps at the given fractions of the training time (rounded; 0 and 1 exact)."""
    return sorted({round(float(q) * experiment.steps) for q in time_fractions})


def run_sweep(points: list[SweepPoint], time_fractions=(0.0, 0.5, 1.0), train=None) -> list[Trajectory]:
    """Train every sweep point with checkpoints at ``time_fractions`` of T: the points of one batch
    size form one :class:`dlncheck.Ensemble` (lrs with same_time) and train in one batched program.

    ``train``: a callable (ensemble, checkpoints=...) -> EnsembleTrajectory, e.g. the claims'
    ``trajectory_cache.ensemble``; default :func:`dlncheck.train` (an ensemble over the
    memory budget, e.g. 321 checkpoints of four 128-wide L = 3 configs x 33 runs, 6.2 GB, trains
    there as programs of half its configs)."""
    train = train or engine.train
    out: dict[int, Trajectory] = {}
    for B in dict.fromkeys(p.batch_size for p in points):
        members = [i for i, p in enumerate(points) if p.batch_size == B]
        first = points[members[0]].experiment
        base = dataclasses.replace(
            first,
            lr=first.lr / points[members[0]].lr_fraction,
            steps=round(first.steps * points[members[0]].lr_fraction),
        )
        ensemble = Ensemble(
            base, [points[i].experiment.init for i in members], [points[i].lr for i in members], same_time=True
        )
        checkpoints = {j: checkpoint_steps(points[i].experiment, time_fractions) for j, i in enumerate(members)}
        trained = train(ensemble, checkpoints=checkpoints)
        for j, i in enumerate(members):
            if ensemble.experiment(j) != points[i].experiment:
                raise RuntimeError(f"ensemble config {j} differs from sweep point {i}: {ensemble.experiment(j)}")
            out[i] = trained[j]
    return [out[i] for i in range(len(points))]


@dataclass(frozen=True)
class SlopeFit:
    slope: float
    intercept: float
    lo: float
    hi: float
    x: np.ndarray  # noise variable per config
    y: np.ndarray  # discrepancy per config (statistic of the run means)


def _slope(logx: np.ndarray, logy: np.ndarray) -> np.ndarray:
    """Least-squares slopes of logy (..., C) on logx (C,)."""
    xc = logx - logx.mean()
    return ((logy - logy.mean(-1, keepdims=True)) * xc).sum(-1) / (xc**2).sum()


def _mean_features(values: np.ndarray) -> np.ndarray:
    return values.mean(axis=(1, 2))


def fit_loglog(x, values, statistic=None, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> SlopeFit:
    """Slope of log(statistic(run means)) vs log x with a nested percentile bootstrap interval.

    values: (C, S, F) per-run features (one init) or (C, I, S, F) (inits x runs: resample inits,
    then runs within each drawn init); statistic maps means (..., C, F) -> (..., C) (default:
    the single feature). Discrepancies <= 0 have no logarithm: rejected with the values."""
    x = np.asarray(x, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 3:
        v = v[:, None]
    if v.ndim != 4 or v.shape[0] != len(x):
        raise ValueError(
            f"values of shape {np.shape(values)} is invalid: give (configs={len(x)}, runs, "
            "features) or (configs, inits, runs, features)"
        )
    if not np.all(x > 0):
        raise ValueError(f"x={x!r} is invalid: the noise variable must be > 0 for a log-log fit")
    statistic = statistic or (lambda m: m[..., 0])
    C, I, S, _ = v.shape
    y = statistic(_mean_features(v))
    if not np.all(y > 0):
        raise ValueError(f"discrepancies {y!r} include values <= 0: no log-log slope exists")
    logx = np.log(x)
    slope = float(_slope(logx, np.log(y)))
    rng = np.random.default_rng(seed)
    inits = rng.integers(0, I, size=(n_boot, C, I))
    runs = rng.integers(0, S, size=(n_boot, C, I, S))
    c_idx = np.arange(C)[None, :, None, None]
    means = v[c_idx, inits[..., None], runs].mean(axis=(2, 3))  # (n_boot, C, F)
    with np.errstate(divide="ignore", invalid="ignore"):
        slopes = _slope(logx, np.log(statistic(means)))
    slopes = slopes[np.isfinite(slopes)]
    alpha = (1 - level) / 2
    lo, hi = np.quantile(slopes, [alpha, 1 - alpha]) if len(slopes) else (np.nan, np.nan)
    intercept = float(np.log(y).mean() - slope * logx.mean())
    return SlopeFit(slope, intercept, float(lo), float(hi), x, y)
