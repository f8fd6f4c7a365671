"""Write the measured parts of docs/ from machine-written inputs: no figure in docs/ is typed.

Every block between ``<!-- generated:NAME -->`` and ``<!-- /generated -->`` in docs/*.md (and the
README beside docs/) is
rewritten from its input; the prose around the blocks is hand-written and carries no measurement.
A block whose input is not given keeps its current text.

    .venv/bin/python -m pytest tests -k bench -p no:cacheprovider --benchmark-json=bench.json
    .venv/bin/python scripts/write_docs.py --bench bench.json --results reports/results.json

Inputs and the blocks they write:

--bench FILE       pytest-benchmark JSON of ``tests/test_bench_*.py`` (each benchmark's extra_info)
                   -> ``benchmarks`` and ``engine-scaling`` (docs/performance.md)
--results FILE     a claims run's ``results.json`` (dlncheck/report/collector.py; --results-note TEXT
                   states its conditions)
                   -> ``tier-time`` (docs/performance.md), ``cache-use`` (docs/cache.md),
                   ``findings`` (docs/findings.md: the same reading as the report's findings panel)
--durations FILE   per-case seconds of a full nightly run (default claims/durations.json, the file
                   ``--shard`` balances by) -> ``nightly`` (docs/nightly.md)
--cache-dir DIR    a trajectory cache after a run -> ``cache-census`` (docs/cache.md)
--shard-costs FILE ``scripts/measure_shards.py``'s record (claims/shard_costs.json): peak
                   memory, wall and CPU time per shard -> ``shard-costs`` (docs/nightly.md) and
                   ``shard-memory`` (README.md)
--width FILE       ``reports/bench/width.json`` of ``tests/test_bench_width.py`` and the plot beside it
                   (``python tests/test_bench_width.py`` draws ``width.png``) -> ``width``
                   (docs/performance.md, the plot copied to docs/width.png)
always             the cache's storage constants, read from the code -> ``cache-constants``

``--check`` writes nothing and exits 1 when a document would change.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dlncheck.report import answer  # noqa: E402
from dlncheck.report import findings as fd  # noqa: E402
from dlncheck.store import _format, policy  # noqa: E402
from dlncheck.suite import shard, time_budget  # noqa: E402

BLOCK = re.compile(r"(<!-- generated:(?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- /generated -->)", re.S)
BENCH_COMMAND = "python -m pytest tests -k bench -p no:cacheprovider --benchmark-json=FILE"
SHARDS = 8  # .github/workflows/nightly.yml SHARDS
OUTCOMES = ("passed", "xfailed", "failed", "error", "xpassed", "skipped")


# -- formatting


def num(x: float, digits: int = 3) -> str:
    """``digits`` significant digits, plain notation where it stays short."""
    if x == 0:
        return "0"
    text = f"{x:.{digits}g}"
    if "e" in text:
        mantissa, exp = text.split("e")
        exp_i = int(exp)
        if -4 <= exp_i < 6:
            return f"{x:.{max(digits - 1 - exp_i, 0)}f}"
        return f"{mantissa}e{exp_i}"
    return text


def secs(x: float) -> str:
    """Seconds as ``1 h 2 min 3 s`` / ``2 min 3 s`` / ``4.56 s``."""
    if x < 60:
        return f"{num(x)} s"
    m, s = divmod(round(x), 60)
    h, m = divmod(m, 60)
    return (f"{h} h " if h else "") + f"{m} min {s} s"


def md(text: str) -> str:
    """Text safe inside a Markdown table cell or list item: pipes, asterisks and anything that
    would open an HTML tag are escaped."""
    text = str(text).replace("|", "\\|").replace("*", "\\*")
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def shown(path: Path | str) -> str:
    """A path as the docs show it: relative to the repository, or its file name if outside."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return path.name


def family_of(nodeid: str) -> str:
    return Path(nodeid.split("::")[0]).stem.removeprefix("test_")


# -- benchmarks


