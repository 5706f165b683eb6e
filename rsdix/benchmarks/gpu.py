"""The paper training config against open_clip's own trainer, on the same images, model and batch.

Issue #16's GPU rows: ``train/paper.yaml`` (OpenAI ViT-B/32, bf16, batch 512) trained by
:func:`rsdix.training.clip.train_clip` with InfoNCE and with RSDiX distillation, and
``open_clip_train.main`` (the installed open_clip's trainer) on the same stand-in images and
captions, the same random-weight ``openai`` stand-in (hub cache layout, QuickGELU), the same
batch, precision (``amp_bf16`` = bf16 autocast over fp32 weights, as accelerate's ``bf16``),
optimizer settings and data-loader workers (the augmentation differs: rsdix's ``rs`` crops, flips
and rotations against open_clip's random resized crop). Reported: images/s of each (the median over the logged
steps after the first quarter, which holds the warm-up and the first data-loader fill), the ratios
(goals: InfoNCE >= 1.0x open_clip, RSDiX >= 0.9x) and each run's peak GPU memory.

Without a CUDA device the full benchmark is not run (one row says so). ``quick=True`` runs the
same code on the CPU at batch 4 for a few steps in fp32 (the test), so a short GPU slot is
enough: ``rsdix bench --only gpu`` (or ``python -m rsdix.benchmarks.gpu``).
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch
from PIL import Image

from rsdix.benchmarks.train import CAPTIONS
from rsdix.config import load
from rsdix.log import get_logger
from rsdix.paths import data_root
from rsdix.reporting.standins import hub_environment, write_openai_clip
from rsdix.training.clip import train_clip

log = get_logger(__name__)

ARCH = "ViT-B-32"
STEPS, BATCH, WORKERS = 300, 512, 8            # a GPU box
QUICK_STEPS, QUICK_BATCH, QUICK_WORKERS = 4, 4, 0
LOG_EVERY, QUICK_LOG_EVERY = 10, 2              # both trainers log (and read the GPU back) this often: the
                                                # paper config's interval, not every step
GOALS = {"infonce": 1.0, "rsdix": 0.9}         # rsdix images/s / open_clip images/s


def standin_images(folder: Path, n: int, root=None) -> list[Path]:
    """``n`` training images: real UCM images of the data root where present (the dry run's
    stand-in source), else textured random 256-px JPEGs, written once under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    real = sorted((data_root(root, required=False) / "ucm_captions" / "images").glob("*.tif"))[:n]
    out = []
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        path = folder / f"img{i:05d}.jpg"
        if not path.exists():
            if real:
                Image.open(real[i % len(real)]).convert("RGB").save(path, quality=90)
            else:
                pixels = (torch.rand(3, 32, 32, generator=g) * 255).byte()
                image = Image.fromarray(pixels.permute(1, 2, 0).numpy()).resize((256, 256))
                image.save(path, quality=90)
        out.append(path)
    return out


