"""GD's plateaus as saddles: a plateau point's Hessian certificate judged against the decoupled
prediction (docs/protocol.md, "Beyond the assumptions" and the scaling_saddles family), shared by
claims/test_scaling_saddles.py and claims/test_beyond_assumptions.py.

Prediction (:func:`predicted_point`, theory.saddle_curvature): lambda_pred, the exact lambda_min of
the Hessian of 0.5 ||W_L...W_1 - M||_F^2 at the point's decoupled projection theta_dec (L = 2:
-(s_{k+1} - u_{k+1}) on plateau k; L >= 3: -> 0, non-strict), and Weyl's bound
|lambda_min(H(theta)) - lambda_min(H(theta_dec))| <= ||H(theta) - H(theta_dec)||_2.
Judgement (:func:`judge`): the certifier's kind must be the one lambda_pred implies under its own
zero band tau ("strict" if lambda_pred + tol < -tau, "non-strict" if |lambda_pred| + tol <= tau, else
not resolved: any kind but a minimum), tol = Weyl bound + tau_round; an end point must be a minimum.

Plateaus: GD's inner plateau k lies between its consecutive learning times t_k < t_{k+1}
(theory.assumptions.learning_times: GD's own stages, defined for any data; the whitened loss levels of
measure.events move with the data). :func:`plateau_midpoints` gives the checkpoint nearest each
geometric midpoint sqrt(t_k t_{k+1}) (the rank reading's plateau checkpoints); :func:`plateau_points`
the checkpoint of smallest gradient norm strictly inside (t_k, t_{k+1}), the plateau's most critical
point, which is what a Hessian certificate needs: the certifier's zero band contains
sqrt(||grad L|| ||H||_2) (saddles.certify), so a point with a larger gradient can only certify a
larger |lambda_min| (at the midpoint of a plateau of 0.5 ||W - M||^2 the gradient is of the order of
the unlearned mode's growth and can keep a strict saddle inside the band).
"""

from __future__ import annotations

import numpy as np
import torch

from dlncheck.saddles.certify import hessian as dense_hessian
from dlncheck.saddles.certify import loss_function
from dlncheck.theory import saddle_curvature as sc


def point_hessian(weights, M) -> torch.Tensor:
    """The dense Hessian of 0.5 ||W_L...W_1 - M||_F^2 at one network (float64)."""
    theta, f = loss_function(weights, M)
    return dense_hessian(f)(theta)


def predicted_point(weights, exp) -> tuple[float, float]:
    """(lambda_pred, Weyl bound) at one network of ``exp`` (whitened inputs, teacher exp.teacher)."""
    t = exp.teacher
    scales, projected = sc.decoupled_projection(weights, t.U, t.V)
    free = max(exp.widths[1:-1]) > scales.shape[1]
    lam = sc.decoupled_lambda_min(np.asarray(t.s), scales, free)
    weyl = float(torch.linalg.matrix_norm(point_hessian(weights, t.M) - point_hessian(projected, t.M), ord=2))
    return lam, weyl


def judge(cert, lam: float, weyl: float, end: bool) -> tuple[str, bool, float]:
    """(expected kind, ok, tol) of one certificate against the predicted lambda_min ``lam``: the kind
    its value implies under the certifier's zero band tau (the end point: a minimum), and
    |lambda_min - lam| <= tol = Weyl bound + tau_round."""
    tol = weyl + cert.tau_round
    if end:
        expected = "minimum"
    elif lam + tol < -cert.tau:
        expected = "strict"
    elif abs(lam) + tol <= cert.tau:
        expected = "non-strict"
    else:
        expected = "either"
    ok_kind = cert.kind == expected or (expected == "either" and cert.kind != "minimum")
    return expected, bool(ok_kind and abs(cert.lambda_min - lam) <= tol), tol


def plateau_midpoints(times: torch.Tensor, learned: np.ndarray) -> np.ndarray:
    """Checkpoint indices nearest the geometric midpoints of consecutive finite learning times
    ``learned`` (NaN: never learned, dropped), one per inner plateau, in time order; ``times`` (K,)."""
    t = np.sort(learned[np.isfinite(learned)])
    mids = np.sqrt(t[1:] * t[:-1])
    if not len(mids):
        return np.zeros(0, dtype=int)
    return np.abs(times.double().cpu().numpy()[None, :] - mids[:, None]).argmin(1)


def plateau_points(times: torch.Tensor, learned: np.ndarray, grad_norms: np.ndarray) -> list[tuple[int, int]]:
    """[(k, index)]: for each inner plateau k = 1, 2, ... (k modes learned, between the k-th and
    (k+1)-th finite learning times, sorted) the checkpoint of smallest ``grad_norms`` (K,) strictly
    inside; plateaus without a checkpoint inside are skipped."""
    t = np.sort(learned[np.isfinite(learned)])
    at = times.double().cpu().numpy()
    out = []
    for k in range(1, len(t)):
        inside = np.flatnonzero((at > t[k - 1]) & (at < t[k]))
        if len(inside):
            out.append((k, int(inside[np.argmin(grad_norms[inside])])))
    return out
