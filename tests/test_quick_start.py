"""The README's quick start works verbatim: each ``rsdix`` line of its block runs (in a scratch runs
folder, on the shared data root or, without one, the synthetic sample) and ``rsdix train`` prints the
model folder the next line evaluates."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rsdix.data.synthetic import write_synthetic_root
from rsdix.paths import data_root

REPO = Path(__file__).resolve().parents[1]


def quick_start() -> list[str]:
    """The commands of the README's Quick start block, comments left out."""
    text = (REPO / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    return [" ".join(line.split("#", 1)[0].split()) for line in block.splitlines() if line.split("#", 1)[0].strip()]


def test_the_quick_start_is_short_and_starts_with_set_up():
    lines = quick_start()
    assert len(lines) <= 10 and lines[0] == "make setup" and lines[1] == "source .venv/bin/activate"
    assert lines[-1] == "make smoke"   # CI runs it (.ci/run)


@pytest.mark.slow
def test_the_quick_start_rsdix_lines_run_verbatim(tmp_path):
    root = data_root(required=False)
    root = root if root.is_dir() else write_synthetic_root(tmp_path / "data")
    env = {**os.environ, "RSDIX_RUNS": str(tmp_path / "runs"), "RSDIX_DATA_ROOT": str(root)}
    printed = ""
    for line in quick_start():
        if not line.startswith("rsdix "):
            continue
        args = line.split()[1:]
        if args[0] == "evaluate":   # the folder `rsdix train` printed, as the README says
            assert f"model folder: {tmp_path / 'runs' / args[1].removeprefix('runs/')}" in printed
        done = subprocess.run([sys.executable, "-m", "rsdix", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode in (0, 1) if args[:2] == ["data", "plan"] else done.returncode == 0, \
            f"{line}: {done.stderr[-2000:]}"
        printed += done.stdout
    assert "mR" in printed or "top1" in printed   # evaluate printed its rows
