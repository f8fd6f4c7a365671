"""Claim family: the published results the protocol rests on, and those that compete with it.

Each case reproduces one headline result on this engine, with the prediction derived in
``dlncheck.theory.published`` and ``dlncheck.gradient_noise`` (derivations and citations there):

- diffusion peaks before learning (arXiv:2604.06366): saddle regime, per mode alpha, the
  run-to-run variance of u_alpha = u_alpha^T W v_alpha peaks before the mode is learned
  (u reaches LEARNED_FRACTION * s_alpha), for an ensemble of aligned / balanced / Gaussian small inits;
- stationary laws (arXiv:2604.06366): without label noise every SGD run collapses onto GD's
  fixed point; with label noise each mode's late-time law is a Gaussian (the modewise SDE's
  Boltzmann law near the minimum) of a predicted variance, at two learning rates;
- law of balance (arXiv:2308.06671): SGD moves D_l = W_{l+1}^T W_{l+1} - W_l W_l^T by the
  predicted noise drift toward noise balance, GD conserves D_l;
- rank deficiency (Varre, Sagitova & Flammarion, NeurIPS 2024): label-noise SGD shrinks
  det(Theta^T Theta), Theta = [W_1, W_2^T], at the predicted rate, GD keeps it.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sps

from dlncheck import Experiment, Init, Teacher, presets, spectra, stats
from dlncheck import diagnostics as dg
from dlncheck import gradient_noise as gn
from dlncheck.data import make_problem
from dlncheck.pytest_plugin import contradicted
from dlncheck.report import plots
from dlncheck.report.claim import Prediction
from dlncheck.theory import published as pub

LEVEL = 0.01          # family-wise level of each case's goodness-of-fit tests (Bonferroni over modes x lrs)
BOOT = dict(n_boot=2000, level=0.95)

PREDICTIONS = {
    "diffusion-peak": Prediction(
        "per init and mode: t_peak(Var_runs u_alpha) < t_learned (median SGD first time u_alpha >= 0.9 s_alpha)",
        "arXiv:2604.06366 Prop. (modewise SDE): the diffusion sigma(u)^2 ~ lambda(u)^2 (s-u)^2 peaks mid-escape and "
        "the drift contracts (f'(u) < 0) once u > u*, so the variance must fall before the mode is learned"),
    "stationary-collapse": Prediction(
        "no label noise: every SGD run reaches GD's fixed point; max |W_SGD - W_GD| <= 1e-9 s_1 at the end",
        "arXiv:2604.06366: without label noise G_b = (W - M) Sxx_b vanishes at M, so the stationary law is a point "
        "mass at gradient flow's fixed point; the run is long enough for exp(-lambda_min t) < 1e-12"),
    "stationary-boltzmann-shuffled": Prediction(
        "label noise: per mode, delta_alpha = u~^T (W - Syx) v~ ~ N(0, shuffled AR(1) variance) (KS, level 0.01 "
        "family-wise) at lr and lr/2, and Var(lr)/Var(lr/2) as predicted",
        "linearised modewise dynamics at the minimum with the engine's epoch-reshuffled batch noise (sums to 0 per epoch)"),
    "stationary-boltzmann-iid": Prediction(
        "label noise: per mode, delta_alpha ~ N(0, lr lambda v / (2 - lr lambda)) (Boltzmann at temperature ~ lr v / 2, "
        "KS at level 0.01 family-wise) at lr and lr/2, and Var(lr)/Var(lr/2) = (2 - lr lambda/2)/(2 - lr lambda) ~ 2",
        "arXiv:2604.06366's Boltzmann law: independent minibatches (the SDE's white noise), temperature ~ lr x noise / B"),
    "balance-noise": Prediction(
        "SGD: D_l(T) - D_l(t_0) = sum_k lr^2 E-drift (expected_balance_drift along the path): mean ratio over runs "
        "within its 95% CI + (lr lambda_max)^2 of 1; GD: ||D_l(T) - D_l(t_0)|| <= lr^2 sum_k (||W_l||^2 + ||W_{l+1}||^2) ||G_k||^2",
        "arXiv:2308.06671 law of balance: minibatch noise moves D_l by lr^2 (E g_{l+1}^T g_{l+1} - E g_l g_l^T) per step "
        "toward noise balance; GD's drift is the same identity with G -> 0"),
    "rank-deficiency": Prediction(
        "SGD: late-time slope of log det(Theta^T Theta) = logdet_rate (within CI + (lr lambda_max)^2); "
        "GD: |change| <= 2 sum_k -log(1 - lr^2 ||G_k||^2); sigma_min(Theta) ends lower under SGD",
        "Varre, Sagitova & Flammarion (NeurIPS 2024): Theta <- Theta (I - lr J) each step, det shrinks by "
        "prod (1 - lr^2 sigma_i(G)^2)^2; label noise keeps ||G|| > 0 at the minimum, GD's G -> 0"),
}
# measured contradictions (the lead moves these into claims/expectations.py when merging)
CONTRADICTIONS: dict[str, str] = {}

# ------------------------------------------------------------------------------ setups
N_SAMPLES, BATCH = presets.N_SAMPLES, presets.BATCH_SIZE
STATIONARY_NOISE = 0.5        # label-noise std, stationary cases
STATIONARY_RUNS = 32
BURN, WINDOW = 4000, 12000    # steps at the preset lr (scaled by lr0 / lr), fullrank L2 converges in ~1000
BALANCE_NOISE = 1.0
VARRE_TEACHER = Teacher(2, 5, (2.0, 1.0), seed=7)  # Varre et al.'s shape (k=2 outputs, p=5 inputs)
VARRE_WIDTHS = {2: 10, 3: (10, 4)}                 # Theta_1 = [W_1, W_2^T] tall: d_1 >= d_0 + d_2
VARRE_LR, VARRE_NOISE, VARRE_INIT = 0.02, 1.0, Init("gaussian", 0.3)
VARRE_STEPS = {"quick": 30000, "nightly": 120000}


def _ensemble(exp: Experiment) -> dict[str, Experiment]:
    """Aligned preset (the paper's assumption) and two random small inits of the same size."""
    random = presets.random_small_init(exp)
    return {"aligned": exp, "gaussian": random,
            "balanced": dataclasses.replace(random, init=Init("balanced", exp.init.scale, seed=1))}


def _varre(depth: int, tier: str, label_noise: float = VARRE_NOISE) -> Experiment:
    return Experiment(VARRE_TEACHER, depth, VARRE_WIDTHS[depth], VARRE_INIT, lr=VARRE_LR / depth,
                      steps=VARRE_STEPS[tier], batch_size=BATCH, n_samples=N_SAMPLES,
                      sgd_runs=presets.SGD_RUNS[tier], label_noise=label_noise)


def _case(kind: str, cid: str, *args, nightly: bool = False):
    name = f"{kind}-{cid}"
    marks = [pytest.mark.nightly] if nightly else []
    if name in CONTRADICTIONS:
        marks.append(contradicted(CONTRADICTIONS[name]))
    return pytest.param(*args, id=name, marks=marks)


def _verdict(claim, kind: str, holds: bool, observed: str, **numbers) -> None:
    row = PREDICTIONS[kind]
    claim.verdict(prediction=f"{row.prediction} [{row.reason}]", observed=observed, holds=holds,
                  exploratory=row.exploratory, reproduces="yes" if holds else "no", **numbers)


# ------------------------------------------------------------------ 1. diffusion peaks first
@pytest.mark.parametrize("depth", [_case("diffusion-peak", "saddle-lowrank-L2", 2),
                                   _case("diffusion-peak", "saddle-lowrank-L3", 3, nightly=True)])
def test_diffusion_peak(depth, preset, trajectory_cache, claim):
    base = preset("saddle", "lowrank", depth)
    teacher = base.teacher
    s = teacher.s[: teacher.rank]
    rows, per_init = [], {}
    for name, exp in _ensemble(base).items():
        traj = trajectory_cache(exp, checkpoints=dg.time_grid(exp.steps, n_linear=400, n_log=60))
        times = traj.checkpoint_steps.double() * exp.lr
        W = spectra.end_to_end(traj.weights)
        u = torch.diagonal(dg.mode_coefficients(W, teacher.U, teacher.V), dim1=-2, dim2=-1)[..., : len(s)]
        var = u[1:].var(0)                                          # (K, modes) over SGD runs
        t_peak = times[var.argmax(0)]
        learned = dg.first_time((u[1:] >= pub.LEARNED_FRACTION * s).movedim(1, -1), times)  # (S, modes)
        t_learned = learned.median(0).values
        per_init[name] = dict(t_peak=t_peak, t_learned=t_learned, times=times, var=var, u=u)
        for a in range(len(s)):
            rows.append({"init": name, "mode": a + 1, "s": float(s[a]), "t_peak": float(t_peak[a]),
                         "t_learned": float(t_learned[a]), "lead": float(t_learned[a] - t_peak[a])})
    table = pd.DataFrame(rows)
    # the modewise SDE's lead time (aligned init: u0 = scale^L per mode)
    problem = make_problem(base)
    q = gn.input_fourth_moment(problem, teacher.V[:, : len(s)], base.n_samples, base.batch_size)
    times = per_init["aligned"]["times"].numpy()
    sde = [pub.variance_ode(float(s[a]), base.init.scale ** depth, depth, base.lr, float(q[a]), times)
           for a in range(len(s))]
    aligned = table["init"] == "aligned"
    table.loc[aligned, "t_peak_sde"] = [m["t_peak"] for m in sde]
    table.loc[aligned, "t_learned_flow"] = [m["t_learned"] for m in sde]
    table.loc[aligned, "lead_sde"] = [m["t_learned"] - m["t_peak"] for m in sde]
    ok = bool((table["t_peak"] < table["t_learned"]).all())
    _diffusion_figure(claim, per_init, s, sde)
    claim.table(table, "peak_and_learning_times", caption="per init and mode: variance-peak and learning times")
    _verdict(claim, "diffusion-peak", ok,
             observed="lead t_learned - t_peak per (init, mode): "
                      + "; ".join(f"{r.init} {r.mode}: {r.lead:.2f}" for r in table.itertuples())
                      + f"; aligned, modewise SDE lead: {np.round(table.loc[aligned, 'lead_sde'].to_numpy(), 2).tolist()}",
             table=table.to_dict("list"))
    assert ok, f"variance peaks after learning for some (init, mode):\n{table}"


def _diffusion_figure(claim, per_init, s, sde):
    fig, axes = plots.figure(1, len(per_init), size=(4.4 * len(per_init), 3.4))
    for ax, (name, d) in zip(np.atleast_1d(axes), per_init.items()):
        for a in range(len(s)):
            line = ax.plot(d["times"], d["var"][:, a], label=rf"$\alpha={a + 1}$ ($s={float(s[a]):g}$)")[0]
            ax.axvline(float(d["t_peak"][a]), color=line.get_color(), linestyle=":", linewidth=1)
            ax.axvline(float(d["t_learned"][a]), color=line.get_color(), linestyle="--", linewidth=1)
            if name == "aligned":
                scale = float(d["var"][:, a].max()) / max(float(sde[a]["V"].max()), 1e-300)
                ax.plot(d["times"], sde[a]["V"] * scale, color=line.get_color(), alpha=0.4, linewidth=3)
        ax.set_yscale("log")
        ax.set_xlabel("time $t = \\eta k$")
        ax.set_ylabel(r"$\mathrm{Var}_{\mathrm{runs}}\, u_\alpha(t)$")
        ax.set_title(f"{name} init: peak (:) before learned (--)")
        ax.legend()
    claim.figure(fig, "variance_vs_time", caption="run-to-run variance of each mode strength under SGD; dotted: "
                 "its peak, dashed: median time the mode reaches 0.9 s; faint (aligned): the modewise SDE's "
                 "variance (linear-noise approximation), rescaled to the measured peak")