def _engine(ex, params):
    path = "fused C path" if ex.get("fused") else "PyTorch path"
    return [
        f"engine vs a naive per-run loop, S = {ex['S']} SGD runs + GD, L = {ex['L']}, d = {ex['d']}, "
        f"n = {ex['n']}, B = {ex['B']}, {ex['dtype']}",
        f"{num(ex['engine_us_per_run_step'])} us per run-step ({path}); "
        f"PyTorch path {num(ex['torch_path_us_per_run_step'])} us",
        f"{num(ex['naive_us_per_run_step'])} us per run-step",
        f"{num(ex['ratio_vs_naive'])}x (PyTorch path {num(ex['torch_path_ratio_vs_naive'])}x; "
        f"fused / PyTorch path {num(ex['fused_vs_torch_path'])}x)",
        (f">= {num(params['floor'])}x" if "floor" in params else "")
        + ("; fused >= 1.5x the PyTorch path" if ex.get("fused") else ""),
        "CPU",
    ]


def _ensemble(ex, params):
    return [
        f"{ex['configs']}-init Ensemble vs {ex['configs']} train() calls, S = {ex['S']}, {ex['steps']} steps, "
        f"backend {ex['backend']}",
        f"{num(ex['ensemble_s'])} s ({num(ex['us_per_run_step'])} us per run-step)",
        f"{num(ex['separate_s'])} s",
        f"{num(ex['ratio'])}x (issue target {num(ex['target'])}x)",
        f">= {num(params['floor'])}x" if "floor" in params else "",
        "CPU",
    ]


def _analysis(ex, st):
    return [
        "GD-vs-SGD analysis (rank patterns, log spectra, distances), R = 33, K = 200, L = 4, d = 8",
        f"{num(st['median'])} s (median)",
        f"per-matrix NumPy loop {num(ex['naive_s'])} s",
        f"{num(ex['speedup'])}x",
        "> 1x",
        "wall",
    ]


def _ranks(ex, st):
    return [
        "rank patterns of every P_ij, R = 33, K = 50, L = 4, d = 20",
        f"{num(st['median'])} s (median)",
        f"per-matrix NumPy loop {num(ex['naive_s'])} s",
        f"{num(ex['speedup'])}x",
        "> 1x",
        "wall",
    ]


def _offsets(ex, st):
    return [
        "derived SGD offsets of an 8-init ensemble, L = 3, 1500 steps",
        f"ensemble_offsets {num(ex['batched_cpu_s'])} s",
        f"predicted_offsets per init {num(ex['loop_cpu_s'])} s",
        f"{num(ex['speedup'])}x",
        "> 2x",
        "CPU",
    ]


def _lanczos(ex, st):
    return [
        f"lambda_min of the Hessian, {ex['n_params']} parameters (lambda_min {num(ex['lambda_min'], 6)})",
        f"Lanczos on HVPs {num(ex['lanczos_s'])} s",
        f"dense Hessian + eigvalsh {num(ex['dense_s'])} s",
        f"{num(ex['speedup'])}x",
        "> 1x, same lambda_min",
        "wall",
    ]


def _sgld_1024(ex, st):
    return [
        f"SGLD, {ex['chains']} chains x {ex['steps']} steps, L = 3, width 8",
        f"{num(ex['batched_s'])} s ({num(ex['chain_steps_per_s'])} chain-steps/s)",
        f"one chain {num(ex['one_chain_s'])} s x {ex['chains']} = {num(ex['naive_s'])} s",
        f"{num(ex['speedup'])}x",
        "batched < 30 s",
        "wall",
    ]


def _figures(ex, st):
    return [
        "figure save (PNG + thumbnail), five synthetic kinds, per figure",
        f"{num(ex['per_figure_new_s'])} s",
        f"previous save and style {num(ex['per_figure_previous_s'])} s",
        f"{num(ex['ratio'])}x",
        ">= 3x",
        "CPU",
    ]


ROWS = {  # the table's order
    "test_engine_vs_naive_per_run_step": lambda b: _engine(b["extra_info"], b.get("params") or {}),
    "test_ensemble_vs_separate_calls": lambda b: _ensemble(b["extra_info"], b.get("params") or {}),
    "test_ensemble_offsets_beat_one_call_per_init": lambda b: _offsets(b["extra_info"], b["stats"]),
    "test_batched_analysis_beats_numpy_loop": lambda b: _analysis(b["extra_info"], b["stats"]),
    "test_batched_rank_patterns_beat_numpy_loop": lambda b: _ranks(b["extra_info"], b["stats"]),
    "test_lanczos_vs_dense_eigensolver": lambda b: _lanczos(b["extra_info"], b["stats"]),
    "test_sgld_step_time": None,  # two benchmarks, one row (_sgld_step_row)
    "test_sgld_1024_chains_vs_one_chain_repeated": lambda b: _sgld_1024(b["extra_info"], b["stats"]),
    "test_new_save_per_figure_vs_previous": lambda b: _figures(b["extra_info"], b["stats"]),
}


