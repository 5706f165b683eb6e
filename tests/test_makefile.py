"""The Makefile's commands, as make would run them (dry run)."""
from __future__ import annotations

import os
import re
import shutil
import time
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
    assert "--ServerApp.root_dir=" in local and "/lab/tree/notebooks" in local and "--port=8888" in local
    assert "--no-browser" not in local and "--ip=127.0.0.1" in local
    assert ("--allow-root" in local) == (os.geteuid() == 0)   # Jupyter refuses root without it
    out = _dry("lab", "REMOTE=1", "PORT=9000")
    remote = _command(out, "jupyter lab")
    assert "--no-browser" in remote and "--ip=127.0.0.1" in remote and "0.0.0.0" not in remote and "--port=9000" in remote
    assert "ssh -N -L 9000:localhost:9000" in out   # the tunnel command is printed


def test_setup_installs_the_notebooks_kernel():
    assert "ipykernel install --sys-prefix --name rsdix" in _dry("kernel", "-B")
    assert "rsdix spice install" in _dry("spice")   # SPICE's jars, on request (docs/paper.md)


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


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_a_new_torch_spec_reinstalls_torch(tmp_path):
    """The install stamp depends on a file holding TORCH_SPEC, rewritten only when the spec changes:
    the same spec installs nothing, another one reinstalls (dry runs in a scratch venv folder)."""
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}

    def make(*args):
        return subprocess.run(["make", "--no-print-directory", f"VENV={venv}", *args], cwd=REPO, capture_output=True,
                              text=True, check=True, env=env).stdout

    make("-n", "help")                                    # reading the Makefile writes the spec file
    time.sleep(0.05)
    (venv / ".rsdix-installed").touch()
    assert "pip install" not in make("-n", f"{venv}/.rsdix-installed")   # the same spec: nothing to do
    assert (venv / ".torch-spec").read_text().strip() == "torch==2.14.1 torchvision==0.29.1"
    assert "pip install -q torch torchvision" in make("-n", f"{venv}/.rsdix-installed", "TORCH_SPEC=torch torchvision")
    cpu = make("-n", f"{venv}/.rsdix-installed", "CPU=1")
    assert "pip install -q torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu" in cpu
