"""The Makefile's commands, as make would run them (dry run)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _dry(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}  # under `make test`
    return subprocess.run(["make", "-n", "--no-print-directory", *args], cwd=REPO, capture_output=True, text=True,
                          check=True, env=env).stdout


def _command(output: str, needle: str) -> str:
    return next(line for line in output.splitlines() if needle in line)


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_lab_runs_as_root_and_on_a_remote_box():
    local = _command(_dry("lab"), "jupyter lab")
    assert "jupyter lab notebooks/" in local and "--port=8888" in local and "--no-browser" not in local
    assert ("--allow-root" in local) == (os.geteuid() == 0)   # Jupyter refuses root without it
    remote = _command(_dry("lab", "REMOTE=1", "PORT=9000"), "jupyter lab")
    assert "--no-browser" in remote and "--ip=0.0.0.0" in remote and "--port=9000" in remote


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_targets_go_through_the_rsdix_command_line():
    assert "rsdix reproduce --profile paper" in _dry("reproduce", "PROFILE=paper")
    assert "rsdix bench --out figures/bench" in _dry("bench")


def test_the_conda_environment_names_real_rsdix_commands():
    """environment.yml told conda users to run `python -m rsdix.metric_study.wordnet install`, which
    did nothing (that module has no __main__); every command it names must be one rsdix accepts."""
    from rsdix.cli import parse_args

    text = (REPO / "environment.yml").read_text()
    commands = re.findall(r"`(rsdix [^`]+)`", text)
    assert commands and "python -m rsdix" not in text
    for command in commands:
        parse_args(command.split()[1:])          # exits on an unknown command or option
