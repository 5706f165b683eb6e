"""``make gpu-check``: the paper path end to end on this machine's accelerator, in a few minutes.

Run it first on a GPU box (``python -m rsdix.benchmarks.gpu_check``); without CUDA it runs the same
steps on the CPU at CPU sizes (CI runs that form). Each step prints PASS or FAIL and its time:

1. ``stand-ins``: the dry run's offline stand-ins (:func:`rsdix.reporting.dry_run.prepare`:
   random-weight OpenAI ViT-B/32 and GPT-2 in the hub layout, a data root of real and stand-in
   sets), under ``--out`` (default ``runs/gpu-check``), reused when present;
2. ``train + kill``: ``train/paper.yaml`` (ViT-B/32, RSDiX distillation, bf16, the paper's batch of
   512 on a GPU) for a few steps with a checkpoint after each, in a process that kills itself with
   SIGKILL mid-run (after the checkpoint of step ``steps - 2``);
3. ``resume``: a new process resumes the run to its last step (the log continues, every loss finite);
4. ``quick check``: the trained model, still on the training device, through
   :class:`rsdix.evaluation.quick_check.QuickCheck`;
5. ``evaluate``: the saved model loaded back onto the device (:func:`rsdix.evaluation.model_specs.load_bundles`)
   and evaluated (zero-shot WHU-RS19, retrieval UCM);
6. ``caption train``: a GPT-2 captioner (``captioning/paper.yaml``) trained a few steps on the
   model's frozen encoder (on a CPU with a 10-token prefix instead of 40: the 40-token MLP mapper
   needs ~8 GB with AdamW);
7. ``beam search``: test captions decoded with beam search.

Steps 3-7 run in one process (their times exclude its start); the stand-ins and the training
process's environment (hub cache, data root) are the dry run's. Exit code 0 when every step passed.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from rsdix import config
from rsdix.captioning.experiment import load_experiment
from rsdix.captioning.training import caption_images, train_captioner
from rsdix.data.captions import find_image_dir, read_captions_dropping_empty, select_split
from rsdix.data.registry import caption_file
from rsdix.evaluation.model_specs import ModelSpec, load_bundles
from rsdix.evaluation.quick_check import QuickCheck
from rsdix.evaluation.suite import evaluate_model, load_eval_config
from rsdix.models import save_model
from rsdix.paths import DRY_RUN_ENV, runs_dir
from rsdix.reporting import dry_run
from rsdix.training.clip import train_clip
from rsdix.utils import pick_device

# the paper's sizes on a GPU; on a CPU (CI) small batches and a 10-token captioning prefix instead of 40
# (the paper's MLP mapper to 40 tokens has 480M parameters: ~8 GB with AdamW, too much for a small machine)
GPU = {"batch": 512, "steps": 4, "workers": -1, "caption_batch": 40, "caption_steps": 3, "decode_len": 30,
       "images": 60, "prefix": None}
CPU = {"batch": 4, "steps": 3, "workers": 0, "caption_batch": 4, "caption_steps": 2, "decode_len": 12,
       "images": 20, "prefix": 10}
GOAL_S = 300   # the whole check on one GPU
PREFIX = "GPUCHECK "


def sizes(device: str) -> dict:
    return GPU if device.startswith("cuda") else CPU


def train_config(device: str):
    """``train/paper.yaml`` at the check's size: a few steps, a checkpoint after each."""
    s = sizes(device)
    return config.load("train", "paper", [f"loop.steps={s['steps']}", f"loop.batch_size={s['batch']}",
                                          f"loop.num_workers={s['workers']}", "loop.ckpt_every=1",
                                          "loop.log_every=1", "loop.warmup_steps=1",
                                          "loop.keep_optimizer_at_end=false",
                                          f"loop.cpu={str(not device.startswith('cuda')).lower()}"], epochs=None)


# ---------------------------------------------------------------- in the child processes
def report(name: str, fn) -> bool:
    """Run one step; print its line (``GPUCHECK {json}``) for the parent."""
    start = time.perf_counter()
    try:
        detail, ok = fn(), True
    except Exception as exc:  # noqa: BLE001 - a failed step is reported, the others still run
        detail, ok = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}", False
    print(PREFIX + json.dumps({"step": name, "ok": ok, "seconds": time.perf_counter() - start,
                               "detail": str(detail)}), flush=True)
    return ok


def child_train(out: Path, device: str) -> None:
    """Train the check's config, killing this process (SIGKILL) at the end of step ``steps - 1``,
    before its checkpoint: the checkpoint of step ``steps - 2`` is the last one."""
    cfg = train_config(device)

    def kill(step, logs):
        if step == cfg.loop.steps - 1:
            os.kill(os.getpid(), signal.SIGKILL)

    train_clip(cfg, run_dir=out / "train", callbacks=[kill], desc="gpu-check train")


def child_rest(out: Path, device: str) -> int:
    """Steps 3-7 in this process, each reported as one line; returns the number that failed."""
    s, cfg = sizes(device), train_config(device)
    data_root = os.environ.get("RSDIX_DATA_ROOT")
    state: dict = {}

    def resume():
        res = train_clip(cfg, run_dir=out / "train", resume=True, desc="gpu-check resume")
        log = pd.read_csv(out / "train" / "train_log.csv")
        if res.step != cfg.loop.steps or log["step"].tolist() != list(range(1, cfg.loop.steps + 1)):
            raise AssertionError(f"resumed to step {res.step}, log steps {log['step'].tolist()}")
        if not all(math.isfinite(v) for v in log["loss"]):
            raise AssertionError(f"non-finite loss in {out / 'train' / 'train_log.csv'}")
        state["bundle"] = res.bundle
        return f"from the checkpoint of step {cfg.loop.steps - 2} to step {res.step} on " \
               f"{next(res.model.parameters()).device}, final loss {log['loss'].iloc[-1]:.4f}"

    def quick():
        bundle = state["bundle"]
        scores = QuickCheck(bundle, data_root, max_zero_shot=s["images"])(bundle)
        if not all(math.isfinite(v) for v in scores.values()):
            raise AssertionError(f"non-finite scores {scores}")
        return f"mR {scores['mR']:.2f}, zero-shot top-1 {scores['zs_top1']:.2f} (random weights)"

    def evaluate():
        folder = save_model(state["bundle"], out / "model")
        bundles, missing = load_bundles([ModelSpec("gpu-check", str(folder), trained=True)], device=device)
        if missing:
            raise AssertionError(f"could not load {folder}")
        bundle = state["loaded"] = bundles["gpu-check"]
        ev = load_eval_config("paper", max_images=s["images"], max_caption_images=12, templates="rsdix",
                              batch_size=32, num_workers=0)
        rows = evaluate_model(bundle, tasks=["zero-shot:whu_rs19", "retrieval:ucm_captions"], config=ev,
                              data_root=data_root, write=False)
        if rows.empty or not rows["value"].map(math.isfinite).all():
            raise AssertionError("no rows or non-finite values")
        del state["bundle"]   # the trained copy: the loaded one goes on
        gc.collect()
        return f"{len(rows)} rows on {next(bundle.model.parameters()).device}"

    def caption():
        overrides = {"epochs": 0, "embed_batch_size": 32, "decode": {"max_len": s["decode_len"], "batch_size": 4},
                 "loop": {"steps": s["caption_steps"], "batch_size": s["caption_batch"], "num_workers": 0,
                          "log_every": 1, "ckpt_every": 0}}
        if s["prefix"]:
            overrides["model"] = {"prefix_len": s["prefix"]}
        exp = load_experiment("paper", train=overrides)
        path = caption_file("ucm_captions", data_root)
        records = read_captions_dropping_empty(path)
        train = select_split(records, "train", path)[:max(8, s["caption_batch"])]
        state["test"], state["image_dir"] = select_split(records, "test", path)[:4], find_image_dir(path)
        state["exp"] = exp
        trained = state["captioner"] = train_captioner(state["loaded"], train, state["image_dir"],
                                                       exp.train_config(True), out / "caption", resume=False,
                                                       source=str(path), device=device)
        losses = [r["loss"] for r in trained.history]
        if not losses or not all(math.isfinite(v) for v in losses):
            raise AssertionError(f"losses {losses}")
        return f"{len(losses)} steps, loss {losses[-1]:.3f}, on {next(trained.captioner.parameters()).device}"

    def beam():
        decode = state["exp"].train.decode
        captions = caption_images(state["captioner"], state["test"], state["image_dir"], decode)
        if len(captions) != len(state["test"]) or not all(isinstance(c, str) for c in captions):
            raise AssertionError(f"captions {captions}")
        return f"{decode.method} {decode.beam_size}: {captions[0][:60]!r}"

    steps = [("resume", resume), ("quick check", quick), ("evaluate", evaluate), ("caption train", caption),
             ("beam search", beam)]
    for i, (name, fn) in enumerate(steps):
        if not report(name, fn):   # each step needs the ones before it
            for later, _ in steps[i + 1:]:
                print(PREFIX + json.dumps({"step": later, "ok": False, "seconds": 0.0,
                                           "detail": f"not run: {name} failed"}), flush=True)
            return len(steps) - i
    return 0


