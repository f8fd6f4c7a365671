"""Init ensembles for the assumption checks (balance, mode decoupling, regimes, theory agreement):
which inits a case runs, and how per-init outcomes become a verdict.

A claim about a regime's generic behaviour is a statement over inits, not about one draw: the
saddle regime runs random small inits (half exactly balanced with random bases, half iid
Gaussian, the same per-layer size as the aligned preset), the aligned init kept as a control
case of its own; the other regimes run their preset init kind at several seeds. All configs of
a case train together (:class:`dlncheck.Ensemble`). Runs of one init are not independent of
each other (they share W(0)), so every statistic first reduces the runs of an init to one
per-init outcome and only then counts over inits (nested design).
"""
from __future__ import annotations

import dataclasses
import math

import torch

from . import presets
from .experiment import Ensemble, Experiment, Init

#: random small inits per saddle case, and init seeds per case of the other regimes
N_INITS = {"quick": 8, "nightly": 32}
N_INITS_OTHER = {"quick": 4, "nightly": 8}
#: SGD runs per init inside an ensemble (the preset's own count applies to single-init cases)
SGD_RUNS_PER_INIT = {"quick": 4, "nightly": 8}


def saddle_inits(exp: Experiment, n: int) -> list[Init]:
    """n random small inits for the saddle preset ``exp`` (aligned, scale a0 per layer):
    n/2 ``balanced`` (every layer's singular values a0, random bases) and n/2 ``gaussian``
    (iid entries a0 / sqrt(width), rms singular value ~a0, as presets.random_small_init)."""
    if exp.init.kind != "aligned":
        raise ValueError(f"exp.init.kind={exp.init.kind!r}: saddle_inits expects the aligned saddle preset")
    gauss = presets.random_small_init(exp).init
    half = n // 2
    return ([Init("balanced", exp.init.scale, seed=i) for i in range(half)]
            + [Init("gaussian", gauss.scale, seed=i) for i in range(n - half)])


def init_ensemble(exp: Experiment, tier: str) -> Ensemble:
    """The case's Ensemble: random small inits for a saddle preset (random_small_init's doubled
    steps), seeds 0..n-1 of the preset's own init kind otherwise; SGD_RUNS_PER_INIT runs each."""
    runs = SGD_RUNS_PER_INIT[tier]
    if exp.init.kind == "aligned":
        base = dataclasses.replace(presets.random_small_init(exp), sgd_runs=runs)
        return Ensemble(base, inits=saddle_inits(exp, N_INITS[tier]))
    base = dataclasses.replace(exp, sgd_runs=runs)
    return Ensemble(base, inits=[dataclasses.replace(exp.init, seed=i) for i in range(N_INITS_OTHER[tier])])


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927; Brown, Cai & DasGupta 2001):
    (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), p = successes / n; 95% for z = 1.96."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"successes={successes}, n={n} is invalid: use 0 <= successes <= n, n >= 1")
    p = successes / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    den = 1 + z * z / n
    return (max(0.0, (centre - half) / den), min(1.0, (centre + half) / den))


def init_summary(per_init: torch.Tensor | list[bool]) -> dict:
    """Per-init outcomes (one bool per init) -> n_inits, n_holds, fraction and its Wilson 95% CI."""
    ok = [bool(v) for v in (per_init.tolist() if isinstance(per_init, torch.Tensor) else per_init)]
    n, k = len(ok), sum(ok)
    lo, hi = wilson_interval(k, n)
    return {"n_inits": n, "n_holds": k, "fraction_inits": k / n, "fraction_ci": [lo, hi], "per_init": ok}


def init_labels(ensemble: Ensemble) -> list[str]:
    """'balanced#0', 'gaussian#3', ...: one readable label per config."""
    return [f"{i.kind}#{i.seed}" for i in ensemble.inits]


def case_trajectories(exp: Experiment, init: str, tier: str, cache) -> tuple[list[str], list]:
    """(labels, trajectories) of a case on the shared checkpoint grid (events.time_grid_for):
    ``init="aligned"``: the preset alone (the control case); otherwise :func:`init_ensemble`,
    trained together through ``cache.ensemble`` (a TrajectoryCache)."""
    from .events import time_grid_for

    if init == "aligned":
        return ["aligned"], [cache(exp, checkpoints=time_grid_for(exp))]
    ens = init_ensemble(exp, tier)
    return init_labels(ens), list(cache.ensemble(ens, checkpoints=time_grid_for(ens.base)))
