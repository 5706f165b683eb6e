"""The Makefile's commands, as make would run them (dry run)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _dry(*args: str) -> str:
    return subprocess.run(["make", "-n", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_lab_runs_as_root_and_on_a_remote_box():
    local = _dry("lab").strip().splitlines()[-1]
    assert "jupyter lab notebooks/" in local and "--port=8888" in local and "--no-browser" not in local
    assert ("--allow-root" in local) == (os.geteuid() == 0)   # Jupyter refuses root without it
    remote = _dry("lab", "REMOTE=1", "PORT=9000").strip().splitlines()[-1]
    assert "--no-browser" in remote and "--ip=0.0.0.0" in remote and "--port=9000" in remote


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_targets_go_through_the_rsdix_command_line():
    assert "rsdix reproduce --profile paper" in _dry("reproduce", "PROFILE=paper")
    assert "rsdix bench --out figures/bench" in _dry("bench")
