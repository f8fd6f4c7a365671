"""Random test networks shared by the analysis tests (runs on the leading axis, float64)."""

import numpy as np
import torch
from scipy.stats import ortho_group


def random_net(rng, dims, runs, checkpoints=1, scale=1.0):
    """Random weights, L tensors (runs, checkpoints, d_l, d_{l-1}), float64."""
    return [
        torch.as_tensor(scale * rng.standard_normal((runs, checkpoints, dims[l + 1], dims[l])))
        for l in range(len(dims) - 1)
    ]


def gauge_pair(rng, dims):
    """GD network and an 'SGD' copy W_l -> Q_l W_l Q_{l-1}^T with random hidden rotations."""
    gd = [rng.standard_normal((dims[l + 1], dims[l])) for l in range(len(dims) - 1)]
    Q = [np.eye(dims[0])] + [ortho_group.rvs(d, random_state=rng) for d in dims[1:-1]] + [np.eye(dims[-1])]
    sgd = [Q[l + 1] @ W @ Q[l].T for l, W in enumerate(gd)]
    return [torch.as_tensor(np.stack([a, b]))[:, None] for a, b in zip(gd, sgd)]
