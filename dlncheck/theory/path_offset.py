"""SGD's mean end-to-end map along GD's path at matched progress, to first order in lr c_B, and the
band the measured mean must lie in (protocol "Function space along the path"; issue #26). The
suite's own derivation, on the modified-loss route of :mod:`dlncheck.theory.escape_lag`.

1. Mean path. Under the engine's reshuffled minibatches the mean SGD iterate follows GD on L + R,
   R = (lr c_B / 4) tr Sigma(theta), to first order in lr c_B (theory.escape_lag item 1; Smith,
   Dherin, Barrett & De 2021, arXiv:2101.12176, section 2: the modified loss of random shuffling
   taken over shuffles, less GD's own lr/4 ||grad L||^2). :func:`mean_path_maps` integrates both paths
   with the engine's lr from each init (theory.escape_lag.mean_path_steps) and stores their
   end-to-end maps W_GD(t), W_R(t) on the claim's checkpoint steps.
2. Prediction at matched progress. The claim reads every run at GD's progress
   (measure.progress.matched_maps: the time tau_r(k) at which run r reaches GD's progress level of
   checkpoint k, the map interpolated linearly between the run's checkpoints). The same reading applied
   to the two predicted paths gives the predicted offset
       o_k = W_R(tau_R(k)) - W_GD(t_k) = O(lr c_B),
   so whatever the matching and the interpolation do to the data they do to the prediction. The mean
   of the S runs' matched maps differs from the matched mean path by terms quadratic in the runs'
   fluctuations (O(lr^2) or smaller under reshuffling, theory.spread item 3): second order, neglected.
3. Band. The run-to-run spread is measured, not predicted: per entry (k, j) the mean over S runs
   minus W_GD(t_k) is Student t with S - 1 degrees of freedom around o_kj. Asserting N comparisons
   (entries x matched levels x inits) at family-wise level ALPHA (Bonferroni, two-sided):
       |mean_r W_r(tau_r(k)) - W_GD(t_k) - o_k|_j <= t_{1 - ALPHA/(2N), S-1} sd_kj / sqrt(S) + h |o_kj| + e_kj,
   h = lr lambda_max the relative size of the neglected terms (theory.sgd.truncation_tolerance) and
   e_kj = |W_GD(t_k) - W_GD^engine(t_k)|, the difference of the two integrators of GD's own path
   (NumPy here, the engine's kernels there: round-off, measured on the case itself).
   Round-off: every map is an L-fold product of float64 layers with inner dimensions up to d, read by
   a two-term interpolation and differenced, so each entry carries a forward error of at most
   gamma_n ||M||_F with n = L d + 4 (Higham 2002, "Accuracy and Stability of Numerical Algorithms",
   section 3.5: |fl(AB) - AB| <= gamma_n |A||B|, gamma_n = n u / (1 - n u)), on each of the two maps
   compared: a = 2 gamma_n ||M||_F is added to the band (:func:`roundoff`).
   The minimum detectable deviation of an entry (theory.power item 1) is
       mdd_kj = lam* sd_kj / sqrt(S) + h |o_kj| + e_kj + a,  P(t'_{S-1}(lam*) > t) = theory.power.POWER.
4. Where the matched reading is first order. Matching is a level crossing: a perturbation dp of the
   progress moves the matched time by dp / (dp/dt), and dp/dt -> 0 on the plateaus. There the mean path's
   learned stages sit O(lr c_B) below f = 1 (R pulls toward the saddle while E != 0) and the next stage's
   fraction is O(lr c_B)-perturbed at f ~ 0, so a level just past an integer is reached O(1) later by
   the mean path while a single run's reading does not average to that: the expansion of item 2 holds
   only where the current stage's fraction frac(p) lies in [h, 1 - h], away from both plateaus by more
   than the relative size h of the neglected terms (:func:`compared_levels`). Levels on a plateau are
   not compared at matched progress. (Each run's running maximum of p is set by its own fluctuations
   there, which the mean path has not: the neglected term, quadratic in the fluctuations, is divided by
   dp/dt and is no longer second order.)
5. At equal time. The same offset read at GD's checkpoint times, o_k = W_R(t_k) - W_GD(t_k), needs no
   matching and holds on the plateaus too; it carries the escape lag (theory.escape_lag), first order
   while the lag is small against an escape's width. The band is item 3's with every checkpoint after
   t = 0 compared.
Scale: distances are relative to ||M||_F (the teacher's map; at a small init GD's own map is near 0
early on, so ||W_GD(t_k)|| is no scale there).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from dlncheck.config.data import init_weights, make_problem
from dlncheck.theory.escape_lag import drift_strength, mean_path_steps, t_quantile
from dlncheck.theory.power import band_mdd

ALPHA = 0.05


def mean_path_maps(experiments, steps) -> torch.Tensor:
    """(2, I, K, d_out, d_in): end-to-end maps of GD's path (axis 0 = 0) and of the predicted mean SGD
    path (1) of each of I configs (experiments or an Ensemble that share data, lr and batch size) at
    the checkpoint ``steps`` (K,, increasing, >= 0), item 1."""
    experiments = list(getattr(experiments, "experiments", experiments))
    steps = [int(k) for k in steps]
    if not steps or any(b <= a for a, b in zip(steps, steps[1:])) or steps[0] < 0:
        raise ValueError(f"steps={steps!r} are invalid: give increasing checkpoint steps >= 0")
    base = experiments[0]
    problem = make_problem(base)
    inits = [init_weights(e) for e in experiments]
    W0 = [torch.stack([w[l] for w in inits]).double() for l in range(base.depth)]
    strength = drift_strength(base.lr, base.n_samples, base.batch_size)
    wanted, out = set(steps), []
    for k, (W, _) in enumerate(mean_path_steps(problem.X, problem.Y, W0, base.lr, strength)):
        if k in wanted:
            out.append(functools.reduce(lambda below, w: w @ below, W))
        if k == steps[-1]:
            break
    return torch.as_tensor(np.stack(out, 2))


def roundoff(depth: int, width: int, scale: float) -> float:
    """a = 2 gamma_n scale, gamma_n = n u / (1 - n u), n = depth * width + 4, u the float64 unit
    round-off (item 3)."""
    n, u = depth * width + 4, 2.0**-53
    return 2 * n * u / (1 - n * u) * scale


def compared_levels(gd_progress: torch.Tensor, h: float) -> torch.Tensor:
    """(K,) bool: GD's checkpoints whose current stage's fraction frac(p) lies in [h, 1 - h] (item 4)."""
    if not 0 <= h < 0.5:
        raise ValueError(f"h={h!r} is invalid: the first-order reading needs 0 <= h < 1/2")
    frac = gd_progress - gd_progress.floor()
    return (frac >= h) & (frac <= 1 - h)


def path_check(
    sgd: torch.Tensor,
    gd: torch.Tensor,
    offset: torch.Tensor,
    gd_error: torch.Tensor,
    h: float,
    comparisons: int,
    atol: float = 0.0,
    alpha: float = ALPHA,
) -> dict:
    """Item 3 for one init: ``sgd`` (S, K, ...) the SGD runs' maps at GD's progress on K matched levels,
    ``gd`` (K, ...) GD's maps there, ``offset`` (K, ...) the predicted o_k, ``gd_error`` (K, ...) e_kj,
    ``comparisons`` N of the whole case, ``atol`` the round-off a (:func:`roundoff`). Returns ``deviation`` (mean - gd - offset), ``band``, ``mdd``
    (each (K, ...)), the quantile ``t`` and ``holds`` (every entry within its band)."""
    S = sgd.shape[0]
    if sgd.shape[1:] != gd.shape or offset.shape != gd.shape or gd_error.shape != gd.shape:
        raise ValueError(
            f"shapes sgd {tuple(sgd.shape)}, gd {tuple(gd.shape)}, offset {tuple(offset.shape)}, "
            f"gd_error {tuple(gd_error.shape)} do not agree: give (S, K, ...) and three (K, ...)"
        )
    t = t_quantile(S, comparisons, alpha)
    se = sgd.std(0) / S**0.5  # ddof 1
    allowance = h * offset.abs() + gd_error + atol
    deviation = sgd.mean(0) - gd - offset
    band = t * se + allowance
    mdd = band_mdd(1.0, t, S - 1) * se + allowance
    return {"deviation": deviation, "band": band, "mdd": mdd, "t": t, "holds": bool((deviation.abs() <= band).all())}


__all__ = ["ALPHA", "compared_levels", "mean_path_maps", "path_check", "roundoff"]
