"""What the run says about the golden path: the one place mapping verdicts to findings.

A claim's verdict says whether the theory's prediction held; the finding says what the data
say about the research question "does SGD follow GD's golden path?". Each record carries its
family as the suite declared it (``family`` and ``family_info``, from the test's ``family``
mark: group, question, the finding when the prediction holds / is contradicted, the published
results it reproduces); nothing here names a family. A claim overrides the reading per case
with ``claim.verdict(..., golden_path=...)``.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """A family as the report reads it from a record's ``family_info`` (defaults for a record without)."""

    group: str = "other"  # one of GROUPS
    if_holds: str = "n/a"  # finding when the prediction holds
    if_contradicted: str = "n/a"  # finding when the data contradict it
    question: str = ""  # what the family asks, one line
    results: tuple[tuple[str, str], ...] = ()  # (regex on "test[case]", result): a "reproduces" line each


A, D, F, NA = "agrees", "differs", "assumption-fails", "n/a"
GROUPS = ("golden path", "assumptions", "calibration", "saddles", "other")
LABEL = {A: "SGD follows GD", D: "SGD differs from GD", F: "theory's assumption fails", NA: "not about the golden path"}
SYMBOL = {A: "=", D: "≠", F: "!", NA: "·"}


def family(rec: dict) -> Family:
    """The record's family as declared by the suite (``family_info``); unknown fields keep their defaults."""
    info = rec.get("family_info") or {}
    return Family(
        group=info.get("group", "other"),
        if_holds=info.get("if_holds", NA),
        if_contradicted=info.get("if_contradicted", NA),
        question=info.get("question", ""),
        results=tuple(tuple(r) for r in info.get("results", ())),
    )


def families(records: list[dict]) -> dict[str, Family]:
    """{family name: Family} of the records, in report order: by group (``GROUPS`` order, unknown
    groups last), then by name."""
    found: dict[str, Family] = {}
    for rec in records:
        found.setdefault(rec["family"], family(rec))

    def rank(name: str) -> tuple:
        group = found[name].group
        return (GROUPS.index(group) if group in GROUPS else len(GROUPS), group, name)

    return {name: found[name] for name in sorted(found, key=rank)}


def symbol(finding: str, holds: bool | None) -> str:
    """The cell's mark: the finding's symbol; for n/a cells whether the prediction held."""
    if finding != NA:
        return SYMBOL[finding]
    return {True: "✓", False: "✗", None: "·"}[holds]


XFAIL_MEANS = (
    "xfailed = a measured contradiction: the assertion stays as the theory states it, the "
    "data contradict it, and the case is a strict xfail (it turns into a failure, XPASS, "
    "the day the data agree)."
)
_CASE = re.compile(r"(?P<regime>[a-z]+)-(?P<teacher>[a-z]+)-L(?P<depth>\d+)")


def golden_path(rec: dict) -> str:
    """The record's finding: the claim's own ``golden_path`` if given, else the family default;
    ``n/a`` when the test did not reach a verdict (error, skip) or no verdict was recorded."""
    if rec.get("golden_path"):
        return rec["golden_path"]
    if rec.get("holds") is None or rec.get("outcome") in ("error", "skipped"):
        return NA
    fam = family(rec)
    return fam.if_holds if rec["holds"] else fam.if_contradicted


def case_key(rec: dict) -> tuple[str, str, str] | None:
    """(regime, teacher, depth) from the params or the case id, None for other cases."""
    p = rec.get("params") or {}
    if {"regime", "teacher", "depth"} <= set(p):
        return str(p["regime"]), str(p["teacher"]), str(p["depth"])
    m = _CASE.search(rec.get("case", ""))
    return (m["regime"], m["teacher"], m["depth"]) if m else None


#: the two clocks a GD-vs-SGD comparison is read on (``params["reading"]``), in the grid's order
CLOCKS = {"time": "equal time", "progress": "matched progress"}


def clock(rec: dict) -> str:
    """The clock the case reads its comparison on (``params["reading"]``), "" for a case with one reading."""
    return str((rec.get("params") or {}).get("reading") or "")


def comparisons(recs: list[dict]) -> list[list[dict]]:
    """A grid cell's records as comparisons: the readings of one test on one case side by side (equal time
    first, then matched progress), one list per (test, case without its reading suffix), in first-seen order."""
    out: dict[tuple[str, str], list[dict]] = {}
    for rec in recs:
        read = clock(rec)
        base = rec.get("case", "").removesuffix(f"-{read}") if read else rec.get("case", "")
        out.setdefault((rec["nodeid"].split("[")[0], base), []).append(rec)
    rank = {r: k for k, r in enumerate(("", *CLOCKS))}
    return [sorted(group, key=lambda r: rank.get(clock(r), len(rank))) for group in out.values()]


def _order(values, preferred) -> list:
    return sorted(values, key=lambda v: (preferred.index(v) if v in preferred else len(preferred), v))


def grid(records: list[dict], order: dict | None = None) -> dict:
    """Family x case grid: ``columns`` [(regime, teacher, depth)] (+ ``other``), regimes and teachers
    in the suite's ``order`` ({"regime": [...], "teacher": [...]}, the run's meta ``case_order``)
    then alphabetically; ``rows`` [(family, Family, {column: [comparison]})] in report order, a
    comparison being the readings of one test on one case side by side (:func:`comparisons`)."""
    order = order or {}
    keys = {k for r in records if (k := case_key(r)) is not None}
    columns: list[tuple[str, str, str] | str] = [
        (r, t, d)
        for r in _order({k[0] for k in keys}, order.get("regime", []))
        for t in _order({k[1] for k in keys}, order.get("teacher", []))
        for d in sorted({k[2] for k in keys}, key=int)
        if (r, t, d) in keys
    ]
    if any(case_key(r) is None for r in records):
        columns.append("other")
    cells: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        cells[rec["family"]][case_key(rec) or "other"].append(rec)
    rows = [
        (f, info, {col: comparisons(recs) for col, recs in cells[f].items()}) for f, info in families(records).items()
    ]
    return {"columns": columns, "rows": rows}


def xfail_reason(rec: dict) -> str:
    first = (rec.get("message") or "").split("\n", 1)[0]
    return first.removeprefix("data contradict the prediction: ").strip() or "(no reason given)"


def reproductions(records: list[dict]) -> list[dict]:
    """One line per tested result (the family's ``results``): whether it reproduces here, i.e. the
    prediction held, in how many of its cases that reached a verdict, with the golden-path reading.
    Entries: ``family``, ``result``, ``text``, ``records``."""
    lines = []
    for fam, info in families(records).items():
        recs = [r for r in records if r["family"] == fam]
        for pattern, result in info.results:
            hit = [r for r in recs if re.search(pattern, r["nodeid"].split("::")[-1])]
            decided = [r for r in hit if r.get("holds") is not None]
            if not hit:
                continue
            held = sum(bool(r["holds"]) for r in decided)
            said = (
                "reproduces"
                if decided and held == len(decided)
                else ("does not reproduce" if decided and held == 0 else "partly reproduces" if decided else "not run")
            )
            paths = Counter(golden_path(r) for r in decided if golden_path(r) != NA)
            path = f"; golden path: {', '.join(f'{LABEL[k]} ({n})' for k, n in paths.items())}" if paths else ""
            lines.append(
                {
                    "family": fam,
                    "result": result,
                    "records": hit,
                    "text": f"{result}: {said} ({held} of {len(decided)} cases{path})",
                }
            )
    return lines