def _sgld_step_row(benches: list[dict]) -> list[str] | None:
    """SGLD step time for C = 1 and C = 64 chains: the per-chain-step cost ratio."""
    by_c = {b["extra_info"]["chains"]: b["extra_info"] for b in benches}
    if len(by_c) < 2:
        return None
    one, many = min(by_c), max(by_c)
    a, b = by_c[one], by_c[many]
    return [
        f"SGLD step, {many} chains together vs {one} chain",
        f"{num(b['seconds_per_step'] * 1e3)} ms per step for {many} chains",
        f"{num(a['seconds_per_step'] * 1e3)} ms per step for {one}",
        f"{num(a['seconds_per_chain_step'] / b['seconds_per_chain_step'])}x cheaper per chain-step",
        "",
        "wall",
    ]


def _order(b: dict) -> tuple:
    """Benchmarks in the order of ``ROWS`` (unknown ones last), then by their numeric parameters."""
    fn = b["name"].split("[")[0]
    known = list(ROWS)
    params = tuple(v for v in (b.get("params") or {}).values() if isinstance(v, (int, float)))
    return (known.index(fn) if fn in known else len(known), fn, params, b["name"])


def _source(b: dict) -> str:
    return f"`{b['fullname'].split('::')[0].removeprefix('tests/')}`"


def _bench_header(bench: dict, path: Path, note: str) -> str:
    m, c = bench.get("machine_info", {}), bench.get("commit_info", {})
    cpu = m.get("cpu", {})
    machine = ", ".join(
        x
        for x in (
            cpu.get("brand_raw"),
            f"{cpu['count']} logical CPUs" if cpu.get("count") else None,
            f"{m.get('system', '')} {m.get('release', '')}".strip() or None,
            f"Python {m['python_version']}" if m.get("python_version") else None,
        )
        if x
    )
    commit = (c.get("id") or "?")[:10] + (" (uncommitted changes)" if c.get("dirty") else "")
    lines = [
        f"Generated by `python scripts/write_docs.py --bench {shown(path)}` from pytest-benchmark "
        f"{bench.get('version', '?')} output of `{BENCH_COMMAND}`, run {bench.get('datetime', '?')[:19]} UTC "
        f"at commit {commit} on: {machine or 'unknown machine'}.",
    ]
    if note:
        lines.append(f"Conditions: {note}")
    return "\n".join(lines)


def bench_blocks(bench: dict, path: Path, note: str = "") -> dict[str, str]:
    """``benchmarks``: one row per benchmark (every ratio measured within one test);
    ``engine-scaling``: the engine's time per step as the SGD runs grow."""
    rows, sgld_steps, scaling = [], [], None
    for b in sorted(bench["benchmarks"], key=_order):
        fn = b["name"].split("[")[0]
        if fn == "test_sgld_step_time":
            sgld_steps.append(b)
            if len(sgld_steps) == 1:
                rows.append(sgld_steps)  # placeholder, filled below with both step times
        elif fn == "test_engine_time_per_step_as_runs_grow":
            scaling = b
        elif ROWS.get(fn):
            rows.append([*ROWS[fn](b), _source(b)])
        else:  # a benchmark this script does not know yet: its median and any ratio it records
            ratio = next((v for k, v in b["extra_info"].items() if k in ("speedup", "ratio")), None)
            rows.append(
                [
                    b["name"],
                    f"{num(b['stats']['median'])} s (median)",
                    "",
                    num(ratio) + "x" if ratio else "",
                    "",
                    "wall",
                ]
                + [_source(b)]
            )
    if sgld_steps:
        row = _sgld_step_row(sgld_steps)
        at = next(k for k, r in enumerate(rows) if r is sgld_steps)
        if row:
            rows[at] = [*row, _source(sgld_steps[0])]
        else:
            del rows[at]
    header = _bench_header(bench, path, note)
    out = {
        "benchmarks": header
        + "\n\n"
        + table(["what", "measured", "baseline (same test)", "ratio", "the test asserts", "clock", "test"], rows)
    }
    if scaling is not None:
        per = [(k, v) for k, v in scaling["extra_info"].items() if k.startswith("S=")]
        per.sort(key=lambda kv: int(kv[0][2:]))
        out["engine-scaling"] = (
            f"Same benchmark run and machine as the table above (`{_source(scaling).strip('`')}`, CPU time)."
            + "\n\n"
            + table(
                ["SGD runs", "us per step (1 + S runs)", "us per run-step"],
                [[k.replace("S=", "S = "), num(v["us_per_step"]), num(v["us_per_run_step"])] for k, v in per],
            )
        )
    return out


