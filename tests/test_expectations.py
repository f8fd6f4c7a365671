"""claims/expectations.py: every measured contradiction carries its own case's reason."""
from collections import defaultdict

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
            assert reason_for(family, case) == {"quick": plain, "nightly": (
                f"nightly ensemble: {observed}; the quick tier's reading: {plain}")}
