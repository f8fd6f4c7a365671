"""A measured contradiction in a claim's record: its statement from this run's numbers, and whether
the numbers it tracks moved beyond their recorded bands.

The suite hands each contradicted case an entry (:mod:`dlncheck.suite.contradictions`): the
``reason`` template, the recorded ``numbers`` it renders, the root ``cause`` and its text, and
``bands`` {number: relative band}. :func:`judge` renders the statement from this run's verdict
numbers (recorded values where the verdict has none) and lists under ``moved`` every tracked
number with |value - recorded| > band |recorded|: a strict xfail that still fails, but no longer
as recorded ("6/8 inits" become "0/8"), is reported as ``changed``, not silently kept.
"""

from __future__ import annotations

import math
import string

#: the kind of each root cause (a contradictions file's ``[kinds]``), as the report groups them
KINDS = {
    "genuine": "the theory's premises hold in the case and its prediction fails",
    "artifact": "a clock or scope artifact: the reading compares what the theory does not predict",
    "finite-init": "an effect of the finite init scale or run length, expected to vanish as a0 -> 0",
    "inapplicable": "a premise of the asserted theory fails in the case: to be made exploratory",
}


def render(template: str, values: dict) -> str:
    """``template.format(**values)``, field by field: a missing field shows ``?``, a value its
    format spec does not take (a string, "nan") shows as written."""
    out = []
    for text, name, spec, _ in string.Formatter().parse(template):
        out.append(text)
        if name is None:
            continue
        if name not in values:
            out.append("?")
            continue
        try:
            out.append(format(values[name], spec or ""))
        except (TypeError, ValueError):
            out.append(str(values[name]))
    return "".join(out)


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def judge(entry: dict, numbers: dict) -> dict:
    """The record's ``contradiction``: ``entry`` plus ``statement`` (this run's numbers where the
    verdict records them), ``recorded_statement``, ``moved`` {number: [recorded, this run's]} and
    ``changed`` (any tracked number moved beyond its band)."""
    recorded = entry.get("numbers", {})
    run = {k: v for k, v in numbers.items() if k in recorded and v is not None}
    moved = {}
    for name, band in entry.get("bands", {}).items():
        value, was = _number(numbers.get(name)), _number(recorded.get(name))
        if value is not None and was is not None and abs(value - was) > float(band) * abs(was):
            moved[name] = [was, value]
    return {
        **entry,
        "statement": render(entry["reason"], recorded | run),
        "recorded_statement": render(entry["reason"], recorded),
        "moved": moved,
        "changed": bool(moved),
    }