# -- a claims run's results.json


def _run_header(meta: dict, path: Path, flag: str = "--results") -> str:
    commit = (meta.get("git_commit") or "?")[:10] + (" (uncommitted changes)" if meta.get("git_dirty") else "")
    status = meta.get("status", "?")
    warn = "" if status == "complete" else f" **The run did not complete ({status}): its counts are partial.**"
    return (
        f"Generated by `python scripts/write_docs.py {flag} {shown(path)}` from the records of a "
        f"`{meta.get('tier', '?')}`-tier run started {meta.get('started', '?')} (status {status}) at commit "
        f"{commit}: `{meta.get('command', '?')}`; {meta.get('platform', '?')}, Python {meta.get('python', '?')}, "
        f"torch {meta.get('torch', '?')}, device {meta.get('device', '?')}, dtype {meta.get('dtype', '?')}.{warn}"
    )


def findings_block(results: dict, path: Path) -> str:
    """Per family: cases by golden-path finding and outcome; the report's headline and result lines;
    the measured contradictions grouped by root cause, each stated from the run's numbers."""
    records = results["claims"]
    header = _run_header(results["meta"], path)
    by_family: dict[str, Counter] = defaultdict(Counter)
    for rec in records:
        c = by_family[rec["family"]]
        c["cases"] += 1
        c[fd.golden_path(rec)] += 1
        c[rec.get("outcome", "?")] += 1
    rows = []
    declared = fd.families(records)
    for fam in declared:
        c = by_family[fam]
        attention = ", ".join(f"{c[k]} {k}" for k in ("failed", "error", "xpassed", "skipped") if c[k])
        rows.append(
            [fam, declared[fam].group, str(c["cases"]), str(c[fd.A]), str(c[fd.D]), str(c[fd.F]), str(c[fd.NA])]
            + [str(c["passed"]), str(c["xfailed"]), attention or "-"]
        )
    totals = Counter(r.get("outcome", "?") for r in records)
    rows.append(
        ["all", "", str(len(records))]
        + [str(sum(by_family[f][k] for f in by_family)) for k in (fd.A, fd.D, fd.F, fd.NA)]
        + [str(totals["passed"]), str(totals["xfailed"])]
        + [", ".join(f"{totals[k]} {k}" for k in ("failed", "error", "xpassed", "skipped") if totals[k]) or "-"]
    )
    grid = table(
        [
            "family",
            "group",
            "cases",
            "SGD follows GD",
            "SGD differs",
            "assumption fails",
            "not about the path",
            "passed",
            "contradictions (xfailed)",
            "needs attention",
        ],
        rows,
    )
    parts = [header, "", md(answer.headline(records)), "", grid]
    lines = fd.reproductions(records)
    if lines:
        parts += ["", "### Tested results", ""] + [f"- {md(line['text'])}" for line in lines]
    groups = answer.contradiction_groups(records)
    n = sum(len(g["entries"]) for g in groups)
    parts += ["", f"### Measured contradictions ({n}, by root cause)", ""]
    for g in groups:
        said = "; ".join(f"{r['family']} `{r['case']}`: {md(statement)}" for r, statement in g["entries"])
        cause = f"**{g['cause']}** ({md(g['text'])})" if g["cause"] else "**no recorded cause**"
        parts.append(f"- {cause}, {len(g['entries'])} case{'s' if len(g['entries']) != 1 else ''}: {said}")
    if not groups:
        parts.append("None in this run.")
    return "\n".join(parts)


