"""Record the nightly tier's own numbers for the quick-tier contradictions whose reason is one
plain string (claims/expectations.py ``reason_for``): reads a nightly run's results.json and writes
claims/nightly_observed.json, {family: {case id: the nightly verdict's "observed" text}}.

    .venv/bin/python scripts/record_nightly.py reports/results.json
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from claims.expectations import CONTRADICTIONS, NIGHTLY_OBSERVED_FILE  # noqa: E402


def quick_nodeids() -> set[str]:
    """Node ids of the quick tier's cases (pytest --collect-only): a case id such as
    ``ntk-degenerate-L2`` can be quick in one family and nightly-only in another."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "claims", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.strip() for line in out.splitlines() if "::" in line}


def main(results: str) -> None:
    run = json.loads(Path(results).read_text())
    if run["meta"].get("tier") != "nightly":
        raise SystemExit(f"{results} is a {run['meta'].get('tier')!r} run: give a nightly run's results.json")
    quick = quick_nodeids()
    recorded: dict[str, dict[str, str]] = {}
    for claim in run["claims"]:
        family, case = claim.get("family"), claim.get("case")
        if (
            isinstance(CONTRADICTIONS.get(family, {}).get(case), str)
            and claim.get("nodeid") in quick
            and claim.get("outcome") == "xfailed"
            and claim.get("observed")
        ):
            recorded.setdefault(family, {})[case] = claim["observed"]
    NIGHTLY_OBSERVED_FILE.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
    print(f"{sum(map(len, recorded.values()))} nightly observations -> {NIGHTLY_OBSERVED_FILE}")


if __name__ == "__main__":
    main(*sys.argv[1:])
