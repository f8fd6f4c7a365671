"""The CI workflows parse, and every command they run is one the README shows and that exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from dlncheck.suite import cli

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
README = " ".join((ROOT / "README.md").read_text().split())


def _commands(workflow: dict) -> list[str]:
    """Every shell command of every `run:` step, split on newlines and &&, expressions -> K/N and
    the nightly tier."""
    out = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            for line in step.get("run", "").replace("&&", "\n").splitlines():
                line = re.sub(r"\$\{\{ matrix.shard \}\}/\$\{\{ env.SHARDS \}\}", "K/N", line.strip())
                line = line.replace("${{ env.TIER }}", "nightly")  # weekly on Sundays: the same command
                if line:
                    out.append(" ".join(line.split()))
    return out


def test_there_are_two_workflows():
    assert {p.name for p in WORKFLOWS} == {"ci.yml", "nightly.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_commands_exist_and_are_in_the_readme(path):
    workflow = yaml.safe_load(path.read_text())
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as True
    if path.name == "nightly.yml":
        assert "schedule" in triggers and "workflow_dispatch" in triggers
    commands = _commands(workflow)
    assert commands
    for command in commands:
        if command.startswith(("mkdir", "touch", "cp ")):
            continue  # shell plumbing of the merge job
        assert command in README, f"{path.name} runs `{command}`, which the README does not show"
        words = shlex.split(command)
        if words[0] == "bash":
            assert (ROOT / words[1]).is_file(), words[1]
        if words[0].endswith("dlncheck"):
            with pytest.raises(SystemExit) as done:
                cli.main([*words[1:3], "--help"])
            assert done.value.code == 0


def test_nightly_shard_matrix_matches_the_shard_count():
    nightly = yaml.safe_load((ROOT / ".github" / "workflows" / "nightly.yml").read_text())
    shards = nightly["jobs"]["claims"]["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, int(nightly["env"]["SHARDS"]) + 1))
    docs = (ROOT / "scripts" / "write_docs.py").read_text()
    assert f"SHARDS = {nightly['env']['SHARDS']}  #" in docs  # docs/nightly.md's split is the workflow's


def test_the_sunday_schedule_runs_the_weekly_tier():
    """Nightly on Monday to Saturday, weekly (every case) on Sunday, at the same hour."""
    nightly = yaml.safe_load((ROOT / ".github" / "workflows" / "nightly.yml").read_text())
    triggers = nightly[True] if True in nightly else nightly["on"]
    crons = [entry["cron"] for entry in triggers["schedule"]]
    assert crons == ["17 2 * * 1-6", "17 2 * * 0"]
    assert nightly["env"]["TIER"] == "${{ github.event.schedule == '17 2 * * 0' && 'weekly' || 'nightly' }}"
