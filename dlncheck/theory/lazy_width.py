"""The lazy regime's width law: relative weight movement against hidden width (protocol "Lazy width").

LeCun init (variance 1/fan_in), hidden width h, lr = 0.2 / lambda_max(K_0) and T = 12 / (k_min lr)
steps (the ntk preset at width h). The tangent kernel K_0 = sum_l (A_l A_l^T) (x) (B_l^T B_l)
(theory.kernel) grows like h, so the linearised flow moves layer l by
Delta W_l = J_l^T K_0^-1 (e_0 - e_T) with ||J_l|| = O(sqrt(h)): ||Delta W_l|| = O(h^-1/2). The output
layer (d_out x h) has ||W_L(0)||_F = O(1), every other layer O(sqrt(h)), so the largest relative
movement m(h) = max_l ||W_l(T) - W_l(0)|| / ||W_l(0)|| is the output layer's, of order h^-1/2
(Jacot, Gabriel and Hongler 2018; Chizat, Oyallon and Bach 2019). The trained network departs from
its linearisation by the kernel's relative change over training, O(h^-1/2) (Lee et al. 2019,
Thm 2.1), so

    ln m(h) = ln A + p ln h + c h^-1/2 + O(1/h),   p = LAZY_EXPONENT = -1/2.

The claim fits (ln A, p, c) by least squares over the widths and every init (measure.width_fits)
and asserts p within :func:`exponent_band` of -1/2: the finite-width bias is in the model (c), so
the band is the fit's own t interval, and :func:`min_detectable` is the smallest |p + 1/2| that
the test rejects with probability 0.95 at level 0.05.
"""

from __future__ import annotations

from scipy.stats import t as student_t

LAZY_EXPONENT = -0.5
ALPHA, POWER = 0.05, 0.95


def exponent_band(se: float, dof: int, alpha: float = ALPHA) -> float:
    """t_{1 - alpha/2, dof} SE: the two-sided interval half-width of the fitted exponent."""
    return float(student_t.ppf(1 - alpha / 2, dof) * se) if dof >= 1 else float("inf")


def min_detectable(se: float, dof: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """(t_{1 - alpha/2, dof} + t_{power, dof}) SE: the exponent error rejected with probability ``power``."""
    return float((student_t.ppf(1 - alpha / 2, dof) + student_t.ppf(power, dof)) * se) if dof >= 1 else float("inf")
