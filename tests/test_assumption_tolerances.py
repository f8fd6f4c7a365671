"""theory.tolerances lazy bounds against a simulated linear (kernel) model."""

import numpy as np
import pytest
import torch

from dlncheck.measure import events
from dlncheck.theory import tolerances


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lazy_movement_band_and_dwell_bound_hold_for_linear_model(seed):
    g = np.random.default_rng(seed)
    J = g.standard_normal((6, 40))  # Jacobian: 6 outputs, 40 parameters
    K = J @ J.T
    lam = np.linalg.eigvalsh(K)
    e0 = g.standard_normal(6) * 3
    theta0 = 5.0
    T = 12 / lam[0]
    t = np.linspace(0, T, 20001)
    w, V = np.linalg.eigh(K)
    e = (V * np.exp(-np.outer(t, w))[:, None, :]) @ (V.T @ e0)  # (len(t), 6)
    move = np.linalg.norm(J.T @ np.linalg.solve(K, e0 - e[-1])) / theta0
    lo, hi = tolerances.lazy_movement_band(np.linalg.norm(e0), np.linalg.norm(e[-1]), theta0, lam[0], lam[-1], 0.0)
    assert lo <= move <= hi
    loss = torch.as_tensor(0.5 * (e**2).sum(-1))[None]
    level = float(loss[0, len(t) // 50])  # a level the loss passes through
    dwell = events.dwell_times(loss, torch.as_tensor(t), [level], 0.05)[0, 0].item() / T
    assert 0 < dwell <= tolerances.lazy_dwell_bound(0.05, lam[0], T, spacing=t[1] - t[0])
