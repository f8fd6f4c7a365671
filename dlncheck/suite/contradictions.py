"""Measured contradictions as data: one TOML file per claim family, beside its test module.

``contradictions/<family>.toml`` (next to ``test_<family>.py``) lists the cases whose data
contradict the theory's prediction, one entry per case::

    [causes]  # root causes: a short key, shared by every entry with that cause, and its text
    reshuffle = "epoch-wise reshuffling cancels each epoch's batch noise: the spread scales ~ lr"

    [kinds]   # what each cause is, one of dlncheck.report.contradiction.KINDS
    reshuffle = "genuine"

    [[case]]
    test = "test_scaling_slope"                  # the test function
    id = "function_distance-ntk-lowrank-L2"      # the case (pytest parameter id)
    cause = "reshuffle"
    reason = "slope {slope:.2f} [{slope_lo:.2f}, {slope_hi:.2f}] vs predicted {slope_predicted:g}"
    bands = { slope = 0.1 }   # numbers tracked: |this run's - recorded| > band x |recorded| is "changed"
    numbers.quick = { slope = 0.8174, slope_lo = 0.8119, slope_hi = 0.8227, slope_predicted = 0.5 }
    numbers.nightly = { slope = 0.826, slope_lo = 0.823, slope_hi = 0.83, slope_predicted = 0.5 }
    notes.nightly = "optional: what the numbers do not say, as read in that run"

The tiers of ``numbers`` are where the case is contradicted; there the plugin marks it a strict
xfail (AssertionError only: the assertion stays as the theory states it, and an XPASS fails the
suite the day data agree) whose reason renders the numbers into ``reason``. Numbers named as in
the case's verdict are rendered from each run's own verdict in the report and rewritten from a
``results.json`` by :func:`record` (``scripts/record_contradictions.py``), never typed into code.
"""

from __future__ import annotations

import functools
import json
import math
import string
import tomllib
from pathlib import Path

import pytest

from dlncheck.report.collector import CONTRADICTION_KEY
from dlncheck.report.contradiction import KINDS, render
from dlncheck.suite.tiers import SIZES, TIERS

FOLDER = "contradictions"
ENTRY_KEYS = {"test", "id", "cause", "reason", "bands", "numbers", "notes"}
PREFIX = "data contradict the prediction: "


def path_for(module: Path, family: str) -> Path:
    """The contradictions file of ``family``, whose tests live in ``module``."""
    return Path(module).parent / FOLDER / f"{family}.toml"


def _fail(path: Path, where: str, problem: str) -> None:
    raise ValueError(f"{path}: {where}: {problem} (format: dlncheck.suite.contradictions)")


def _check_entry(path: Path, n: int, entry: dict, causes: dict) -> None:
    where = f"[[case]] #{n + 1} ({entry.get('test')}[{entry.get('id')}])"
    missing = sorted(ENTRY_KEYS - {"notes"} - set(entry))
    if missing:
        _fail(path, where, f"missing {missing}")
    if set(entry) - ENTRY_KEYS:
        _fail(path, where, f"unknown keys {sorted(set(entry) - ENTRY_KEYS)}; use only {sorted(ENTRY_KEYS)}")
    if entry["cause"] not in causes:
        _fail(path, where, f"cause {entry['cause']!r} is not in [causes] {sorted(causes)}")
    bands = entry["bands"]
    if not bands or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and b >= 0 for b in bands.values()):
        _fail(path, where, f"bands = {bands!r}: name at least one number, each with a relative band >= 0")
    if not entry["numbers"] or set(entry["numbers"]) - set(TIERS):
        _fail(
            path, where, f"numbers names tiers {sorted(entry['numbers'])}: give numbers.<tier> for tiers {tuple(TIERS)}"
        )
    if set(entry.get("notes", {})) - set(entry["numbers"]):
        _fail(path, where, "notes.<tier> for a tier without numbers.<tier>")
    fields = {name for _, name, _, _ in string.Formatter().parse(entry["reason"]) if name}
    for tier, numbers in entry["numbers"].items():
        absent = sorted((fields | set(bands)) - set(numbers))
        if absent:
            _fail(path, where, f"numbers.{tier} lacks {absent} (named by the reason or the bands)")
        if any(not isinstance(v, (int, float, str)) for v in numbers.values()):
            _fail(path, where, f"numbers.{tier}: give plain numbers or strings")


@functools.cache
def load(path: Path) -> dict:
    """``{"causes": {key: text}, "kinds": {key: kind}, "cases": [entry, ...]}`` of a contradictions
    file (empty if absent), checked; ValueError naming the file, the entry and the fix."""
    if not Path(path).is_file():
        return {"causes": {}, "kinds": {}, "cases": []}
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML ({error})") from None
    if set(data) - {"causes", "kinds", "case"}:
        _fail(
            path,
            "top level",
            f"unknown tables {sorted(set(data) - {'causes', 'kinds', 'case'})}: use [causes], [kinds] and [[case]]",
        )
    causes, kinds, cases = data.get("causes", {}), data.get("kinds", {}), data.get("case", [])
    if set(kinds) != set(causes) or not set(kinds.values()) <= set(KINDS):
        _fail(
            path,
            "[kinds]",
            f"give each cause of [causes] one kind of {sorted(KINDS)} (missing {sorted(set(causes) - set(kinds))}, "
            f"unknown causes {sorted(set(kinds) - set(causes))}, unknown kinds "
            f"{sorted(set(kinds.values()) - set(KINDS))})",
        )
    seen = set()
    for n, entry in enumerate(cases):
        _check_entry(path, n, entry, causes)
        if (entry["test"], entry["id"]) in seen:
            _fail(path, f"[[case]] #{n + 1}", f"{entry['test']}[{entry['id']}] is listed twice")
        seen.add((entry["test"], entry["id"]))
    return {"causes": causes, "kinds": kinds, "cases": cases}


