"""``dlncheck`` command: train a preset and write its loss figure and trajectory.

    dlncheck list
    dlncheck run saddle-lowrank-L3 [--out DIR] [--tier quick|nightly] [--sgd-runs S] [--device cpu]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import presets, theory
from . import validation as check
from .cache import save_npz, trajectory_arrays
from .engine import TrainingDiverged, Trajectory, train
from .io import atomic_write, write_json


def parse_preset(name: str) -> tuple[str, str, int]:
    """'saddle-lowrank-L3' -> ('saddle', 'lowrank', 3)."""
    parts = name.split("-")
    if len(parts) != 3 or not parts[2].startswith("L") or not parts[2][1:].isdigit():
        raise ValueError(f"preset={name!r} is invalid: write REGIME-TEACHER-L<depth>, e.g. "
                         f"saddle-lowrank-L3 (regimes {presets.REGIMES}, teachers {presets.TEACHERS})")
    return parts[0], parts[1], int(parts[2][1:])


def loss_figure(traj: Trajectory, title: str):
    """Loss of GD and every SGD run against log time, with the predicted plateau levels."""
    from .report import plots

    fig, ax = plots.figure(size=(6, 4))
    t = traj.times[1:].numpy()
    for r in range(1, traj.runs):
        ax.plot(t, traj.loss[r, 1:].cpu().numpy(), color=plots.SGD_COLOR, alpha=0.35, linewidth=0.8,
                label="SGD runs" if r == 1 else None)
    ax.plot(t, traj.loss[0, 1:].cpu().numpy(), color=plots.GD_COLOR, label="GD")
    for k, level in enumerate(theory.stage_plateaus(traj.teacher.s).tolist()):
        ax.axhline(level, color="tab:gray", linestyle="--", linewidth=0.8,
                   label="predicted plateaus $P_k$" if k == 0 else None)
    ax.set_xscale("log")
    ax.set(xlabel="time t = lr x step", ylabel="full-data loss", title=title)
    ax.legend()
    return fig


def run(preset: str, out: Path | str, tier: str = "quick", **overrides) -> dict[str, Path]:
    """Train ``preset`` with a progress bar; write <preset>.npz, <preset>.json, <preset>-loss.png."""
    exp = presets.experiment(*parse_preset(preset), tier=tier, **overrides)
    out = check.writable_folder("--out", out)   # before any training
    traj = train(exp, checkpoints=50, progress=True)
    paths = {"trajectory": out / f"{preset}.npz", "spec": out / f"{preset}.json",
             "figure": out / f"{preset}-loss.png"}
    digest = save_npz(paths["trajectory"], trajectory_arrays(traj))
    write_json(paths["spec"], {"preset": preset, "experiment": exp.to_dict(), "sha256": digest,
                               "final_loss": traj.loss[:, -1].tolist()})
    fig = loss_figure(traj, f"{preset}: loss (1 GD + {exp.sgd_runs} SGD runs)")
    import matplotlib.pyplot as plt
    atomic_write(paths["figure"], lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return paths


def _parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    parser = argparse.ArgumentParser(prog="dlncheck", description="Deep-linear-network dynamics checks.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the preset names")
    p = sub.add_parser("run", help="train a preset; write its loss figure and trajectory")
    p.add_argument("preset", help="REGIME-TEACHER-L<depth>, e.g. saddle-lowrank-L3")
    p.add_argument("--out", default="runs", help="output folder (default: runs/)")
    p.add_argument("--tier", choices=("quick", "nightly"), default="quick")
    p.add_argument("--sgd-runs", type=int, default=None, help="override the number of SGD runs")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda")
    p.add_argument("--dtype", choices=("float64", "float32"), default=None)
    return parser, p


def _user_error(parser: argparse.ArgumentParser, message: str, code: int) -> int:
    """One line on stderr: '<prog>: error: <message> (usage: <the subcommand's usage>)'."""
    usage = " ".join(parser.format_usage().split()).removeprefix("usage: ")
    print(f"{parser.prog}: error: {' '.join(message.split())} (usage: {usage})", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done, 1 training diverged, 2 user error (bad preset, device, --out), 130 Ctrl-C."""
    parser, run_parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        for tier in ("quick", "nightly"):
            print(f"{tier}: " + " ".join(presets.case_id(*c) for c in presets.cases(tier)))
        return 0
    overrides = {k: v for k, v in (("sgd_runs", args.sgd_runs), ("device", args.device),
                                   ("dtype", args.dtype)) if v is not None}
    try:
        paths = run(args.preset, args.out, args.tier, **overrides)
    except (ValueError, OSError) as error:
        return _user_error(run_parser, str(error), 2)
    except TrainingDiverged as error:
        return _user_error(run_parser, str(error), 1)
    except KeyboardInterrupt:
        print(f"{run_parser.prog}: interrupted (Ctrl-C); files already written are complete", file=sys.stderr)
        return 130
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
