"""rsdix.benchmarks.memory: activations saved for the backward pass, per pair and under gradient
checkpointing; docs/paper.md's memory table is the committed rows of figures/bench.csv."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from rsdix.benchmarks import memory
from rsdix.models import load_model
from rsdix.paths import repo_root


def test_saved_bytes_grow_with_the_batch_and_checkpointing_keeps_block_inputs():
    torch.manual_seed(0)
    model = load_model("rsdix-tiny").model.train()
    one, two = memory.saved_bytes(model, 1, 32, 32), memory.saved_bytes(model, 2, 32, 32)
    assert len(one["blocks"]) == 4                   # 2 image + 2 text blocks
    per_pair = two["total"] - one["total"]
    assert per_pair > 0 and all(b > i > 0 for b, i in zip(two["blocks"], two["inputs"]))
    # a block input: tokens x width values (bf16 or float32 under autocast, by op), per pair
    assert two["inputs"][0] - one["inputs"][0] in {(1 + (32 // 8) ** 2) * 64 * n for n in (2, 4)}


def test_the_table_adds_weights_optimizer_teacher_and_activations():
    row = memory.memory_table([{"arch": "X", "params_m": 100.0, "act_mib_per_sample": 10.0,
                                "act_ckpt_mib_per_sample": 2.0, "fixed_mib": 200.0}], batch=512, gpu_gib=80)[0]
    assert row["state_gib"] == pytest.approx(100e6 * 16 / 2 ** 30) and row["ema_gib"] == pytest.approx(100e6 * 4 / 2 ** 30)
    assert row["act_gib"] == pytest.approx(5.0) and row["act_ckpt_gib"] == pytest.approx(1.0)
    assert row["total_gib"] == pytest.approx(row["state_gib"] + row["ema_gib"] + 200 / 1024 + 5.0)
    assert row["fits"] and row["gpus_needed"] == 1


def test_docs_paper_holds_the_committed_memory_table():
    """Every number of the table comes from figures/bench.csv (`rsdix bench --only memory`)."""
    table = pd.read_csv(repo_root() / "figures" / "bench.csv")
    rows = table[table["module"] == "memory"].to_dict("records")
    assert [r["arch"] for r in rows] == list(memory.ARCHS)
    assert memory.markdown(rows) in (repo_root() / "docs" / "paper.md").read_text()
