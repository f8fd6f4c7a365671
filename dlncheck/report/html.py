"""Session summary: ``results.json`` (meta + one record per claim), ``index.html`` (the answer
and the findings grid first (:mod:`dlncheck.report.answer`), then the tested results, the measured
contradictions by root cause, changes, the filterable case table and provenance) and one page per case
(``claims/<folder>/index.html``). Jinja2 with autoescape on; every text passes
:func:`dlncheck.report.fmt.clean`, every number :func:`dlncheck.report.fmt.number`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from dlncheck.report import answer
from dlncheck.report import findings as fd
from dlncheck.report import history as hist
from dlncheck.report.claim import INDEX_THUMBS, folder_name
from dlncheck.report.contradiction import KINDS
from dlncheck.report.fmt import (
    brief,
    clean,
    number,
    prose,
    seconds,
)
from dlncheck.report.sparkline import sparkline
from dlncheck.store import atomic

_LOADER = PackageLoader("dlncheck.report", "templates")
_ENV = Environment(
    loader=_LOADER,
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["num"] = number
_ENV.filters["secs"] = seconds
_ENV.filters["prose"] = prose
_HIDDEN_META = {"started_ts", "not_run", "pid", "conflict", "status", "case_order"}
CASE_PAGE = "index.html"
#: the stylesheet and script every page links (written once at the report's root, not inlined into
#: each of hundreds of case pages: issue #27, a report that travels)
ASSETS = ("report.css", "report.js")
#: sortable columns of the case table: (sort key, header, hidden on narrow screens)
_COLUMNS = (
    ("family", "family", False),
    ("case", "case", False),
    ("regime", "regime", True),
    ("teacher", "teacher", True),
    ("depth", "L", True),
    ("reading", "finding / outcome", False),
)


def _common() -> dict:
    return {
        "labels": fd.LABEL,
        "symbols": fd.SYMBOL,
        "clocks": fd.CLOCKS,
        "xfail_means": fd.XFAIL_MEANS,
        "index_thumbs": INDEX_THUMBS,
    }


def view(rec: dict, root: Path, rank: dict[str, int]) -> dict:
    """A record plus what the templates show: finding, anchor, case page, local file names."""
    r = dict(rec)
    r["finding"] = fd.golden_path(rec)
    r["finding_class"] = "na" if r["finding"] == "n/a" else r["finding"]
    r["symbol"] = fd.symbol(r["finding"], rec.get("holds"))
    folder = rec.get("folder")
    r["anchor"] = f"case-{folder or folder_name(rec['nodeid'])}"
    r["page"] = f"claims/{folder}/{CASE_PAGE}" if folder and (root / "claims" / folder).is_dir() else None
    r["test"] = rec["nodeid"].split("::")[-1].split("[")[0]
    r["clock"] = fd.clock(rec)
    r["held"] = {True: "holds", False: "contradicted", None: "not reached"}[rec.get("holds")]
    key = fd.case_key(rec)
    r["regime"], r["teacher"], r["depth"] = key if key else ("other", "", "")
    r["family_rank"] = f"{rank.get(rec['family'], 999):03d}"
    r["question"] = fd.family(rec).question
    prefix = f"claims/{folder}/"
    arts = [
        {
            **a,
            "local": a["path"].removeprefix(prefix),
            "vector_local": (a.get("vector") or "").removeprefix(prefix) or None,
        }
        for a in rec.get("artifacts", [])
    ]
    r["figures"] = [a for a in arts if a["kind"] == "figure"]
    r["tables"] = [a for a in arts if a["kind"] == "table"]
    r["numbers"] = rec.get("numbers") or {}
    r["params"] = rec.get("params") or {}
    r["mdd"] = answer.mdd(r["numbers"])
    r["brief"] = brief(rec.get("message") or "")
    return r


def _grid(views: list[dict], order: dict | None) -> dict:
    g = fd.grid(views, order)
    cols = g["columns"]

    def spans(keyf):
        out: list[list] = []
        for c in cols:
            k = keyf(c)
            if out and out[-1][0] == k:
                out[-1][1] += 1
            else:
                out.append([k, 1])
        return out

    by_group: dict[str, list] = {}
    for fam, info, cells in g["rows"]:
        by_group.setdefault(info.group, []).append((fam, info, cells))
    return {
        "columns": cols,
        "regime_spans": spans(lambda c: c[0] if c != "other" else "other"),
        "teachers": spans(lambda c: (c[0], c[1]) if c != "other" else ("other", "")),
        "depths": [f"L{c[2]}" if c != "other" else "" for c in cols],
        "groups": [(grp, by_group[grp]) for grp in fd.GROUPS if grp in by_group],
    }


def render_index(
    records: list[dict], root: Path, meta: dict, changes: dict | None, history: Sequence[dict] = ()
) -> str:
    rank = {f: k for k, f in enumerate(fd.families(records))}
    views = sorted(
        (view(r, root, rank) for r in records),
        key=lambda v: (rank[v["family"]], v["regime"], v["teacher"], v["depth"], v["nodeid"]),
    )
    seen = set()
    for v in views:
        v["first_of_family"] = v["family"] not in seen
        seen.add(v["family"])
    grid = _grid(views, meta.get("case_order"))
    grid["teachers"] = [(t[1], n) for t, n in grid["teachers"]]
    by_id = {v["nodeid"]: v for v in views}
    if changes is not None:
        changes = {
            **changes,
            **{k: [{**c, "record": by_id[c["record"]["nodeid"]]} for c in changes[k]] for k in hist.KINDS},
        }
    trends = [(fam, counts[-1], sparkline(counts)) for fam, counts in hist.trends(list(history)).items()]
    readings = [(k, fd.LABEL[k]) for k in answer.READINGS if any(v["finding"] == k for v in views)]
    filters = [("reading", readings)] + [
        (name, [(s, s) for s in sorted({str(v[key]) for v in views if v[key] != ""}, key=lambda s: (len(s), s))])
        for name, key in (
            ("outcome", "outcome"),
            ("family", "family"),
            ("regime", "regime"),
            ("teacher", "teacher"),
            ("depth", "depth"),
        )
    ]
    clocks = [(k, text) for k, text in fd.CLOCKS.items() if any(v["clock"] == k for v in views)]
    if clocks:
        filters.append(("clock", clocks))
    filters.append(("exploratory", [("no", "no"), ("yes", "yes")]))
    provenance = [(k, v) for k, v in meta.items() if k not in _HIDDEN_META]
    groups = answer.contradiction_groups(views)
    return _ENV.get_template("index.html").render(
        meta=meta,
        records=views,
        grid=grid,
        changes=changes,
        trends=trends,
        runs=len(hist.runs(list(history))),
        headline=answer.headline(views),
        differs=answer.differs_groups(views),
        bars=answer.family_bars(views),
        contradiction_groups=groups,
        contradiction_kinds=answer.kind_line(groups),
        kinds=KINDS,
        columns=_COLUMNS,
        reproductions=fd.reproductions(views),
        filters=filters,
        provenance=provenance,
        attention=[v for v in views if v["outcome"] in ("failed", "error", "xpassed")],
        assets="",
        **_common(),
    )


def render_case(rec: dict, root: Path, meta: dict, past: Sequence[dict] = ()) -> str:
    """The case page; ``past``: the case's history lines, newest first, this run's included
    (:func:`dlncheck.report.history.by_case`), for its history table."""
    rank = {rec["family"]: 0}
    return _ENV.get_template("case.html").render(
        r=view(clean(rec), root, rank),
        meta=clean(meta),
        history=clean(list(past)),
        assets="../../",  # claims/<folder>/index.html -> the report's root
        **_common(),
    )


def results_text(meta: dict, records: list[dict]) -> str:
    """``results.json``: ``{"claims": [...], "meta": {...}}`` with one compact record per line and
    the meta indented; on a quick tier a fifth fewer bytes than indenting every record, and a
    case's record is still one line to grep."""
    claims = ",\n".join(json.dumps(r, sort_keys=True, default=str) for r in records)
    meta_text = json.dumps(meta, indent=2, sort_keys=True, default=str)
    return f'{{"claims": [\n{claims}\n],\n"meta": {meta_text}}}\n'


