"""One CPU thread per process unless asked: set_cpu_threads, the plugin option and the env var."""

from pathlib import Path

import pytest
import torch

from dlncheck.config.threads import ENV, set_cpu_threads


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_auto_reads_env_else_one(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert set_cpu_threads() == 1 and torch.get_num_threads() == 1
    monkeypatch.setenv(ENV, "2")
    assert set_cpu_threads("auto") == 2 and torch.get_num_threads() == 2
    assert set_cpu_threads(1) == 1 and torch.get_num_threads() == 1


@pytest.mark.parametrize("bad", ["0", "two", -1])
def test_bad_thread_count_names_the_fix(bad):
    with pytest.raises(ValueError, match="positive number of CPU threads"):
        set_cpu_threads(bad)


CHECK = """
import os, torch
def test_threads():
    assert torch.get_num_threads() == int(os.environ["EXPECTED"])
"""


@pytest.mark.parametrize(
    "args, env, expected", [([], None, 1), (["--threads", "2"], None, 2)], ids=["plain-run-one-thread", "option"]
)
def test_plugin_sets_threads_for_a_plain_run(pytester, monkeypatch, args, env, expected):
    monkeypatch.setenv("EXPECTED", str(expected))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # torch's own default here: the plugin must override it
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))  # this checkout's dlncheck
    if env is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, env)
    pytester.makeconftest('pytest_plugins = ["dlncheck.suite.plugin"]')
    pytester.makepyfile(test_check=CHECK)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=1)
