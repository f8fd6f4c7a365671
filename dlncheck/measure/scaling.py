"""GD-vs-SGD discrepancies of one trajectory as per-run features, for log-log scaling fits.

Each discrepancy is ``statistic(mean over SGD runs of per-run features)`` so that the bootstrap of
:func:`dlncheck.measure.lr_sweep.fit_loglog` can resample runs (run 0 is GD, runs 1..S SGD):

- ``d_sigma``: sum over internal products P_ij ((i, j) != (1, L)) and learned modes k <= r of
  |mean_SGD s_ij,k - s^GD_ij,k| at the end, s = log sigma (protocol 1.3's d_sigma restricted to the
  learned modes of the internal products; the end-to-end product converges to M in both);
- ``balance_gap``: sum_l |mean_SGD r_l - r_l^GD| at the end (r_l the balance residual);
- ``theta_distance``: mean_SGD ||theta_SGD - theta_GD|| / ||theta_GD|| at the end;
- ``function_distance``: mean_SGD ||W_SGD - W_GD||_F / ||W_GD||_F at the end;
- ``function_distance_mid``: the same at half the training time (noise still acting);
- ``sigma_spread``: sqrt(sum over the d_sigma entries of the SGD variance) at the end;
- ``d_r_plateau``: sum over GD's plateau checkpoints and products P_ij of |mean_SGD r_ij - r_ij^GD| /
  (number of those checkpoints): protocol 1.1's d_r averaged over GD's intermediate plateaus
  (checkpoints where GD's loss is within ARRIVAL_RTOL P_0 of a visited P_k, 0 < k < last), ranks with
  the suite's floor sigma > max(RANK_EPS sigma_1, RANK_EPS s_1);
- ``split_dwell``: |mean_SGD tau - tau^GD|, tau the time the end-to-end rank spends strictly inside
  the first repeated block of the teacher (r_1L in (k, k + multiplicity)), midpoint rule on the
  checkpoint grid (degenerate teachers only).
"""

from __future__ import annotations

import numpy as np
import torch

from dlncheck import spectra
from dlncheck.engine._train import Trajectory
from dlncheck.measure import balance, compare, events
from dlncheck.theory import stage_plateaus
from dlncheck.theory.gradient_noise import minibatch_factor

RANK_EPS = 1e-4  # the suite's rank floor (claims/test_rank_patterns.py EPS)


def internal_mask(L: int) -> torch.Tensor:
    """(L, L) boolean: i <= j and (i, j) != (1, L)."""
    mask = torch.triu(torch.ones(L, L, dtype=torch.bool))
    mask[0, L - 1] = False
    return mask


def internal_log_offsets(weights, n_modes: int) -> np.ndarray:
    """(S, n_internal * n_modes): s^SGD_ij,k - s^GD_ij,k for internal products, learned modes."""
    s = spectra.log_spectra(weights, n_modes).s  # (R, L, L, n)
    off = (s[1:] - s[:1])[:, internal_mask(len(weights))]  # (S, n_int, n)
    return off.reshape(off.shape[0], -1).double().cpu().numpy()


def _abs_sum(means):
    return np.abs(means).sum(-1)


def _spread(means):
    half = means.shape[-1] // 2
    return np.sqrt(np.maximum(means[..., half:] - means[..., :half] ** 2, 0).sum(-1))


def _first(means):
    return means[..., 0]


STATISTICS = {
    "d_sigma": _abs_sum,
    "balance_gap": _abs_sum,
    "theta_distance": _first,
    "function_distance": _first,
    "function_distance_mid": _first,
    "sigma_spread": _spread,
    "d_r_plateau": _abs_sum,
    "split_dwell": _abs_sum,
}
NOISE_VARIABLES = {
    "lr*c_B": lambda lr, c: lr * c,
    "lr^3*c_B": lambda lr, c: lr**3 * c,
    "lr^3*c_B^2": lambda lr, c: lr**3 * c**2,
}


