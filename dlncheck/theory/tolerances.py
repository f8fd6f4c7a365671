"""Tolerances of the GD-vs-SGD function-space claim, with their derivations
(protocol "Distance in function space").
"""
from __future__ import annotations

import math

#: Realizable teacher (no label noise): presets run until the slowest mode is within ~e^-10
#: of its value, so GD and every SGD run are each within ~e^-10 ||M|| of M, and by the
#: triangle inequality their relative distance is below 2 e^-10.
REALIZABLE_FUNCTION_TOL = 2 * math.exp(-10)


def sgd_function_tolerance(lr: float, depth: int, s1: float, label_noise: float, d_in: int, d_out: int,
                           batch_size: int, norm_gd: float) -> float:
    """3 sqrt(eta_max sigma^2 d_in d_out / (2 b)) / ||W_GD||_F, eta_max = lr L s_1^{2-2/L}.

    With label noise sigma, SGD fluctuates around GD's least-squares solution with stationary
    variance E||dW||_F^2 ~ (eta_max / 2) sigma^2 d_in d_out / b (linearized SGD with the
    largest kernel step eta_max = lr L s_1^{2-2/L}; Mandt, Hoffman & Blei 2017). Three
    standard deviations relative to ||W_GD||_F; scales with sqrt(lr) and sigma.
    """
    eta_max = lr * depth * s1 ** (2 - 2 / depth)
    return 3 * math.sqrt(eta_max * label_noise ** 2 * d_in * d_out / (2 * batch_size)) / norm_gd
