"""Power of the strict-saddle family's criticality check (issue 26): the check the claim calls,
theory.sampling.criticality_check, rejects a normal-form point moved off criticality by a planted
displacement whose gradient is just above its minimum detectable deviation, and accepts one well below.
Every residual block fixed at zero puts every chain on the same deterministic point: the claim
counts it once (saddles.count_distinct)."""

from __future__ import annotations

import numpy as np
import torch

from dlncheck.config.experiment import Teacher
from dlncheck.saddles import NormalForm, aligned_distances, certify, count_distinct, rank_signature
from dlncheck.theory import sampling as th

E_TOL = 1e-12  # the claim's critical-energy threshold (claims/test_strict_saddles.py)
EPS = float(np.finfo(np.float64).eps)


def _point(zeros=(1, 2, 3), chains=3):
    teacher = Teacher(4, 4, (3.0, 2.0, 1.5, 1.0), seed=0)
    nf = NormalForm(teacher.M, [0], [4, 5, 5, 4])
    Z = nf.zero_block_sample(zeros, chains=chains, seed=0)
    return nf, Z, teacher.M


def _check(weights, M):
    cert = certify(weights, M, method="dense")
    theta_norm = float(torch.sqrt(sum(w.double().square().sum() for w in weights)))
    return th.criticality_check([cert.grad_norm], [cert.h_norm], [theta_norm], EPS, E_TOL), cert


def _planted(nf, Z, M, target: float):
    """The point's weights moved along a fixed random direction so that ||grad L|| ~ target."""
    W = [w[0] for w in nf.weights(Z)]
    gen = torch.Generator().manual_seed(1)
    direction = [torch.randn(w.shape, generator=gen, dtype=w.dtype) for w in W]
    probe = 1e-4
    _, cert = _check([w + probe * d for w, d in zip(W, direction)], M)
    scale = probe * target / cert.grad_norm  # the gradient is linear in a small displacement
    return [w + scale * d for w, d in zip(W, direction)]


def test_power_strict_saddles_criticality_rejects_a_planted_displacement():
    nf, Z, M = _point()
    base, _ = _check([w[0] for w in nf.weights(Z)], M)
    assert base["holds"] and base["excess"] < 1e-3  # the normal form's point is critical
    mdd = float(base["mdd"][0])
    above, _ = _check(_planted(nf, Z, M, 1.5 * mdd), M)
    below, _ = _check(_planted(nf, Z, M, 0.1 * mdd), M)
    assert not above["holds"], above
    assert below["holds"], below


def test_power_strict_saddles_all_zero_blocks_are_one_fixed_point():
    nf, Z, _ = _point(chains=4)
    D = aligned_distances(Z)
    assert count_distinct(rank_signature(nf, Z), D) == 1
    nf2, Z2, _ = _point(zeros=(1, 2), chains=4)  # Z_3 free: the chains move apart
    assert count_distinct(rank_signature(nf2, Z2), aligned_distances(Z2)) > 1
