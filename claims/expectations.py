"""Case builders of the claim families: pytest parameters with readable ids, marked ``nightly``
where the quick tier leaves a case out (the tiers' sizes: :mod:`dlncheck.suite.tiers`), and the
runs of the cases that two families share (:func:`pattern_runs`).

A family declares itself, its question, its golden-path reading and its prediction rows once,
in its own test module (``FAMILY = Family(...)``, :mod:`dlncheck.suite.family`); its measured
contradictions are data in ``claims/contradictions/<family>.toml``, which the plugin turns into
strict xfails for the tier they were measured in (:mod:`dlncheck.suite.contradictions`).
Derivations of the predicted numbers live in :mod:`dlncheck.theory`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import pytest

from dlncheck import presets
from dlncheck.suite import init_ensembles
from dlncheck.suite.tiers import NIGHTLY, QUICK

__all__ = [
    "cases",
    "deepest_quick",
    "ensemble_variants",
    "param",
    "pattern_cases",
    "pattern_case_id",
    "pattern_runs",
    "progress_quick",
    "progress_readings",
    "quick_depths",
    "table_cases",
    "WIDE",
    "at_preset_width",
    "wide",
]

#: a family's variants of one preset: (id suffix, extra parameter values)
Variants = Callable[[str, str, int], Iterable[tuple[str, tuple]]]
#: which presets (and variants) run in the quick tier: f(regime, teacher, depth, *values) -> bool
Quick = Callable[..., bool]


#: nightly re-reads of the ntk preset (lowrank teacher) at widths where it is lazy (issue #28 item 4; the
#: width law itself: claims/test_lazy_width.py): (depth, hidden width). L = 3 stops at 1024: its h x h
#: layers at 2048 hold 34 MB per run and checkpoint.
WIDE = ((2, 1024), (2, 2048), (3, 1024))


def wide(variants: Variants | None = None) -> Variants:
    """``variants`` (or the preset alone) at the preset's width, the last value ``None``, plus the
    same variants of the ntk-lowrank presets at each WIDE width of their depth (id suffix ``-w<h>``,
    last value h)."""

    def build(regime: str, teacher: str, depth: int):
        base = list(variants(regime, teacher, depth)) if variants else [("", ())]
        widths = [h for L, h in WIDE if L == depth] if (regime, teacher) == ("ntk", "lowrank") else []
        return [(s, (*v, None)) for s, v in base] + [(f"{s}-w{h}", (*v, h)) for h in widths for s, v in base]

    return build


def at_preset_width(quick: Quick) -> Quick:
    """``quick`` for the cases of :func:`wide` at the preset's width; the wide re-reads are nightly."""

    def choose(regime: str, teacher: str, depth: int, *values: object) -> bool:
        return values[-1] is None and quick(regime, teacher, depth, *values[:-1])

    return choose


def quick_depths(regime: str, teacher: str, depth: int, *values: object) -> bool:
    """Quick tier at the quick tier's depths."""
    return depth in QUICK.depths


def deepest_quick(regime: str, teacher: str, depth: int, *values: object) -> bool:
    """Quick tier at the deepest quick depth only (the costlier GD-vs-SGD pattern claims)."""
    return depth == QUICK.depths[-1]


def cases(
    *, regimes: Sequence[str] | None = None, quick: Quick = quick_depths, variants: Variants | None = None
) -> list:
    """``pytest.param(regime, teacher, depth, *values)`` for every preset of the nightly grid.

    Ids read ``saddle-lowrank-L3`` (plus a variant's suffix, e.g. ``-random``); cases for which
    ``quick`` is False carry ``pytest.mark.nightly``.
    """
    params = []
    for regime, teacher, depth in NIGHTLY.presets():
        if regimes is not None and regime not in regimes:
            continue
        cid = presets.case_id(regime, teacher, depth)
        for suffix, values in variants(regime, teacher, depth) if variants else [("", ())]:
            nightly = not quick(regime, teacher, depth, *values)
            params.append(param(cid + suffix, regime, teacher, depth, *values, nightly=nightly))
    return params


def ensemble_variants(regime: str, teacher: str, depth: int):
    """The init ensemble of every preset, plus the aligned control case in the saddle regime."""
    return [("", ("ensemble",))] + ([("-aligned", ("aligned",))] if regime == "saddle" else [])


def progress_readings(regime: str, teacher: str, depth: int):
    """Saddle: the random-init ensemble read at equal time (``-time``) and at matched progress
    (``-progress``), and the aligned control; other regimes: the ensemble at equal time. Values:
    (inits, reading)."""
    if regime != "saddle":
        return [("", ("ensemble", "time"))]
    return [(f"-{r}", ("ensemble", r)) for r in ("time", "progress")] + [("-aligned", ("aligned", "time"))]


def progress_quick(regime: str, teacher: str, depth: int, inits: str, reading: str) -> bool:
    """Quick tier: every quick depth for the matched-progress reading, the deepest otherwise."""
    return (quick_depths if reading == "progress" else deepest_quick)(regime, teacher, depth)


def pattern_cases() -> list:
    """rank_patterns and singular_patterns: every preset with its progress readings (values regime,
    teacher, depth, inits, reading, width), the quick tier at the preset width, the wide ntk
    re-reads nightly."""
    return cases(quick=at_preset_width(progress_quick), variants=wide(progress_readings))


def pattern_case_id(regime: str, teacher: str, depth: int, inits: str, reading: str, width: int | None) -> str:
    """The case id a :func:`pattern_cases` case's values give back to the claim."""
    suffix = (
        "-aligned" if inits == "aligned" else f"-{reading}" if regime == "saddle" else f"-w{width}" if width else ""
    )
    return presets.case_id(regime, teacher, depth) + suffix


def pattern_runs(preset, sizes, cache, regime: str, teacher: str, depth: int, inits: str, width: int | None):
    """(ensemble, runs) of a :func:`pattern_cases` case, as both pattern families read it:
    ``init_ensembles.case_runs`` of the case's preset (``preset``, ``sizes`` and ``cache``: the claim's
    fixtures of those names), settled in the saddle regime, a wide re-read where the case has a width."""
    return init_ensembles.case_runs(
        preset(regime, teacher, depth, width=width),
        inits,
        sizes.ensembles,
        cache,
        settle=regime == "saddle",
        wide=width is not None,
    )


def param(case_id: str, *values, nightly: bool = False):
    """``pytest.param(*values, id=case_id)``, marked ``nightly`` if asked (for families that build
    their own case ids: a seed scan, a sweep, named published results)."""
    return pytest.param(*values, id=case_id, marks=[pytest.mark.nightly] if nightly else [])


def table_cases(quick: Sequence, nightly: Sequence) -> list:
    """``pytest.param(row, id=row.id)`` for a family with its own case table (not presets)."""
    return [pytest.param(c, id=c.id) for c in quick] + [
        pytest.param(c, id=c.id, marks=pytest.mark.nightly) for c in nightly
    ]
