"""rsdix.benchmarks.gpu: the GPU comparison with open_clip_train, prepared on the CPU. The whole
quick run (ViT-B/32 stand-in, batch 4, CPU: ~2 minutes) is `python -m rsdix.benchmarks.gpu`; these
tests check its parts."""
from __future__ import annotations

import csv
import json
import math

import torch

from rsdix.benchmarks import gpu
from rsdix.data.captions import read_captions


def test_without_cuda_the_full_benchmark_says_it_did_not_run(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rows = gpu.run(quick=False)
    assert len(rows) == 1 and rows[0]["metric"] == "not run: no CUDA device" and math.isnan(rows[0]["value"])


def test_both_trainers_read_the_same_pairs(tmp_path):
    images = gpu.standin_images(tmp_path / "images", 5, root=tmp_path)   # no data root: random images
    karpathy, table = gpu.write_caption_files(images, tmp_path, rows=12)
    ours = {(tmp_path / "images" / r.filename, r.captions[0]) for r in read_captions(karpathy)}
    with open(table) as f:
        theirs = [(row["filepath"], row["title"]) for row in csv.DictReader(f)]
    assert len(theirs) == 12                                       # one CSV epoch = steps x batch rows
    assert {(p, t) for p, t in theirs} == {(str(p), t) for p, t in ours}
    assert json.loads(karpathy.read_text())["images"][0]["split"] == "train"


def test_open_clip_log_rates_and_the_steady_median():
    line = ("2026-12-03,15:40:01 | INFO | Train Epoch: 0 [ 2048/153600 (1%)] Data (t): 0.012 "
            "Batch (t): 0.301, 1701.00/s, 1701.00/s/gpu LR: 0.000100 Logit Scale: 100.000 Contrastive_loss: 6.2 (6.2)")
    assert [float(m.group(1)) for m in gpu.OPEN_CLIP_RATE.finditer(line)] == [1701.0]
    assert gpu.steady([10.0, 900.0, 1000.0, 1100.0]) == 1000.0     # the first quarter left out
    assert math.isnan(gpu.steady([]))


def test_both_trainers_log_at_the_same_realistic_interval():
    """issue #28: log_every=1 for both trainers hid the loop's reads of the GPU; now the paper
    config's interval for a full run, every 2 steps for the CPU form."""
    assert gpu.log_every(gpu.STEPS) == gpu.LOG_EVERY == 10 and gpu.log_every(gpu.QUICK_STEPS) == 2
