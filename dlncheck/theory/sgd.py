"""SGD around the GD path: the balance drift it adds, the layer split it shifts, and how every
GD-vs-SGD discrepancy scales with the learning rate and the batch size.

These are the suite's own derivations (a modewise small-noise expansion around the GD path), not
results quoted from a paper. Assumptions: whitened inputs (X X^T / n = I), labels Y = M X + e
fixed with the data set (e = 0: noise-free labels; items 3-4 assume e = 0), minibatches of B of n
samples drawn without replacement and reshuffled every epoch (the engine's sampler), time t = lr * step.

1. Drift: :mod:`dlncheck.theory.sgd_drift` (``drift_covariance``, ``gd_path_drift``, ``gd_step``,
   re-exported here): E[D_l^SGD(T)] - D_l^GD(T) = lr^2 c_B sum_{t<T/lr} C_l(W_t) on the GD path.
2. Split. Per learned mode alpha with frames q_l (hidden directions of the mode), the layer
   scales a_l solve a_{l+1}^2 - a_l^2 = d_l = q^T D_l q and prod_l a_l = u (the end-to-end
   strength): a_1^2 = x with prod_l (x + sum_{m<l} d_m) = u^2, monotone in x (one root). The
   predicted offset of log sigma_alpha(P_ij) is 0.5 sum_{l=i..j} (log a_l^2[SGD] - log a_l^2[GD]).
3. Exponents (see EXPONENTS), for the engine's reshuffled batches. A bias is linear in the noise,
   (lr c_B)^1: the extra balance drift of item 1, and the modified-loss drift of random reshuffling
   (Smith, Dherin, Barrett & De 2021, arXiv:2101.12176: lr (n - B) / (4 B (n - 1)) per unit time of the
   batch-gradient variance), which also delays the escapes (theory.escape_lag). A spread is not the
   sqrt(lr c_B) of an Ornstein-Uhlenbeck process (that needs independent batches, :func:`ou_variance`):
   each epoch's batch noise sums to zero, so the first-order deviation along a frozen path cancels and
   what is left is lr^3 in variance (theory.spread items 3, 5): a spread ~ lr^{3/2}. A mean over runs
   of a per-run norm (theta_distance, function_distance{,_mid}) adds the two, so its fitted slope lies
   between the bias exponent 1 and the spread's 3/2 (MIXED_UPPER). The spread of D_l (sigma_spread):
   per step D_l moves by lr^2 (G^T Delta + Delta^T G + Delta Delta^T-type terms) (the balance identity);
   the terms linear in the batch noise Delta cancel over each epoch at a frozen G, the quadratic ones
   do not, and their fluctuation is of the size of the batch covariance, c_B (to leading order in 1/B),
   per step: variance lr^4 c_B^2 per step over T / lr steps, a spread ~ (lr^3 c_B^2)^{1/2}.
   Band (:func:`slope_truncation_band`): the fit's own bootstrap interval, widened by the largest bend
   the neglected relative O(h) terms (h = lr lambda_max, :func:`truncation_tolerance`) can give the
   least-squares slope over the sweep's points.
4. Rank-count discrepancies have no derived exponent (EXPLORATORY). d_r at a GD plateau counts the
   runs whose sigma_m(P_ij) lies on the other side of the floor than GD's; with a run's log sigma
   spread ~ sqrt(noise) around GD and a gap g between GD's log sigma and the floor, the mean count
   is ~ Phi(-g / sqrt(noise)): it vanishes faster than any power (no log-log slope), and is exactly 0
   in a finite ensemble once the spread is small against g; where g ~ 0 (a value sitting at the floor)
   it is O(1) at any noise. The dwell of the degenerate split: inside a repeated block GD's modes
   grow from the init's unequal projections, so the block splits under GD as well; SGD adds to the
   split log-ratio a random walk of variance ~ lr c_B t, so the mean extra dwell depends on the ratio
   of that to the init's log-ratio (itself a random variable) and is neither a bias nor a spread of
   fixed exponent. Both are reported with their fit (when every value is > 0) and marked exploratory;
   the one assertion is the limit: the discrepancy at the smallest noise is <= that at the largest.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import torch
from scipy.optimize import brentq

from dlncheck.config.data import init_weights, make_problem
from dlncheck.spectra import end_to_end
from dlncheck.theory.gradient_noise import minibatch_factor
from dlncheck.theory.kernel import kernel_bounds
from dlncheck.theory.sgd_drift import (  # noqa: F401  (item 1, re-exported: theory.sgd is the family's one name)
    DataMoments,
    drift_covariance,
    gd_path_drift,
    gd_step,
)

# discrepancy -> (predicted slope of log(discrepancy) vs log(noise variable), noise variable, reason)
EXPONENTS = {
    "d_sigma": (
        1.0,
        "lr*c_B",
        (
            "bias: the end-of-training split of the internal products moves with the expected extra "
            "balance drift, lr c_B * integral of C_l dt (linear in the noise)"
        ),
    ),
    "balance_gap": (1.0, "lr*c_B", "bias: |mean r^SGD - r^GD| is a norm of that same expected extra drift"),
    "theta_distance": (
        1.0,
        "lr*c_B",
        (
            "bias: at convergence the noise (prop. to W - M) vanishes, first-order kicks are orthogonal to "
            "the minimum set's fixed-D slice and contract; what stays is the O(lr c_B) split shift "
            "(plus O(lr^{3/2}) fluctuations)"
        ),
    ),
    "function_distance": (
        1.0,
        "lr*c_B",
        (
            "reshuffled SGD (item 3): the O(lr c_B) bias (modified-loss drift, escape lag) plus the "
            "O(lr^{3/2}) epoch-cancelled spread, both times the residual |E_T| (-> 0 as T grows at any lr)"
        ),
    ),
    "sigma_spread": (
        0.5,
        "lr^3*c_B^2",
        (
            "spread of the end point's internal log singular values: under reshuffling the terms of D_l's "
            "steps linear in the batch noise cancel per epoch; the quadratic ones fluctuate by ~ lr^2 c_B per "
            "step: variance lr^3 c_B^2 * integral dt"
        ),
    ),
    "function_distance_mid": (
        1.0,
        "lr*c_B",
        (
            "reshuffled SGD (item 3) while the noise acts (half the training time): the O(lr c_B) bias plus "
            "the O(lr^{3/2}) epoch-cancelled spread, not the independent-batch OU sqrt(lr c_B)"
        ),
    ),
}
# the same distances on independent batches (Experiment.batches="independent"): the premise of the OU law
INDEPENDENT_EXPONENTS = {
    name: (
        0.5,
        "lr*c_B",
        "independent batches: the OU spread sqrt(lr c_B) (ou_variance) around the path, plus the O(lr c_B) bias",
    )
    for name in ("function_distance", "function_distance_mid")
}
INDEPENDENT_UPPER = 1.0  # the bias's exponent: the mean of per-run norms lies between spread and bias
# a mean over runs of a per-run norm adds the bias (exponent above) and the spread ~ lr^{3/2} (item 3): the
# fitted slope of the sum lies between the two
MIXED_UPPER = {"theta_distance": 1.5, "function_distance": 1.5, "function_distance_mid": 1.5}
VANISHES = {
    "d_sigma": "yes, as lr c_B -> 0 (not as T grows: the split is conserved at the minimum)",
    "balance_gap": "yes, as lr c_B -> 0 (not as T grows)",
    "theta_distance": "yes, as lr c_B -> 0 (not as T grows)",
    "function_distance": "yes, at any lr as T grows (realizable teacher: noise vanishes at W = M)",
    "sigma_spread": "yes, as lr -> 0 (lr^{3/2} c_B)",
    "function_distance_mid": "yes, as lr c_B -> 0 and as T grows",
}

# discrepancy -> (noise variable, why no exponent is derived: module docstring item 4)
EXPLORATORY = {
    "d_r_plateau": ("lr*c_B", "count of floor crossings: ~ Phi(-g / sqrt(noise)), no power law"),
    "split_dwell": (
        "lr*c_B",
        "symmetry breaking inside the repeated block mixes the init's log-ratio "
        "with an O(sqrt(lr c_B t)) walk: no fixed exponent",
    ),
}
VANISHES |= {
    "d_r_plateau": "yes, faster than any power of lr c_B where GD's sigma is away from the floor",
    "split_dwell": "expected yes as lr c_B -> 0 (the walk vanishes), rate not derived",
}


def mode_frames(weights: list[torch.Tensor], n_modes: int) -> list[torch.Tensor]:
    """Hidden directions of the top n_modes modes: left singular vectors of P_l = W_l...W_1 for
    l = 1..L-1 (each (d_l, n_modes))."""
    out, P = [], None
    for w in weights[:-1]:
        P = w if P is None else w @ P
        out.append(torch.linalg.svd(P, full_matrices=False)[0][:, :n_modes])
    return out


def modal_balance(D: list[torch.Tensor], frames: list[torch.Tensor]) -> np.ndarray:
    """d_{l,alpha} = q_{l,alpha}^T D_l q_{l,alpha}, shape (L-1, n_modes)."""
    return np.stack([torch.einsum("im,ij,jm->m", q, d, q).numpy() for d, q in zip(D, frames)])


def layer_split(d: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Per-layer squared scales a_l^2 (L, n_modes) with a_{l+1}^2 - a_l^2 = d_l and prod a_l = u."""
    d, u = np.atleast_2d(d), np.atleast_1d(u)
    c = np.concatenate([np.zeros((1, d.shape[1])), np.cumsum(d, axis=0)])  # (L, m)
    return np.stack([_split_one(c[:, m], float(u[m])) for m in range(c.shape[1])], axis=1)


