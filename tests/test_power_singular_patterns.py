"""Power of the singular_patterns family's check (claims/test_singular_patterns.py: evaluate): a
shifted singular value of one partial product in the SGD runs, at L = 3 on P_23.

The golden run's offsets (mean_SGD - GD of every top-r log singular value at the end) stand in for
theory.sgd.predicted_offsets, so the golden run agrees with its "prediction" exactly; the planted
shift moves the SGD mean of log sigma_1(P_23) away from it."""

from __future__ import annotations

import types

import torch

from claims.test_singular_patterns import evaluate
from dlncheck import presets, spectra
from dlncheck.config.data import init_weights
from dlncheck.measure.analysis import analyze
from dlncheck.theory import offset_band, sgd, split_premise
from tests import power

KEY, K = (2, 3), 0  # P_23, its largest singular value


def _golden():
    exp, traj = power.golden(depth=3)
    svals = {key: v[:, -1:].clone() for key, v in analyze(traj).svals.items()}  # the end checkpoint is asserted
    logs = spectra.log_spectra_from_svals(svals, exp.depth, 5).s[:, -1, ..., : exp.teacher.rank]
    return exp, svals, {"offsets": (logs[1:].mean(0) - logs[0]).numpy()}


def _planted(svals, log_sgd):
    out = {key: v.clone() for key, v in svals.items()}
    out[KEY][1:, 0, K] = log_sgd.exp()
    return types.SimpleNamespace(svals=out)


def _rejects(exp, svals, offsets, log_sgd) -> bool:
    return not bool(evaluate(exp, _planted(svals, log_sgd), offsets)["ok"][KEY[0] - 1, KEY[1] - 1, K])


def test_power_singular_patterns_rejects_a_shift_above_the_band_and_accepts_one_well_below():
    exp, svals, offsets = _golden()
    result = evaluate(exp, types.SimpleNamespace(svals=svals), offsets)
    assert result["holds"], "the golden run must agree with its own offsets"
    logs = svals[KEY][1:, 0, K].log()
    std = float(logs.std())
    n = result["entries"]
    tol = float(offset_band.offset_tolerance(torch.tensor(std), exp.sgd_runs, torch.tensor(0.0), 0.0, n))
    tol += sgd.truncation_tolerance(exp) * abs(float(offsets["offsets"][KEY[0] - 1, KEY[1] - 1, K]))
    for shift, rejected in ((1.05 * tol, True), (0.25 * tol, False)):
        assert _rejects(exp, svals, offsets, logs + shift) == rejected, f"log shift {shift:.3g} (band {tol:.3g})"


def test_power_singular_patterns_rejects_at_its_mdd_with_95_percent():
    exp, svals, offsets = _golden()
    gd = svals[KEY][0, 0, K].log()
    o = float(offsets["offsets"][KEY[0] - 1, KEY[1] - 1, K])
    std = float(svals[KEY][1:, 0, K].log().std())
    n = evaluate(exp, types.SimpleNamespace(svals=svals), offsets)["entries"]
    mdd = float(
        offset_band.offset_mdd(torch.tensor(std), exp.sgd_runs, torch.tensor(o), sgd.truncation_tolerance(exp), n)
    )

    def draw(shift):
        def rejects(rng):
            noise = torch.as_tensor(rng.standard_normal(exp.sgd_runs))
            return _rejects(exp, svals, offsets, gd + o + std * noise + shift)

        return rejects

    at_mdd, below = power.rejection_rate(draw(mdd)), power.rejection_rate(draw(mdd / 4))
    assert at_mdd >= power.MC_FLOOR, f"rejection at the mdd {mdd:.3g}: {at_mdd:.3f} < {power.MC_FLOOR:.3f}"
    assert below <= 0.5, f"a shift of mdd / 4 = {mdd / 4:.3g} is rejected in {below:.3f} of seeds"
    print(f"singular_patterns mdd {mdd:.4g} (log units; SGD std {std:.3g}): rejection {at_mdd:.3f}, mdd/4 {below:.3f}")


def test_power_split_premise_rejects_a_planted_imbalance_and_accepts_a_balanced_init():
    """The split's premise check (theory.split_premise, run on every init before the comparison):
    the saddle preset's balanced init passes; a rank-one imbalance planted in the middle layer,
    W_2 + sqrt(delta s_min^{2/L}) e e^T (D_1 and D_2 move by +-delta s_min^{2/L} e e^T, up to cross
    terms of the init's tiny scale), is rejected at delta = 1.5 h and accepted at delta = 0.5 h; the
    ntk preset's LeCun layers are rejected."""
    exp = presets.experiment("saddle", "lowrank", 3)
    W = init_weights(exp)
    s_min, h = float(exp.teacher.s[exp.teacher.rank - 1]), sgd.truncation_tolerance(exp)
    assert split_premise.split_premise_holds(W, s_min, h), "the balanced init must meet the premise"
    e = torch.zeros(W[1].shape[0], dtype=W[1].dtype)
    e[0] = 1.0
    for delta, holds in ((1.5 * h, False), (0.5 * h, True)):
        planted = [W[0], W[1] + (delta * s_min ** (2 / 3)) ** 0.5 * torch.outer(e, e), W[2]]
        ratio = split_premise.balance_ratio(planted, s_min)
        assert split_premise.split_premise_holds(planted, s_min, h) == holds, f"delta {delta:.3g}: ratio {ratio:.3g}"
    ntk = presets.experiment("ntk", "lowrank", 3)
    assert not split_premise.split_premise_holds(init_weights(ntk), s_min, sgd.truncation_tolerance(ntk))
