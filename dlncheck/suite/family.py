"""A claim family, declared once in its test module and marked on its tests.

``claims/test_<family>.py`` holds ``FAMILY = Family(name, question, ...)`` with the family's
prediction rows, and ``pytestmark = FAMILY.mark`` (the way pytest-benchmark groups by marker
rather than by file). The report reads a family only from that mark: its name, the question it
answers in the findings grid, its group, its golden-path reading (the finding when the prediction
holds, and when the data contradict it) and the published results it reproduces, so nothing in
:mod:`dlncheck.report` names a family. Its measured contradictions live beside the module in
``contradictions/<name>.toml`` (:mod:`dlncheck.suite.contradictions`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from dlncheck.report.claim import GOLDEN_PATH, Prediction
from dlncheck.report.findings import GROUPS

_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class Family:
    """``name``: a snake_case identifier (also the contradictions file's stem); ``question``: one
    line for the findings grid; ``group``: one of ``GROUPS``; ``if_holds`` / ``if_contradicted``:
    the golden-path reading of a case whose prediction holds / is contradicted (``GOLDEN_PATH``;
    a verdict may override it per case); ``predictions``: the family's rows (regime or case ->
    :class:`Prediction`); ``results``: (regex on "test[case]", result) for each published result
    the family reproduces (one "reproduces / does not reproduce" line each in the report)."""

    name: str
    question: str
    group: str = "other"
    if_holds: str = "n/a"
    if_contradicted: str = "n/a"
    predictions: Mapping[str, Prediction] = field(default_factory=dict, hash=False)
    results: tuple[tuple[str, str], ...] = ()

    def __post_init__(self):
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"Family name={self.name!r} is invalid: use a snake_case identifier, e.g. 'rank_patterns'")
        if self.group not in GROUPS:
            raise ValueError(f"Family {self.name!r}: group={self.group!r} is invalid: use one of {GROUPS}")
        for reading in ("if_holds", "if_contradicted"):
            if getattr(self, reading) not in GOLDEN_PATH:
                raise ValueError(
                    f"Family {self.name!r}: {reading}={getattr(self, reading)!r} is invalid: use one of {GOLDEN_PATH}"
                )

    @property
    def mark(self) -> pytest.MarkDecorator:
        """``pytest.mark.family(name, question=..., group=..., if_holds=..., if_contradicted=...,
        results=[...])``: plain data, copied into every record of the family's tests."""
        return pytest.mark.family(
            self.name,
            question=self.question,
            group=self.group,
            if_holds=self.if_holds,
            if_contradicted=self.if_contradicted,
            results=[list(r) for r in self.results],
        )