def _split_one(c: np.ndarray, u: float) -> np.ndarray:
    """a^2 = x + c with sum log(x + c_l) = 2 log u: increasing in x, one root above -min(c)."""

    def f(x):
        return np.sum(np.log(np.maximum(x + c, 1e-300))) - 2 * math.log(u)

    lo = -c.min()
    hi = max(lo, 0.0) + u ** (2 / len(c)) + np.abs(c).sum() + 1.0
    return brentq(f, lo + 1e-300 + 1e-15 * abs(lo), hi, xtol=1e-16, rtol=1e-15) + c


def split_log_offsets(a2_sgd: np.ndarray, a2_gd: np.ndarray) -> np.ndarray:
    """Predicted mean_SGD - GD of log sigma_alpha(P_ij): (L, L, n_modes), entry [i-1, j-1] =
    0.5 sum_{l=i..j} (log a_l^2[SGD] - log a_l^2[GD]) for i <= j, NaN below the diagonal."""
    delta = 0.5 * (np.log(a2_sgd) - np.log(a2_gd))
    L = delta.shape[0]
    cum = np.concatenate([np.zeros((1, delta.shape[1])), np.cumsum(delta, axis=0)])
    out = np.full((L, L, delta.shape[1]), np.nan)
    for i in range(L):
        for j in range(i, L):
            out[i, j] = cum[j + 1] - cum[i]
    return out