def write_report(
    records: list[dict],
    root: Path,
    meta: dict,
    *,
    changes: dict | None = None,
    case_pages: bool = True,
    history: Sequence[dict] = (),
) -> tuple[Path, Path]:
    """Render everything first, then write ``root/results.json``, the shared ``ASSETS``, each case
    page (when its folder exists) and ``root/index.html`` atomically; return (results, index) paths.

    ``records`` are the collector's claim records; ``meta`` the run's provenance (may be
    partial, e.g. for a merged report); ``changes`` from :func:`dlncheck.report.history.changes`;
    ``history`` the history lines with this run's (trends, case pages' history tables).
    """
    root = Path(root)
    records, meta = clean(records), clean({"status": "complete", **meta})
    html = render_index(records, root, meta, changes, history)
    pages = {}
    past = hist.by_case(list(history))
    if case_pages:
        for rec in records:
            folder = root / "claims" / rec["folder"] if rec.get("folder") else None
            if folder is not None and folder.is_dir():
                pages[folder / CASE_PAGE] = render_case(rec, root, meta, past.get(rec["nodeid"], []))
    results = atomic.write_text(root / "results.json", results_text(meta, records))
    for name in ASSETS:
        atomic.write_text(root / name, _LOADER.get_source(_ENV, name)[0])
    for path, text in pages.items():
        atomic.write_text(path, text)
    return results, atomic.write_text(root / "index.html", html)