def readme_findings_block(results: dict, path: Path) -> str:
    """The README's short answer from the same records: the headline, one line per broken assumption
    (the beyond_assumptions family's results) and the measured contradictions by kind (genuine,
    artifact, ...: dlncheck.report.contradiction.KINDS) and root cause, with their case counts."""
    records, meta = results["claims"], results["meta"]
    commit = (meta.get("git_commit") or "?")[:7]
    lines = [
        f"From the `{meta.get('tier', '?')}`-tier run at commit {commit} (generated by `scripts/write_docs.py "
        f"--results`; the whole reading in [`docs/findings.md`](docs/findings.md)):",
        "",
        f"- {md(answer.headline(records))}",
    ]
    broken = [r for r in fd.reproductions(records) if r["family"] == "beyond_assumptions"]
    lines += [f"- {md(r['text'])}" for r in broken]
    groups = [g for g in answer.contradiction_groups(records) if g["cause"]]
    if groups:
        lines.append(f"- {answer.kind_line(groups)}; by kind and root cause (cases):")
        for kind in dict.fromkeys(g["kind"] or "unclassified" for g in groups):
            said = ", ".join(
                f"{g['cause']} ({len(g['entries'])})" for g in groups if (g["kind"] or "unclassified") == kind
            )
            lines.append(f"  - {kind}: {said}.")
    return "\n".join(lines)


def tier_time_block(results: dict, path: Path, flag: str = "--results") -> str:
    """The run's wall time, its summed case time, and the families' shares of it."""
    meta, records = results["meta"], results["claims"]
    per_family: dict[str, list[float]] = defaultdict(list)
    for rec in records:
        per_family[rec["family"]].append(float(rec.get("duration") or 0.0))
    total = sum(map(sum, per_family.values()))
    outcomes = Counter(r.get("outcome", "?") for r in records)
    said = ", ".join(f"{outcomes[k]} {k}" for k in OUTCOMES if outcomes[k])
    wall = f"wall time {secs(meta['duration_s'])}" if meta.get("duration_s") is not None else "no wall time recorded"
    rows = [
        [fam, str(len(d)), secs(sum(d)), f"{100 * sum(d) / total:.0f} %" if total else "-", secs(max(d))]
        for fam, d in sorted(per_family.items(), key=lambda kv: -sum(kv[1]))
    ]
    return "\n".join(
        [
            _run_header(meta, path, flag),
            "",
            f"{len(records)} cases ({said}); {wall}; summed case time {secs(total)}.",
            "",
            table(["family", "cases", "summed case time", "share", "slowest case"], rows),
        ]
    )


def cache_use_block(results: dict, path: Path) -> str:
    """Where the run's trajectory requests were served from."""
    served = results["meta"].get("trajectories") or {}
    if not served:
        body = "The run recorded no cache statistics."
    else:
        body = table(["served from", "trajectory requests"], [[k, str(v)] for k, v in sorted(served.items())])
    return _run_header(results["meta"], path) + "\n\n" + body


def noted(block: str, note: str) -> str:
    """``block`` with the run's conditions (load, other jobs) printed under its header line."""
    if not note:
        return block
    header, rest = block.split("\n", 1)
    return f"{header}\nConditions: {note}\n{rest}"


def results_blocks(results: dict, path: Path, note: str = "") -> dict[str, str]:
    """``note``: the run's conditions (load, other jobs), printed with its times."""
    tier = noted(tier_time_block(results, path), note)
    return {
        "findings": findings_block(results, path),
        "readme-findings": readme_findings_block(results, path),
        "tier-time": tier,
        "cache-use": cache_use_block(results, path),
    }


# -- nightly durations, the cache's constants and contents


