"""The published-result cases (claims/test_published.py): experiment setups, test levels and the
shared steps of the cases. Their prediction rows are the family's (claims/test_published.py), their
measured contradictions claims/contradictions/published.toml; the derivations of every prediction:
dlncheck.theory.published and dlncheck.theory.gradient_noise."""

from __future__ import annotations

import torch

from claims import expectations
from dlncheck import (
    Ensemble,
    Experiment,
    Init,
    Teacher,
    presets,
    spectra,
)
from dlncheck.config.data import make_problem
from dlncheck.report.claim import Prediction
from dlncheck.suite.tiers import TIERS
from dlncheck.theory import assumptions, balance_drift
from dlncheck.theory import gradient_noise as gn
from dlncheck.theory import published as pub

LEVEL = 0.01  # family-wise level of each case's goodness-of-fit tests (Bonferroni over modes x lrs)
BOOT = {"n_boot": 2000, "level": 0.95}

# ------------------------------------------------------------------------------ setups
N_SAMPLES, BATCH = presets.N_SAMPLES, presets.BATCH_SIZE
STATIONARY_NOISE = 0.5  # label-noise std, stationary cases
STATIONARY_RUNS = 32
BURN, WINDOW = 4000, 12000  # steps at the preset lr (scaled by lr0 / lr), fullrank L2 converges in ~1000
BALANCE_NOISE = 1.0
VARRE_TEACHER = Teacher(2, 5, (2.0, 1.0), seed=7)  # Varre et al.'s shape (k=2 outputs, p=5 inputs)
VARRE_WIDTHS = {2: 10, 3: (10, 4)}  # Theta_1 = [W_1, W_2^T] tall: d_1 >= d_0 + d_2
VARRE_LR, VARRE_NOISE, VARRE_INIT = 0.02, 1.0, Init("gaussian", 0.3)
VARRE_STEPS = {"quick": 30000, "nightly": 120000}


INIT_NAMES = ("aligned", "gaussian", "balanced")


def init_ensemble(exp: Experiment) -> Ensemble:
    """The aligned preset init (the paper's assumption) and two random small inits of the same
    per-layer size (Gaussian rms and balanced), run for random_small_init's (doubled) steps."""
    random = presets.random_small_init(exp)
    return Ensemble(random, inits=[exp.init, random.init, Init("balanced", exp.init.scale, seed=1)])


def varre_experiment(depth: int, tier: str, label_noise: float = VARRE_NOISE) -> Experiment:
    return Experiment(
        VARRE_TEACHER,
        depth,
        VARRE_WIDTHS[depth],
        VARRE_INIT,
        lr=VARRE_LR / depth,
        steps=VARRE_STEPS[tier],
        batch_size=BATCH,
        n_samples=N_SAMPLES,
        sgd_runs=TIERS[tier].sgd_runs,
        label_noise=label_noise,
    )


def case(kind: str, cid: str, *args, nightly: bool = False):
    """The case ``<kind>-<cid>`` (kind: the published result, a row of the family's predictions)."""
    return expectations.param(f"{kind}-{cid}", *args, nightly=nightly)


def verdict(claim, row: Prediction, holds: bool, observed: str, *, golden_path: str, key: str, **numbers) -> None:
    """The case's verdict with its prediction ``row``; ``reproduces`` says whether the published
    result reproduces here (the prediction held)."""
    claim.verdict(
        prediction=f"{row.prediction} [{row.reason}]",
        observed=observed,
        holds=holds,
        exploratory=row.exploratory,
        golden_path=golden_path,
        key=key,
        reproduces="yes" if holds else "no",
        **numbers,
    )


