"""Claim (published family; collected through claims/test_published.py, so its cases are
``test_published.py::...`` and its family is "published"): the law of balance (Ziyin, Li & Ueda,
arXiv:2308.06671) against the suite's own drift identity (dlncheck.theory.sgd, item 1), two
predictions of the same quantity E[D_l^SGD(T)] - D_l^GD(T), D_l = W_{l+1}^T W_{l+1} - W_l W_l^T, over an init ensemble:

- law of balance (LoB): the noise drift at each SGD run's own weights, accumulated along its own
  path: in the learning phase [0, T_GD] the full minibatch covariance c_B C_l(W_t^SGD) at every
  step (theory.sgd.drift_covariance, label residuals included; independent batches, as in the
  paper's SDE); in the label-noise phase (after GD has converged) the family's at-minimum drift
  gradient_noise.expected_balance_drift with the reshuffling term (test_law_of_balance's prediction);
- drift identity (DI): c_B lr^2 sum_t C_l(W_t^GD) on GD's path (theory.sgd.gd_path_drift), no SGD run.

Each is projected on DI's matrix P_l: x = <X, P_l> / ||P_l||^2 (DI's own x is 1). Intervals
(theory.sgd.truncation_tolerance and published_setups.curvature_term give the truncations):
a per-run quantity has the nested interval z sqrt(sum_i s_i^2 / R) / I around the mean of the I
per-init means (s_i: run-to-run sd within init i, R runs; the between-init spread is not noise,
each init has its own prediction), z Student-t at level 0.05 Bonferroni over the case's
3 (L-1) comparisons. Asserted per pair: |x_LoB - 1| <= z se_LoB + h_LoB + h_DI;
|x_meas - x_LoB| <= z se_(meas - LoB, paired per run) + h_LoB; |x_meas - 1| <= z se_meas + h_DI,
with h_DI = lr lambda_max and h_LoB = lr lambda_max (learning phase, reshuffling term dropped) or
(lr lambda_max)^2 (label-noise phase, reshuffling term kept). In the label-noise window (GD on its
minimum set) the two DI comparisons of a pair are asserted only inside DI's first-order premise for
every init (published_setups.secular_premise: secular share <= h_DI at L = 2, vanishing noise at
L >= 3); outside it they are reported, and measured = LoB is asserted alone.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps

from claims import published_figures as figures
from claims.published_setups import BALANCE_NOISE, BALANCE_WINDOW, case, curvature_term, secular_premise, verdict
from dlncheck import Ensemble
from dlncheck.config.data import init_weights, make_problem
from dlncheck.measure import balance
from dlncheck.measure import noise_metrics as nm
from dlncheck.theory import gradient_noise as gn
from dlncheck.theory import sgd
from dlncheck.theory.gradient_noise import minibatch_factor

CASES = [
    case("drift-identity-learning", "intermediate-lowrank-L2", 2, "learning"),
    case("drift-identity-noise", "intermediate-lowrank-L2", 2, "noise"),
    case("drift-identity-learning", "intermediate-lowrank-L3", 3, "learning", nightly=True),
    case("drift-identity-noise", "intermediate-lowrank-L3", 3, "noise", nightly=True),
]
N_INITS = 3  # the preset's Gaussian init and two more seeds of the same scale
ALPHA = 0.05  # family-wise level of the case's comparisons
WINDOW_POINTS = 61  # checkpoints of the label-noise window (as test_law_of_balance)


def drift_runs(preset, tier, trajectory_cache, depth):
    """The law-of-balance case's experiment (label noise, GD converged at T_GD = preset steps, then
    the window from 2 T_GD) for N_INITS inits; checkpoints every step of the learning phase."""
    base = preset("intermediate", "lowrank", depth, label_noise=BALANCE_NOISE)
    start = 2 * base.steps
    exp = dataclasses.replace(base, steps=start + BALANCE_WINDOW[tier])
    ensemble = Ensemble(exp, inits=[dataclasses.replace(base.init, seed=base.init.seed + k) for k in range(N_INITS)])
    window = np.linspace(start, exp.steps, WINDOW_POINTS).round().astype(int)
    grid = sorted(set(range(base.steps + 1)) | set(window.tolist()))
    runs = trajectory_cache.ensemble(ensemble, checkpoints=grid)
    return ensemble, runs, base.steps, start


def phase_curves(exp, traj, phase, t_gd, start):
    """Per pair: P_l = c_B S_l (gd_path_drift) and, projected on it and cumulative from the phase
    start, measured (R-1, K): D_r(t) - D_GD(t) minus its value at the start, LoB (R-1, K) and DI on
    GD's checkpoints (K,, drawn only; the asserted DI is P_l itself); times (K,)."""
    problem = make_problem(exp)
    c_B, lr = minibatch_factor(exp.n_samples, exp.batch_size), exp.lr
    steps = traj.checkpoint_steps
    keep = (steps <= t_gd) if phase == "learning" else (steps >= start)
    W = [w[:, keep] for w in traj.weights]
    k = steps[keep].double()
    w0, n_steps = (init_weights(exp), t_gd) if phase == "learning" else ([w[0, 0] for w in W], int(k[-1] - k[0]))
    _, S = sgd.gd_path_drift(problem.X, problem.Syx, w0, lr, n_steps, labels=problem.Y)
    _, S_free = sgd.gd_path_drift(problem.X, problem.Syx, w0, lr, n_steps)  # label term dropped
    if phase == "learning":  # every step: exact sums
        C = sgd.drift_covariance(W, problem.X, problem.Syx, problem.Y)  # (R, K, d, d)
        lob = [c_B * lr**2 * torch.cat([torch.zeros_like(c[:, :1]), c[:, :-1].cumsum(1)], 1) for c in C]
        di = [c[0] for c in lob]  # run 0 is GD
    else:  # trapezoid over the window
        lob = [nm.accumulated_drift(d, k, lr**2, cumulative=True) for d in gn.expected_balance_drift(W, exp, problem)]
        C = sgd.drift_covariance([w[:1] for w in W], problem.X, problem.Syx, problem.Y)
        di = [c_B * nm.accumulated_drift(c, k, lr**2, cumulative=True)[0] for c in C]
    D = balance.balance_matrices(W)
    out = []
    for l, D_l in enumerate(D):
        P = c_B * S[l]
        extra = D_l[1:] - D_l[:1]
        extra = extra - extra[:, :1]

        def x(M, P=P):
            return (M * P).sum((-2, -1)) / P.square().sum()

        out.append(
            {
                "P": P,
                "measured": x(extra),
                "lob": x(lob[l][1:]),
                "di": x(di[l]),
                "cos": nm.projected_ratio(extra[:, -1], P)[1],
                "gd_end": [w[0, -1] for w in W],
                "D_gd_norm": float(D_l[0, -1].norm()),
                "di_noise_free": float(x(c_B * S_free[l])),
            }
        )
    return k * lr, out


