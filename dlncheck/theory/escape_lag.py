"""SGD's escape lag: the sign and first-order size of t_esc(SGD) - t_esc(GD) for every escape under
the engine's reshuffled minibatches (protocol "Escape lag"). The suite's own derivation, by the
modified-loss route of random shuffling (Smith, Dherin, Barrett & De 2021, "On the origin of implicit
regularization in stochastic gradient descent", arXiv:2101.12176, section 2).

1. Drift of the mean iterate. One epoch is m = n / B steps on disjoint batches of a fresh uniform
   permutation; write batch k's gradient g + xi_k, so sum_k xi_k = 0 within the epoch and, by
   exchangeability, E[xi_k xi_j^T] = -E[xi xi^T] / (m - 1) for j != k, E||xi||^2 = c_B tr Sigma with
   Sigma = (1/n) sum_i (g_i - g)(g_i - g)^T the per-sample gradient covariance and
   c_B = (n - B) / (B (n - 1)) (theory.gradient_noise.minibatch_factor). To second order in lr,
       theta_m = theta_0 - lr m g + lr^2 sum_{j<k} H_k g_j,   H_k = H + D xi_k (the batch Hessian),
   and sum_{j<k} E[D xi_k xi_j] = -(m/2) E[(D xi) xi] = -(m/4) grad E||xi||^2. GD's m steps give the
   other terms, so per unit time t = lr * step the mean SGD iterate leaves GD's path by the drift
       -grad R(theta),   R = (lr c_B / 4) tr Sigma(theta)                        (the regulariser).
   This is Smith et al.'s modified loss L + (lr / 4m) sum_k ||grad L_k||^2 taken over shuffles (GD's
   own lr/4 ||grad L||^2 plus R); GD shares the first term, so to first order in lr the mean SGD path
   is GD on L + R (:func:`mean_paths`, the same lr and steps as the engine's GD).
2. Why not the SDE route. A modewise SDE (arXiv:2604.06366) with Brownian noise of covariance
   lr c_B Sigma describes independent batches: its mean follows GD (E[xi_k xi_j] = 0) and a mode's
   log-strength lags by the Ito term -Var/2. Under reshuffling the epoch's noise sums to zero, the
   O(sqrt(lr)) diffusion is absent (theory.spread item 3: the spread is O(lr)) and what remains at
   first order is the deterministic drift of item 1: the expansion of this engine's own sampler.
3. Sign and size. Whitened noise-free data: g_i - g = A_l^T E (x_i x_i^T - I) P_{l-1}^T for layer l
   (E = W - M, A_l the layers above l, P_{l-1} those below), so tr Sigma is quadratic in the layers
   other than l and zero at W = M: the noise is multiplicative and smallest at the saddle, and -grad R
   pulls toward it, a weight decay that slows every escape: the lag is positive. Decoupled aligned
   modes at L = 2 with fourth moments c_jk = (1/n) sum_i (x_ij x_ik - delta_jk)^2 (about 1 + delta_jk
   for Gaussian inputs): while mode a sits on its plateau (E ~ -M) R decays its output-layer scale
   at rate (lr c_B / 2) s_a^2 C_a (C_a = sum_k c_ak) and its input-layer scale at (lr c_B / 2) S_a
   (S_a = sum_j c_ja s_j^2), so the growth rate 2 s_a of log u_a drops by (lr c_B / 2)(C_a s_a^2 + S_a)
   and, with t_a ~ ln(s_a / u0) / (2 s_a) (Saxe et al. 2014),
       lag_a / t_a ~ (lr c_B / 4) (C_a s_a^2 + S_a) / s_a                       (L = 2, leading order).
   At L >= 3 the decay acts against a rate L s_a u^{1-2/L} that vanishes at the saddle, so the relative
   slow-down ~ lr c_B s_a u^{(L-2)/L} accrues during the rise rather than on the plateau.
4. Time shift. The predicted lag of escape k is t_k(mean path) - t_k(GD path), both from the
   interpolated loss-midpoint crossing (:func:`crossing_time`, the measurement applied to the data);
   to first order it is -delta log u_a / (d log u_a / dt) at the escape. It is linear in lr c_B, so the
   log-log slope of the lag against lr c_B is 1 (the lr dependence of GD's path enters at O(lr)).
   Neglected: terms of relative order h = lr lambda_max (GD's path vs flow, the within-epoch position,
   Sigma taken on the mean path instead of the SGD path; theory.sgd.truncation_tolerance) and the
   O(lr^{3/2}) fluctuations, whose mean effect is second order.
5. Relation to the suite's other SGD predictions. The balance part of the same drift is theory.sgd
   item 1: under -grad R, dD_l/dt = lr c_B C_l (tests/test_escape_lag_theory.py checks the two
   derivations agree). predicted_offsets keeps the end-to-end strength at GD's value (an end-point
   split), so it cannot give the lag: the lag is the product part of the drift.
6. Beneventano (arXiv:2312.16143): SGD without replacement follows SGD with replacement along high
   curvature plus a drift that regularises the trace of the gradient covariance along flat and
   negative directions, and "may escape saddles faster than SGD with replacement". R is that drift in
   the small-lr limit (lr lambda <= h here). At a DLN's small-init saddle tr Sigma grows away from the
   saddle, so the drift slows the escape against GD (positive lag); with replacement the mean follows
   GD but a mode's typical log-strength lags by the Ito term, Var/2 = (lr / 2) Sigma_aa / B per unit
   time against reshuffling's (lr c_B / 2) Sigma_aa for a scalar mode: reshuffling lags by
   (n - B) / (n - 1) of that, i.e. it escapes faster than with replacement and slower than GD. The
   engine has no with-replacement sampler, so that comparison is stated, not asserted.
7. Band (:func:`lag_band`). GD's lag is deterministic; the mean over S SGD runs of one init has a
   Student-t sampling law, so all K (init, escape) pairs are asserted at family-wise level ALPHA by
   |mean - p| <= t_{1 - ALPHA/(2K), S-1} sd / sqrt(S) + h |p|, and the sign by mean + that t-term > 0
   (no significantly negative lag).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import t as student_t

from dlncheck.config.data import init_weights, make_problem
from dlncheck.theory.gradient_noise import minibatch_factor
from dlncheck.theory.mode_dynamics import stage_plateaus

ALPHA = 0.05


def drift_strength(lr: float, n_samples: int, batch_size: int) -> float:
    """The regulariser's weight lr c_B / 4 (item 1)."""
    return lr * minibatch_factor(n_samples, batch_size) / 4


