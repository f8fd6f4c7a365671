"""The `dlncheck` command: runs a preset, writes figure + trajectory, rejects bad names."""
import json

import numpy as np
import pytest

from dlncheck import cli, presets


def test_run_writes_figure_and_trajectory(tmp_path, capsys):
    assert cli.main(["run", "saddle-lowrank-L2", "--out", str(tmp_path), "--sgd-runs", "2"]) == 0
    npz, spec, png = (tmp_path / n for n in ("saddle-lowrank-L2.npz", "saddle-lowrank-L2.json",
                                             "saddle-lowrank-L2-loss.png"))
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
    assert all(presets.case_id(*c) in out for c in presets.cases("nightly"))


@pytest.mark.parametrize("name", ["saddle-lowrank", "lazy-lowrank-L2", "saddle-lowrank-Lx"])
def test_bad_preset_names_say_how_to_fix(name, capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", name])
    err = capsys.readouterr().err
    assert "is invalid" in err and ("REGIME-TEACHER-L" in err or "choose one of" in err)