def write_caption_files(images: list[Path], folder: Path, rows: int) -> tuple[Path, Path]:
    """The same image-caption pairs as a Karpathy JSON (rsdix) and as open_clip's CSV
    (``filepath``, ``title``), ``rows`` lines long so one CSV epoch is the benchmark's steps."""
    entries = [{"filename": p.name, "split": "train", "sentences": [{"raw": CAPTIONS[i % len(CAPTIONS)] + f" {i}"}]}
               for i, p in enumerate(images)]
    karpathy = folder / "dataset_bench.json"
    karpathy.write_text(json.dumps({"images": entries}))
    table = folder / "train.csv"
    with open(table, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filepath", "title"])
        for i in range(rows):
            e = entries[i % len(entries)]
            writer.writerow([str(images[i % len(images)]), e["sentences"][0]["raw"]])
    return karpathy, table


def log_every(steps: int) -> int:
    """The logging interval of both trainers: the paper config's, short runs (the CPU form) every 2 steps."""
    return LOG_EVERY if steps >= 10 * LOG_EVERY else QUICK_LOG_EVERY


def _peak_reset(cuda: bool) -> None:
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak(cuda: bool) -> float:
    return torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else math.nan


def steady(values: list[float]) -> float:
    """The median of the logged rates after the first quarter of them (warm-up, loader fill)."""
    values = [v for v in values if v > 0]
    if not values:
        return math.nan
    return statistics.median(values[len(values) // 4:])


def run_rsdix(method: str, karpathy: Path, run_dir: Path, steps: int, batch: int, workers: int,
              cuda: bool) -> dict:
    cfg = load("train", "paper", [f"loss.method={method}", f"data.datasets=[{karpathy}]", "data.cache_images=false",
                                  f"loop.steps={steps}", f"loop.batch_size={batch}", f"loop.num_workers={workers}",
                                  f"loop.log_every={log_every(steps)}", "loop.ckpt_every=0", f"loop.warmup_steps={max(1, steps // 6)}"]
               + ([] if cuda else ["loop.precision=no", "loop.cpu=true"]), epochs=None)
    res = train_clip(cfg, run_dir=run_dir)
    log_rows = pd.read_csv(run_dir / "train_log.csv")
    return {"img_per_s": steady(log_rows["img_per_s"].tolist()), "peak_gib": _peak(cuda), "steps": int(res.step)}


OPEN_CLIP_RATE = re.compile(r"Batch \(t\): [\d.]+, ([\d.]+)/s, ")


def run_open_clip(table: Path, logs: Path, steps: int, batch: int, workers: int, cuda: bool) -> dict:
    """``open_clip_train.main`` with the paper config's settings on the CSV of the same pairs."""
    from open_clip_train.main import main as open_clip_main  # heavy, and only this benchmark needs it

    paper = load("train", "paper")
    args = ["--train-data", str(table), "--dataset-type", "csv", "--csv-img-key", "filepath",
            "--csv-caption-key", "title", "--csv-separator", ",", "--model", ARCH, "--pretrained", "openai",
            "--force-quick-gelu",   # OpenAI's activation, as rsdix loads the openai tag
            "--batch-size", str(batch), "--epochs", "1", "--workers", str(workers),
            "--precision", "amp_bf16" if cuda else "fp32", "--lr", str(paper.loop.lr),
            "--wd", str(paper.loop.weight_decay), "--beta1", str(paper.loop.betas[0]),
            "--beta2", str(paper.loop.betas[1]), "--eps", str(paper.loop.eps),
            "--grad-clip-norm", str(paper.loop.grad_clip), "--warmup", str(max(1, steps // 6)),
            "--log-every-n-steps", str(log_every(steps)), "--save-frequency", "0", "--logs", str(logs), "--name", "open_clip",
            "--seed", "0"]
    open_clip_main(args)
    text = (logs / "open_clip" / "out.log").read_text()
    rates = [float(m.group(1)) for m in OPEN_CLIP_RATE.finditer(text)]
    if not rates:
        raise RuntimeError(f"{logs / 'open_clip' / 'out.log'}: no 'Batch (t): ..., N/s' lines to read")
    return {"img_per_s": steady(rates), "peak_gib": _peak(cuda), "steps": len(rates)}


def _child(what: str, inputs: Path, out: Path, steps: int, batch: int, workers: int, env: dict) -> dict:
    cmd = [sys.executable, "-m", "rsdix.benchmarks.gpu", "--child", what, str(inputs), str(out),
           str(steps), str(batch), str(workers)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} run failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child(what: str, inputs: str, out: str, steps: str, batch: str, workers: str) -> dict:
    """One run, in this process: rsdix (``infonce``/``rsdix``) or ``open_clip``."""
    cuda = torch.cuda.is_available()
    _peak_reset(cuda)
    args = (Path(inputs), Path(out), int(steps), int(batch), int(workers), cuda)
    return run_open_clip(*args) if what == "open_clip" else run_rsdix(what, *args)


def run(quick: bool = False) -> list[dict]:
    cuda = torch.cuda.is_available()
    title = f"paper training config vs open_clip_train ({ARCH} stand-in"
    if not cuda and not quick:
        log.warning("no CUDA device: the GPU comparison with open_clip_train is not run")
        return [{"benchmark": f"{title}, GPU)", "metric": "not run: no CUDA device", "value": math.nan,
                 "unit": "", "goal": None, "ok": None}]
    steps, batch, workers = (QUICK_STEPS, QUICK_BATCH, QUICK_WORKERS) if quick else (STEPS, BATCH, WORKERS)
    work = Path(tempfile.mkdtemp(prefix="rsdix-bench-gpu-"))
    try:
        images = standin_images(work / "images", max(batch * 4, 16))
        karpathy, table = write_caption_files(images, work, steps * batch)
        hub = work / "hf" / "hub"
        write_openai_clip(hub, ARCH)
        # each run in a process of its own: the hub cache is read from the environment at import, and
        # each peak-memory figure is that run's alone
        env = {**os.environ, **hub_environment(hub), "RSDIX_NO_PROGRESS": "1"}
        measured = {}
        for what, inputs in (("infonce", karpathy), ("rsdix", karpathy), ("open_clip", table)):
            measured[what] = _child(what, inputs, work / f"run-{what}", steps, batch, workers, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)   # the stand-in weights and images (~0.7 GB)
    where = (f"{title}, batch {batch}, {'bf16' if cuda else 'fp32'}, {steps} steps, "
             f"{torch.cuda.get_device_name() if cuda else 'CPU'})")
    base = measured["open_clip"]["img_per_s"]
    rows = [{"benchmark": where, "metric": f"{method} images/s / open_clip_train images/s",
             "value": measured[method]["img_per_s"] / base, "unit": "x", "goal": f">= {GOALS[method]:.1f}",
             "ok": measured[method]["img_per_s"] / base >= GOALS[method],
             "img_per_s": measured[method]["img_per_s"], "open_clip_img_per_s": base,
             "peak_gib": measured[method]["peak_gib"], "open_clip_peak_gib": measured["open_clip"]["peak_gib"]}
            for method in ("infonce", "rsdix")]
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(*sys.argv[2:8])))
    else:
        for row in run(quick=not torch.cuda.is_available()):
            print(row)