def _array(x) -> np.ndarray:
    return np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)


def _passes(weights: list[np.ndarray], X: np.ndarray, Y: np.ndarray):
    """H_0 = X, H_{l+1} = W_l H_l (0-based layers) and B_L = H_L - Y, B_l = W_l^T B_{l+1}: sample i's
    gradient of layer l is the outer product B_{l+1}[:, i] H_l[:, i]^T (B[0] unused)."""
    H = [np.broadcast_to(X, (*weights[0].shape[:-2], *X.shape))]
    for w in weights:
        H.append(w @ H[-1])
    B = [H[-1] - Y]
    for w in reversed(weights[1:]):
        B.append(w.swapaxes(-1, -2) @ B[-1])
    return H, [None, *B[::-1]]


def noise_trace(weights, X, Y) -> np.ndarray:
    """tr Sigma = (1/n) sum_i ||g_i - g||^2 summed over the layers (per-sample loss
    0.5 ||W x_i - y_i||^2), batched over the weights' leading axes: ||g_i||^2 = sum_l ||B_{l+1,i}||^2
    ||H_{l,i}||^2 (rank-one per-sample layer gradients), g_l = B_{l+1} H_l^T / n."""
    weights, X, Y = [_array(w) for w in weights], _array(X), _array(Y)
    H, B = _passes(weights, X, Y)
    n = X.shape[-1]
    total = np.zeros(weights[0].shape[:-2])
    for l in range(len(weights)):
        per_sample = (np.square(B[l + 1]).sum(-2) * np.square(H[l]).sum(-2)).sum(-1) / n
        total = total + per_sample - np.square(B[l + 1] @ H[l].swapaxes(-1, -2) / n).sum((-2, -1))
    return total


