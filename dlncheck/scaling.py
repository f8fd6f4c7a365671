"""GD-vs-SGD discrepancies of one trajectory as per-run features, for log-log scaling fits.

Each discrepancy is ``statistic(mean over SGD runs of per-run features)`` so that the bootstrap of
:func:`dlncheck.lr_sweep.fit_loglog` can resample runs (run 0 is GD, runs 1..S SGD):

- ``d_sigma``: sum over internal products P_ij ((i, j) != (1, L)) and learned modes k <= r of
  |mean_SGD s_ij,k - s^GD_ij,k| at the end, s = log sigma (protocol 1.3's d_sigma restricted to the
  learned modes of the internal products; the end-to-end product converges to M in both);
- ``balance_gap``: sum_l |mean_SGD r_l - r_l^GD| at the end (r_l the balance residual);
- ``theta_distance``: mean_SGD ||theta_SGD - theta_GD|| / ||theta_GD|| at the end;
- ``function_distance``: mean_SGD ||W_SGD - W_GD||_F / ||W_GD||_F at the end;
- ``function_distance_mid``: the same at half the training time (noise still acting);
- ``sigma_spread``: sqrt(sum over the d_sigma entries of the SGD variance) at the end.
"""
from __future__ import annotations

import numpy as np
import torch

from . import balance, compare, spectra
from .engine import Trajectory
from .theory.sgd import noise_factor


def internal_mask(L: int) -> torch.Tensor:
    """(L, L) boolean: i <= j and (i, j) != (1, L)."""
    mask = torch.triu(torch.ones(L, L, dtype=torch.bool))
    mask[0, L - 1] = False
    return mask


def internal_log_offsets(weights, n_modes: int) -> np.ndarray:
    """(S, n_internal * n_modes): s^SGD_ij,k - s^GD_ij,k for internal products, learned modes."""
    s = spectra.log_spectra(weights, n_modes).s                          # (R, L, L, n)
    off = (s[1:] - s[:1])[:, internal_mask(len(weights))]                # (S, n_int, n)
    return off.reshape(off.shape[0], -1).double().cpu().numpy()


def _abs_sum(means):
    return np.abs(means).sum(-1)


def _spread(means):
    half = means.shape[-1] // 2
    return np.sqrt(np.maximum(means[..., half:] - means[..., :half] ** 2, 0).sum(-1))


def _first(means):
    return means[..., 0]


STATISTICS = {"d_sigma": _abs_sum, "balance_gap": _abs_sum, "theta_distance": _first,
              "function_distance": _first, "function_distance_mid": _first, "sigma_spread": _spread}
NOISE_VARIABLES = {"lr*c_B": lambda lr, c: lr * c, "lr^3*c_B": lambda lr, c: lr ** 3 * c}


def features(traj: Trajectory, name: str, end: int = -1, mid: int = 1) -> np.ndarray:
    """(S, F) per-run features of discrepancy ``name`` (see the module docstring)."""
    W = [w[:, end] for w in traj.weights]
    n = traj.teacher.rank
    if name == "d_sigma":
        return internal_log_offsets(W, n)
    if name == "sigma_spread":
        off = internal_log_offsets(W, n)
        return np.concatenate([off, off ** 2], axis=1)
    if name == "balance_gap":
        r = balance.balance_residuals(W)
        return (r[1:] - r[:1]).double().cpu().numpy()
    if name == "theta_distance":
        return compare.theta_ratio(W)[:, None].double().cpu().numpy()
    if name == "function_distance":
        return compare.function_distance(W)[:, None].double().cpu().numpy()
    if name == "function_distance_mid":
        return compare.function_distance([w[:, mid] for w in traj.weights])[:, None].double().cpu().numpy()
    raise ValueError(f"discrepancy={name!r} is invalid: choose one of {tuple(STATISTICS)}")


def noise_variable(kind: str, experiment) -> float:
    """lr * c_B or lr^3 * c_B of an experiment (c_B = (n - B) / (B (n - 1)))."""
    if kind not in NOISE_VARIABLES:
        raise ValueError(f"noise variable {kind!r} is invalid: choose one of {tuple(NOISE_VARIABLES)}")
    return NOISE_VARIABLES[kind](experiment.lr, noise_factor(experiment.n_samples, experiment.batch_size))