def entry_for(path: Path, family: str, test: str, case: str, tier: str) -> dict | None:
    """The contradiction of ``test[case]`` in ``tier`` (None if the case is not contradicted there):
    the entry's fields with ``numbers`` and ``note`` of that tier and the cause's text."""
    table = load(Path(path))
    for entry in table["cases"]:
        if (entry["test"], entry["id"]) == (test, case) and tier in entry["numbers"]:
            return {
                "family": family,
                "tier": tier,
                **{k: entry[k] for k in ("test", "id", "cause", "reason", "bands")},
                "cause_text": table["causes"][entry["cause"]],
                "kind": table["kinds"][entry["cause"]],
                "numbers": entry["numbers"][tier],
                "note": entry.get("notes", {}).get(tier, ""),
            }
    return None


def reason_text(entry: dict) -> str:
    """The strict xfail's reason: the statement from the recorded numbers, the note, the cause."""
    note = f"; {entry['note']}" if entry["note"] else ""
    return (
        f"{PREFIX}{render(entry['reason'], entry['numbers'])}{note} "
        f"(cause {entry['cause']}, {entry['kind']}: {entry['cause_text']})"
    )


def apply(items: list[pytest.Item], tier: str) -> None:
    """Mark every collected case that its family's file lists for ``tier`` as a strict xfail
    (AssertionError only) and hand the entry to the report (the item's stash)."""
    for item in items:
        mark = item.get_closest_marker("family")
        if mark is None or not hasattr(item, "callspec"):
            continue
        path = path_for(item.path, mark.args[0])
        entry = entry_for(path, mark.args[0], getattr(item, "originalname", item.name), item.callspec.id, tier)
        if entry is not None:
            item.add_marker(pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason_text(entry)))
            item.stash[CONTRADICTION_KEY] = entry


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(float(f"{value:.4g}")) if math.isfinite(value) else str(value)
    return json.dumps(str(value))


def numbers_line(tier: str, numbers: dict) -> str:
    """``numbers.<tier> = { a = 1, b = 0.25 }``: how a tier's numbers are written (one line)."""
    return f"numbers.{tier} = {{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in numbers.items()) + " }"


def rewrite(path: Path, updates: dict[tuple[str, str], dict], tier: str) -> None:
    """Replace, in the file, the ``numbers.<tier>`` line of each (test, id) in ``updates``."""
    lines = Path(path).read_text(encoding="utf-8").splitlines(keepends=True)
    entries = load(Path(path))["cases"]
    n, todo = -1, dict(updates)
    for i, line in enumerate(lines):
        if line.strip() == "[[case]]":
            n += 1
        elif n >= 0 and line.lstrip().startswith(f"numbers.{tier} ="):
            key = (entries[n]["test"], entries[n]["id"])
            if key in todo:
                lines[i] = numbers_line(tier, todo.pop(key)) + "\n"
    if todo:
        raise ValueError(f"{path}: no one-line numbers.{tier} = {{...}} for {sorted(todo)}; write it on one line")
    Path(path).write_text("".join(lines), encoding="utf-8")
    load.cache_clear()


def record(results: dict, root: Path) -> dict[str, list[str]]:
    """Rewrite the recorded numbers of every contradiction of the run's sizes (a weekly run records
    the nightly numbers: tiers.SIZES) from a ``results.json``
    (content) of a run made in ``root``: each field of ``numbers.<tier>`` that the case's verdict
    records takes this run's value (4 significant digits). Only strict xfails are recorded; an
    XPASS or a failure is listed for a person to read. Returns ``updated``, ``changed`` (a tracked
    number beyond its band: the reading moved, read the case before committing), ``not_xfailed``."""
    tier = SIZES.get(results["meta"].get("tier"), results["meta"].get("tier"))
    out: dict[str, list[str]] = {"updated": [], "changed": [], "not_xfailed": []}
    by_file: dict[Path, dict] = {}
    for rec in results["claims"]:
        module, _, rest = rec["nodeid"].partition("::")
        test = rest.split("[")[0]
        path = path_for(root / module, rec["family"])
        entry = entry_for(path, rec["family"], test, rec["case"], tier)
        if entry is None:
            continue
        name = f"{rec['family']}: {test}[{rec['case']}]"
        if rec["outcome"] != "xfailed":
            out["not_xfailed"].append(f"{name} ({rec['outcome']})")
            continue
        if (rec.get("contradiction") or {}).get("changed"):
            out["changed"].append(name)
        new = {
            k: rec["numbers"].get(k, v) if isinstance(rec["numbers"].get(k), (int, float, str)) else v
            for k, v in entry["numbers"].items()
        }
        by_file.setdefault(path, {})[(test, rec["case"])] = new
        out["updated"].append(name)
    for path, updates in by_file.items():
        rewrite(path, updates, tier)
    return out
