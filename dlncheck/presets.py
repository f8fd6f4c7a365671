"""Named experiments for the three regimes x three teachers x depths that every claim shares.

Regimes (variance of the init as in Jacot et al. 2021, "Saddle-to-saddle dynamics in deep
linear networks": sigma^2 = w^{-gamma}, gamma > 1 saddle-to-saddle, gamma < 1 lazy):

- ``saddle``: aligned init (balanced and decoupled) of tiny scale, the gamma -> infinity end:
  each mode leaves the saddle at u0 = scale^L alone and in the order of s (Saxe et al. 2014),
  so the loss walks down the plateaus 0.5 * sum_{alpha > k} s_alpha^2. Scale and steps are
  chosen with :func:`dlncheck.theory.escape_time` so that consecutive escapes are far apart
  compared with their width and every mode converges before the end.
- ``intermediate``: iid Gaussian init at the boundary gamma = 1 (sigma^2 = 1/w, w = 32):
  the init is neither negligible nor dominant; theory gives no sharp plateau prediction.
- ``ntk``: wide hidden layers (w = 128), LeCun variance 1/fan_in so the end-to-end map is O(1)
  at init; the weights move by O(1/sqrt(w)) relative to their size (lazy / kernel regime).

Teachers (small, well separated singular values, Saxe et al. 2014's setting): ``lowrank``
6x6 with s = (4, 2, 1); ``fullrank`` 4x4 with s = (4, 2, 1, 0.5); ``degenerate`` 6x6 with
s = (4, 2, 2, 1) (the repeated 2 escapes as one stage). lr = 0.2 / (top curvature: the
tangent-kernel bound at init or L s_1^{2-2/L} at the solution), so GD tracks gradient flow.
S = 8 SGD runs unless given (batch 10 of 60 whitened samples), L in DEPTHS.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from dlncheck import theory
from dlncheck.config import validation as check
from dlncheck.config.experiment import Experiment, Init, Teacher
from dlncheck.theory.kernel import kernel_bounds, rounded

REGIMES = ("saddle", "intermediate", "ntk")
TEACHERS = ("lowrank", "fullrank", "degenerate")
DEPTHS = (2, 3, 4)  # the preset grid's depths
SGD_RUNS = 8  # SGD runs of a preset unless given

TEACHER_SPECS = {
    "lowrank": Teacher(6, 6, (4.0, 2.0, 1.0), seed=1),
    "fullrank": Teacher(4, 4, (4.0, 2.0, 1.0, 0.5), seed=2),
    "degenerate": Teacher(6, 6, (4.0, 2.0, 2.0, 1.0), seed=3),
}
# saddle: per-layer scale a0 (u0 = a0^L); L=2 escapes take ln(s/u0)/(2s), L>=3 about
# 1/((L-2) s u0^{(L-2)/L}), so deeper nets need a larger a0 to finish in a few thousand steps.
SADDLE_SCALE = {2: 1e-4, 3: 0.05, 4: 0.1}  # depth >= 5: 0.3
WIDTH = {"saddle": 8, "intermediate": 32, "ntk": 128}
N_SAMPLES, BATCH_SIZE = 60, 10


def _lr(experiment: Experiment) -> float:
    """lr = 0.2 / (top curvature), the larger of the kernel bound at init and L s_1^{2-2/L} (an aligned
    run's top Hessian eigenvalue at the solution), so GD tracks gradient flow."""
    L, s1 = experiment.depth, float(experiment.teacher.s[0])
    return rounded(0.2 / max(kernel_bounds(experiment)[1], L * s1 ** (2 - 2 / L)))


def _convergence_steps(teacher: Teacher, depth: int, lr: float) -> int:
    """Steps for the slowest mode to converge by e^-12 at its linear rate L s_min^{2-2/L}."""
    s_min = min(v for v in teacher.singular_values if v > 0)
    return math.ceil(12 / (depth * s_min ** (2 - 2 / depth)) / lr)


def _saddle_steps(teacher: Teacher, depth: int, lr: float) -> int:
    """Steps to pass the last escape (theory.escape_time) and converge that mode to ~e^-10."""
    s_min = min(v for v in teacher.singular_values if v > 0)
    u0 = SADDLE_SCALE.get(depth, 0.3) ** depth
    t_escape = float(theory.escape_time([s_min], u0, depth)[0])
    rate = depth * s_min ** (2 - 2 / depth)
    return math.ceil((t_escape + 10 / rate) / lr)


def experiment(
    regime: str, teacher: str, depth: int, sgd_runs: int = SGD_RUNS, width: int | None = None, **overrides: Any
) -> Experiment:
    """The preset Experiment for (regime, teacher, depth) with ``sgd_runs`` SGD runs; ``width``
    replaces the regime's hidden width before lr and steps are derived (the ntk preset at other
    widths); ``overrides`` replace any other field afterwards."""
    check.one_of("regime", regime, REGIMES)
    check.one_of("teacher", teacher, TEACHERS)
    depth = check.depth("depth", depth, min=2)  # presets are deep networks
    t = TEACHER_SPECS[teacher]
    width = WIDTH[regime] if width is None else check.integral("width", width, min=1)
    init = {
        "saddle": Init("aligned", SADDLE_SCALE.get(depth, 0.3)),
        "intermediate": Init("gaussian", width**-0.5),
        "ntk": Init("lecun", 1.0),
    }[regime]
    exp = Experiment(
        t, depth, width, init, lr=1.0, steps=1, batch_size=BATCH_SIZE, n_samples=N_SAMPLES, sgd_runs=sgd_runs
    )
    lr = _lr(exp)
    if regime == "ntk":  # lazy: the loss decays at least at the kernel's smallest eigenvalue
        steps = math.ceil(12 / (kernel_bounds(exp)[0] * lr))
    else:
        steps = (_saddle_steps if regime == "saddle" else _convergence_steps)(t, depth, lr)
    exp = dataclasses.replace(exp, lr=lr, steps=steps)
    return dataclasses.replace(exp, **overrides) if overrides else exp


def cases(depths: tuple[int, ...] = DEPTHS) -> list[tuple[str, str, int]]:
    """(regime, teacher, depth) of every preset at the given depths."""
    return [(r, t, L) for r in REGIMES for t in TEACHERS for L in depths]


def case_id(regime: str, teacher: str, depth: int) -> str:
    """Readable id, e.g. 'saddle-lowrank-L3'."""
    return f"{regime}-{teacher}-L{depth}"


def random_small_init(exp: Experiment) -> Experiment:
    """The saddle preset with its aligned init replaced by an iid Gaussian one of the same
    per-layer rms singular value (scale / sqrt(width)), and twice the steps: random, not
    aligned, small init (the silent-alignment setting). Twice the aligned length covers, for every
    init of the ensembles that the det-sign rule does not trap, its slowest mode's decoupled escape
    time from its own initial projection plus the convergence margin (largest: 204.7 of 210.6 at
    saddle-fullrank-L4; tests/test_init_ensembles.py checks every preset); the init ensembles run
    longer where GD's own escapes come later (init_ensembles.random_run_steps)."""
    if exp.init.kind != "aligned":
        return exp
    width = max(exp.widths[1:-1])
    return dataclasses.replace(
        exp, init=Init("gaussian", exp.init.scale / width**0.5, seed=exp.init.seed), steps=2 * exp.steps
    )