def predicted_offsets(experiment, n_modes: int | None = None) -> dict:
    """The derived mean offset of SGD's internal log singular values from GD's at the end (item 2 of
    the module docstring), for ``experiment`` (no SGD run is used): returns offsets (L, L, n_modes),
    the GD and predicted SGD splits, the modal drifts and c_B."""
    return ensemble_offsets([experiment], n_modes)[0]


def split_predicted(s) -> np.ndarray:
    """Per learned mode, whether :func:`predicted_offsets` predicts its split: the modewise expansion
    needs each mode's own frame (mode_frames), which a simple singular value has and a repeated one
    does not (inside the block any rotation is a frame, and D is not diagonal in it). From the
    teacher alone: a premise, checked before any run."""
    s = np.asarray(s, dtype=np.float64)
    return np.array([int(np.isclose(s, v, rtol=1e-9, atol=0).sum()) == 1 for v in s])


def ensemble_offsets(experiments, n_modes: int | None = None, at_steps=None) -> list[dict]:
    """:func:`predicted_offsets` of every config of an ensemble (an ``Ensemble`` or a list of
    experiments sharing data, lr and steps: only the init differs), their GD paths and drift sums
    run as one batched program (:func:`gd_path_drift`). ``at_steps`` (one step count per config,
    each <= steps): the prediction at that step of each GD path instead of at the end (the GD
    checkpoint a matched-progress reading compares at, dlncheck.measure.progress_exact)."""

    experiments = list(getattr(experiments, "experiments", experiments))
    if not experiments:
        return []
    base = experiments[0]
    for e in experiments[1:]:
        if dataclasses.replace(e, init=base.init) != base:
            raise ValueError(
                "experiments differ in more than their init: ensemble_offsets batches the GD "
                "paths of one data set, lr and steps; call predicted_offsets per experiment"
            )
    problem = make_problem(base)
    n_modes = n_modes or base.teacher.rank
    inits = [init_weights(e) for e in experiments]
    W0 = [torch.stack([w[l].double() for w in inits]) for l in range(base.depth)]
    stops = None if at_steps is None else torch.as_tensor([int(n) for n in at_steps])
    if stops is not None and stops.shape != (len(experiments),):
        raise ValueError(f"at_steps has {stops.numel()} entries: give one step count per config ({len(experiments)})")
    W_all, S_all = gd_path_drift(
        problem.X.double(), problem.Syx.double(), W0, base.lr, base.steps, labels=problem.Y.double(), stops=stops
    )
    c_B = minibatch_factor(base.n_samples, base.batch_size)
    out = []
    for i in range(len(experiments)):
        W, S = [w[i] for w in W_all], [s[i] for s in S_all]
        out.append(offsets_from_drift(W, [c_B * x for x in S], n_modes) | {"c_B": c_B, "gd_weights": W})
    return out