def stationary_runs(preset, trajectory_cache, lr_factors, label_noise: float, batches: str = "reshuffle"):
    """The fullrank L2 saddle preset with label noise at lr_factor * preset lr (one Ensemble, same
    time span BURN + WINDOW preset steps), SGD batches drawn as ``batches`` says (Experiment.batches);
    checkpoints at the epoch boundaries of the window."""
    base = preset(
        "saddle", "fullrank", 2, sgd_runs=STATIONARY_RUNS, label_noise=label_noise, steps=BURN + WINDOW, batches=batches
    )
    ensemble = Ensemble(base, inits=[base.init] * len(lr_factors), lrs=[base.lr * f for f in lr_factors])
    m = base.n_samples // base.batch_size
    checkpoints = {}
    for i, factor in enumerate(lr_factors):
        burn, end = round(BURN / factor), ensemble.experiment(i).steps
        checkpoints[i] = list(range(burn - burn % m, end - end % m + 1, m))
    runs = trajectory_cache.ensemble(ensemble, checkpoints=checkpoints)
    return [(ensemble.experiment(i), runs[i]) for i in range(len(lr_factors))]


def mode_deviations(exp, traj):
    """delta (R, K, modes): diagonal of U~^T (W - Syx) V~ in the SVD bases of GD's fixed point Syx,
    and the predicted laws (theory.published.stationary_mode_law) of the diagonal entries."""
    problem = make_problem(exp)
    U, S, Vh = torch.linalg.svd(problem.Syx)
    V = Vh.mT
    W = spectra.end_to_end(traj.weights)
    delta = torch.diagonal(U.mT @ (W - problem.Syx) @ V, dim1=-2, dim2=-1)
    lam = pub.mode_curvatures(S, exp.depth)
    v = gn.mode_noise(problem, U, V, exp.n_samples, exp.batch_size)
    q = gn.input_noise(problem, V, exp.n_samples, exp.batch_size)
    law = pub.stationary_mode_law(lam, v, q, exp.lr, exp.n_samples // exp.batch_size)
    f = gn.minibatch_factor(exp.n_samples, exp.batch_size)
    law["mean_shuffled"] = pub.stationary_mode_mean(
        lam,
        S,
        V.mT @ gn.input_moment(problem) @ V,
        U.mT @ gn.output_moment(problem) @ U,
        gn.noise_input_moment(problem, U, V, exp.n_samples, exp.batch_size),
        exp.lr,
        f,
    )
    law["mean_iid"] = torch.zeros_like(S)
    return delta, S, torch.diagonal(lam), law


BALANCE_WINDOW = {"quick": 6000, "nightly": 24000}
DENSE = 200  # every-step checkpoints at the end: the exact drift identity
# (float64; x roundoff_scale) forming D_l ~ d * 1e-16 relative to ||W W^T||, as in test_balance
ROUNDOFF = 1e-12


def curvature_term(exp: Experiment) -> float:
    """(lr lambda_max)^2, lambda_max = L s_1^{2-2/L}: the relative size of the O(E||W - Syx||^2) terms
    the noise-drift predictions drop (gradient_noise.gradient_moments keeps the first-order
    reshuffling term; the stationary spread of W - Syx is below lr lambda_max times the noise)."""
    s1 = float(exp.teacher.s[0])
    return (exp.lr * exp.depth * s1 ** (2 - 2 / exp.depth)) ** 2


def secular_premise(predicted: list, gd_end: list, h: float, exp: Experiment) -> tuple[list, list[bool]]:
    """Per pair: (theory.balance_drift.secular_shares, whether the first-order drift on GD's path is
    inside its premise): the secular share <= h at L = 2; at L >= 3, where the share is not derived,
    theory.assumptions.noise_vanishes of the data (label noise: outside). Outside, the noise drift
    is evaluated on each SGD run's own path instead (the published law of balance's own reading)."""
    shares = balance_drift.secular_shares(predicted, gd_end)
    vanishes = assumptions.noise_vanishes(make_problem(exp), min(exp.widths))
    return shares, [share <= h if share is not None else vanishes for share in shares]


RANK_EPS = 1e-3  # numerical-rank threshold of the rank-pattern observation (not asserted)
LOGDET_ROUNDOFF = 1e-10  # (float64; x roundoff_scale) absolute error of log det from batched SVDs