def noise_trace_grad(weights, X, Y):
    """([d tr Sigma / d W_l], [G_l], R): the gradient of :func:`noise_trace`, the full-batch loss
    gradients G_l = B_{l+1} H_l^T / n and the residuals R = W X - Y, by reverse mode written out (no
    autograd; NumPy, float64). With beta = ||B_.i||^2 and eta = ||H_.i||^2,
    tr Sigma = (1/n) sum_{l,i} beta_{l+1,i} eta_{l,i} - sum_l ||G_l||^2 has the direct adjoints
    dF/dH_l = (2/n)(H_l diag(beta_{l+1}) - G_l^T B_{l+1}), dF/dB_{l+1} = (2/n)(B_{l+1} diag(eta_l) - G_l H_l),
    carried back through B_l = W_l^T B_{l+1}, B_L = H_L - Y and H_{l+1} = W_l H_l."""
    weights, X, Y = [_array(w) for w in weights], _array(X), _array(Y)
    L, n = len(weights), X.shape[-1]
    H, B = _passes(weights, X, Y)
    Ht = [h.swapaxes(-1, -2) for h in H]
    G = [B[l + 1] @ Ht[l] / n for l in range(L)]
    dW = [None] * L
    b_bar = None
    for l in range(1, L + 1):  # B_l enters layer l-1's term and B_{l-1} = W_{l-1}^T B_l
        direct = (2 / n) * (B[l] * np.square(H[l - 1]).sum(-2, keepdims=True) - G[l - 1] @ H[l - 1])
        if b_bar is not None:
            dW[l - 1] = B[l] @ b_bar.swapaxes(-1, -2)
            direct = direct + weights[l - 1] @ b_bar
        b_bar = direct
    h_bar = b_bar  # B_L = H_L - Y
    for l in reversed(range(L)):
        step = h_bar @ Ht[l]
        dW[l] = step if dW[l] is None else dW[l] + step
        if l:
            beta = np.square(B[l + 1]).sum(-2, keepdims=True)
            h_bar = (2 / n) * (H[l] * beta - G[l].swapaxes(-1, -2) @ B[l + 1]) + weights[l].swapaxes(-1, -2) @ h_bar
    return dW, G, B[L]


def mean_path_steps(X, Y, weights0, lr: float, strength):
    """Iterate GD's path and the predicted mean SGD path (GD on L + strength * tr Sigma, item 1) side by
    side: yields, for step k = 0, 1, ..., the weights [W_l] (each (2, *batch, d_l, d_{l-1}), axis 0 =
    (GD, mean SGD)) and the residuals W X - Y at step k. ``strength``: a float or one value per batch
    element. Whitened inputs (X X^T / n = I), the engine's lr."""
    X, Y = _array(X), _array(Y)
    W = [np.stack([_array(w)] * 2) for w in weights0]
    lam = np.broadcast_to(np.asarray(strength, dtype=np.float64), W[0].shape[1:-2])
    scale = np.stack([np.zeros_like(lam), lam])[..., None, None]
    while True:
        dR, G, R = noise_trace_grad(W, X, Y)
        yield W, R
        W = [w - lr * (g + scale * d) for w, g, d in zip(W, G, dR)]


def mean_paths(X, Y, weights0, lr: float, steps: int, strength, stop_below: float | None = None, chunk: int = 256):
    """Full-data losses 0.5 ||W - Syx||^2 along GD's path and along the predicted mean SGD path
    (:func:`mean_path_steps`): (2, *batch, K), axis 0 = (GD, mean SGD), K = steps + 1 unless
    ``stop_below`` is given (both paths then stop at the first multiple of ``chunk`` steps where every
    loss is below it, e.g. the last escape level)."""
    X, Y = _array(X), _array(Y)
    n = X.shape[-1]
    offset = 0.5 * (np.square(Y).sum() / n - np.square(Y @ X.T / n).sum())
    out = []
    for k, (_, R) in enumerate(mean_path_steps(X, Y, weights0, lr, strength)):
        out.append(0.5 * np.square(R).sum((-2, -1)) / n - offset)
        if k == steps or (stop_below is not None and k and k % chunk == 0 and bool((out[-1] < stop_below).all())):
            break
    return np.stack(out, -1)