def _git_last_change(path: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%h %cs", "--", str(path)],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return out or "not committed"


def nightly_block(durations: dict[str, float], path: Path, shards: int = SHARDS) -> str:
    """Per family: cases and summed seconds of the recorded nightly run; the duration-balanced split
    that ``--shard K/N`` computes from the same file."""
    per_family: dict[str, list[float]] = defaultdict(list)
    for nodeid, seconds in durations.items():
        per_family[family_of(nodeid)].append(float(seconds))
    total = sum(map(sum, per_family.values()))
    rows = [
        [fam, str(len(d)), secs(sum(d)), f"{100 * sum(d) / total:.0f} %" if total else "-", secs(max(d))]
        for fam, d in sorted(per_family.items(), key=lambda kv: -sum(kv[1]))
    ]
    split = shard.assign(durations, durations, shards)
    load: Counter = Counter()
    count: Counter = Counter()
    for nodeid, k in split.items():
        load[k] += float(durations[nodeid])
        count[k] += 1
    shard_rows = [[f"{k}/{shards}", str(count[k]), secs(load[k])] for k in range(1, shards + 1)]
    weekly = time_budget.weekly_only(durations, durations)
    return "\n".join(
        [
            f"Generated by `python scripts/write_docs.py --durations {shown(path)}` from the per-case seconds "
            f"that `dlncheck report durations` recorded from nightly runs (file last changed: "
            f"{_git_last_change(path)}). Case time only: start-up, collection and the report are not in it.",
            "",
            f"{len(durations)} cases with a recorded duration (a case without one is not counted here), summed "
            f"case time {secs(total)}. Of these (a collected case without a duration runs weekly until a weekly "
            f"run measures it), the nightly tier keeps the cheapest {len(durations) - len(weekly)} "
            f"({secs(total - sum(durations[i] for i in weekly))}) within its budget of {secs(time_budget.budget_seconds())}"
            f" of case time ({time_budget.WALL_MINUTES:g} min of wall time on {time_budget.WORKERS} workers, "
            f"`dlncheck.suite.time_budget`); the other {len(weekly)} "
            f"({secs(sum(durations[i] for i in weekly))}, each at least "
            f"{secs(min((durations[i] for i in weekly), default=0.0))}) run in the weekly tier only.",
            "",
            table(["family", "cases", "summed case time", "share", "slowest case"], rows),
            "",
            f"The split `--shard K/{shards}` computes from this file (longest-processing-time rule):",
            "",
            table(["shard", "cases", "summed case time"], shard_rows),
        ]
    )


def shard_cost_blocks(record: dict, path: Path) -> dict[str, str]:
    """Per shard of ``scripts/measure_shards.py``'s run: peak memory in use (summed PSS of the
    process tree), the largest process, wall and CPU time, the commit measured; the README's one
    line is the worst shard, and says which shards are not measured yet."""
    rows = sorted(record["rows"], key=lambda r: r["shard"])
    n, workers, tier = record["shards"], record["workers"], record["tier"]
    worst = max(rows, key=lambda r: r["peak_pss_gb"])
    missing = sorted(set(range(1, n + 1)) - {r["shard"] for r in rows})
    source = (
        f"Generated by `python scripts/write_docs.py --shard-costs {shown(path)}` from "
        f"`scripts/measure_shards.py --tier {tier} --shards {n} --workers {workers}` ({record['machine']})."
    )
    body = [
        [
            f"{r['shard']}/{n}",
            f"{num(r['peak_pss_gb'])} GB",
            f"{num(r['peak_rss_sum_gb'])} GB",
            f"{num(r['largest_process_gb'])} GB",
            secs(r["wall_s"]),
            secs(r["cpu_s"]),
            "ok" if r["exit"] == 0 else f"exit {r['exit']}",
            r.get("commit", record["commit"]),
        ]
        for r in rows
    ]
    cpu = sum(r["cpu_s"] for r in rows)
    measured = f"All {n} shards" if not missing else f"The {len(rows)} shards measured (not yet: {_shards(missing, n)})"
    costs = "\n".join(
        [
            source + " Memory in use is the summed proportional set size of the shard's processes "
            "(shared pages counted once); the summed resident sizes are an upper bound.",
            "",
            table(
                ["shard", "peak memory in use", "summed RSS", "largest process", "wall", "CPU", "pytest", "commit"],
                body,
            ),
            "",
            f"{measured}: {secs(cpu)} of CPU time, {secs(cpu / workers)} of wall time at {workers} busy workers.",
        ]
    )
    where = (
        f"(shard {worst['shard']}/{n}; measured at commit {worst.get('commit', record['commit'])}, table in "
        "[`docs/nightly.md`](docs/nightly.md))"
    )
    if missing:
        memory = (
            f"Of the {n} nightly shards (`-n {workers}`), {len(rows)} are measured ({_shards(missing, n)} not yet); "
            f"the worst peaks at {num(worst['peak_pss_gb'])} GB in use {where}."
        )
    else:
        memory = f"Each of the {n} nightly shards (`-n {workers}`) peaks at most {num(worst['peak_pss_gb'])} GB in use {where}."
    return {"shard-costs": costs, "shard-memory": memory}


def _shards(ks: list[int], n: int) -> str:
    return ", ".join(f"{k}/{n}" for k in ks)


def cache_constants_block() -> str:
    """The storage rule's constants, as the code defines them."""
    rows = [
        ["`store._format.FORMAT`", str(_format.FORMAT), "on-disk format, part of every key"],
        ["`store._format.DEFLATE_LEVEL`", str(_format.DEFLATE_LEVEL), "zlib level of the shuffled arrays"],
        [
            "`store.policy.MIN_SECONDS_PER_MB`",
            f"{num(policy.MIN_SECONDS_PER_MB * 1e3)} ms per MB",
            "compute an entry must have cost per MB of raw arrays to be written",
        ],
        [
            "`store.policy.ALWAYS_STORE_MB`",
            f"{num(policy.ALWAYS_STORE_MB)} MB",
            "entries below this are always written",
        ],
        [
            "`store.policy.MEMORY_LIMIT_GB`",
            f"{num(policy.MEMORY_LIMIT_GB)} GB",
            "in-memory LRU bound per process (`$DLNCHECK_CACHE_MEMORY_GB`)",
        ],
        [
            "`store.policy.LAZY_ENSEMBLE_GB`",
            f"{num(policy.LAZY_ENSEMBLE_GB)} GB",
            "an ensemble with more checkpoint bytes is served config by config (`store.lazy.OnDemand`)",
        ],
    ]
    return "Generated by `python scripts/write_docs.py` from the code.\n\n" + table(
        ["constant", "value", "meaning"], rows
    )


def cache_census_block(folder: Path) -> str:
    """Entries and bytes on disk by kind (``<kind>-<key>.npz`` + ``.json``)."""
    entries: Counter = Counter()
    size: Counter = Counter()
    for f in folder.glob("*-*.*"):
        if f.suffix not in (".npz", ".json") or not f.is_file():
            continue
        kind = f.name.split("-", 1)[0]
        size[kind] += f.stat().st_size
        entries[kind] += f.suffix == ".npz"
    rows = [[k, str(entries[k]), num(size[k] / 1e6)] for k in sorted(size)]
    rows.append(["all", str(sum(entries.values())), num(sum(size.values()) / 1e6)])
    return (
        f"Generated by `python scripts/write_docs.py --cache-dir {shown(folder)}` from the files in that folder "
        "(everything the runs that used it kept on disk).\n\n" + table(["kind", "entries", "MB on disk"], rows)
    )


# -- documents


def width_block(width: dict, path: Path) -> str:
    """``width``: the width benchmark's rows (dlncheck against the JAX peer) and its plot."""
    rows = []
    for r in width["rows"]:
        shape = f"square d = {r['size']}" if r["shape"] == "square" else f"teacher 10 x 10, hidden {r['size']}"
        if r.get("status") != "ok":
            rows.append([shape, str(r["S"]), "", "", "", "", md(r["status"])])
            continue
        rows.append(
            [
                shape,
                str(r["S"]),
                num(r["dlncheck_us"]),
                num(r["jax_us"]),
                num(r["speedup"]) + "x",
                f"{num(r['dlncheck_gflops'])} ({r['peak_share']:.0%})",
                md(r["path"]),
            ]
        )
    header = (
        f"Generated by `python scripts/write_docs.py --width {shown(path)}` from `tests/test_bench_width.py` "
        f"(L = {width['L']}, B = {width['B']}, {width['dtype']}, one CPU thread, CPU time, min over rounds; "
        "the test asserts dlncheck at least as fast as the peer on every row that fits the memory cap)."
    )
    head = [
        "shape",
        "S",
        "dlncheck us / run-step",
        "JAX us / run-step",
        "JAX / dlncheck",
        "GFLOP/s (share of GEMM peak)",
    ]
    return f"{header}\n\n{table([*head, 'path'], rows)}\n\n![cost per run-step against width](width.png)"


def fill(text: str, blocks: dict[str, str]) -> tuple[str, set[str]]:
    """``text`` with every generated block that ``blocks`` names rewritten; the names it held."""
    found: set[str] = set()

    def swap(m: re.Match) -> str:
        name = m["name"]
        if name not in blocks:
            return m[0]
        found.add(name)
        return f"{m[1]}{blocks[name].rstrip()}\n{m[4]}"

    return BLOCK.sub(swap, text), found


def write_docs(docs: Path, blocks: dict[str, str], check: bool = False) -> list[Path]:
    """Rewrite the blocks in ``docs/*.md``; return the files that changed (or would change).
    A block with no marker in any document is an error: its figures would go nowhere."""
    changed, placed = [], set()
    readme = Path(docs).parent / "README.md"
    for path in sorted(Path(docs).glob("*.md")) + ([readme] if readme.exists() else []):
        text = path.read_text(encoding="utf-8")
        new, found = fill(text, blocks)
        placed |= found
        if new != text:
            changed.append(path)
            if not check:
                path.write_text(new, encoding="utf-8")
    missing = set(blocks) - placed
    if missing:
        raise SystemExit(f"no <!-- generated:NAME --> marker in {docs} for: {', '.join(sorted(missing))}")
    return changed


def build(args: argparse.Namespace) -> dict[str, str]:
    blocks = {"cache-constants": cache_constants_block()}
    if args.bench:
        blocks |= bench_blocks(json.loads(args.bench.read_text(encoding="utf-8")), args.bench, args.note)
    if args.results:
        results = json.loads(args.results.read_text(encoding="utf-8"))
        blocks |= results_blocks(results, args.results, args.results_note)
    if args.durations and args.durations.exists():
        blocks["nightly"] = nightly_block(json.loads(args.durations.read_text(encoding="utf-8")), args.durations)
    if args.nightly_results:
        nightly = json.loads(args.nightly_results.read_text(encoding="utf-8"))
        blocks["nightly-time"] = noted(
            tier_time_block(nightly, args.nightly_results, "--nightly-results"), args.nightly_note
        )
    if args.shard_costs:
        blocks |= shard_cost_blocks(json.loads(args.shard_costs.read_text(encoding="utf-8")), args.shard_costs)
    if args.cache_dir:
        blocks["cache-census"] = cache_census_block(args.cache_dir)
    if args.width:
        blocks["width"] = width_block(json.loads(args.width.read_text(encoding="utf-8")), args.width)
        if not args.check:
            png = args.width.with_suffix(".png")
            if not png.exists():
                raise SystemExit(
                    f"--width {shown(args.width)}: no plot at {shown(png)}; draw it: python tests/test_bench_width.py"
                )
            (args.docs / "width.png").write_bytes(png.read_bytes())
    return blocks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", type=Path, help="pytest-benchmark JSON of tests/test_bench_*.py")
    p.add_argument("--results", type=Path, help="a claims run's results.json")
    p.add_argument("--durations", type=Path, default=ROOT / shard.DURATIONS_FILE, help="per-case seconds (nightly)")
    p.add_argument("--nightly-results", type=Path, help="a whole nightly run's results.json (its wall time)")
    p.add_argument("--cache-dir", type=Path, help="a trajectory cache folder to count")
    p.add_argument("--shard-costs", type=Path, help="scripts/measure_shards.py's record (claims/shard_costs.json)")
    p.add_argument("--width", type=Path, help="tests/test_bench_width.py's width.json (its width.png beside it)")
    p.add_argument("--note", default="", help="conditions of the benchmark run, printed in its header")
    p.add_argument("--results-note", default="", help="conditions of the claims run, printed with its times")
    p.add_argument("--nightly-note", default="", help="conditions of the nightly run, printed with its times")
    p.add_argument("--docs", type=Path, default=ROOT / "docs", help="folder of the documents (default docs/)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when a document would change")
    args = p.parse_args(argv)
    changed = write_docs(args.docs, build(args), check=args.check)
    for path in changed:
        print(f"{'would rewrite' if args.check else 'rewrote'} {shown(path)}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    raise SystemExit(main())