def features(traj: Trajectory, name: str, end: int = -1, mid: int = 1) -> np.ndarray:
    """(S, F) per-run features of discrepancy ``name`` (see the module docstring)."""
    W = [w[:, end] for w in traj.weights]
    n = traj.teacher.rank
    if name == "d_sigma":
        return internal_log_offsets(W, n)
    if name == "sigma_spread":
        off = internal_log_offsets(W, n)
        return np.concatenate([off, off**2], axis=1)
    if name == "balance_gap":
        r = balance.balance_residuals(W)
        return (r[1:] - r[:1]).double().cpu().numpy()
    if name == "theta_distance":
        return compare.theta_ratio(W)[:, None].double().cpu().numpy()
    if name == "function_distance":
        return compare.function_distance(W)[:, None].double().cpu().numpy()
    if name == "function_distance_mid":
        return compare.function_distance([w[:, mid] for w in traj.weights])[:, None].double().cpu().numpy()
    if name in ("d_r_plateau", "split_dwell"):
        return _rank_features(traj, name)
    raise ValueError(f"discrepancy={name!r} is invalid: choose one of {tuple(STATISTICS)}")


def noise_variable(kind: str, experiment) -> float:
    """lr * c_B, lr^3 * c_B or lr^3 * c_B^2 of an experiment (c_B = (n - B) / (B (n - 1)))."""
    if kind not in NOISE_VARIABLES:
        raise ValueError(f"noise variable {kind!r} is invalid: choose one of {tuple(NOISE_VARIABLES)}")
    return NOISE_VARIABLES[kind](experiment.lr, minibatch_factor(experiment.n_samples, experiment.batch_size))


def _ranks(traj: Trajectory) -> torch.Tensor:
    """(R, C, L, L) rank patterns at every checkpoint, floor max(RANK_EPS sigma_1, RANK_EPS s_1)."""
    W = [w.flatten(0, 1) for w in traj.weights]  # (R * C, ...)
    s1 = float(traj.teacher.s[0])
    r = spectra.rank_patterns(W, RANK_EPS, atol=RANK_EPS * s1).r
    return r.reshape(traj.weights[0].shape[0], traj.weights[0].shape[1], *r.shape[1:])


def _first_row(t: torch.Tensor) -> np.ndarray:
    """GD's (run 0's) time axis: same_time sweeps share it across runs."""
    a = t.double().cpu().numpy()
    return a[0] if a.ndim == 2 else a


def plateau_checkpoints(traj: Trajectory) -> np.ndarray:
    """Checkpoint indices where GD's loss (interpolated to the checkpoint times) is within
    ARRIVAL_RTOL P_0 of an intermediate visited plateau P_k (0 < k < last)."""
    P = stage_plateaus(traj.teacher.s).numpy()[1:-1]
    loss = np.interp(
        _first_row(traj.checkpoint_times),
        _first_row(traj.times),
        traj.loss[0].double().cpu().numpy() - traj.loss_offset,
    )
    near = np.abs(loss[:, None] - P[None]) <= events.ARRIVAL_RTOL * float(stage_plateaus(traj.teacher.s)[0])
    return np.flatnonzero(near.any(1))


def repeated_block(s) -> tuple[int, int]:
    """(k, m): the first group of m >= 2 equal singular values starts after k larger ones."""
    s = np.asarray(s, dtype=float)
    for k in range(len(s) - 1):
        m = int(np.sum(np.isclose(s[k:], s[k], rtol=1e-9, atol=0)))
        if m >= 2 and s[k] > 0 and (k == 0 or not np.isclose(s[k - 1], s[k])):
            return k, m
    raise ValueError(f"teacher s={tuple(s)} has no repeated singular value: split_dwell needs a degenerate teacher")


def _rank_features(traj: Trajectory, name: str) -> np.ndarray:
    r = _ranks(traj).double().cpu().numpy()
    L = r.shape[-1]
    if name == "d_r_plateau":
        idx = plateau_checkpoints(traj)
        if len(idx) == 0:
            raise ValueError(
                "d_r_plateau: no checkpoint lies on a GD plateau; record more checkpoints (run_sweep time_fractions)"
            )
        upper = np.triu(np.ones((L, L), dtype=bool))
        diff = (r[1:, idx] - r[:1, idx])[..., upper]  # (S, n_idx, n_upper)
        return diff.reshape(diff.shape[0], -1) / len(idx)
    k, m = repeated_block(traj.teacher.s)
    inside = ((r[..., 0, L - 1] > k) & (r[..., 0, L - 1] < k + m)).astype(float)  # (R, C)
    t = _first_row(traj.checkpoint_times)
    dt = np.diff(t)
    weight = np.concatenate([dt[:1], dt[:-1] + dt[1:], dt[-1:]]) / 2
    tau = inside @ weight
    return (tau[1:] - tau[:1])[:, None]
