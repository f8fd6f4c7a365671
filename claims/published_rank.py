"""Claim (published family; collected through claims/test_published.py, so its cases are
``test_published.py::...`` and its family is "published"): where label-noise SGD leaves GD's
golden path for good (Varre, Sagitova & Flammarion, "SGD vs GD: Rank Deficiency in Linear
Networks", NeurIPS 2024), in the suite's rank-pattern terms: the rank pattern
r_ij = r_eps(P_ij) under the project's one rule (dlncheck.spectra, floor max(eps sigma_1(P_ij),
eps s_1), eps = scaling.RANK_EPS as the rank-pattern claims use).

Prediction (the paper's theory): GD conserves det(Theta^T Theta), Theta = [W_1, W_2^T], so GD's
rank pattern is preserved at every checkpoint; label-noise SGD shrinks the determinant, so the
spurious directions of W_1 (rank 5 at init, teacher rank 2) collapse and every SGD run's pattern
ends entrywise <= GD's with one entry lower. Recorded: the first time each run departs from GD's
pattern for good (noise_metrics.departure_times) and the fraction departed by the end.

Design (before the run, from the theory's rate): at a minimum the predicted rate of
log det(Theta^T Theta) is -2 lr f (1/n) sum_k (e_k^T A A^T e_k)(x_k^T B^T B x_k)
(gradient_noise.logdet_rate), proportional to f sigma_noise^2; the rank-deficiency case's
-0.0185 per unit time (B = 10, sigma = 1) would take ~10^3-10^4 time units to push a spurious
singular value from O(1) to the floor 2e-4. With B = 2 (f x 5.8) and sigma = 2 (x 4) the rate is
~23 x larger (-0.43); spread evenly over Theta's 5 spurious directions each shrinks at ~0.043 per
unit time and reaches the floor by t ~ ln(5e3) / 0.043 ~ 200; the run lasts t = 400 (2x margin).
At L = 3 (lr = 0.02 / 3, t = 267) the same pair's rate is -0.35: ~250 by the same count. Honest
note: the settings were checked on one pilot run per depth before being fixed here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch

from claims import published_figures as figures
from claims.published_setups import case, varre_experiment, verdict
from dlncheck import spectra
from dlncheck.measure import noise_metrics as nm
from dlncheck.measure import scaling, stats

CASES = [case("rank-departure", "varre-2x5-L2", 2), case("rank-departure", "varre-2x5-L3", 3)]
DEPARTURE = {"batch_size": 2, "label_noise": 2.0, "steps": 40000}


def rank_departure(exp, traj):
    """Rank patterns under the suite's rule, per-run departure times, and the spectrum of the product
    P_ij whose rank departs most often at the end (P_11 = W_1 if none)."""
    s1 = float(exp.teacher.s[0])
    svals = spectra.product_singular_values(traj.weights)
    patterns = spectra.rank_patterns_from_svals(svals, exp.depth, scaling.RANK_EPS, atol=scaling.RANK_EPS * s1).r
    times = traj.checkpoint_steps.double() * exp.lr
    t_dep = nm.departure_times(patterns, times)
    departed = int(torch.isfinite(t_dep).sum())
    moved = (patterns[1:, -1] != patterns[:1, -1]).sum(0)  # (L, L) runs per entry
    i, j = divmod(int(moved.flatten().argmax()), exp.depth) if bool(moved.any()) else (0, 0)
    sv = svals[(i + 1, j + 1)]
    floor = scaling.RANK_EPS * torch.maximum(sv[..., 0], torch.tensor(s1))
    return {
        "patterns": patterns,
        "times": times,
        "t_dep": t_dep,
        "departed": departed,
        "n_sgd": len(t_dep),
        "fraction_ci": stats.wilson_interval(departed, len(t_dep)),
        "sv": sv,
        "entry": (i + 1, j + 1),
        "floor": floor,
    }


def rank_departure_case(row, depth, tier, trajectory_cache, claim):
    """The case ``rank-departure`` (its prediction ``row``): claims/test_published.py runs it."""
    exp = dataclasses.replace(varre_experiment(depth, tier), **DEPARTURE)
    traj = trajectory_cache(exp, checkpoints=np.linspace(0, exp.steps, 201).round().astype(int).tolist())
    d = rank_departure(exp, traj)
    r = d["patterns"]
    gd_kept = bool((r[0] == r[0, :1]).all())
    end_gd, end_sgd = r[0, -1], r[1:, -1]
    below = (end_sgd <= end_gd).flatten(1).all(1) & (end_sgd < end_gd).flatten(1).any(1)
    checks = {
        "GD's rank pattern preserved (every checkpoint)": gd_kept,
        "SGD's pattern below GD's at the end (every run)": bool(below.all()),
    }
    holds = all(checks.values())
    figures.rank_departure(claim, d, f"B = {exp.batch_size}, label noise {exp.label_noise:g}")
    claim.table(
        pd.DataFrame(
            {
                "run": np.arange(1, exp.runs),
                "t_departure": d["t_dep"].numpy(),  # inf: not departed
                "rank_sum_end": end_sgd.sum((-2, -1)).numpy(),
                "below_gd_end": below.numpy(),
            }
        ),
        "departure_times",
    )
    finite = d["t_dep"][torch.isfinite(d["t_dep"])]
    numbers = {
        "t_departure_median": float(finite.median()) if len(finite) else None,
        "t_departure_range": [float(finite.min()), float(finite.max())] if len(finite) else None,
        "departed": d["departed"],
        "n_sgd": d["n_sgd"],
        "fraction_ci": list(d["fraction_ci"]),
        "pattern_gd_end": end_gd.tolist(),
        "patterns_sgd_end": sorted({str(p.tolist()) for p in end_sgd}),
        "departing_product": f"P_{d['entry'][0]}{d['entry'][1]}",
        "sigma_end": {"GD": d["sv"][0, -1].tolist(), "SGD_mean": d["sv"][1:, -1].mean(0).tolist()},
        "t_end": float(d["times"][-1]),
        "checks": checks,
    }
    verdict(
        claim,
        row,
        holds,
        observed=f"GD pattern {end_gd.tolist()} kept: {gd_kept}; SGD departs for good at t = "
        f"{numbers['t_departure_median']} (median; range {numbers['t_departure_range']}) of "
        f"{numbers['t_end']:.0f}; departed {d['departed']}/{d['n_sgd']} (95% Wilson "
        f"[{d['fraction_ci'][0]:.2f}, {d['fraction_ci'][1]:.2f}]); SGD end patterns "
        f"{numbers['patterns_sgd_end']}; failed: {[k for k, v in checks.items() if not v]}",
        golden_path="differs" if checks["SGD's pattern below GD's at the end (every run)"] else "agrees",
        key="t_departure_median",
        **numbers,
    )
    assert holds, f"rank departure: failed {[k for k, v in checks.items() if not v]}; {numbers}"
