"""Rewrite the recorded numbers of the measured contradictions (claims/contradictions/*.toml) from a
run's results.json, quick or nightly tier alike (the run's own tier, from its meta):

    .venv/bin/python scripts/record_contradictions.py reports/results.json

Every case of that tier that the run strict-xfailed takes this run's numbers (each field of its
``numbers.<tier>`` that the case's verdict records, dlncheck.suite.contradictions.record). Cases
whose tracked numbers moved beyond their recorded band, XPASSes and failures are listed: read them
(and the notes, which a person wrote) before committing the rewrite.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dlncheck.suite.contradictions import record  # noqa: E402


def main(results: str) -> int:
    run = json.loads(Path(results).read_text(encoding="utf-8"))
    out = record(run, ROOT)
    print(f"{len(out['updated'])} contradictions of the {run['meta'].get('tier')} tier recorded from {results}")
    for label, key in (("moved beyond the band", "changed"), ("not a strict xfail", "not_xfailed")):
        for case in out[key]:
            print(f"  {label}: {case}")
    return 1 if out["not_xfailed"] else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
