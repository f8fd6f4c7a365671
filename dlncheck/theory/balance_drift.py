"""Balance predictions (protocol "Balanced assumptions"): the final residual implied by the
conserved D_l (Arora, Cohen & Hazan 2018, Thm. 1), GD's discrete drift bound, and the tolerance
of SGD's extra drift against its first-order prediction (:mod:`dlncheck.theory.sgd`, item 1).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import wrightomega
from scipy.stats import t as student_t

from dlncheck.theory import sgd as sgd_theory
from dlncheck.theory.sgd_drift import CHUNK_BYTES


def balanced_residual_prediction(D0_norm: torch.Tensor, s: torch.Tensor, depth: int) -> torch.Tensor:
    """Final r_l predicted from the conserved D_l(0): ||D_l(0)||_F / (2 (sum_a s_a^{4/L})^{1/2}).

    At convergence to a teacher with nonzero singular values s_a, balanced layers carry
    singular values s_a^{1/L}, so ||W_l W_l^T||_F = (sum_a s_a^{4/L})^{1/2} for each layer;
    D_l is conserved by the flow, so r_l(T) ~ ||D_l(0)||_F over twice that norm.
    """
    if depth < 2:
        raise ValueError(f"depth must be >= 2, got {depth}")
    s = s[s > 0]
    return D0_norm / (2 * torch.sqrt((s ** (4 / depth)).sum()))


def gd_drift_bound(lr: float, loss0: float, lossT: float, h: float) -> float:
    """Upper bound on GD's change ||D_l(T) - D_l(0)||_F: lr (L(0) - L(T)) / (1 - h/2).

    One GD step changes D_l by lr^2 (G_{l+1}^T G_{l+1} - G_l G_l^T) (dlncheck.measure.balance.discrete_drift),
    of norm <= lr^2 (||G_{l+1}||_F^2 + ||G_l||_F^2) <= lr^2 ||grad L||^2. The descent lemma for a
    loss with curvature <= lambda along the path gives L_{k+1} <= L_k - lr (1 - h/2) ||grad L_k||^2,
    h = lr lambda, so lr sum_k lr ||grad L_k||^2 <= lr (L(0) - L(T)) / (1 - h/2). Assumption: the
    curvature along the path stays below the bound behind h (theory.sgd.truncation_tolerance: the
    larger of the tangent-kernel bound at init and L s_1^{2-2/L}); a run that leaves that region
    can break the bound, so the check can fail. Requires h < 2.
    """
    if not 0 <= h < 2:
        raise ValueError(f"h={h!r} is invalid: the descent lemma needs 0 <= lr * curvature < 2")
    return lr * max(loss0 - lossT, 0.0) / (1 - h / 2)


def sgd_drift_tolerance(predicted_norm: float, h: float, spread: float, sgd_runs: int, n_tests: int = 1) -> float:
    """Allowed ||mean_SGD D_l(T) - D_l^GD(T) - c_B S_l||_F for one init and pair:
    h ||c_B S_l||_F + t * spread / sqrt(R).

    Two terms. (i) Truncation: the prediction c_B S_l = c_B lr^2 sum_t C_l(W_t^GD) is first order;
    the neglected terms (covariance on the SGD path instead of GD's, the fluctuations' second
    moment) are of relative order h = lr lambda_max (theory.sgd.truncation_tolerance, constant 1).
    (ii) Sampling: the mean over R SGD runs of one init estimates the expectation with standard
    error spread / sqrt(R), spread = sqrt(sum of the entries' sample variances); t is Student's
    two-sided quantile 1 - 0.05 / (2 n_tests) with R - 1 degrees of freedom: a claim that asserts
    every (init, pair) of an ensemble makes n_tests simultaneous tests, and Bonferroni keeps their
    family-wise error at 5% (a per-test 95% interval over 32 inits x 1 pair would fail some init
    with probability 1 - 0.95^32 = 81% even when the prediction is exact).
    """
    if sgd_runs < 2:
        raise ValueError(f"sgd_runs={sgd_runs}: the sampling term needs at least 2 SGD runs per init")
    if n_tests < 1:
        raise ValueError(f"n_tests={n_tests}: count the (init, pair) tests the claim asserts, at least 1")
    t = float(student_t.ppf(1 - 0.025 / n_tests, sgd_runs - 1))
    return h * predicted_norm + t * spread / sgd_runs**0.5


def secular_share(predicted_norm: float, gram_norm: float) -> float:
    """Least relative error of the first-order drift c_B S_l from SGD's motion along the minimum set
    (derived at L = 2): 1 - sinh(s) / y, y = ||c_B S_l||_F / (2 g), s = (v - omega(v)) / 2, v = 1 + 4 y,
    omega Wright's omega function (omega + log omega = v), g = ||W_l W_l^T||_F at GD's end (the larger of
    the pair's two Grams).

    The first-order prediction (theory.sgd.truncation_tolerance) takes the noise covariance on GD's path.
    Where the per-sample noise persists at GD's minimum (labels no linear map fits), SGD's D_l keeps
    drifting while the loss does not restore it: SGD moves along the minimum set and the covariance there
    changes with D. One mode at L = 2, on the minimum set w_1 w_2 = m > 0 with D = w_2^2 - w_1^2, so
    w_{1,2}^2 = sqrt(m^2 + D^2 / 4) -+ D / 2; with time t = lr step, a = lr c_B and R_in, R_out >= 0 the
    input- and output-side noise moments of the mode (theory.sgd.drift_covariance):
    dD/dt = a (w_1^2 R_in - w_2^2 R_out) = a (R_in - R_out) sqrt(m^2 + D^2 / 4) - a (R_in + R_out) D / 2,
    a relaxation toward noise balance; the first-order prediction is its linear growth P = a m (R_in - R_out) t.
    At fixed P the relaxation is slowest with R_out = 0 (or R_in = 0): then u = D / (2 m) = sinh(s) obeys
    du/dtau = sqrt(1 + u^2) - u = e^{-s}, tau = a R_in t / 2 = y = |P| / (2 m), so
    y = (e^{2 s} - 1) / 4 + s / 2, solved by s above, and D / P = sinh(s) / y. Any R_out > 0 relaxes
    faster, so the relative error 1 - D / P is at least this share (y / 2 to first order; the closed form
    tested against the integrated ODE in tests/test_balance.py). For a layer the Frobenius norms of
    the drift and of the Gram stand for the modes (Cauchy-Schwarz over codiagonal modes gives
    sum_a P_a^2 y_a^2 >= ||P||^2 y^2 at first order). Where the share exceeds the truncation allowance h
    of :func:`sgd_drift_tolerance`, the secular term alone can exceed the tolerance: the first-order
    prediction is outside its premise (exploratory there), not contradicted. Source: the discrete drift
    identity (measure.balance.discrete_drift) on the minimum set; the relaxation toward noise balance is
    the law of balance (Ziyin, Li & Ueda, arXiv:2308.06671; claims/published_drift.py)."""
    if not gram_norm > 0:
        raise ValueError(f"gram_norm={gram_norm!r} is invalid: the layers' Gram norm at GD's end must be > 0")
    y = abs(predicted_norm) / (2 * gram_norm)
    if y == 0:
        return 0.0
    v = 1 + 4 * y
    s = (v - float(np.real(wrightomega(v)))) / 2
    return 1 - math.sinh(s) / y


def secular_shares(predicted: list[torch.Tensor], end: list[torch.Tensor]) -> list[float | None]:
    """Per pair l: :func:`secular_share` of the predicted drift ``predicted[l]`` (c_B S_l on GD's path)
    against the larger of the pair's Grams W_l W_l^T, W_{l+1}^T W_{l+1} at GD's end (``end``: the L
    layers). Derived at L = 2 only: None for every pair at L >= 3 (the premise is not derived there)."""
    if len(end) != 2:
        return [None] * len(predicted)
    norm = torch.linalg.matrix_norm
    return [
        secular_share(
            float(norm(p, "fro")),
            max(float(norm(end[l] @ end[l].mT, "fro")), float(norm(end[l + 1].mT @ end[l + 1], "fro"))),
        )
        for l, p in enumerate(predicted)
    ]


def _trapezoid_weights(steps: torch.Tensor) -> torch.Tensor:
    """(K,) weights of the trapezoid rule over the points ``steps``: sum_k w_k f(steps_k)."""
    d = torch.diff(steps.double()) / 2
    w = torch.zeros(steps.shape[0], dtype=torch.float64)
    w[:-1] += d
    w[1:] += d
    return w


def sgd_extra_drift(
    gd_weights: list[torch.Tensor],
    steps: torch.Tensor,
    X: torch.Tensor,
    M: torch.Tensor,
    lr: float,
    c_B: float,
    chunk: int = 64,
    labels: torch.Tensor | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Predicted E[D_l^SGD(T)] - D_l^GD(T) = c_B lr^2 sum_{k<T/lr} C_l(W_k^GD) from GD's checkpoints.

    C_l is theory.sgd.drift_covariance (item 1 of that module's derivation); the sum over steps is
    the trapezoid rule over the checkpoint steps ``steps`` (K,) of ``gd_weights`` (layers
    (..., K, d_l, d_{l-1})). Its quadrature error is estimated by Richardson's rule for the
    trapezoid (error ~ spacing^2): |S(grid) - S(every other point)| / 3, returned per pair as the
    second list (norms, (...)) so a tolerance can add it. Returns ([c_B S_l], [quadrature error]).
    ``labels``: as in theory.sgd.drift_covariance (the data set's labels; M then its Y X^T / n).
    Both sums are accumulated over ``chunk`` checkpoints at a time, fewer where their d_l x d_l
    C_l would pass sgd_drift.CHUNK_BYTES (wide ntk layers)."""
    labels = None if labels is None else labels.to(gd_weights[0])
    K = steps.shape[0]
    half = torch.cat([torch.arange(0, K, 2), torch.tensor([K - 1])]).unique()
    weights = torch.zeros(2, K, dtype=torch.float64)  # the full grid's and every other point's
    weights[0], weights[1, half] = _trapezoid_weights(steps), _trapezoid_weights(steps[half])
    widest = max(w.shape[-2] for w in gd_weights[:-1]) if len(gd_weights) > 1 else 1
    chunk = max(1, min(chunk, CHUNK_BYTES // (8 * widest**2)))
    full: list[torch.Tensor] = []
    coarse: list[torch.Tensor] = []
    for k in range(0, K, chunk):
        C = sgd_theory.drift_covariance(
            [w[..., k : k + chunk, :, :] for w in gd_weights], X.to(gd_weights[0]), M.to(gd_weights[0]), labels
        )
        a, b = (weights[i, k : k + chunk].view(-1, 1, 1) for i in (0, 1))
        sums = [((c * a.to(c)).sum(-3), (c * b.to(c)).sum(-3)) for c in C]
        full = [f + s[0] for f, s in zip(full, sums)] if full else [s[0] for s in sums]
        coarse = [g + s[1] for g, s in zip(coarse, sums)] if coarse else [s[1] for s in sums]
    scale = c_B * lr**2
    return (
        [scale * f for f in full],
        [scale * torch.linalg.matrix_norm(f - g, "fro") / 3 for f, g in zip(full, coarse)],
    )


def sgd_drift_check(
    sgd_D: torch.Tensor, gd_D: torch.Tensor, predicted: torch.Tensor, quadrature: float, h: float, n_tests: int
) -> dict[str, float | bool]:
    """The balance family's check of one (init, pair): SGD's mean extra drift against its prediction.

    ``sgd_D`` (R, d, d) is D_l(T) of the R SGD runs, ``gd_D`` (d, d) GD's, ``predicted`` (d, d)
    c_B S_l from GD's path (:func:`sgd_extra_drift`, its ``quadrature`` error added to the band).
    error = ||mean_r sgd_D - gd_D - predicted||_F must be <= tolerance = :func:`sgd_drift_tolerance`
    + quadrature. Minimum detectable deviation: a deviation Delta of the mean (a planted broken
    balance) makes error >= Delta - ||sampling error||; the sampling error's squared norm has mean
    spread^2 / R, so by Markov's inequality it exceeds 20 spread^2 / R with probability <= 5%
    (distribution-free), and Delta >= mdd = tolerance + sqrt(20) spread / sqrt(R) is rejected with
    probability >= 95%.
    """
    runs = sgd_D.shape[0]
    extra = sgd_D.mean(0) - gd_D
    spread = float(sgd_D.var(0).sum().sqrt())
    error = float(torch.linalg.matrix_norm(extra - predicted, "fro"))
    pred_norm = float(torch.linalg.matrix_norm(predicted, "fro"))
    tol = sgd_drift_tolerance(pred_norm, h, spread, runs, n_tests) + quadrature
    mdd = tol + (20 * spread**2 / runs) ** 0.5
    return {
        "extra": float(torch.linalg.matrix_norm(extra, "fro")),
        "predicted": pred_norm,
        "error": error,
        "tolerance": tol,
        "spread": spread,
        "mdd": mdd,
        "holds": error <= tol,
    }
