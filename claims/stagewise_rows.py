"""The stagewise prediction rows shared by two claim families, unit_step_growth and
eps_sensitivity (one rule per regime, teacher and init), and the rank levels a staircase must visit.
A plain helper module: each family's test module imports it, neither imports the other."""

from __future__ import annotations

import torch

from dlncheck.measure import stagewise
from dlncheck.report.claim import Prediction


def stagewise_prediction(regime: str, teacher: str, init: str = "preset") -> Prediction:
    """The stagewise row (regime x teacher x init) shared by unit-step growth and eps sensitivity;
    ``kind`` is the predicted growth: "unit" | "multiplicity" | "coarse" | "none" | "weyl".

    ``init``: "aligned" (the saddle preset: every mode starts at the same u0), "random" (an
    ensemble of small balanced and Gaussian inits) or "preset" (the regime's own init). Two
    init-dependent rules are applied per init by the claim (theory/trap.py): a *balanced* init
    with det(W_0) det(M) < 0 traps GD below full rank (GD's staircase ends at r - 1, SGD's at
    r - 1 or r); an NTK init with det(W_0) det(M) < 0 must cross det W = 0, so "rank >= r
    throughout" becomes "rank >= r - 1 throughout, r at the end".
    """
    if regime == "saddle" and teacher in ("lowrank", "fullrank"):
        return Prediction(
            "rank 0 -> 1 -> ... -> r in unit steps, monotone, for GD and every SGD run of every init",
            "small init: distinct s_a escape one at a time, larger s first (Saxe 2014; Jacot 2021)",
            kind="unit",
        )
    if regime == "saddle" and init == "aligned":
        return Prediction(
            "GD jumps by the multiplicity of each repeated s (levels 0, m1, m1+m2, ... only); every SGD "
            "run visits the same levels in order (it may split a repeated block: timing)",
            "aligned init: the modes of a repeated s start with equal strength and GD keeps the "
            "symmetry, so they escape together; SGD's noise breaks the symmetry, which only "
            "reorders the sub-steps inside the block",
            kind="multiplicity",
        )
    if regime == "saddle":
        return Prediction(
            "GD and every SGD run share the staircase up to timing: monotone from 0 to r through every "
            "multiplicity level (0, m1, m1+m2, ...); inside a repeated block a run may split or jump",
            "random small init: the modes of a repeated s start with different strengths, so "
            "they escape at different times (ln(u_a/u_b)/(2s) apart at L=2) for GD too; which "
            "splits are resolved is timing, the long plateaus are the staircase",
            kind="coarse",
        )
    if regime == "ntk":
        return Prediction(
            "no stagewise growth: rank >= r from the first checkpoint (rank >= r - 1 throughout and r "
            "at the end where det(W_0) det(M) < 0)",
            "large init: W(0) is already full rank at the floor and moves lazily; a square W whose "
            "det sign disagrees with M's must pass through a singular W (theory/trap.py)",
            kind="none",
        )
    return Prediction(
        "only Weyl: final rank >= #{a : s_a - ||W-M||_F > eps max(sigma_1, s_1)}",
        "intermediate init: no theory of the growth pattern",
        exploratory=True,
        kind="weyl",
    )


def rank_levels(pred: Prediction, s: torch.Tensor) -> list[int]:
    """The rank levels a staircase must visit: 0..r (unit) or the cumulative multiplicities."""
    coarse = pred.kind in ("multiplicity", "coarse")
    return stagewise.multiplicity_levels(s) if coarse else list(range(int((s > 0).sum()) + 1))


def square_fullrank(teacher) -> bool:
    """A square teacher of full rank: where the det-sign rules of theory.trap apply."""
    return teacher.d_out == teacher.d_in == teacher.rank
