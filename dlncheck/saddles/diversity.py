"""Diversity of sampled critical points modulo the hidden-layer gauge.

The residual blocks carry the gauge Z_l -> G_l Z_l G_{l-1}^{-1} (G_0 = I on inputs, G_L = I on outputs).
- `rank_signature`: ranks of every residual partial product Z_j...Z_i (1 <= i <= j <= L), invariant
  under any invertible gauge (the combinatorial stratum of the sample).
- `aligned_distances`: pairwise distances sqrt(sum_l ||O_l Za_l O_{l-1}^T - Zb_l||^2) minimised over
  orthogonal O_1..O_{L-1} by alternating orthogonal Procrustes (each O_l = U V^T from the SVD of its
  two coupling terms; Schoenemann 1966), all pairs in one batched program, relative to the mean norm.
- `invariant_features`: sorted singular values of every residual partial product, per chain (invariant
  under the orthogonal gauge); `spread`: mean pairwise distance of those features and its leave-one-out
  values (for a jackknife standard error).
- `count_distinct`: connected components of "distance <= tol" among samples with equal signatures.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse.csgraph import connected_components

from dlncheck.measure.gauge import procrustes_sweeps
from dlncheck.saddles.normal_form import NormalForm
from dlncheck.spectra import numerical_rank, partial_products


def rank_signature(nf: NormalForm, Z, tol: float = 1e-6) -> list[tuple]:
    """Per chain: tuple of numerical ranks of Z_j...Z_i, i <= j (Z blocks with chain axis)."""
    nf.check(Z)
    ranks = [
        numerical_rank(P, tol, atol=tol) if P.shape[-1] * P.shape[-2] else P.new_zeros(P.shape[0], dtype=torch.int64)
        for P in partial_products(Z).values()
    ]
    return [tuple(int(x) for x in row) for row in torch.stack(ranks, -1).cpu()]


def aligned_distances(Z, sweeps: int = 50, restarts: int = 32, seed: int = 0) -> np.ndarray:
    """(C, C) gauge-aligned relative distances between chains of Z (list of (C, m_l, n_l) blocks).

    The alternating scheme is non-convex: it runs from `restarts` orthogonal starts (identity + random
    Haar, seeded) for all pairs at once and keeps the best. With 8 restarts it stopped at a local minimum
    (relative distance 0.09) for 4 of 40 random gauge transforms of one sample; with 32, for none."""
    C = Z[0].shape[0]
    ia, ib = torch.triu_indices(C, C, 1)
    P = len(ia)
    A, B = [z[ia].repeat(restarts, 1, 1) for z in Z], [z[ib].repeat(restarts, 1, 1) for z in Z]
    g = torch.Generator().manual_seed(seed)
    O = []
    for z in Z[:-1]:
        n = z.shape[-2]
        haar = torch.linalg.qr(torch.randn(restarts * P, n, n, generator=g, dtype=z.dtype))[0].to(z.device)
        haar[:P] = torch.eye(n, dtype=z.dtype, device=z.device)
        O.append(haar)
    O, sq, _ = procrustes_sweeps(B, A, O, torch.zeros(restarts * P, dtype=Z[0].dtype, device=Z[0].device), sweeps)
    scale = 0.5 * (sum((z**2).sum((-2, -1)) for z in A) + sum((z**2).sum((-2, -1)) for z in B))
    best = torch.sqrt(sq / scale.clamp_min(1e-300)).reshape(restarts, P).amin(0).cpu()
    D = np.zeros((C, C))
    D[ia.numpy(), ib.numpy()] = best.numpy()
    return D + D.T


def count_distinct(signatures: list[tuple], D: np.ndarray, tol: float = 1e-3) -> int:
    """Number of gauge classes: components of the graph 'same signature and aligned distance <= tol'."""
    same = np.array([[a == b for b in signatures] for a in signatures])
    return int(connected_components((D <= tol) & same, directed=False)[0])


def invariant_features(nf: NormalForm, Z) -> torch.Tensor:
    """(C, F): singular values (descending) of every residual partial product Z_j...Z_i, i <= j, concatenated."""
    nf.check(Z)
    feats = []
    for i in range(nf.L):
        P = Z[i]
        for j in range(i, nf.L):
            if j > i:
                P = Z[j] @ P
            if P.shape[-1] * P.shape[-2]:
                feats.append(torch.linalg.svdvals(P))
    return torch.cat(feats, -1)


def spread(F) -> tuple[float, np.ndarray]:
    """Mean pairwise Euclidean distance of the rows of F (C, F), and its C leave-one-out values."""
    D = torch.cdist(F, F).double().cpu().numpy()
    C = D.shape[0]
    total = D.sum() / 2
    loo = (total - D.sum(1)) / ((C - 1) * (C - 2) / 2)
    return float(total / (C * (C - 1) / 2)), loo
