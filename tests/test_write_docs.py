"""scripts/write_docs.py: the docs' measured blocks come from benchmark JSON and a results.json."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("write_docs", ROOT / "scripts" / "write_docs.py")
write_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(write_docs)

ENGINE = {
    "S": 32,
    "L": 3,
    "d": 10,
    "n": 200,
    "B": 20,
    "dtype": "float64",
    "fused": True,
    "naive_us_per_run_step": 600.0,
    "engine_us_per_run_step": 2.0,
    "torch_path_us_per_run_step": 6.0,
    "ratio_vs_naive": 300.0,
    "torch_path_ratio_vs_naive": 100.0,
    "fused_vs_torch_path": 3.0,
}
BENCH = {
    "machine_info": {"cpu": {"brand_raw": "Test CPU", "count": 2}, "system": "Linux", "python_version": "3.11.7"},
    "commit_info": {"id": "abcdef1234567890", "dirty": False},
    "datetime": "2026-01-02T03:04:05.000000+00:00",
    "version": "5.3.1",
    "benchmarks": [
        {
            "name": "test_engine_vs_naive_per_run_step[S32]",
            "fullname": "tests/test_bench_engine.py::test_engine_vs_naive_per_run_step[S32]",
            "params": {"S": 32, "floor": 200.0},
            "extra_info": ENGINE,
            "stats": {"median": 0.01},
        },
        {
            "name": "test_sgld_step_time[1]",
            "fullname": "tests/test_bench_saddles.py::test_sgld_step_time[1]",
            "params": {"chains": 1},
            "extra_info": {"chains": 1, "seconds_per_step": 0.002, "seconds_per_chain_step": 0.002},
            "stats": {"median": 0.2},
        },
        {
            "name": "test_sgld_step_time[64]",
            "fullname": "tests/test_bench_saddles.py::test_sgld_step_time[64]",
            "params": {"chains": 64},
            "extra_info": {"chains": 64, "seconds_per_step": 0.004, "seconds_per_chain_step": 0.004 / 64},
            "stats": {"median": 0.4},
        },
        {
            "name": "test_engine_time_per_step_as_runs_grow",
            "fullname": "tests/test_bench_engine.py::test_engine_time_per_step_as_runs_grow",
            "params": None,
            "extra_info": {
                "S=8": {"us_per_step": 36.0, "us_per_run_step": 4.0},
                "S=1": {"us_per_step": 20.0, "us_per_run_step": 10.0},
            },
            "stats": {"median": 1.0},
        },
        {
            "name": "test_something_new",
            "fullname": "tests/test_bench_new.py::test_something_new",
            "params": None,
            "extra_info": {"speedup": 7.5},
            "stats": {"median": 0.25},
        },
    ],
}


# what each family's declaration (FAMILY = Family(...)) puts into its records
FAMILY_INFO = {
    "function_space": {"group": "golden path", "if_holds": "agrees", "if_contradicted": "differs"},
    "rank_patterns": {"group": "golden path", "if_holds": "agrees", "if_contradicted": "differs"},
    "rank_recovery": {"group": "calibration"},
}


def _record(family, case, outcome, holds, golden_path=None, message="", duration=1.0):
    return {
        "nodeid": f"claims/test_{family}.py::test_x[{case}]",
        "family": family,
        "family_info": FAMILY_INFO[family],
        "case": case,
        "params": {},
        "outcome": outcome,
        "holds": holds,
        "golden_path": golden_path,
        "message": message,
        "duration": duration,
    }


RESULTS = {
    "meta": {
        "tier": "quick",
        "status": "complete",
        "started": "2026-01-02T00:00:00+00:00",
        "duration_s": 185.0,
        "git_commit": "0123456789abcdef",
        "git_dirty": False,
        "command": "python -m pytest claims -n 2",
        "platform": "Linux-test",
        "python": "3.11.7",
        "torch": "2.13.0",
        "device": "auto (cpu)",
        "dtype": "float64",
        "trajectories": {"memory": 5, "disk": 2, "computed": 9},
    },
    "claims": [
        _record("function_space", "saddle-lowrank-L3", "passed", True, duration=10.0),
        _record("function_space", "saddle-fullrank-L3", "passed", True, duration=20.0),
        _record(
            "rank_patterns",
            "saddle-lowrank-L4",
            "xfailed",
            False,
            message="data contradict the prediction: SGD lags GD's escapes | by 1%\nAssertionError: ...",
            duration=30.0,
        ),
        _record("rank_patterns", "ntk-lowrank-L2", "failed", False, message="AssertionError: boom", duration=40.0),
        _record("rank_recovery", "gaussian", "passed", True, duration=0.5),
    ],
}
ALL_BLOCKS = (
    "benchmarks",
    "engine-scaling",
    "tier-time",
    "cache-use",
    "cache-constants",
    "findings",
    "readme-findings",
    "nightly",
)


def _docs(tmp_path: Path, names=ALL_BLOCKS) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in names:
        (docs / f"{name}.md").write_text(
            f"# {name}\n\nprose\n\n<!-- generated:{name} -->\nold\n<!-- /generated -->\n\ntail\n"
        )
    return docs


def _inputs(tmp_path: Path) -> list[str]:
    (tmp_path / "bench.json").write_text(json.dumps(BENCH))
    (tmp_path / "results.json").write_text(json.dumps(RESULTS))
    durations = {r["nodeid"]: r["duration"] for r in RESULTS["claims"]}
    (tmp_path / "durations.json").write_text(json.dumps(durations))
    return [
        "--bench",
        str(tmp_path / "bench.json"),
        "--results",
        str(tmp_path / "results.json"),
        "--durations",
        str(tmp_path / "durations.json"),
        "--note",
        "synthetic",
        "--results-note",
        "idle",
    ]


def _block(docs: Path, name: str) -> str:
    text = (docs / f"{name}.md").read_text()
    assert text.startswith(f"# {name}\n\nprose\n\n") and text.endswith("<!-- /generated -->\n\ntail\n")
    return text.split(f"<!-- generated:{name} -->\n")[1].split("<!-- /generated -->")[0]


def test_every_block_is_written_from_its_input_and_the_prose_is_kept(tmp_path):
    docs = _docs(tmp_path)
    assert write_docs.main([*_inputs(tmp_path), "--docs", str(docs)]) == 0

    bench = _block(docs, "benchmarks")
    assert "2026-01-02T03:04:05 UTC" in bench and "abcdef1234" in bench and "Test CPU, 2 logical CPUs" in bench
    assert "Conditions: synthetic" in bench
    rows = [line for line in bench.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| what | measured | baseline")
    engine, sgld, unknown = rows[1:]
    assert "S = 32 SGD runs" in engine and "| 2 us per run-step (fused C path); PyTorch path 6 us |" in engine
    assert "| 600 us per run-step | 300x (PyTorch path 100x; fused / PyTorch path 3x) | >= 200x" in engine
    assert "32x cheaper per chain-step" in sgld  # (0.002 / 1) / (0.004 / 64)
    assert "test_something_new" in unknown and "7.5x" in unknown

    scaling = _block(docs, "engine-scaling")
    assert scaling.index("| S = 1 | 20 | 10 |") < scaling.index("| S = 8 | 36 | 4 |")

    findings = _block(docs, "findings")
    assert "`quick`-tier run started 2026-01-02T00:00:00+00:00 (status complete) at commit 0123456789" in findings
    assert "| function_space | golden path | 2 | 2 | 0 | 0 | 0 | 2 | 0 | - |" in findings
    assert "| rank_patterns | golden path | 2 | 0 | 2 | 0 | 0 | 0 | 1 | 1 failed |" in findings
    assert "| all |  | 5 | 2 | 2 | 0 | 1 | 3 | 1 | 1 failed |" in findings
    assert "### Measured contradictions (1, by root cause)" in findings
    assert (
        "- **no recorded cause**, 1 case: rank_patterns `saddle-lowrank-L4`: SGD lags GD's escapes \\| by 1%"
        in findings
    )
    # the report's own headline
    assert (
        "SGD follows GD's path in 2 of 4 comparisons, differs in 2 (1 case is not about the golden path); "
        "5 cases in all." in findings
    )

    readme = _block(docs, "readme-findings")
    assert "From the `quick`-tier run at commit 0123456 " in readme
    assert "- SGD follows GD's path in 2 of 4 comparisons, differs in 2" in readme

    tier = _block(docs, "tier-time")
    assert tier.splitlines()[1] == "Conditions: idle"
    assert "5 cases (3 passed, 1 xfailed, 1 failed); wall time 3 min 5 s; summed case time 1 min 40 s." in tier
    assert tier.index("| rank_patterns | 2 | 1 min 10 s | 70 % | 40 s |") < tier.index("| function_space |")

    assert "| computed | 9 |" in _block(docs, "cache-use")
    assert "| `store.policy.MIN_SECONDS_PER_MB` |" in _block(docs, "cache-constants")

    nightly = _block(docs, "nightly")
    assert (
        "5 cases with a recorded duration (a case without one is not counted here), summed case time 1 min 40 s."
        in nightly
    )
    shards = [line for line in nightly.splitlines() if re.match(r"\| \d/8 \|", line)]
    assert len(shards) == 8 and shards[0] == "| 1/8 | 1 | 40 s |"  # write_docs.SHARDS, the workflow's count
    assert sum(int(line.split("|")[2]) for line in shards) == 5


def test_check_mode_writes_nothing_and_reports_a_stale_document(tmp_path, capsys):
    docs = _docs(tmp_path)
    args = [*_inputs(tmp_path), "--docs", str(docs)]
    before = (docs / "findings.md").read_text()
    assert write_docs.main([*args, "--check"]) == 1
    assert (docs / "findings.md").read_text() == before and "would rewrite" in capsys.readouterr().out
    assert write_docs.main(args) == 0
    assert write_docs.main([*args, "--check"]) == 0  # deterministic: a second run changes nothing


def test_a_block_without_input_keeps_its_text_and_a_block_without_marker_fails(tmp_path):
    docs = _docs(tmp_path, names=("findings", "benchmarks", "cache-constants", "nightly"))
    assert write_docs.main(["--docs", str(docs)]) == 0
    assert _block(docs, "findings") == "old\n" and _block(docs, "benchmarks") == "old\n"
    (tmp_path / "results.json").write_text(json.dumps(RESULTS))
    with pytest.raises(SystemExit, match="tier-time"):
        write_docs.main(["--results", str(tmp_path / "results.json"), "--docs", str(docs)])


def test_a_partial_run_is_flagged():
    partial = {**RESULTS, "meta": {**RESULTS["meta"], "status": "interrupted"}}
    assert "did not complete (interrupted)" in write_docs.findings_block(partial, Path("results.json"))


WIDTH = {
    "B": 20,
    "L": 3,
    "dtype": "float64",
    "rows": [
        {"shape": "square", "size": 8, "S": 32, "status": "ok", "dlncheck_us": 1.5, "jax_us": 4.5, "speedup": 3.0}
        | {"dlncheck_gflops": 7.0, "peak_share": 0.16, "path": "fused moment"},
        {"shape": "teacher", "size": 2048, "S": 1024, "status": "mis-posed here: 105 GB"},
    ],
}


def test_width_block_holds_every_row_and_copies_the_plot(tmp_path):
    docs = _docs(tmp_path, names=("width", "cache-constants", "nightly"))
    (tmp_path / "width.json").write_text(json.dumps(WIDTH))
    with pytest.raises(SystemExit, match="no plot"):
        write_docs.main(["--width", str(tmp_path / "width.json"), "--docs", str(docs)])
    (tmp_path / "width.png").write_bytes(b"png")
    assert write_docs.main(["--width", str(tmp_path / "width.json"), "--docs", str(docs)]) == 0
    block = _block(docs, "width")
    assert "| square d = 8 | 32 | 1.5 | 4.5 | 3x | 7 (16%) | fused moment |" in block
    assert "| teacher 10 x 10, hidden 2048 | 1024 |  |  |  |  | mis-posed here: 105 GB |" in block
    assert "![cost per run-step against width](width.png)" in block and (docs / "width.png").read_bytes() == b"png"


SHARD_COSTS = {
    "tier": "nightly",
    "shards": 2,
    "workers": 2,
    "commit": "abc1234",
    "machine": "2 cores, 24 GiB, x86_64",
    "rows": [
        {"shard": 2, "exit": 0, "wall_s": 600.0, "cpu_s": 1100.0}
        | {"peak_pss_gb": 6.5, "peak_rss_sum_gb": 7.25, "largest_process_gb": 4.0},
        {"shard": 1, "exit": 1, "wall_s": 300.0, "cpu_s": 500.0, "commit": "def5678"}
        | {"peak_pss_gb": 3.0, "peak_rss_sum_gb": 3.5, "largest_process_gb": 2.0},
    ],
}


def test_shard_costs_fill_the_nightly_table_and_the_readme_line(tmp_path):
    docs = _docs(tmp_path, names=("shard-costs", "cache-constants", "nightly"))
    (tmp_path / "README.md").write_text("# x\n\n<!-- generated:shard-memory -->\nold\n<!-- /generated -->\n")
    (tmp_path / "costs.json").write_text(json.dumps(SHARD_COSTS))
    assert write_docs.main(["--shard-costs", str(tmp_path / "costs.json"), "--docs", str(docs)]) == 0

    rows = [line for line in _block(docs, "shard-costs").splitlines() if line.startswith("| ")]
    assert rows[1:] == [
        "| 1/2 | 3 GB | 3.5 GB | 2 GB | 5 min 0 s | 8 min 20 s | exit 1 | def5678 |",
        "| 2/2 | 6.5 GB | 7.25 GB | 4 GB | 10 min 0 s | 18 min 20 s | ok | abc1234 |",
    ]
    assert "All 2 shards: 26 min 40 s of CPU time, 13 min 20 s of wall time at 2 busy workers." in _block(
        docs, "shard-costs"
    )
    readme = (tmp_path / "README.md").read_text()
    assert (
        "Each of the 2 nightly shards (`-n 2`) peaks at most 6.5 GB in use (shard 2/2; measured at commit abc1234"
        in readme
    )


def test_a_partial_shard_record_says_which_shards_are_not_measured(tmp_path):
    docs = _docs(tmp_path, names=("shard-costs", "cache-constants", "nightly"))
    (tmp_path / "README.md").write_text("# x\n\n<!-- generated:shard-memory -->\nold\n<!-- /generated -->\n")
    (tmp_path / "costs.json").write_text(json.dumps(SHARD_COSTS | {"shards": 4}))
    assert write_docs.main(["--shard-costs", str(tmp_path / "costs.json"), "--docs", str(docs)]) == 0
    assert "The 2 shards measured (not yet: 3/4, 4/4): 26 min 40 s of CPU time" in _block(docs, "shard-costs")
    readme = (tmp_path / "README.md").read_text()
    assert "Of the 4 nightly shards (`-n 2`), 2 are measured (3/4, 4/4 not yet); the worst peaks at 6.5 GB" in readme
    assert "Each of" not in readme


def test_readme_findings_count_the_contradictions_of_each_kind():
    """The README's block: how many measured contradictions of each kind, and their causes by kind."""
    records = [_record("rank_patterns", f"saddle-lowrank-L{L}", "xfailed", False, duration=1.0) for L in (2, 3, 4)]
    records.append(_record("function_space", "saddle-lowrank-L3", "xfailed", False, duration=1.0))
    causes = [("floor", "genuine"), ("floor", "genuine"), ("lag", "artifact"), ("lag", "genuine")]
    for rec, (cause, kind) in zip(records, causes):  # one key, two kinds (two families): counted apart
        rec["contradiction"] = {"cause": cause, "cause_text": "why", "kind": kind, "statement": "now"}
    block = write_docs.readme_findings_block(
        {"meta": {"tier": "quick", "git_commit": "0123456"}, "claims": records}, ROOT
    )
    lines = block.splitlines()
    assert "- 4 measured contradictions: 3 genuine, 1 artifact; by kind and root cause (cases):" in lines
    assert lines[-2:] == ["  - genuine: floor (2), lag (1).", "  - artifact: lag (1)."]


def test_a_nightly_run_gives_its_wall_time_and_conditions(tmp_path):
    docs = _docs(tmp_path, names=("nightly-time", "cache-constants", "nightly"))
    nightly = {**RESULTS, "meta": {**RESULTS["meta"], "tier": "nightly", "duration_s": 2520.0}}
    (tmp_path / "nightly.json").write_text(json.dumps(nightly))
    args = ["--nightly-results", str(tmp_path / "nightly.json"), "--nightly-note", "quiet", "--docs", str(docs)]
    assert write_docs.main(args) == 0
    block = _block(docs, "nightly-time")
    assert "write_docs.py --nightly-results " in block and "a `nightly`-tier run" in block
    assert "\nConditions: quiet\n" in block
    assert "wall time 42 min 0 s" in block and "0123456789" in block