# ---------------------------------------------------------------- the parent
def _child(what: str, out: Path, device: str, env: dict) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "rsdix.benchmarks.gpu_check", "--child", what, "--out", str(out), "--device", device]
    return subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)


def _line(name: str, ok: bool, seconds: float, detail: str = "") -> dict:
    print(f"[gpu-check] {'PASS' if ok else 'FAIL'}  {name:14s} {seconds:7.1f} s  {detail}", flush=True)
    return {"step": name, "ok": ok, "seconds": seconds, "detail": detail}


def check(out: str | Path | None = None, device: str | None = None, data_root=None) -> list[dict]:
    """Every step (see the module docstring); one dict per step: step, ok, seconds, detail."""
    device = pick_device(device)
    out = Path(out) if out else runs_dir() / "gpu-check"
    results = []
    start = time.perf_counter()
    try:
        env = dry_run.prepare("paper", data_root, folder=out)
        env.pop(DRY_RUN_ENV, None)   # the check sets its own sizes; the notebooks' caps are not needed
        results.append(_line("stand-ins", True, time.perf_counter() - start, str(out / "standins")))
    except Exception as exc:  # noqa: BLE001 - nothing else can run without them
        results.append(_line("stand-ins", False, time.perf_counter() - start, f"{type(exc).__name__}: {exc}"))
        return results
    work = out / "check"
    shutil.rmtree(work, ignore_errors=True)   # an earlier check's runs
    t0 = time.perf_counter()
    proc = _child("train", work, device, env)
    cfg = train_config(device)
    ckpt = work / "train" / "checkpoint.pt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)["step"] if ckpt.exists() else None
    ok = proc.returncode == -signal.SIGKILL and saved == cfg.loop.steps - 2
    detail = (f"paper config, batch {cfg.loop.batch_size}, {device}: killed (SIGKILL) in step {cfg.loop.steps - 1}, "
              f"last checkpoint step {saved}") if ok else \
        f"rc {proc.returncode}, checkpoint step {saved}: {proc.stderr.strip()[-800:]}"
    results.append(_line("train + kill", ok, time.perf_counter() - t0, detail))
    if ok:
        proc = _child("rest", work, device, env)
        for line in proc.stdout.splitlines():
            if line.startswith(PREFIX):
                r = json.loads(line[len(PREFIX):])
                results.append(_line(r["step"], r["ok"], r["seconds"], r["detail"]))
        if proc.returncode != 0 and all(r["ok"] for r in results):
            results.append(_line("steps 3-7", False, 0.0, f"rc {proc.returncode}: {proc.stderr.strip()[-800:]}"))
    total = time.perf_counter() - start
    passed = sum(r["ok"] for r in results)
    goal = f" (goal on one GPU: <= {GOAL_S} s)" if device.startswith("cuda") else " (CPU form)"
    print(f"[gpu-check] {passed}/{len(results)} steps passed in {total:.0f} s on {device}{goal}", flush=True)
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rsdix.benchmarks.gpu_check", description=__doc__.split("\n")[0])
    p.add_argument("--out", default=None, help="stand-ins and runs (default runs/gpu-check)")
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when present)")
    p.add_argument("--data-root", default=None, help="the real data root the stand-ins link (default: $RSDIX_DATA_ROOT)")
    p.add_argument("--child", choices=["train", "rest"], default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child == "train":
        child_train(Path(args.out), args.device)
        return 0
    if args.child == "rest":
        return int(child_rest(Path(args.out), args.device) > 0)
    results = check(args.out, args.device, args.data_root)
    return 0 if results and all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
