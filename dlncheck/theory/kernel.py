"""Bounds on the tangent kernel of the end-to-end map at init (Jacot, Gabriel and Hongler 2018).

K = sum_l (A_l A_l^T) (x) (B_l^T B_l) with A_l = W_L..W_{l+1}, B_l = W_{l-1}..W_1, so its eigenvalues
lie in [sum_l sigma_min(A_l)^2 sigma_min(B_l)^2, sum_l ||A_l||^2 ||B_l||^2]. The top bound is the
curvature the presets divide their lr by and the step size h = lr * lambda_max of the truncation
tolerances.
"""

from __future__ import annotations

import torch

from dlncheck.config.data import init_weights
from dlncheck.config.experiment import Experiment
from dlncheck.config.threads import cpu_threads
from dlncheck.spectra import chain_product

SIGNIFICANT = 6  # digits kept of the kernel bounds (machine-independent lr, steps and cache keys)


def rounded(x: float) -> float:
    """x to SIGNIFICANT digits."""
    return float(f"{x:.{SIGNIFICANT}g}")


def kernel_bounds(experiment: Experiment) -> tuple[float, float]:
    """(bottom, top) bounds on the tangent kernel's eigenvalues at the experiment's init.

    Machine independent: float64 under one CPU thread (a threaded matmul sums in another order),
    rounded to SIGNIFICANT digits, so lr, steps and the cache keys do not depend on the core count."""
    with cpu_threads("cpu", 1):
        weights = [w.double().cpu() for w in init_weights(experiment)]
        top = bottom = 0.0
        for l in range(len(weights)):
            A = chain_product(weights[l + 1 :])
            A = torch.eye(weights[-1].shape[0], dtype=torch.float64) if A is None else A
            B = chain_product(weights[:l])
            B = torch.eye(weights[0].shape[1], dtype=torch.float64) if B is None else B
            sa, sb = torch.linalg.svdvals(A), torch.linalg.svdvals(B)
            top += float(sa[0] * sb[0]) ** 2
            full = A.shape[1] >= A.shape[0] and B.shape[0] >= B.shape[1]
            bottom += float(sa[-1] * sb[-1]) ** 2 if full else 0.0
    return rounded(bottom), rounded(top)