def crossing_time(values, times, level: float) -> np.ndarray:
    """First time a curve (..., K) sampled at ``times`` (K,) reaches ``level`` from above, linearly
    interpolated between the samples around the crossing (the first sample's time when the curve
    starts below); +inf where it never does."""
    values, times = _array(values), _array(times)
    below = values <= level
    i = below.argmax(-1)[..., None]
    j = np.maximum(i - 1, 0)
    v1, v2 = np.take_along_axis(values, j, -1), np.take_along_axis(values, i, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(v1 > v2, (v1 - level) / (v1 - v2), 0.0)
    t = (times[j] + frac * (times[i] - times[j]))[..., 0]
    return np.where(below.any(-1), t, np.inf)


def escape_levels(s) -> np.ndarray:
    """Midpoints between consecutive visited plateaus: the loss-midpoint escape levels."""
    P = stage_plateaus(s).numpy()
    return 0.5 * (P[:-1] + P[1:])


def escape_values(s, rtol: float = 1e-9) -> np.ndarray:
    """The singular value of each escape: the distinct non-zero values of s, descending (a degenerate
    block escapes as one, as in :func:`escape_levels`)."""
    s = np.sort(_array(s).reshape(-1))[::-1]
    s = s[s > 0]
    return s[[0] + [k for k in range(1, len(s)) if s[k - 1] - s[k] > rtol * s[0]]]


def predicted_lags(experiments, max_steps: int | None = None) -> dict[str, np.ndarray]:
    """Predicted escape times of GD and of the mean SGD path and their difference, the lag, for every
    escape of every config (experiments or an Ensemble that share data, lr and batch size; only the
    init differs), from GD's path and the data alone: ``gd``, ``sgd``, ``lag`` each (configs,
    escapes). Both paths run in one batched program for at most ``max_steps`` (default the longest
    config's steps) and stop once every loss is past the last escape level."""
    experiments = list(getattr(experiments, "experiments", experiments))
    base = experiments[0]
    problem = make_problem(base)
    inits = [init_weights(e) for e in experiments]
    W0 = [np.stack([_array(w[l]) for w in inits]) for l in range(base.depth)]
    levels = escape_levels(base.teacher.s)
    steps = max_steps or max(e.steps for e in experiments)
    strength = drift_strength(base.lr, base.n_samples, base.batch_size)
    losses = mean_paths(problem.X, problem.Y, W0, base.lr, steps, strength, stop_below=float(levels[-1]))
    times = base.lr * np.arange(losses.shape[-1])
    t = np.stack([crossing_time(losses, times, float(v)) for v in levels], -1)  # (2, I, n)
    with np.errstate(invalid="ignore"):
        return {"gd": t[0], "sgd": t[1], "lag": t[1] - t[0]}


def t_quantile(runs: int, comparisons: int, alpha: float = ALPHA) -> float:
    """t_{1 - alpha / (2K), S - 1}: two-sided Student quantile for K simultaneous means of S runs."""
    if runs < 2 or comparisons < 1:
        raise ValueError(f"runs={runs}, comparisons={comparisons} are invalid: need >= 2 runs and >= 1 comparison")
    return float(student_t.ppf(1 - alpha / (2 * comparisons), runs - 1))


def lag_checks(lags, predicted, h: float, alpha: float = ALPHA) -> dict[str, np.ndarray]:
    """The checks of item 7 for per-run lags (K, S) (SGD run minus GD; K asserted (init, escape)
    pairs, S runs) against the predicted lags (K,): ``sign`` (no significantly negative mean,
    mean + t sd / sqrt(S) >= 0) and ``size`` (|mean - p| <= band = t sd / sqrt(S) + h |p|), with
    ``mean``, ``sd``, ``band`` and the quantile ``t``."""
    lags = np.atleast_2d(_array(lags))
    predicted = _array(predicted).reshape(-1)
    K, S = lags.shape
    if predicted.shape != (K,):
        raise ValueError(f"predicted has {predicted.shape[0]} values for {K} (init, escape) pairs: give one each")
    mean, sd = lags.mean(-1), lags.std(-1, ddof=1)
    t = t_quantile(S, K, alpha)
    sem = t * sd / math.sqrt(S)
    band = sem + h * np.abs(predicted)
    return {
        "mean": mean,
        "sd": sd,
        "band": band,
        "t": t,
        "sign": mean + sem >= 0,
        "size": np.abs(mean - predicted) <= band,
    }


def slope_band(h: float) -> float:
    """b = h / (1 - h): the most the neglected O(h) relative terms bend a log-log slope (as for
    claims/test_scaling.py's slopes); the predicted slope 1 must lie in [lo - b, hi + b]."""
    if not 0 <= h < 1:
        raise ValueError(f"h={h!r} is invalid: the first-order expansion needs 0 <= lr * lambda_max < 1")
    return h / (1 - h)
