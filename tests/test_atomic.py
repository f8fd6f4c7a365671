"""Atomic writes: an interrupted write leaves the old file (or nothing), never half a file."""

import json

import pytest

from dlncheck.store import atomic


def test_write_json_round_trips(tmp_path):
    path = atomic.write_json(tmp_path / "sub" / "a.json", {"x": [1, 2]})
    assert json.loads(path.read_text()) == {"x": [1, 2]}


def test_interrupted_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "fig.png"
    target.write_text("old")

    def crash(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic.atomic_write(target, crash)
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_interrupted_first_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(tmp_path / "new.csv") as tmp:
            tmp.write_text("partial")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []
