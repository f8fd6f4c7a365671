"""The run's answer to "does SGD follow GD's golden path?" in a few lines, from the claim records
alone: the tally of golden-path readings and the measured contradictions grouped by root cause.
Pure functions, shared by the terminal summary (:mod:`dlncheck.report.collector`) and the report.
"""

from __future__ import annotations

from collections import Counter

from dlncheck.report.findings import A, D, F, golden_path

OUTCOMES = ("passed", "xfailed", "failed", "error", "xpassed", "skipped")
NO_CAUSE = "no recorded cause"


def headline(records: list[dict]) -> list[str]:
    """At most two lines: "SGD follows GD's path in X of Y comparisons, differs in Z" (a comparison
    is a case whose reading is follows or differs; cases where the theory's assumption fails are
    counted apart), then the outcomes as pytest spells them."""
    readings = Counter(golden_path(r) for r in records)
    follows, differs, fails = readings[A], readings[D], readings[F]
    first = f"SGD follows GD's path in {follows} of {follows + differs} comparisons, differs in {differs}"
    if fails:
        first += f"; the theory's assumption fails in {fails} more case{'s' * (fails != 1)}"
    outcomes = Counter(r["outcome"] for r in records)
    said = ", ".join(f"{outcomes[k]} {k}" for k in OUTCOMES if outcomes[k])
    return [first, f"{len(records)} cases: {said}"]


def contradiction_groups(records: list[dict]) -> list[dict]:
    """The measured contradictions (xfailed records) grouped by the ``cause`` of their
    contradiction entry, largest group first: ``{"cause", "text", "records"}`` each."""
    groups: dict[str, dict] = {}
    for rec in records:
        if rec["outcome"] != "xfailed":
            continue
        entry = rec.get("contradiction") or {}
        cause = entry.get("cause") or NO_CAUSE
        group = groups.setdefault(cause, {"cause": cause, "text": entry.get("cause_text", ""), "records": []})
        group["records"].append(rec)
    return sorted(groups.values(), key=lambda g: (-len(g["records"]), g["cause"]))


def group_line(group: dict) -> str:
    """One line for a contradiction group: its cause, how many cases, which (family/case)."""
    names = [f"{r['family']}/{r['case']}" for r in group["records"]]
    shown = ", ".join(names[:4]) + (f", +{len(names) - 4} more" if len(names) > 4 else "")
    return f"contradiction [{group['cause']}]: {len(names)} case{'s' * (len(names) != 1)} ({shown})"
