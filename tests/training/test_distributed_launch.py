"""Multi-process training on a CPU, launched the way docs/training.md says: two processes equal the
single-process run on the concatenated batch at every step (loss and gradients), write one
checkpoint and one log, and resume after a kill.

In fp32 (``loop.precision=no``): with bf16 autocast (the smoke profile's ``auto`` on a CPU with
AVX512-BF16/AMX) two runs already differ after the first step when only the reduction order
changes, a single process with 1 vs 2 threads as much as 1 vs 2 processes (docs/training.md).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from rsdix.paths import repo_root

HERE = repo_root() / "tests"   # the fixture modules (distributed_worker.py)
BIN = Path(sys.executable).parent
FP32 = ["loop.precision=no", "loop.log_every=1", "data.cache_images=false"]
pytestmark = [pytest.mark.data, pytest.mark.slow]


def env(root) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "RSDIX_NO_PROGRESS": "1",
            "RSDIX_DATA_ROOT": str(root)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launcher(name: str) -> list[str]:
    exe = BIN / name
    if not exe.exists():
        pytest.skip(f"{name} not installed beside this Python")
    if name == "accelerate":   # the multi-GPU command; on a machine without a GPU it runs on the CPU (gloo)
        return [str(exe), "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", str(free_port())]
    return [str(exe), "--standalone", "--nproc_per_node", "2"]


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (torchrun starts each worker in a session of its own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(children.get(tree[-1], []))
    return tree


def run(cmd, root, timeout=240):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env(root), timeout=timeout)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    return out.stdout + out.stderr


def test_two_processes_equal_one_process_on_the_concatenated_batch_every_step(ucm_root, tmp_path):
    """accelerate launch --multi_gpu --num_processes 2 (on a CPU: gloo) vs one process, 4 steps of
    the smoke config (RSDiX distillation: EMA teacher, OT targets, logit scale, clipping at 1.0)."""
    args = ["smoke", "loop.steps=4", *FP32]
    run([*launcher("accelerate"), str(HERE / "distributed_worker.py"), str(tmp_path / "mp.pt"), *args], ucm_root.parent)
    run([sys.executable, str(HERE / "distributed_worker.py"), str(tmp_path / "sp.pt"), *args], ucm_root.parent)
    mp, sp = (torch.load(tmp_path / f, weights_only=False) for f in ("mp.pt", "sp.pt"))
    assert (mp["world"], sp["world"]) == (2, 1)
    assert [r["step"] for r in mp["history"]] == [r["step"] for r in sp["history"]] == [1, 2, 3, 4]
    for a, b in zip(mp["history"], sp["history"]):
        for term in ("loss", "hard", "distill", "grad_norm", "logit_scale", "distill_tau"):
            assert a[term] == pytest.approx(b[term], rel=1e-5), (a["step"], term)
    assert sorted(mp["grads"]) == sorted(sp["grads"]) == [1, 2, 3, 4]
    for step, grads in sp["grads"].items():
        assert grads.keys() == mp["grads"][step].keys() and len(grads) > 50
        for name, g in grads.items():   # each tensor to 1e-5 of its largest entry
            err = (mp["grads"][step][name] - g).abs().max() / g.abs().max().clamp_min(1e-12)
            assert err < 1e-4, (step, name, float(err))


def test_torchrun_writes_one_checkpoint_and_log_and_resumes_after_a_kill(ucm_root, tmp_path):
    """torchrun --standalone --nproc_per_node 2 -m rsdix train ...: killed (SIGKILL to torchrun
    and its workers) after its first checkpoint, relaunched with --resume: the log continues from the
    checkpoint's step, and every logged number and the final weights equal an uninterrupted
    two-process run started by accelerate launch --multi_gpu (an exact resume; against one process they agree to fp32 noise, which grows
    to ~1e-4 over 20 steps)."""
    steps = 20
    args = ["train", "--config", "smoke", f"loop.steps={steps}", "loop.ckpt_every=2", *FP32]
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    cmd = [*launcher("torchrun"), "-m", "rsdix", *args, "--run-dir", str(killed)]
    proc = subprocess.Popen(cmd, env=env(ucm_root.parent), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not (killed / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    finished = proc.poll()
    for pid in reversed(process_tree(proc.pid)):   # the workers, then torchrun: a node lost mid-run
        os.kill(pid, signal.SIGKILL)
    err = proc.communicate()[1]
    assert finished is None, f"the run ended before the kill (rc {finished}): {err[-2000:]}"
    killed_at = torch.load(killed / "checkpoint.pt", weights_only=True)["step"]
    assert 0 < killed_at < steps
    out = run(cmd + ["--resume"], ucm_root.parent)
    assert f"at step {killed_at}" in out and out.count(f"done: {steps} steps") == 1   # one main process reports
    assert sorted(p.name for p in killed.iterdir()) == ["checkpoint.pt", "train_log.csv"]   # rank 0 only
    # the uninterrupted run through accelerate's launcher (the multi-GPU command; gloo on a CPU)
    run([*launcher("accelerate"), "-m", "rsdix", *args, "--run-dir", str(whole)], ucm_root.parent)
    log_k, log_w = (pd.read_csv(d / "train_log.csv") for d in (killed, whole))
    assert log_k["step"].tolist() == log_w["step"].tolist() == list(range(1, steps + 1))
    cols = ["hard", "distill", "loss", "grad_norm", "logit_scale", "distill_tau", "lr"]
    assert log_k[cols].to_numpy() == pytest.approx(log_w[cols].to_numpy(), rel=1e-6)
    w_k, w_w = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (killed, whole))
    assert w_k["step"] == w_w["step"] == steps
    for part in ("trainee", "teacher"):
        for name, w in w_w[part].items():
            assert torch.allclose(w_k[part][name], w, rtol=1e-6, atol=1e-7), (part, name)


def test_two_nodes_rendezvous_and_equal_one_process(ucm_root, tmp_path):
    """The multi-node form on one machine: two torchrun agents (--nnodes 2, one process each, node
    ranks 0 and 1, one master address and port) make one run; its log equals one process."""
    torchrun = launcher("torchrun")[0]
    args = ["train", "--config", "smoke", "loop.steps=4", "loop.ckpt_every=0", *FP32]
    port = str(free_port())
    nodes = [subprocess.Popen([torchrun, "--nnodes", "2", "--node_rank", str(rank), "--nproc_per_node", "1",
                               "--master_addr", "127.0.0.1", "--master_port", port, "-m", "rsdix", *args,
                               "--run-dir", str(tmp_path / "nodes")],
                              env=env(ucm_root.parent), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in (0, 1)]
    outs = [n.communicate(timeout=240)[0] for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], outs[0][-2000:] + outs[1][-2000:]
    assert sum(o.count("done: 4 steps") for o in outs) == 1   # the main process of node 0 only
    run([sys.executable, "-m", "rsdix", *args, "--run-dir", str(tmp_path / "one")], ucm_root.parent)
    log_n, log_1 = (pd.read_csv(tmp_path / d / "train_log.csv") for d in ("nodes", "one"))
    cols = ["hard", "distill", "loss", "grad_norm"]
    assert log_n[cols].to_numpy() == pytest.approx(log_1[cols].to_numpy(), rel=1e-5)
