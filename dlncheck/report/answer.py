"""The report's first screen: the answer to "does SGD follow GD's golden path?" in one line, where and
why SGD differs (grouped by root cause), one bar per family that accounts for every case, and the
measured contradictions grouped by the cause their entry names (:mod:`dlncheck.suite.contradictions`).

Everything here reads records only (their golden-path reading, :func:`dlncheck.report.findings.golden_path`,
and their ``contradiction`` entry); nothing names a family.
"""

from __future__ import annotations

from collections import Counter

from dlncheck.report.findings import NA, A, D, F, case_key, families, golden_path, xfail_reason

READINGS = (A, D, F, NA)
#: numbers of a scaling fit, as a verdict names them: log-log slope of a GD-vs-SGD gap against the noise
#: variable lr c_B, its 95% interval and the derived exponent
SLOPE_KEYS = ("slope", "slope_lo", "slope_hi", "slope_predicted")
MDD_PREFIX = "mdd"  # a verdict's minimum detectable deviation(s): shown beside the verdict


def tally(records: list[dict]) -> Counter:
    """How many records read each way (every reading present, zero or not)."""
    counts = Counter({k: 0 for k in READINGS})
    counts.update(golden_path(r) for r in records)
    return counts


def headline(records: list[dict]) -> str:
    """One line, plain text: "SGD follows GD's path in X of Y comparisons, differs in Z", then the
    cases whose premise fails and those not about the golden path, so every case is accounted for."""
    c = tally(records)
    compared = c[A] + c[D]
    text = f"SGD follows GD's path in {c[A]} of {compared} comparisons, differs in {c[D]}"
    rest = [f"theory's assumption fails in {c[F]}"] if c[F] else []
    rest += [f"{c[NA]} {'case is' if c[NA] == 1 else 'cases are'} not about the golden path"] if c[NA] else []
    return text + (f" ({'; '.join(rest)})" if rest else "") + f"; {len(records)} cases in all."


def family_bars(records: list[dict]) -> list[dict]:
    """Per family (report order): ``family``, ``question``, ``total`` and ``parts`` [(reading, count,
    percent)] for each reading present; the counts add up to the family's cases."""
    out = []
    for fam, info in families(records).items():
        c = tally([r for r in records if r["family"] == fam])
        total = sum(c.values())
        parts = [(k, c[k], 100.0 * c[k] / total) for k in READINGS if c[k]]
        out.append({"family": fam, "question": info.question, "total": total, "parts": parts})
    return out


def _cause(rec: dict) -> tuple[str, str]:
    """(key, text) of the root cause of a record: its contradiction entry's cause, else ''."""
    c = rec.get("contradiction") or {}
    if c.get("cause"):
        return c["cause"], c.get("cause_text", "")
    return "", ""


def scaling(records: list[dict], among: list[dict]) -> list[dict]:
    """Records of ``among`` that fit a scaling slope (numbers ``SLOPE_KEYS``) for one of the case keys
    (regime, teacher, depth) of ``records``: the gap's scaling in lr and B where it was measured."""
    keys = {k for r in records if (k := case_key(r)) is not None}
    return [
        r
        for r in among
        if case_key(r) in keys and all(isinstance((r.get("numbers") or {}).get(k), (int, float)) for k in SLOPE_KEYS)
    ]


def differs_groups(records: list[dict]) -> list[dict]:
    """The cases where SGD differs from GD, grouped by root cause: a measured contradiction's cause;
    one group ``predicted`` for the cases where theory predicts the difference and it held; one per
    family for the rest (no recorded cause). Entries: ``cause``, ``text``, ``predicted``,
    ``families``, ``records``, ``slopes`` (slope fits for the same cases), largest group first."""
    groups: dict[str, dict] = {}
    for rec in records:
        if golden_path(rec) != D:
            continue
        cause, text = _cause(rec)
        predicted = not cause and rec.get("holds") is True
        if predicted:
            key, text = "", "theory predicts that SGD differs here, and the data agree"
        elif not cause:
            key = f"?{rec['family']}"
            text = f"{rec['family']}: " + (xfail_reason(rec) if rec["outcome"] == "xfailed" else rec["outcome"])
        else:
            key = cause
        g = groups.setdefault(key, {"cause": cause, "text": text, "predicted": predicted, "records": []})
        g["records"].append(rec)
    out = list(groups.values())
    for g in out:
        g["families"] = sorted({r["family"] for r in g["records"]})
        g["slopes"] = scaling(g["records"], records)
    return sorted(out, key=lambda g: (-len(g["records"]), g["cause"]))


def contradiction_groups(records: list[dict]) -> list[dict]:
    """Measured contradictions (xfailed) grouped by the root cause their entry names: ``cause``,
    ``text``, ``kind`` (the cause's kind, dlncheck.suite.contradictions.KINDS), ``entries`` [(record,
    statement from this run's numbers)]; a record without an entry is its own group under its xfail
    reason. Largest group first."""
    groups: dict[str, dict] = {}
    for rec in records:
        if rec["outcome"] != "xfailed":
            continue
        cause, text = _cause(rec)
        statement = (rec.get("contradiction") or {}).get("statement") or xfail_reason(rec)
        kind = (rec.get("contradiction") or {}).get("kind", "")
        key = f"{cause}/{kind}" if cause else f"?{rec['nodeid']}"  # one cause key may name two kinds in two families
        g = groups.setdefault(key, {"cause": cause, "text": text, "kind": kind, "entries": []})
        g["entries"].append((rec, statement))
    return sorted(groups.values(), key=lambda g: (-len(g["entries"]), g["cause"]))


def kind_line(groups: list[dict]) -> str:
    """How many measured contradictions each kind holds: "36 measured contradictions: 29 genuine, 4
    inapplicable, ..." (most first; a case without a recorded kind counts as "unclassified")."""
    counts: Counter[str] = Counter()
    for g in groups:
        counts[g["kind"] or "unclassified"] += len(g["entries"])
    parts = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    total = sum(counts.values())
    return f"{total} measured contradiction{'s' * (total != 1)}" + (f": {parts}" if total else "")


def mdd(numbers: dict) -> dict:
    """The verdict's minimum detectable deviations: every number whose name starts with ``mdd``."""
    return {k: v for k, v in (numbers or {}).items() if k.startswith(MDD_PREFIX)}


OUTCOMES = ("passed", "xfailed", "failed", "error", "xpassed", "skipped")


def outcome_line(records: list[dict]) -> str:
    """The outcomes as pytest spells them: "250 cases: 212 passed, 38 xfailed"."""
    outcomes = Counter(r["outcome"] for r in records)
    return f"{len(records)} cases: " + ", ".join(f"{outcomes[k]} {k}" for k in OUTCOMES if outcomes[k])


def group_line(group: dict) -> str:
    """One terminal line for a :func:`contradiction_groups` group: its cause, how many cases, which."""
    names = [f"{r['family']}/{r['case']}" for r, _ in group["entries"]]
    shown = ", ".join(names[:4]) + (f", +{len(names) - 4} more" if len(names) > 4 else "")
    cause = group["cause"] or "no recorded cause"
    return f"contradiction [{cause}]: {len(names)} case{'s' * (len(names) != 1)} ({shown})"
