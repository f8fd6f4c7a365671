"""Closed-form Boltzmann laws of the residual sampler, and tests that samples follow them.

With one free block Z_l and every other block fixed at zero, p_beta(Z) ~ exp(-beta E - alpha/2 ||Z_l||^2)
is Gaussian (no norm targeting):
- E identically 0 (L >= 3, or L = 2 with no sigma coupling): every entry N(0, 1/alpha).
- L = 2, Z_2 = 0: E = ||Z_1 sigma||^2 / 2, so each ROW z of Z_1 has precision A = beta sigma sigma^T + alpha I.
- L = 2, Z_1 = 0: E = ||sigma Z_2||^2 / 2, so each COLUMN z of Z_2 has precision A = beta sigma^T sigma + alpha I.
Rows (columns) are independent; `gaussian_law` returns the free block, A and the axis.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy import stats

from dlncheck.saddles.normal_form import NormalForm


def gaussian_law(nf: NormalForm, zero_blocks, beta: float, alpha: float):
    """(free block l, precision A (k, k) as float64 NumPy, 'rows' | 'cols') of the closed-form cases."""
    free = [l for l in range(1, nf.L + 1) if l not in zero_blocks]
    if len(free) != 1 or alpha <= 0:
        raise ValueError(
            f"closed form needs exactly one free block and alpha > 0, got free blocks {free}, "
            f"alpha={alpha}; fix all blocks but one at zero"
        )
    l = free[0]
    m, n = nf.shapes[l - 1]
    sigma = nf.sigma.detach().cpu().double().numpy()
    if nf.L >= 3:
        return l, alpha * np.eye(n), "rows"
    if l == 1:
        return l, beta * sigma @ sigma.T + alpha * np.eye(n), "rows"
    return l, beta * sigma.T @ sigma + alpha * np.eye(m), "cols"


def whiten(block: torch.Tensor, cov: np.ndarray, axis: str) -> np.ndarray:
    """Draws y = cov^{-1/2} z of every row (axis 'rows') or column ('cols') of every chain: (C, rows, k)."""
    z = block.detach().cpu().double().numpy()
    z = z if axis == "rows" else np.swapaxes(z, -1, -2)
    w, V = np.linalg.eigh(cov)
    return z @ (V / np.sqrt(w)) @ V.T


def normality_tests(y: np.ndarray) -> pd.DataFrame:
    """p-values that whitened draws y (C chains, ..., k) are iid N(0, 1): a Kolmogorov-Smirnov test per
    coordinate over chains, a chi-square test of the total second moment (sum y^2 ~ chi2(C * coords)) and of
    the means (C * mean_c(y)^2 summed over coordinates ~ chi2(coords)), both two-sided."""
    C = y.shape[0]
    flat = y.reshape(C, -1)
    rows = [
        {"test": f"KS coordinate {j}", "statistic": r.statistic, "p_value": r.pvalue}
        for j, r in enumerate(stats.kstest(flat[:, j], "norm") for j in range(flat.shape[1]))
    ]
    for name, value, dof in (
        ("second moment", (flat**2).sum(), flat.size),
        ("mean", (C * flat.mean(0) ** 2).sum(), flat.shape[1]),
    ):
        cdf = stats.chi2.cdf(value, dof)
        rows.append({"test": f"chi2 {name}", "statistic": value / dof, "p_value": 2 * min(cdf, 1 - cdf)})
    return pd.DataFrame(rows)
