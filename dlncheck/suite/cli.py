"""``dlncheck`` command: train a preset and write its loss figure and trajectory.

dlncheck list
dlncheck run saddle-lowrank-L3 [--out DIR] [--tier quick|nightly] [--sgd-runs S] [--device cpu]
dlncheck sweep GRID.toml [--cache-dir DIR] [--scheduler ADDRESS | --workers N]
dlncheck report merge SHARD_DIR... --out DIR [--history FILE]
dlncheck report durations RESULTS_JSON [--out claims/durations.json] [--update]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlncheck import presets, theory
from dlncheck.config import validation as check
from dlncheck.config.threads import set_cpu_threads
from dlncheck.engine import TrainingDiverged, Trajectory, train
from dlncheck.store.atomic import atomic_write, write_json
from dlncheck.store.cache import save_npz
from dlncheck.suite.shard import durations_from_results, load_durations
from dlncheck.suite.tiers import TIERS
from dlncheck.suite.tiers import tier as tier_sizes


def parse_preset(name: str) -> tuple[str, str, int]:
    """'saddle-lowrank-L3' -> ('saddle', 'lowrank', 3)."""
    parts = name.split("-")
    if len(parts) != 3 or not parts[2].startswith("L") or not parts[2][1:].isdigit():
        raise ValueError(
            f"preset={name!r} is invalid: write REGIME-TEACHER-L<depth>, e.g. "
            f"saddle-lowrank-L3 (regimes {presets.REGIMES}, teachers {presets.TEACHERS})"
        )
    return parts[0], parts[1], int(parts[2][1:])


def loss_figure(traj: Trajectory, title: str):
    """Loss of GD and every SGD run against log time, with the predicted plateau levels."""
    from dlncheck.report import plots

    fig, ax = plots.figure(size=(6, 4))
    t = traj.times[1:].numpy()
    for r in range(1, traj.runs):
        ax.plot(
            t,
            traj.loss[r, 1:].cpu().numpy(),
            color=plots.SGD_COLOR,
            alpha=0.35,
            linewidth=0.8,
            label="SGD runs" if r == 1 else None,
        )
    ax.plot(t, traj.loss[0, 1:].cpu().numpy(), color=plots.GD_COLOR, label="GD")
    for k, level in enumerate(theory.stage_plateaus(traj.teacher.s).tolist()):
        ax.axhline(
            level, color="tab:gray", linestyle="--", linewidth=0.8, label="predicted plateaus $P_k$" if k == 0 else None
        )
    ax.set_xscale("log")
    ax.set(xlabel="time t = lr x step", ylabel="full-data loss", title=title)
    ax.legend()
    return fig


def run(preset: str, out: Path | str, tier: str = "quick", **overrides) -> dict[str, Path]:
    """Train ``preset`` with a progress bar (S from the tier unless ``sgd_runs`` is given); write
    <preset>.npz, <preset>.json, <preset>-loss.png."""
    overrides = {"sgd_runs": tier_sizes(tier).sgd_runs} | overrides
    exp = presets.experiment(*parse_preset(preset), **overrides)
    out = check.writable_folder("--out", out, min_free=check.REPORTS_MIN_FREE)  # before any training
    traj = train(exp, checkpoints=50, progress=True)
    paths = {"trajectory": out / f"{preset}.npz", "spec": out / f"{preset}.json", "figure": out / f"{preset}-loss.png"}
    digest = save_npz(paths["trajectory"], traj.to_arrays())
    write_json(
        paths["spec"],
        {"preset": preset, "experiment": exp.to_dict(), "sha256": digest, "final_loss": traj.loss[:, -1].tolist()},
    )
    fig = loss_figure(traj, f"{preset}: loss (1 GD + {exp.sgd_runs} SGD runs)")
    import matplotlib.pyplot as plt

    atomic_write(paths["figure"], lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return paths


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(prog="dlncheck", description="Deep-linear-network dynamics checks.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the preset names")
    p = sub.add_parser("run", help="train a preset; write its loss figure and trajectory")
    p.add_argument("preset", help="REGIME-TEACHER-L<depth>, e.g. saddle-lowrank-L3")
    p.add_argument("--out", default="runs", help="output folder (default: runs/)")
    p.add_argument("--tier", choices=tuple(TIERS), default="quick", help="S of the tier (default quick)")
    p.add_argument("--sgd-runs", type=int, default=None, help="override the number of SGD runs")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda")
    p.add_argument("--dtype", choices=("float64", "float32"), default=None)
    p.add_argument("--threads", default="auto", help="torch CPU threads (default: $DLNCHECK_THREADS or 1)")
    run_parser = p
    p = sweep_parser = sub.add_parser("sweep", help="train a TOML grid of experiments into the cache on a Dask cluster")
    p.add_argument("grid", type=Path, help="grid file (format: see dlncheck.suite.sweep)")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(".dlncheck-cache"),
        help="trajectory cache (shared by all workers; default .dlncheck-cache)",
    )
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (default: a LocalCluster)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (default 2)")
    report = report_parser = sub.add_parser("report", help="merge shard reports, or write durations for --shard")
    rsub = report.add_subparsers(dest="report_command", required=True)
    p = rsub.add_parser("merge", help="merge the reports folders of N shards into one report")
    p.add_argument("shards", type=Path, nargs="+", help="reports folders of the shards")
    p.add_argument("--out", type=Path, required=True, help="folder of the merged report")
    p.add_argument("--history", type=Path, default=None, help="an earlier history.jsonl to carry on")
    p = rsub.add_parser("durations", help="write claims/durations.json from a report's results.json")
    p.add_argument("results", type=Path, help="a results.json written by pytest claims")
    p.add_argument("--out", type=Path, default=Path("claims/durations.json"))
    p.add_argument(
        "--update",
        action="store_true",
        help="keep the other cases of an existing --out (a shard's run measures only its own cases)",
    )
    return parser, {"run": run_parser, "sweep": sweep_parser, "report": report_parser}


def _user_error(parser: argparse.ArgumentParser, message: str, code: int) -> int:
    """One line on stderr: '<prog>: error: <message> (usage: <the subcommand's usage>)'."""
    usage = " ".join(parser.format_usage().split()).removeprefix("usage: ")
    print(f"{parser.prog}: error: {' '.join(message.split())} (usage: {usage})", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done, 1 training diverged (run) or a sweep task failed, 2 user error (bad
    preset, device, --out, grid, shard folders), 130 Ctrl-C."""
    parser, commands = _parser()
    args = parser.parse_args(argv)
    if args.command == "sweep":
        return _sweep(args, commands["sweep"])
    if args.command == "report":
        return _report(args, commands["report"])
    if args.command == "list":
        for name, sizes in TIERS.items():
            print(f"{name}: " + " ".join(presets.case_id(*c) for c in sizes.presets()))
        return 0
    overrides = {
        k: v for k, v in (("sgd_runs", args.sgd_runs), ("device", args.device), ("dtype", args.dtype)) if v is not None
    }
    try:
        set_cpu_threads(args.threads)
        paths = run(args.preset, args.out, args.tier, **overrides)
    except (ValueError, OSError) as error:
        return _user_error(commands["run"], str(error), 2)
    except TrainingDiverged as error:
        return _user_error(commands["run"], str(error), 1)
    except KeyboardInterrupt:
        print(f"{commands['run'].prog}: interrupted (Ctrl-C); files already written are complete", file=sys.stderr)
        return 130
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def _sweep(args, parser) -> int:
    from dlncheck.suite import sweep

    try:
        grid = sweep.load_grid(args.grid)
    except (OSError, ValueError) as error:
        return _user_error(parser, f"{args.grid}: {error}", 2)
    try:
        check.writable_folder("--cache-dir", args.cache_dir)  # before any training
    except ValueError as error:
        return _user_error(parser, str(error), 2)
    try:
        counts = sweep.sweep(grid, args.cache_dir, scheduler=args.scheduler, workers=args.workers)
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted (Ctrl-C); finished tasks are in the cache", file=sys.stderr)
        return 130
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 1 if counts["failed"] else 0


def _report(args, parser) -> int:
    import json

    from dlncheck.report.merge import merge

    try:
        if args.report_command == "merge":
            print(f"merged report: {merge(args.shards, args.out, args.history)}")
        else:
            durations = durations_from_results(json.loads(args.results.read_text(encoding="utf-8")))
            kept = load_durations(args.out) if args.update and args.out.is_file() else {}
            write_json(args.out, dict(sorted((kept | durations).items())))
            print(f"durations of {len(durations)} cases ({len(kept | durations)} in all): {args.out}")
    except (OSError, ValueError, KeyError) as error:
        return _user_error(parser, f"{args.report_command}: {error}", 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
