"""Multi-process training on a CPU: `torchrun --nproc_per_node 2 -m rsdix train ...` is a real
two-process run (it used to start two independent single-process runs)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ARGS = ["train", "--config", "smoke", "loop.steps=2", "data.cache_images=false", "loop.ckpt_every=0"]


def _run(cmd, root):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RSDIX_NO_PROGRESS": "1", "RSDIX_DATA_ROOT": str(root)}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.data
@pytest.mark.slow
def test_torchrun_on_cpu_is_one_distributed_run_with_the_global_batch(ucm_root, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed beside this Python")
    multi = _run([str(torchrun), "--nproc_per_node", "2", "-m", "rsdix", *ARGS, "--run-dir", str(tmp_path / "mp")],
                 ucm_root.parent)
    assert multi.returncode == 0, multi.stderr[-2000:]
    assert multi.stdout.count("done: 2 steps") == 1          # one main process reports, not two
    single = _run([sys.executable, "-m", "rsdix", *ARGS, "--run-dir", str(tmp_path / "sp")], ucm_root.parent)
    assert single.returncode == 0, single.stderr[-2000:]
    log_mp, log_sp = (pd.read_csv(tmp_path / d / "train_log.csv") for d in ("mp", "sp"))
    assert sorted(p.name for p in (tmp_path / "mp").iterdir()) == ["checkpoint.pt", "train_log.csv"]
    assert len(log_mp) == len(log_sp) == 2
    # the first step sees the same global batch of 16 (8 per process, gathered for the loss)
    first = ["hard", "distill", "loss"]
    assert log_mp.loc[0, first].tolist() == pytest.approx(log_sp.loc[0, first].tolist(), rel=1e-6)
    assert log_mp.loc[0, "grad_norm"] == pytest.approx(log_sp.loc[0, "grad_norm"], rel=1e-4)
