"""The suite's tiers: how big a run of the claims is (``pytest claims --tier quick|nightly``).

A tier is a set of sizes handed to the library, which takes sizes and never tiers: the SGD runs
of a preset (``presets.experiment(..., sgd_runs=S)``), the preset depths whose cases run, and the
init ensembles' sizes (:class:`dlncheck.suite.init_ensembles.Sizes`). Quick: the CI case list
(minutes on 2 cores); nightly: the full grid, 32 inits x 32 SGD runs where the claims use them.

``--tier`` has a third choice, weekly: the nightly sizes and every nightly case. The nightly run
itself leaves out its costliest cases, those over its time budget (:mod:`dlncheck.suite.time_budget`);
they run weekly. Both read the nightly tier's recorded contradictions (the same sizes).
"""

from __future__ import annotations

from dataclasses import dataclass

from dlncheck import presets
from dlncheck.suite.init_ensembles import Sizes


@dataclass(frozen=True)
class Tier:
    """The sizes of one tier."""

    name: str
    sgd_runs: int  # S of every preset
    depths: tuple[int, ...]  # preset depths whose cases run (the others are marked nightly)
    ensembles: Sizes

    def presets(self) -> list[tuple[str, str, int]]:
        """(regime, teacher, depth) of every preset of the tier."""
        return presets.cases(self.depths)


TIERS = {
    "quick": Tier("quick", sgd_runs=8, depths=(2, 3), ensembles=Sizes(saddle=8, other=4, check_sgd_runs=4)),
    "nightly": Tier("nightly", sgd_runs=32, depths=(2, 3, 4), ensembles=Sizes(saddle=32, other=8, check_sgd_runs=8)),
}
QUICK, NIGHTLY = TIERS["quick"], TIERS["nightly"]
#: ``--tier`` choice -> the tier whose sizes (and recorded contradictions) it runs
SIZES = {"quick": "quick", "nightly": "nightly", "weekly": "nightly"}


def tier(name: str) -> Tier:
    """The sizes of the ``--tier`` choice ``name``; ValueError naming the choices otherwise."""
    if name not in SIZES:
        raise ValueError(f"tier={name!r} is invalid: choose one of {tuple(SIZES)}")
    return TIERS[SIZES[name]]
