"""rsdix.benchmarks.gpu_check (`make gpu-check`): the sizes and the paper config it trains. The whole
check (minutes on a CPU) runs in .ci/run; its children report one JSON line per step."""
from __future__ import annotations

import json

from rsdix.benchmarks import gpu_check


def test_the_check_trains_the_paper_config_at_the_devices_size():
    gpu, cpu = gpu_check.train_config("cuda"), gpu_check.train_config("cpu")
    assert gpu.model == cpu.model == "ViT-B-32" and gpu.loss.method == "rsdix" and gpu.loop.precision == "bf16"
    assert gpu.loop.batch_size == 512 and gpu.loop.num_workers == -1 and not gpu.loop.cpu
    assert cpu.loop.batch_size == 4 and cpu.loop.cpu and cpu.loop.ckpt_every == 1
    assert cpu.loop.steps >= 3   # a checkpoint before the kill, a step after the resume


def test_a_step_reports_one_line_and_a_failure_does_not_raise(capsys):
    assert gpu_check.report("fine", lambda: "ok") is True
    assert gpu_check.report("broken", lambda: 1 / 0) is False
    lines = [json.loads(line[len(gpu_check.PREFIX):]) for line in capsys.readouterr().out.splitlines()]
    assert [(r["step"], r["ok"]) for r in lines] == [("fine", True), ("broken", False)]
    assert lines[1]["detail"].startswith("ZeroDivisionError")
