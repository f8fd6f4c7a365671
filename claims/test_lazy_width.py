"""Claim family: the lazy regime's width law (issue #28 item 4). As the hidden width h of the ntk
preset grows, every layer moves less: the largest relative movement
m(h) = max_l ||W_l(T) - W_l(0)|| / ||W_l(0)|| falls like h^-1/2 (dlncheck.theory.lazy_width).

Per case (teacher, depth): the ntk preset rebuilt at each width of the tier's grid (lr and steps
derived at that width, presets.experiment(width=h)), an ensemble of LeCun inits (seeds; twice the tier's
ensemble of the other regimes, 8 quick / 16 nightly: the exponent is resolved across inits, and 16
inits keep the nightly L = 3, h = 2048 case near 1 GB of checkpoints) with GD and one SGD run each,
checkpointed at the last step only. Per init, m is the mean over its runs at the end of training (runs nested in inits). The
fit ln m = ln A + p ln h + c h^-1/2 over every (width, init) point (measure.width_fits) asserts
|p + 1/2| <= t_{0.975, dof} SE (theory.lazy_width.exponent_band: the O(h^-1/2) finite-width bias is
the c term, so the band is statistical). Numbers: lazy_slope (p), its interval, the plain log-log
slope, and mdd_lazy_slope, the exponent error the test rejects with probability 0.95.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from claims import expectations
from dlncheck.measure import width_fits
from dlncheck.measure.escape_fits import loglog_slope
from dlncheck.report import plots
from dlncheck.report.claim import Prediction
from dlncheck.suite import init_ensembles
from dlncheck.suite.family import Family
from dlncheck.theory import lazy_width

FAMILY = Family(
    "lazy_width",
    question="is the ntk preset lazy: does the largest relative layer movement fall like width^-1/2?",
    group="assumptions",
    if_contradicted="assumption-fails",
    predictions={
        "ntk": Prediction(
            "fit ln m = ln A + p ln h + c h^-1/2 over widths and inits: |p + 1/2| <= t_(0.975, dof) SE "
            "(theory.lazy_width)",
            "LeCun init: the tangent kernel grows like h, the output layer moves O(h^-1/2) against its O(1) "
            "norm; the nonlinear flow departs from the linearised one by O(h^-1/2) relative (Jacot et al. "
            "2018; Chizat, Oyallon and Bach 2019; Lee et al. 2019)",
        )
    },
)
pytestmark = FAMILY.mark

QUICK_WIDTHS = (64, 128, 256, 512, 1024)
NIGHTLY_WIDTHS = (*QUICK_WIDTHS, 2048)
CASES = [
    expectations.param(f"ntk-{teacher}-L{depth}-w{widths[0]}-{widths[-1]}", teacher, depth, widths, nightly=nightly)
    for nightly, widths, teachers in (
        (False, QUICK_WIDTHS, ("lowrank",)),
        (True, NIGHTLY_WIDTHS, ("lowrank",)),
    )
    for teacher in teachers
    for depth in (2, 3)
]


def movements(preset, sizes, cache, teacher: str, depth: int, widths) -> tuple[np.ndarray, np.ndarray]:
    """(W, I) end-of-training max-layer movement per width and init: the mean over the init's runs,
    and GD's alone."""
    mean, gd = [], []
    for h in widths:
        exp = preset("ntk", teacher, depth, width=h)
        ens = init_ensembles.case_ensemble(
            exp, dataclasses.replace(sizes.ensembles, other=2 * sizes.ensembles.other), 1
        )
        trajs = cache.ensemble(ens, checkpoints=[exp.steps])
        moved = [traj.layer_movement()[:, -1].amax(-1) for traj in trajs]  # (R,) per init
        mean.append([float(m.mean()) for m in moved])
        gd.append([float(m[0]) for m in moved])
    return np.asarray(mean), np.asarray(gd)


@pytest.mark.parametrize("teacher, depth, widths", CASES)
def test_lazy_width_law(teacher, depth, widths, preset, sizes, trajectory_cache, claim):
    m, m_gd = movements(preset, sizes, trajectory_cache, teacher, depth, widths)
    fit, band, holds = width_fits.width_law_check(widths, m)
    plain = loglog_slope(np.repeat(widths, m.shape[1]), m.ravel())
    gd_fit = width_fits.width_law_fit(widths, m_gd)
    frame = pd.DataFrame(
        [
            {"width": h, "init": i, "movement_mean_over_runs": m[w, i], "movement_gd": m_gd[w, i]}
            for w, h in enumerate(widths)
            for i in range(m.shape[1])
        ]
    )
    claim.table(frame, "movement_per_width", caption="max-layer relative movement at the end, per width and init")
    _figure(claim, widths, m, fit, band)
    numbers = dict(
        lazy_slope=fit.exponent,
        lazy_slope_lo=fit.exponent - band,
        lazy_slope_hi=fit.exponent + band,
        lazy_slope_se=fit.se,
        lazy_slope_predicted=lazy_width.LAZY_EXPONENT,
        lazy_slope_gd=gd_fit.exponent,
        lazy_slope_plain=plain.exponent,
        lazy_correction=fit.offset,
        mdd_lazy_slope=lazy_width.min_detectable(fit.se, fit.dof),
        widths=list(widths),
        n_inits=m.shape[1],
        movement_at_widest=float(m[-1].mean()),
    )
    observed = (
        f"p = {fit.exponent:.3f} [{fit.exponent - band:.3f}, {fit.exponent + band:.3f}] over widths "
        f"{widths[0]}-{widths[-1]} x {m.shape[1]} inits (plain log-log slope {plain.exponent:.3f}, GD alone "
        f"{gd_fit.exponent:.3f}); movement {m[0].mean():.3g} at h = {widths[0]}, {m[-1].mean():.3g} at h = {widths[-1]}"
    )
    p = FAMILY.predictions["ntk"]
    claim.verdict(
        prediction=p.prediction,
        observed=observed,
        holds=holds,
        reason=p.reason,
        golden_path="agrees" if holds else "assumption-fails",
        key="lazy_slope",
        **numbers,
    )
    assert holds, f"the ntk preset is not lazy at the predicted rate: {observed}"


def _figure(claim, widths, m, fit, band):
    fig, ax = plots.figure(1, 1, size=(8.0, 4.0), margins={"right": 2.8})
    h = np.asarray(widths, dtype=np.float64)
    for i in range(m.shape[1]):
        ax.plot(
            h,
            m[:, i],
            color=plots.SGD_COLOR,
            alpha=0.35,
            marker=".",
            label="per init (mean over runs)" if i == 0 else None,
        )
    grid = np.geomspace(h[0], h[-1], 50)
    model = fit.constant * grid**fit.exponent * np.exp(fit.offset * grid**-0.5)
    ax.plot(grid, model, color="black", label=f"fit: p = {fit.exponent:.3f} +- {band:.3f}")
    anchor = fit.constant * h[-1] ** fit.exponent * np.exp(fit.offset * h[-1] ** -0.5)
    ax.plot(
        grid, anchor * (grid / h[-1]) ** lazy_width.LAZY_EXPONENT, color="tab:gray", linestyle="--", label="slope -1/2"
    )
    ax.set(xscale="log", yscale="log", xlabel="hidden width h", ylabel=r"$\max_l \|W_l(T)-W_l(0)\| / \|W_l(0)\|$")
    ax.set_xticks(h, [str(int(v)) for v in h])
    ax.minorticks_off()
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    claim.figure(fig, "width_law", caption="Largest relative layer movement against width; the asserted exponent -1/2")
