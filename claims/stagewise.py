"""The stagewise prediction table (regime x teacher), shared by the unit-step growth and the
eps-sensitivity claims: which rank staircase each case must show, and why."""
from __future__ import annotations

import dataclasses

import torch

from dlncheck import stagewise



@dataclasses.dataclass(frozen=True)
class Prediction:
    growth: str            # "unit" | "multiplicity" | "none" | "weyl"
    text: str
    reason: str
    exploratory: bool = False


def prediction(regime: str, teacher: str) -> Prediction:
    """The visible prediction table (regime x teacher)."""
    if regime == "saddle" and teacher in ("lowrank", "fullrank"):
        return Prediction("unit", "rank 0 -> 1 -> ... -> r in unit steps, monotone, for GD and every SGD run",
                          "small init: distinct s_a escape one at a time, larger s first (Saxe 2014; Jacot 2021)")
    if regime == "saddle":
        return Prediction("multiplicity", "rank jumps by the multiplicity of each repeated s (levels 0, m1, m1+m2, ...)",
                          "equal singular values escape together: no preferred order inside a degenerate block")
    if regime == "ntk":
        return Prediction("none", "no stagewise growth: rank >= r from the first checkpoint",
                          "large init: W(0) is already full rank at the floor and moves lazily")
    return Prediction("weyl", "only Weyl: final rank >= #{a : s_a - ||W-M||_F > eps max(sigma_1, s_1)}",
                      "intermediate init: no theory of the growth pattern", exploratory=True)


def rank_levels(pred: Prediction, s: torch.Tensor) -> list[int]:
    return stagewise.multiplicity_levels(s) if pred.growth == "multiplicity" else list(range(int((s > 0).sum()) + 1))
