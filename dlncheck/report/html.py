"""Session summary: ``results.json`` (one record per claim) and ``index.html`` (Jinja2).

Autoescape is on, so parameter text such as ``<script>`` in a test id is shown as text.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from dlncheck import atomic

_ENV = Environment(loader=PackageLoader("dlncheck.report", "templates"),
                   autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)


def summarize_families(records: list[dict]) -> dict[str, Counter]:
    """Outcome counts per claim family, e.g. {"balance": Counter(passed=17, failed=1)}."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for rec in records:
        counts[rec["family"]][rec["outcome"]] += 1
    return dict(sorted(counts.items()))


def write_report(records: list[dict], root: Path, meta: dict) -> tuple[Path, Path]:
    """Write ``root/results.json`` and ``root/index.html`` atomically; return both paths."""
    records = sorted(records, key=lambda r: (r["family"], r["nodeid"]))
    meta = {**meta, "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    results = atomic.write_json(root / "results.json", {"meta": meta, "claims": records})
    families = summarize_families(records)
    grouped = {fam: [r for r in records if r["family"] == fam] for fam in families}
    html = _ENV.get_template("index.html").render(meta=meta, families=families,
                                                   grouped=grouped, total=Counter(
                                                       r["outcome"] for r in records))
    return results, atomic.write_text(root / "index.html", html)
