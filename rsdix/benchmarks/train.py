"""Training-loop speed, as ratios measured in one run (the machine is noisy).

* RSDiX step time / InfoNCE step time, same model and batch, rounds interleaved
  (goal <= 1.40: the extra teacher forward is the floor).
* Sinkhorn's share of an RSDiX step (goal <= 2%).
* :func:`rsdix.training.loop.fit` throughput / a bare forward+backward+AdamW loop on the same batches
  (goal >= 0.90: accelerate, logging, the data plan and the NaN guard cost little).
* :func:`rsdix.training.loop.fit` with ``precision: bf16`` + ``channels_last`` / fp32 (no goal: the cpu
  profile uses bf16 where the CPU has AMX / AVX512-BF16, and this is the speed-up it buys).
"""
from __future__ import annotations

import copy
import os
import statistics
import time

import torch

from rsdix.benchmarks import bench_model
from rsdix.training import losses
from rsdix.training.collate import ClipCollate
from rsdix.training.clip_objectives import ClipLossConfig, ClipObjective
from rsdix.training.ema import EMATeacher
from rsdix.training.loop import LoopConfig, fit
from rsdix.training.optim import can_fuse

CAPTIONS = ["many buildings and green trees are around a playground", "a plane is parked at the airport",
            "a river goes through the dense forest", "a baseball field is beside a road",
            "white waves on the beach", "dense residential houses with some roads",
            "an empty parking lot next to a building", "storage tanks near the harbour"]


def _setup(quick: bool):
    bundle, batch_size = bench_model(quick, quick_batch=32)
    size = bundle.image_size
    g = torch.Generator().manual_seed(0)
    captions = [CAPTIONS[i % len(CAPTIONS)] + f" {i}" for i in range(batch_size)]
    batch = {"image": torch.randn(batch_size, 3, size, size, generator=g), "text": bundle.tokenizer(captions),
             "caption": captions}
    return bundle, batch, captions


def _timed(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def run(quick: bool = False) -> list[dict]:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    bundle, batch, captions = _setup(quick)
    model = bundle.model.train()
    rounds, per_round = (3, 2) if quick else (5, 3)

    objectives = {m: ClipObjective(ClipLossConfig(method=m)) for m in ("infonce", "rsdix")}
    teacher = EMATeacher(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params + [p for o in objectives.values() for p in o.parameters()], lr=1e-5)

    def step(method):
        obj = objectives[method]
        if obj.needs_teacher:
            teacher.update(model)
        out = obj(batch, model, teacher if obj.needs_teacher else None)
        out["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step("infonce"), step("rsdix")  # warm-up
    times = {"infonce": [], "rsdix": []}
    for _ in range(rounds):
        for m in times:
            times[m].append(_timed(lambda: step(m), per_round))
    t_inf, t_rsdix = statistics.median(times["infonce"]), statistics.median(times["rsdix"])

    with torch.no_grad():
        t_img = teacher.encode_image(batch["image"], normalize=True).float()
        t_txt = teacher.encode_text(batch["text"], normalize=True).float()
    t_sink = statistics.median(_timed(lambda: losses.ot_targets(t_img, t_txt, eps=0.1, iters=5), 5)
                               for _ in range(rounds))

    # loop vs bare forward/backward on the same batches
    n_steps = 6 if quick else 12
    dataset = [(batch["image"][i], captions[i]) for i in range(len(captions))] * 2
    cfg = LoopConfig(steps=n_steps, batch_size=len(captions), lr=1e-5, warmup_steps=1, log_every=10 ** 6,
                     grad_clip=1.0, weight_decay=0.1)

    os.environ["RSDIX_NO_PROGRESS"] = "1"
    loop_s = []
    bare_s = []
    for _ in range(2 if quick else 3):
        res = fit(model, ClipObjective(ClipLossConfig(method="infonce")), dataset, cfg,
                  collate_fn=ClipCollate(bundle.tokenizer))
        loop_s.append(res.seconds / n_steps)
        obj = ClipObjective(ClipLossConfig(method="infonce"))
        trainable = [p for p in model.parameters() if p.requires_grad]   # fused where fit's AdamW is
        bare_opt = torch.optim.AdamW(trainable, lr=1e-5, fused=can_fuse([{"params": trainable}]))

        def bare():
            obj(batch, model)["loss"].backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            bare_opt.step()
            bare_opt.zero_grad(set_to_none=True)

        bare_s.append(_timed(bare, n_steps))
    loop_eff = statistics.median(bare_s) / statistics.median(loop_s)

    # bf16 autocast + channels_last vs fp32, same fit() loop, same batches, interleaved

    bf16_model = copy.deepcopy(model)
    bf16_cfg = LoopConfig(**{**cfg.__dict__, "precision": "bf16", "channels_last": True})
    fp32_s, bf16_s = [], []
    for _ in range(2 if quick else 3):
        fp32_s.append(fit(model, ClipObjective(ClipLossConfig(method="rsdix")), dataset, cfg,
                          collate_fn=ClipCollate(bundle.tokenizer)).seconds / n_steps)
        bf16_s.append(fit(bf16_model, ClipObjective(ClipLossConfig(method="rsdix")), dataset, bf16_cfg,
                          collate_fn=ClipCollate(bundle.tokenizer)).seconds / n_steps)
    bf16_speedup = statistics.median(fp32_s) / statistics.median(bf16_s)

    where = f"{bundle.name}, batch {len(captions)}, {bundle.image_size} px, {torch.get_num_threads()} threads"
    return [
        {"benchmark": f"train step: RSDiX / InfoNCE ({where})", "metric": "time_ratio",
         "value": t_rsdix / t_inf, "unit": "x", "goal": "<= 1.40", "ok": t_rsdix / t_inf <= 1.40,
         "infonce_step_s": t_inf, "rsdix_step_s": t_rsdix},
        {"benchmark": f"Sinkhorn share of an RSDiX step ({where})", "metric": "share",
         "value": 100 * t_sink / t_rsdix, "unit": "%", "goal": "<= 2", "ok": 100 * t_sink / t_rsdix <= 2,
         "sinkhorn_s": t_sink},
        {"benchmark": f"fit() throughput / bare forward+backward ({where})", "metric": "throughput_ratio",
         "value": loop_eff, "unit": "x", "goal": ">= 0.90", "ok": loop_eff >= 0.90,
         "loop_step_s": statistics.median(loop_s), "bare_step_s": statistics.median(bare_s)},
        {"benchmark": f"fit() RSDiX step, fp32 / bf16 autocast + channels_last ({where})", "metric": "speedup",
         "value": bf16_speedup, "unit": "x", "goal": None, "ok": None,
         "fp32_step_s": statistics.median(fp32_s), "bf16_step_s": statistics.median(bf16_s)},
    ]


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
