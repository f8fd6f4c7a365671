"""Shards (--shard K/N) and the merge of shard reports into one report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dlncheck.report.merge import merge
from dlncheck.suite import shard

ROOT = Path(__file__).resolve().parents[1]


@given(
    st.dictionaries(st.text("abc:/[]-", min_size=1, max_size=8), st.floats(0, 1e3), min_size=1, max_size=40),
    st.integers(1, 6),
)
def test_assign_partitions_and_balances(durations, n):
    """Every case in exactly one shard; the heaviest shard within Graham's LPT bound
    (4/3 - 1/(3n)) x OPT, with OPT >= max(total / n, longest case)."""
    owner = shard.assign(durations, durations, n)
    assert set(owner) == set(durations) and set(owner.values()) <= set(range(1, n + 1))
    loads = [sum(d for i, d in durations.items() if owner[i] == k) for k in range(1, n + 1)]
    lower = max(sum(durations.values()) / n, max(durations.values()))
    assert max(loads) <= (4 / 3 - 1 / (3 * n)) * lower + 1e-9


def test_unknown_durations_count_as_the_median():
    """d has no duration: it costs the median 1 s, so LPT puts b, c, d (3 s) beside a (10 s)."""
    owner = shard.assign(["a", "b", "c", "d"], {"a": 10.0, "b": 1.0, "c": 1.0}, 2)
    assert owner == {"a": 1, "b": 2, "c": 2, "d": 2}


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "a/b", "1/0", ""])
def test_parse_shard_rejects_bad_specs(text):
    with pytest.raises(ValueError, match="--shard"):
        shard.parse_shard(text)


CLAIMS = """
import pytest

@pytest.mark.parametrize("i", range(23))
def test_case(i):
    pass

@pytest.mark.nightly
@pytest.mark.parametrize("j", range(4))
def test_night(j):
    pass
"""


@pytest.mark.parametrize("tier", ["quick", "weekly"])
def test_shards_are_disjoint_and_cover_the_tier(pytester, tier):
    """For N = 1..5 the --shard K/N selections of the real plugin partition the tier (weekly: every
    case of the nightly sizes, the nightly tier's time budget aside)."""
    pytester.makeconftest('pytest_plugins = ["dlncheck.suite.plugin"]')
    pytester.makepyfile(test_claims=CLAIMS)
    (pytester.path / "claims").mkdir()
    (pytester.path / "claims" / "durations.json").write_text(json.dumps({"test_claims.py::test_case[3]": 50.0}))

    def selected(*args):
        result = pytester.runpytest_inprocess("--collect-only", "-q", "--tier", tier, *args)
        return {line for line in result.outlines if "::" in line}

    everything = selected()
    assert len(everything) == (27 if tier == "weekly" else 23)
    for n in range(1, 6):
        parts = [selected("--shard", f"{k}/{n}") for k in range(1, n + 1)]
        assert sum(len(p) for p in parts) == len(everything), n
        assert set().union(*parts) == everything, n


def test_bad_shard_is_a_usage_error(pytester):
    pytester.makeconftest('pytest_plugins = ["dlncheck.suite.plugin"]')
    pytester.makepyfile(test_claims=CLAIMS)
    result = pytester.runpytest_inprocess("--collect-only", "--shard", "3/2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--shard '3/2' is invalid*"])


def test_committed_durations_cover_the_nightly_tier():
    """claims/durations.json names real cases (regenerate with `dlncheck report durations`)."""
    durations = shard.load_durations(ROOT / shard.DURATIONS_FILE)
    assert durations, "claims/durations.json is missing"
    assert all(v >= 0 for v in durations.values())
    assert all(k.startswith("claims/") and "::" in k for k in durations)


TINY_CLAIMS = """
import pandas as pd
import pytest

@pytest.mark.parametrize("i", range(7))
def test_tiny(i, claim):
    claim.table(pd.DataFrame({"i": [i], "square": [i * i]}), "numbers")
    assert claim.verdict(prediction="i * i >= i", observed=f"{i * i}", holds=i * i >= i, square=i * i)
"""


def test_merged_shards_equal_an_unsharded_run(pytester, tmp_path):
    """Three shards, merged, give the records (ids, outcomes, verdicts, numbers) of one unsharded
    run of the same selection, every artifact link resolves, and merging twice changes nothing."""
    pytester.makeconftest('pytest_plugins = ["dlncheck.suite.plugin"]')
    pytester.makepyfile(test_claims=TINY_CLAIMS)

    def run(name, *args):
        reports = tmp_path / name
        result = pytester.runpytest_inprocess("-q", "--reports-dir", str(reports), "--no-cache", *args)
        assert result.ret == 0, result.outlines[-20:]
        return reports

    def key(results):
        return sorted(
            (r["nodeid"], r["outcome"], r["holds"], json.dumps(r["numbers"], sort_keys=True)) for r in results["claims"]
        )

    whole = json.loads((run("whole") / "results.json").read_text())
    shards = [run(f"shard{k}", "--shard", f"{k}/3") for k in (1, 2, 3)]
    assert all(json.loads((s / "results.json").read_text())["claims"] for s in shards)
    out = tmp_path / "merged"
    for _ in range(2):  # idempotent
        index = merge(shards, out)
        merged = json.loads((out / "results.json").read_text())
        assert key(merged) == key(whole) and len(merged["claims"]) == 7
        assert index.is_file()
        for record in merged["claims"]:
            for artifact in record["artifacts"]:
                assert (out / artifact["path"]).is_file(), artifact["path"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".merged")]  # no temporary left
    with pytest.raises(ValueError, match="disjoint"):
        merge([shards[0], shards[0]], tmp_path / "twice")


def test_merge_refuses_shards_of_different_tiers(tmp_path):
    for name, tier in (("a", "quick"), ("b", "nightly")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps({"meta": {"tier": tier}, "claims": []}))
    with pytest.raises(ValueError, match="tier 'nightly'.*merge shards of one run only"):
        merge([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    with pytest.raises(ValueError, match="no results.json"):
        merge([tmp_path / "missing"], tmp_path / "out")
