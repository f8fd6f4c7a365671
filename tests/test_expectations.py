"""claims/expectations.py: every measured contradiction carries its own case's reason."""

import importlib.util
from collections import defaultdict
from pathlib import Path

from claims.expectations import CONTRADICTIONS, nightly_observed, reason_for, reasons


def test_no_reason_is_shared_across_regimes():
    """A reason names one case's numbers; the same text on cases of different regimes means it
    was copied (issue #10 item 5), in any family of the table."""
    regimes = defaultdict(set)
    for _, case, reason in reasons():
        regimes[reason].add(case.split("-")[0])
    shared = {reason[:80]: sorted(r) for reason, r in regimes.items() if len(r) > 1}
    assert not shared, f"contradiction reasons shared across regimes (write each case's own numbers): {shared}"


def test_reasons_carry_numbers():
    """Each reason quotes at least one measured number (a digit), not only prose."""
    vague = [(f, c) for f, c, r in reasons() if not any(ch.isdigit() for ch in r)]
    assert not vague, f"reasons without any measured number: {vague}"


def test_nightly_numbers_replace_quick_numbers_in_the_nightly_tier():
    """A plain (all-tier) reason quotes the quick run; where the nightly run's own numbers are
    recorded (claims/nightly_observed.json), the nightly tier's reason leads with them."""
    for family, cases in nightly_observed().items():
        for case, observed in cases.items():
            plain = CONTRADICTIONS[family][case]
            assert isinstance(plain, str), f"{family} {case}: recorded nightly numbers need a plain reason"
            assert any(ch.isdigit() for ch in observed)
            assert reason_for(family, case) == {
                "quick": plain,
                "nightly": (f"nightly ensemble: {observed}; the quick tier's reading: {plain}"),
            }


def test_nightly_numbers_are_recorded_for_quick_cases_only():
    """The nightly reason says "the quick tier's reading": only true of a case the quick tier runs in
    that family (a case id such as ntk-degenerate-L2 can be quick in one family, nightly-only in another)."""
    path = Path(__file__).resolve().parents[1] / "scripts" / "record_nightly.py"
    spec = importlib.util.spec_from_file_location("record_nightly", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    quick = script.quick_nodeids()
    for family, cases in nightly_observed().items():
        for case in cases:
            assert any(
                n.endswith(f"[{case}]") and family.startswith(Path(n.split("::")[0]).stem[len("test_") :])
                for n in quick
            ), f"{family} {case}: nightly numbers recorded for a nightly-only case"
