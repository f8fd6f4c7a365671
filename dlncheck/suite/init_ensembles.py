"""Init ensembles for the GD-vs-SGD pattern claims: which inits a case runs, which of them the
det-sign rule sets apart, and the Wilson interval of a fraction over inits.

Saddle regime (issue #10 item 1): random small inits, half ``Init("balanced", a0, seed)``
(W_l = a0 O_l, exactly balanced) and half iid Gaussian of the same per-layer rms singular value
(``presets.random_small_init``), trained until GD's own staircase is over (:func:`random_run_steps`);
the aligned preset stays a control case of its own. Other regimes: the preset's init kind with seeds 0..n-1.
Verdicts are per init (GD and its S SGD runs share the init): the init is the unit, runs are
nested within it, so fractions are over inits, never over pooled (init, run) pairs.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dlncheck import presets, theory
from dlncheck.config import validation as check
from dlncheck.config.data import init_weights
from dlncheck.config.ensemble import Ensemble
from dlncheck.config.experiment import Experiment, Init
from dlncheck.config.threads import cpu_threads
from dlncheck.engine import train
from dlncheck.measure import events, modes, stats
from dlncheck.spectra import end_to_end
from dlncheck.store.lazy import OnDemand
from dlncheck.theory import trap

#: longest random-init saddle run, in lengths of the aligned preset (the compute budget of the pilot)
PILOT_CAP = 8


@dataclass(frozen=True)
class Sizes:
    """How big a case's init ensemble is: ``saddle`` random small inits of a saddle preset (half
    balanced, half Gaussian), ``other`` seeds of the preset's own init in the other regimes, and
    ``check_sgd_runs`` SGD runs per init in the assumption checks (the pattern claims keep the preset's S)."""

    saddle: int
    other: int
    check_sgd_runs: int

    def __post_init__(self):
        for name in ("saddle", "other", "check_sgd_runs"):
            check.integral(name, getattr(self, name), min=1)
        if self.saddle % 2:
            raise ValueError(f"saddle={self.saddle} is invalid: half balanced, half Gaussian needs an even count")


def case_ensemble(exp: Experiment, sizes: Sizes, sgd_runs: int | None = None) -> Ensemble:
    """The init ensemble of a preset: saddle -> n/2 balanced + n/2 Gaussian small inits (seeds
    0..n/2-1 each, n = ``sizes.saddle``); other regimes -> the preset's init with seeds
    0..``sizes.other``-1; ``sgd_runs`` per init (default the preset's)."""
    if sgd_runs is not None:
        exp = dataclasses.replace(exp, sgd_runs=sgd_runs)
    if exp.init.kind == "aligned":
        base, inits = random_small_inits(exp, sizes.saddle)
        return Ensemble(dataclasses.replace(base, steps=random_run_steps(exp, base, tuple(inits))), inits)
    return Ensemble(exp, [dataclasses.replace(exp.init, seed=i) for i in range(sizes.other)])


def random_small_inits(exp: Experiment, n: int) -> tuple[Experiment, list[Init]]:
    """(presets.random_small_init(exp), n inits): n/2 balanced of the aligned preset's scale and n/2
    Gaussian of the same per-layer rms singular value, seeds 0..n/2-1 each."""
    half = n // 2
    base = presets.random_small_init(exp)
    inits = [Init("balanced", exp.init.scale, seed=i) for i in range(half)]
    return base, inits + [Init("gaussian", base.init.scale, seed=i) for i in range(half)]


def gaussian_ensemble(aligned: Experiment, a0: float, n: int) -> Ensemble:
    """n iid Gaussian inits (seeds 0..n-1) of per-layer rms singular value ``a0`` (entries of std
    a0 / sqrt(widest hidden layer), as presets.random_small_init) of the saddle preset ``aligned``
    (its widths, teacher, lr), run for :func:`random_run_steps`."""
    scale = check.finite_float("a0", a0, positive=True) / max(aligned.widths[1:-1]) ** 0.5
    base = dataclasses.replace(aligned, init=Init("gaussian", scale))
    inits = tuple(Init("gaussian", scale, seed=i) for i in range(check.integral("n", n, min=1)))
    return Ensemble(dataclasses.replace(base, steps=random_run_steps(aligned, base, inits)), list(inits))


@functools.lru_cache(maxsize=64)
def random_run_steps(aligned: Experiment, base: Experiment, inits: tuple[Init, ...]) -> int:
    """Steps of a random-init saddle ensemble: until GD's own last escape, not the aligned theory's.

    The decoupled escape time from an init's projection (theory.escape_time of
    modes.initial_mode_strength) underestimates random inits at L >= 3: saddle-lowrank-L4
    balanced#8 predicts the s = 1 escape at t = 57.1, GD makes it at 152.9 (mode 3's initial mass
    sits in hidden directions that modes 1-2 take over). So a GD-only pilot of every init (no SGD
    runs: ~1/(1 + S) of the ensemble's cost; float64, one thread, deterministic) gives each init's
    last escape step (events.escape_steps: the loss below the midpoint between its last two
    plateaus), and the ensemble runs to max(base.steps, max_i last escape + theory.trap.settling_margin
    / lr) over the inits theory.trap does not trap, at
    most PILOT_CAP aligned lengths (an init whose GD is still on a plateau then is reported by
    the claims' own checks). Fixed from GD alone, before any SGD run is looked at."""
    cap = PILOT_CAP * aligned.steps
    pilot = Ensemble(dataclasses.replace(base, sgd_runs=0, steps=cap), list(inits))
    with cpu_threads("cpu", 1):
        et = train(pilot, checkpoints=[0, cap], loss_every=1)
    s = aligned.teacher.s[: aligned.teacher.rank]
    margin = trap.settling_margin(float(s[-1]), aligned.depth) / aligned.lr
    last = []
    for i, tr in enumerate(et):
        if not trapped(tr.initial_weights, pilot.experiment(i), inits[i]):
            escapes = events.escape_steps(tr.loss[:1], torch.arange(tr.loss.shape[-1]), s)[0]
            last.append(cap if bool((escapes < 0).any()) else math.ceil(int(escapes.max()) + margin))
    return int(min(cap, max([base.steps, *last])))


def analysis_grid(exp: Experiment, max_points: int | None = None) -> list[int]:
    """The analysis grid (fixed before looking): the stagewise grid; NTK's 128-wide products
    cost ~10 ms per SVD, so its ~180-step run is read at ~56 points (every ~3 steps), or at most
    ``max_points`` (both parts thinned in proportion, events.time_grid)."""
    if exp.init.kind == "lecun":
        return events.time_grid(exp.steps, n_linear=40, n_log=16, max_points=max_points)
    return events.time_grid_for(exp)


#: a wide ntk re-read (issue #28 item 4): the bytes its ensemble's stored weights may take, and the
#: fewest checkpoints per init before inits are cut
WIDE_BYTES, WIDE_MIN_CHECKPOINTS = 7 * 10**8, 8


def wide_runs(exp: Experiment, sizes: Sizes, cache) -> tuple[Ensemble, Sequence]:
    """:func:`case_runs` for the ntk preset rebuilt at a lazy width (fixed before looking): GD and
    ``sizes.check_sgd_runs`` SGD runs per init (as the regime check), ``sizes.other`` seeds cut to as
    many (at least one) as hold WIDE_MIN_CHECKPOINTS checkpoints within WIDE_BYTES, and the analysis
    grid thinned to what fits then. An h x h layer stores 8 h^2 bytes per run and checkpoint and
    its SVD takes ~1 s at h = 1024, so L >= 3 runs few inits on a coarse grid; L = 2 keeps both (a case's
    peak memory is about three times its stored weights)."""
    exp = dataclasses.replace(exp, sgd_runs=sizes.check_sgd_runs)
    per_init = events.checkpoint_bytes(exp)
    n = max(1, min(sizes.other, WIDE_BYTES // (WIDE_MIN_CHECKPOINTS * per_init)))
    ens = Ensemble(exp, [dataclasses.replace(exp.init, seed=i) for i in range(n)])
    grid = functools.partial(analysis_grid, max_points=WIDE_BYTES // (n * per_init))
    return ensemble_runs(exp, ens, cache, grid=grid)


COARSE_GRID = (30, 30)  # (linear, log-spaced) checkpoints of the distance claims outside the saddle regime


def distance_grid(regime: str, exp: Experiment) -> list[int]:
    """The distance claims' checkpoints: the saddle regime's full grid (plateaus and escapes are
    located on it); elsewhere only the curve drawn and the end asserted (COARSE_GRID points: the
    128-wide NTK layers make each checkpoint costly to store)."""
    return events.time_grid_for(exp) if regime == "saddle" else events.time_grid(exp.steps, *COARSE_GRID)


def case_runs(
    exp: Experiment, inits: str, sizes: Sizes, cache, settle: bool = False, wide: bool = False
) -> tuple[Ensemble, Sequence]:
    """(ensemble, [(trajectory, analysis, trapped)] per init): ``inits`` "aligned" -> the preset's
    own init alone (the control), ``wide`` -> :func:`wide_runs`, else :func:`case_ensemble`; with
    ``settle``, lengthened by :func:`settled_ensemble`; trained in one program through
    ``cache.ensemble`` and analysed once through ``cache.analysis``."""
    if wide:
        return wide_runs(exp, sizes, cache)
    ens = Ensemble(exp, [exp.init]) if inits == "aligned" else case_ensemble(exp, sizes)
    return ensemble_runs(exp, ens, cache, settle)


def ensemble_runs(
    aligned: Experiment, ens: Ensemble, cache, settle: bool = False, grid=analysis_grid
) -> tuple[Ensemble, Sequence]:
    """:func:`case_runs` for a given ensemble (``aligned``: its preset, for the settling cap) on
    ``grid(experiment)``'s checkpoints."""
    if settle:
        ens = settled_ensemble(aligned, ens, cache, grid)
    checkpoints = grid(ens.base)
    et = cache.ensemble(ens, checkpoints=checkpoints)

    def run(i: int) -> tuple:
        traj = et[i]
        analysis = cache.analysis(ens.experiment(i), trajectory=traj, checkpoints=checkpoints)
        return traj, analysis, trapped(traj.initial_weights, ens.experiment(i), ens.inits[i])

    # a large ensemble comes config by config (store.lazy.OnDemand): so do its runs
    return ens, OnDemand(len(ens), run) if isinstance(et.trajectories, OnDemand) else [run(i) for i in range(len(ens))]


def settled_ensemble(aligned: Experiment, ens: Ensemble, cache, grid) -> Ensemble:
    """``ens`` lengthened so that every run of it, GD and each SGD run, reaches its own last escape
    plus theory.trap.settling_margin (the matched-progress protocol, issue #25 item 1: a run that
    follows GD's path but late must not be cut off before it has finished that path).

    The engine trains one program for all runs, so the ensemble is trained as it is (``grid``
    (experiment) -> checkpoints, the caller's grid: a cache hit for the families that read it), each
    run's own last escape step is read from its full loss (every step; the midpoint crossing of each
    mode's own plateau, theory.plateau_losses: the equal singular values of a degenerate block escape
    one by one from a random init, so the merged stage levels would stop at the block's first), and the
    ensemble is retrained to max over runs of (own last escape + margin) when that is longer: every
    run gets at least its own margin. Inits theory.trap traps (det-sign rule) add nothing (GD never
    makes their last escape); a run of another init that has not made its last escape by the end
    asks for the cap, PILOT_CAP lengths of the aligned preset. Fixed before any comparison is made."""
    et = cache.ensemble(ens, checkpoints=grid(ens.base))
    s = aligned.teacher.s[: aligned.teacher.rank]
    free = [i for i in range(len(ens)) if not trapped(et[i].initial_weights, ens.experiment(i), ens.inits[i])]
    if not free:
        return ens
    loss = torch.cat([et[i].loss for i in free])
    P = theory.plateau_losses(s)  # every mode its own level: a degenerate block splits under random inits
    levels = 0.5 * (P[:-1] + P[1:]) + et[free[0]].loss_offset
    escapes = events.first_crossing(loss, et[free[0]].steps, levels)
    last = torch.where((escapes < 0).any(-1), -1, escapes.max(-1).values)
    cap = PILOT_CAP * aligned.steps
    margin = trap.settling_margin(float(s[-1]), aligned.depth) / aligned.lr
    needed = cap if bool((last < 0).any()) else math.ceil(int(last.max()) + margin)
    steps = min(cap, needed)
    return ens if steps <= ens.base.steps else Ensemble(dataclasses.replace(ens.base, steps=steps), ens.inits)


def predicted_windows(traj) -> tuple:
    """Theory's escape times and windows for this init. u0: an aligned init is decoupled, so its
    mode strengths u_a(0) = u_a^T W(0) v_a are theory's own initial values (exact); a random init
    gets the silent-alignment proxy modes.initial_mode_strength. (That proxy divides each middle
    layer's Frobenius norm by all min(d_l, d_{l-1}) directions, so on an aligned init whose middle
    layers carry the teacher's d directions of a width-8 layer it gave u0 = a0^L (d/8)^{(L-2)/2}:
    saddle-fullrank-L4 windows 40% after GD's escapes 12.44 / 24.80 / 49.39 / 98.24, which
    u0 = a0^L puts at 12.42 / 24.78 / 49.37 / 98.22.)"""
    teacher, L = traj.teacher, traj.experiment.depth
    n = teacher.rank
    if traj.experiment.init.kind == "aligned":
        w0 = modes.mode_coefficients(end_to_end(traj.initial_weights), teacher.U, teacher.V)
        u0 = torch.diagonal(w0, dim1=-2, dim2=-1)[..., :n].abs()
    else:
        u0 = modes.initial_mode_strength(traj.initial_weights, teacher.U, teacher.V, n)
    t_esc = theory.escape_time(teacher.s[:n], u0, L)
    return t_esc, theory.escape_windows(t_esc, teacher.s[:n], L)


def trapped(initial_weights, exp: Experiment, init: Init) -> bool:
    """theory.trap's det-sign rule: a balanced init of a square full-rank teacher with
    sign det W_0 != sign det M; GD can never learn the smallest mode (False otherwise: the
    rule says nothing for non-square or rank-deficient teachers or unbalanced inits)."""
    M = exp.teacher.M
    if init.kind != "balanced" or M.shape[0] != M.shape[1] or exp.teacher.rank < M.shape[0]:
        return False
    return bool(trap.predicts_trap(end_to_end(initial_weights).to(M), M))


def init_label(init: Init) -> str:
    """Short label such as 'balanced#3'."""
    return f"{init.kind}#{init.seed}"


def summary(outcomes) -> dict:
    """n_inits, n_pass, fraction and its 95% Wilson interval over inits, and the outcomes
    themselves (``per_init``; one bool per init)."""
    outcomes = [bool(v) for v in (outcomes.tolist() if hasattr(outcomes, "tolist") else outcomes)]
    n, k = len(outcomes), sum(outcomes)
    lo, hi = stats.wilson_interval(k, n)
    fraction = k / n if n else math.nan
    return dict(n_inits=n, n_pass=k, fraction=fraction, fraction_lo=lo, fraction_hi=hi, per_init=outcomes)


def init_labels(ensemble: Ensemble) -> list[str]:
    """'balanced#0', 'gaussian#3', ...: one readable label per config."""
    return [init_label(i) for i in ensemble.inits]


def case_trajectories(exp: Experiment, init: str, sizes: Sizes, cache) -> tuple[list[str], Sequence]:
    """(labels, trajectories) of an assumption check on the shared grid (events.time_grid_for):
    ``init="aligned"``: the preset alone (the control case); otherwise :func:`case_ensemble` with
    ``sizes.check_sgd_runs`` runs per init, trained together through ``cache.ensemble`` (a sequence:
    config by config when large, store.lazy.OnDemand)."""
    if init == "aligned":
        return ["aligned"], [cache(exp, checkpoints=events.time_grid_for(exp))]
    ens = case_ensemble(exp, sizes, sgd_runs=sizes.check_sgd_runs)
    return init_labels(ens), cache.ensemble(ens, checkpoints=events.time_grid_for(ens.base))


def gd_trapped(exp: Experiment) -> bool:
    """:func:`trapped` decided from the experiment's own init, before training."""
    return trapped(init_weights(exp), exp, exp.init)


__all__ = [
    "COARSE_GRID",
    "PILOT_CAP",
    "Sizes",
    "analysis_grid",
    "case_ensemble",
    "case_runs",
    "case_trajectories",
    "distance_grid",
    "ensemble_runs",
    "gaussian_ensemble",
    "gd_trapped",
    "init_label",
    "init_labels",
    "predicted_windows",
    "random_run_steps",
    "settled_ensemble",
    "summary",
    "trapped",
    "wide_runs",
]