def offsets_from_drift(W: list[torch.Tensor], extra: list[torch.Tensor], n_modes: int) -> dict:
    """Item 2 from GD's end weights W and SGD's extra drift of each D_l (``extra``, c_B-scaled, from
    :func:`ensemble_offsets`'s GD path or theory.balance_drift.sgd_extra_drift on stored checkpoints):
    offsets (L, L, n_modes), the splits a2_gd, a2_sgd, the modal drifts d_gd, d_extra and strengths u."""
    frames = mode_frames(W, n_modes)
    d_gd = modal_balance([w2.T @ w2 - w1 @ w1.T for w1, w2 in itertools.pairwise(W)], frames)
    d_extra = modal_balance(extra, frames)
    u = torch.linalg.svdvals(end_to_end(W))[:n_modes].numpy()
    a2_gd, a2_sgd = layer_split(d_gd, u), layer_split(d_gd + d_extra, u)
    offsets = split_log_offsets(a2_sgd, a2_gd)
    return dict(offsets=offsets, a2_gd=a2_gd, a2_sgd=a2_sgd, d_gd=d_gd, d_extra=d_extra, u=u)


def truncation_tolerance(experiment) -> float:
    """Relative size of the neglected terms of the first-order prediction: one step's dimensionless
    size h = lr * lambda_max, lambda_max bounded by the larger of the tangent-kernel bound at init
    and L s_1^{2-2/L} (the top Hessian eigenvalue at the aligned solution), the same curvature the
    presets divide 0.2 by. The prediction takes the covariance on the GD path; on the SGD path it
    differs by O(lr) bias and by the O(lr c_B) second moment of the fluctuations, both of relative
    order h (constant 1 assumed, stated here: the one non-derived number of this tolerance).
    Valid while the accumulated drift stays small against the layers' Gram matrices: without label
    noise the noise vanishes at the minimum and the drift stops (O(lr c_B) in all); with label noise
    it goes on at a constant rate, SGD moves along the minimum set toward noise balance and the rate
    on GD's path no longer applies: a secular term of relative order |lr^2 c_B sum C_l| / |D_l| that
    h does not cover (claims/published_drift.py records it as a measured contradiction)."""
    L, s1 = experiment.depth, float(experiment.teacher.s[0])
    return experiment.lr * max(kernel_bounds(experiment)[1], L * s1 ** (2 - 2 / L))


def slope_truncation_band(x, h) -> float:
    """Largest change the neglected terms can make to the least-squares slope of log y on log x.

    The prediction y = a x^p holds up to a relative factor (1 + e_i) with |e_i| <= h_i (h_i = lr_i
    lambda_max, :func:`truncation_tolerance`), i.e. |log(1 + e_i)| <= -log(1 - h_i). The slope is
    linear in log y, sum_i d_i log y_i / sum_i d_i^2 with d = log x - mean log x, so the worst case sets
    each log(1 + e_i) to -log(1 - h_i) signed as d_i: band = sum_i |d_i| (-log(1 - h_i)) / sum_i d_i^2."""
    x, h = np.asarray(x, dtype=np.float64), np.asarray(h, dtype=np.float64)
    if x.shape != h.shape or not np.all(x > 0) or not np.all((h >= 0) & (h < 1)) or not np.ptp(np.log(x)) > 0:
        raise ValueError(f"x={x!r}, h={h!r} are invalid: give one x > 0 (not all equal) and 0 <= h < 1 per point")
    d = np.log(x) - np.log(x).mean()
    return float((np.abs(d) * -np.log1p(-h)).sum() / (d**2).sum())


def ou_variance(lr: float, c_B: float, noise: float, curvature: float) -> float:
    """Stationary variance of one mode's deviation from GD near a minimum: in time t = lr k the SGD
    step adds sqrt(lr) * sqrt(c_B noise) dW (noise = the per-sample gradient variance in that
    direction), so dx = -kappa x dt + sqrt(lr c_B noise) dW, Var = lr c_B noise / (2 kappa)."""
    if not curvature > 0:
        raise ValueError(f"curvature={curvature!r} is invalid: the OU variance needs kappa > 0")
    return lr * c_B * noise / (2 * curvature)