def _none_low(share):
    """Sort key of a secular share: None (not derived) below every number."""
    return -np.inf if share is None else share


def nested(x: torch.Tensor):
    """Mean of the per-init means of x (I, R) and its nested standard error sqrt(sum s_i^2 / R) / I."""
    I, R = x.shape
    return float(x.mean(1).mean()), float(x.var(1).sum().sqrt() / (I * R**0.5))


def law_of_balance_vs_drift_identity(row, depth, phase, preset, tier, trajectory_cache, claim):
    """The case ``drift-identity-<phase>`` (its prediction ``row``): claims/test_published.py runs it."""
    ensemble, runs, t_gd, start = drift_runs(preset, tier, trajectory_cache, depth)
    exp = ensemble.experiment(0)
    per_init = [phase_curves(ensemble.experiment(i), runs[i], phase, t_gd, start) for i in range(len(ensemble))]
    times = per_init[0][0]
    h_di = sgd.truncation_tolerance(exp)
    h_lob = h_di if phase == "learning" else curvature_term(exp)
    n_cmp = 3 * (depth - 1)
    R = exp.sgd_runs
    z = float(sps.t.ppf(1 - ALPHA / (2 * n_cmp), len(ensemble) * (R - 1)))
    rows, checks, curves = [], {}, []
    # the label-noise window sits on GD's minimum set, the setting of the secular premise (published_setups)
    inside = [True] * (depth - 1)
    shares: list = [None] * (depth - 1)
    if phase == "noise":
        premise = [
            secular_premise([p["P"] for p in curves_i], curves_i[0]["gd_end"], h_di, exp) for _, curves_i in per_init
        ]
        inside = [all(ins[l] for _, ins in premise) for l in range(depth - 1)]
        shares = [max((sh[l] for sh, _ in premise), default=None, key=_none_low) for l in range(depth - 1)]
    for l in range(depth - 1):
        pairs = [curves_i[l] for _, curves_i in per_init]
        meas = torch.stack([p["measured"][:, -1] for p in pairs])  # (I, R)
        lob = torch.stack([p["lob"][:, -1] for p in pairs])
        m_meas, se_meas = nested(meas)
        m_lob, se_lob = nested(lob)
        m_diff, se_diff = nested(meas - lob)
        limits = {
            "LoB = DI": z * se_lob + h_lob + h_di,
            "measured = LoB": z * se_diff + h_lob,
            "measured = DI": z * se_meas + h_di,
        }
        gaps = {"LoB = DI": abs(m_lob - 1), "measured = LoB": abs(m_diff), "measured = DI": abs(m_meas - 1)}
        asserted = limits if inside[l] else {"measured = LoB": limits["measured = LoB"]}  # DI: outside its premise
        for name in asserted:
            checks[f"pair {l + 1}: {name}"] = gaps[name] <= limits[name]
        rows.append(
            {
                "pair": l + 1,
                "x_measured": m_meas,
                "se_measured": se_meas,
                "x_lob": m_lob,
                "se_lob": se_lob,
                "x_di": 1.0,
                "h_di": h_di,
                "h_lob": h_lob,
                "z": z,
                "norm_di": float(np.mean([float(p["P"].norm()) for p in pairs])),
                "norm_lob": float(np.mean([m_lob * float(p["P"].norm()) for p in pairs])),
                "norm_measured": float(np.mean([m_meas * float(p["P"].norm()) for p in pairs])),
                "cos_measured_di_min": float(min(float(p["cos"].min()) for p in pairs)),
                "di_over_D_gd": float(np.mean([float(p["P"].norm()) / p["D_gd_norm"] for p in pairs])),
                "di_in_premise": inside[l],
                "secular_share": np.nan if shares[l] is None else shares[l],
                "x_di_noise_free_labels": float(np.mean([p["di_noise_free"] for p in pairs])),
                **{f"limit {k}": v for k, v in limits.items()},
                **{f"gap {k}": v for k, v in gaps.items()},
                "x_measured_per_init": meas.mean(1).tolist(),
                "x_lob_per_init": lob.mean(1).tolist(),
            }
        )
        curves.append(
            {
                "measured": torch.cat([p["measured"] for p in pairs]),
                "lob": torch.cat([p["lob"] for p in pairs]),
                "di": torch.stack([p["di"] for p in pairs]),
                "limits": limits,
                "row": rows[-1],
                "failed": [k for k in asserted if not checks[f"pair {l + 1}: {k}"]],
            }
        )
    table = pd.DataFrame(rows)
    holds = all(checks.values())
    figures.drift_identity(claim, times, curves, phase)
    claim.table(
        table,
        f"drift_identity_{phase}",
        caption="E[D^SGD] - D^GD projected on the drift identity's "
        "prediction: measured, law of balance, drift identity, with their intervals",
    )
    resolved = bool((table["x_measured"].abs() > z * table["se_measured"]).all())
    verdict(
        claim,
        row,
        holds,
        observed="; ".join(
            f"pair {r.pair}: measured {r.x_measured:.3f} +- {r.z * r.se_measured:.3f}, LoB {r.x_lob:.3f} "
            f"+- {r.z * r.se_lob:.3f} (h {r.h_lob:.3f}), DI 1 (h {r.h_di:.3f}) in units of |DI| = {r.norm_di:.3g}; "
            f"|DI| / |D_GD| = {r.di_over_D_gd:.2f}; DI without the label term {r.x_di_noise_free_labels:.3f}"
            + ("" if r.di_in_premise else f"; DI outside its premise (secular share {r.secular_share:.3f}), reported")
            for r in table.itertuples()
        )
        + f"; failed: {[k for k, v in checks.items() if not v]}",
        golden_path="differs" if resolved else "agrees",
        key="x_lob_pair1",
        x_lob_pair1=float(table["x_lob"].iloc[0]),
        table=table.to_dict("list"),
        checks=checks,
    )
    failed = [k for k, v in checks.items() if not v]
    assert holds, f"law of balance vs drift identity ({phase}): failed {failed}\n{table}"
