"""The `dlncheck` command: runs a preset, writes figure + trajectory, rejects bad names."""

import json
import time

import numpy as np
import pytest

from dlncheck import presets
from dlncheck.suite import cli


def test_run_writes_figure_and_trajectory(tmp_path, capsys):
    assert cli.main(["run", "saddle-lowrank-L2", "--out", str(tmp_path), "--sgd-runs", "2"]) == 0
    npz, spec, png = (
        tmp_path / n for n in ("saddle-lowrank-L2.npz", "saddle-lowrank-L2.json", "saddle-lowrank-L2-loss.png")
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = json.loads(spec.read_text())
    assert meta["experiment"]["sgd_runs"] == 2
    with np.load(npz, allow_pickle=False) as arrays:
        loss = arrays["loss"]
        assert loss.shape[0] == 3 and loss[0, -1] < 1e-3 * loss[0, 0]
        assert arrays["weights_0"].shape[:2] == (3, len(arrays["checkpoint_steps"]))
    assert not list(tmp_path.glob("*.tmp"))
    assert "figure:" in capsys.readouterr().out


def test_list_names_every_preset(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(presets.case_id(*c) in out for c in presets.cases())


@pytest.mark.parametrize(
    "args",
    [
        ["run", "saddle-lowrank"],
        ["run", "lazy-lowrank-L2"],
        ["run", "saddle-lowrank-Lx"],
        ["run", "saddle-lowrank-L99999"],
        ["run", "saddle-lowrank-L2", "--device", "cuda:7"],
        ["run", "saddle-lowrank-L2", "--out", ""],
        ["run", "saddle-lowrank-L2", "--sgd-runs", "-1"],
    ],
    ids=["no-depth", "bad-regime", "depth-not-int", "depth-cap", "device", "empty-out", "sgd-runs"],
)
def test_user_errors_are_one_line_with_run_usage(args, capsys):
    """Refused at once (no training: well under a second), one stderr line, exit code 2."""
    start = time.perf_counter()
    assert cli.main(args) == 2
    assert time.perf_counter() - start < 1.0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("dlncheck run: error: ") and "is invalid" in err and "usage: dlncheck run" in err


def test_unwritable_out_is_refused_before_training(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setattr(cli, "train", lambda *a, **k: pytest.fail("trained before checking --out"))
    assert cli.main(["run", "saddle-lowrank-L2", "--out", str(blocker / "sub")]) == 2
    assert "--out=" in capsys.readouterr().err


def test_ctrl_c_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "train", interrupted)
    assert cli.main(["run", "saddle-lowrank-L2", "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err


def test_report_durations_update_keeps_the_cases_the_run_did_not_measure(tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"claims": [{"nodeid": "claims/t.py::a", "duration": 2.04}]}))
    out = tmp_path / "durations.json"
    out.write_text(json.dumps({"claims/t.py::a": 9.0, "claims/t.py::b": 5.0}))
    assert cli.main(["report", "durations", str(results), "--out", str(out), "--update"]) == 0
    assert json.loads(out.read_text()) == {"claims/t.py::a": 2.0, "claims/t.py::b": 5.0}
    assert cli.main(["report", "durations", str(results), "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == {"claims/t.py::a": 2.0}
