"""Power of the published family's bitten checks (issue 26).

- Diffusion peak: runs built from the modewise SDE's flow path u(t) (theory.published.variance_ode),
  each shifted by an escape jitter (the null: lead over the null 0, the SDE's ~0), plus a planted
  run-to-run variance bump centred a time d before the null's peak; measure.noise_metrics.diffusion_lead_check
  (what the claim calls) rejects d just above its mdd, accepts d well below, and rejects a variance
  that peaks after learning.
- Law of balance / Varre rate: measure.noise_metrics.ratio_check (what the claim calls on the
  measured / GD-path-predicted ratio per SGD run) rejects a ratio planted just above its mdd and
  accepts one well below; the GD-path prediction does not move when the SGD runs do.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dlncheck import presets, train
from dlncheck.config.data import make_problem
from dlncheck.measure import noise_metrics as nm
from dlncheck.theory import diffusion_peak as diffusion
from dlncheck.theory import gradient_noise as gn
from dlncheck.theory import published as pub

S_MODE, U0, DEPTH, RUNS = 2.0, 1e-2, 2, 8
TIMES = np.linspace(0, 6, 601)


def _runs(bump_shift: float, bump_size: float, seed: int = 0) -> tuple[torch.Tensor, float, float, float]:
    """(RUNS, K, 1) mode strengths: the flow path jittered in time, plus a zero-mean random-amplitude bump of width 0.1
    centred bump_shift before the flow's steepest point; also the SDE's lead, its sampling spread, t_steepest."""
    rng = np.random.default_rng(seed)
    sde = pub.variance_ode(S_MODE, U0, DEPTH, 1.0, 1.0, TIMES)
    fine = np.linspace(0, TIMES.max(), 20001)
    path = pub.variance_ode(S_MODE, U0, DEPTH, 1.0, 1.0, fine)["u"]
    shifts = 0.01 * rng.standard_normal(RUNS)
    bump = np.exp(-0.5 * ((TIMES - (sde["t_steepest"] - bump_shift)) / 0.1) ** 2)
    amplitude = rng.standard_normal((RUNS, 1))
    amplitude -= amplitude.mean()  # diffusion about the common path: the runs' mean path carries no bump
    u = np.stack([np.interp(TIMES - d, fine, path) for d in shifts]) + bump_size * amplitude * bump
    spread = diffusion.sde_peak_spread(S_MODE, U0, DEPTH, TIMES, RUNS, 0.05)
    return torch.from_numpy(u)[..., None], sde["t_steepest"] - sde["t_peak"], spread, sde["t_steepest"]


def _check(bump_shift: float, bump_size: float = 0.2):
    u, lead_sde, spread, _ = _runs(bump_shift, bump_size)
    s = torch.tensor([S_MODE], dtype=torch.float64)
    times = torch.from_numpy(TIMES)
    return nm.diffusion_lead_check(u, s, times, pub.LEARNED_FRACTION, ([lead_sde], [spread]))


def test_power_published_diffusion_lead_over_the_null():
    null = _check(0.0, bump_size=0.0)
    assert bool(null["matches_sde"][0]) and bool(null["before_learning"][0])  # pure jitter: the SDE's ~0 lead
    mdd = float(null["mdd"][0])
    above = _check(1.2 * mdd)
    assert not bool(above["matches_sde"][0]), (above["lead_over_null"], above["mdd"])
    below = _check(0.2 * mdd)
    assert bool(below["matches_sde"][0]), (below["lead_over_null"], below["mdd"])


def test_power_published_variance_peaking_after_learning():
    late = _check(-1.5, bump_size=0.5)  # a variance bump 1.5 after the steepest rise: after u = 0.9 s
    assert not bool(late["before_learning"][0]), (late["t_peak"], late["t_learned"])


def test_power_published_ratio_check():
    gen = torch.Generator().manual_seed(0)
    tol_rel = 0.01
    rejected = accepted = 0
    for seed in range(40):
        ratio = 1 + 0.005 * torch.randn(16, generator=gen, dtype=torch.float64)
        mdd = nm.ratio_check(ratio, tol_rel, n_boot=500, seed=seed)["mdd"]
        rejected += not nm.ratio_check(ratio * (1 + 1.05 * mdd), tol_rel, n_boot=500, seed=seed)["holds"]
        accepted += nm.ratio_check(ratio * (1 + 0.1 * tol_rel), tol_rel, n_boot=500, seed=seed)["holds"]
    assert rejected >= 38 and accepted >= 38


def test_power_published_balance_prediction_reads_gd_only():
    """The law-of-balance prediction from GD's path is the same whatever the SGD runs did."""
    exp = dataclasses.replace(presets.experiment("intermediate", "lowrank", 2), sgd_runs=2, steps=50)
    traj = train(exp, checkpoints=[0, 25, 50])
    problem = make_problem(exp)
    gd = [w[:1] for w in traj.weights]
    moved = [w.clone() for w in traj.weights]
    moved[0][1:] *= 1.5  # a planted change of every SGD run
    before = gn.expected_balance_drift(gd, exp, problem)
    after = gn.expected_balance_drift([w[:1] for w in moved], exp, problem)
    assert all(torch.equal(a, b) for a, b in zip(before, after))


def test_secular_premise_decides_which_path_the_drift_is_read_on():
    """claims.published_setups.secular_premise: at L = 2 a pair is inside the first-order premise
    exactly while theory.balance_drift.secular_share <= h (the share of the planted drift, computed by
    hand from the pair's Grams, sits on either side of h); at L = 3 the share is not derived and
    label noise (noise persisting at GD's minimum) puts every pair outside, noise-free labels inside."""
    from claims.published_setups import secular_premise
    from dlncheck.theory.balance_drift import secular_share

    exp = presets.experiment("intermediate", "lowrank", 2, label_noise=0.5)
    gen = torch.Generator().manual_seed(3)
    end = [torch.randn(exp.widths[l + 1], exp.widths[l], generator=gen, dtype=torch.float64) for l in range(2)]
    gram = max(float(torch.linalg.matrix_norm(end[0] @ end[0].mT)), float(torch.linalg.matrix_norm(end[1].mT @ end[1])))
    direction = torch.randn(exp.widths[1], exp.widths[1], generator=gen, dtype=torch.float64)
    direction /= torch.linalg.matrix_norm(direction)
    drift = [2.0 * gram * direction]  # y = 1
    share = secular_share(2.0 * gram, gram)
    shares, inside = secular_premise(drift, end, share * 1.01, exp)
    assert shares[0] == pytest.approx(share, rel=1e-12) and inside == [True]
    assert secular_premise(drift, end, share * 0.99, exp)[1] == [False]
    deep = presets.experiment("intermediate", "lowrank", 3, label_noise=0.5)
    layers = [torch.randn(deep.widths[l + 1], deep.widths[l], generator=gen, dtype=torch.float64) for l in range(3)]
    pairs = [torch.eye(deep.widths[1], dtype=torch.float64)] * 2
    assert secular_premise(pairs, layers, 10.0, deep) == ([None, None], [False, False])
    clean = presets.experiment("intermediate", "lowrank", 3)
    assert secular_premise(pairs, layers, 10.0, clean)[1] == [True, True]
