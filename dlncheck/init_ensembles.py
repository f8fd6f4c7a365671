"""Ensembles of random inits for a preset, and verdicts over inits (per-init outcomes, the
fraction that holds with its Wilson interval).

A verdict is about the hypothesis, not one draw: each preset runs several init seeds trained
together (:class:`dlncheck.Ensemble`); inside one init the SGD runs share that init, so
statistics are nested: a per-init statistic over its SGD runs first, then a count over inits
(never pooling runs of different inits as independent draws).

- ``saddle``: small random inits, half ``balanced`` (every layer's singular values equal the
  preset's per-layer scale, random bases) and half ``gaussian`` (iid entries of the same rms
  singular value, scale / sqrt(width)), with twice the preset's steps
  (:func:`dlncheck.presets.random_small_init`: random modes start below the aligned u0).
  The aligned preset itself is a separate control case.
- other regimes: the preset's own init kind (``gaussian`` / ``lecun``) with seeds 0..n-1.
"""
from __future__ import annotations

import dataclasses
import math

from scipy.stats import norm

from .experiment import Ensemble, Experiment, Init
from .presets import random_small_init

#: init seeds per case: saddle ensembles (balanced + gaussian), other regimes
N_INITS = {"quick": {"saddle": 8, "other": 4}, "nightly": {"saddle": 32, "other": 4}}


def n_inits(regime: str, tier: str) -> int:
    """Init seeds of a case: 8 (quick) / 32 (nightly) small random inits in the saddle regime, 4 elsewhere."""
    if tier not in N_INITS:
        raise ValueError(f"tier={tier!r} is invalid: choose one of {tuple(N_INITS)}")
    return N_INITS[tier]["saddle" if regime == "saddle" else "other"]


def init_ensemble(exp: Experiment, regime: str, tier: str) -> Ensemble:
    """The case's Ensemble of random inits (see the module docstring); ``exp`` is the preset."""
    n = n_inits(regime, tier)
    if regime == "saddle":
        base = random_small_init(exp)
        width = max(exp.widths[1:-1])
        inits = [Init("balanced", exp.init.scale, seed=s) for s in range(n // 2)]
        inits += [Init("gaussian", exp.init.scale / math.sqrt(width), seed=s) for s in range(n - n // 2)]
        return Ensemble(base, inits=inits)
    return Ensemble(exp, inits=[dataclasses.replace(exp.init, seed=s) for s in range(n)])


def init_label(init: Init) -> str:
    """'balanced#3': the init's kind and seed, for tables and figure legends."""
    return f"{init.kind}#{init.seed}"


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k / n (Wilson 1927; Brown, Cai &
    DasGupta 2001): (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)."""
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"k={k}, n={n} are invalid: use 0 <= k <= n, n >= 1")
    z = float(norm.ppf(0.5 + level / 2))
    p = k / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, center - half), min(1.0, center + half)


def over_inits(holds) -> dict[str, float]:
    """Per-init outcomes summed: n_inits, n_hold, fraction_hold and its 95% Wilson interval."""
    holds = [bool(h) for h in holds]
    k, n = sum(holds), len(holds)
    lo, hi = wilson_interval(k, n)
    return {"n_inits": n, "n_hold": k, "fraction_hold": k / n, "fraction_lo": lo, "fraction_hi": hi}


def bonferroni_z(n_tests: int, level: float = 0.05) -> float:
    """Two-sided normal quantile z with family-wise error ``level`` over ``n_tests`` tests."""
    if n_tests < 1:
        raise ValueError(f"n_tests={n_tests} is invalid: use n_tests >= 1")
    return float(norm.ppf(1 - level / (2 * n_tests)))


def gd_trapped(exp: Experiment) -> bool:
    """True where theory.trap predicts that GD never reaches the teacher: a balanced init of a
    square full-rank teacher whose det sign disagrees with det M (balanced flow keeps sign det W).
    Decided from the init alone, before training; False for every other init or teacher."""
    from .data import init_weights
    from .theory import trap

    M = exp.teacher.M
    if exp.init.kind != "balanced" or M.shape[0] != M.shape[1] or exp.teacher.rank != M.shape[0]:
        return False
    return bool(trap.predicts_trap(trap.end_to_end(init_weights(exp)), M))
