"""RS-M-CLIP / RemoteCLIP pieces: cost of the DINO term and speed of caption generation.

Ratios within one run (the machine is noisy):

* CLIP + DINO step / InfoNCE step, same model and batch, 2 global + 4 local crops
  (goal <= 3.0: the student sees 2 globals + 4 small locals, the teacher 2 globals).
* Shared global-crop pass (:class:`rsdix.training.dino.ClipWithDino`) / separate terms
  (:class:`rsdix.training.objectives.SumObjective`) (goal < 1: one image-tower pass saved per step).
* Box-to-Caption images/s (goal >= 500: a DOTA-sized set captions in seconds) and Mask-to-Box
  time / the time of its scipy calls alone (label, find_objects, bincount per class; goal <= 1.5:
  the Python around them costs little).
"""
from __future__ import annotations

import random
import statistics
import time

import numpy as np
import torch
from scipy import ndimage

from rsdix.benchmarks import bench_model
from rsdix.data.annotations import Box, ImageAnnotation, mask_to_boxes
from rsdix.data.box_captions import box_to_captions
from rsdix.training.clip_objectives import ClipLossConfig, ClipObjective
from rsdix.training.collate import default_local_size
from rsdix.training.dino import ClipWithDino, DINOConfig, DinoTerm, MultiCropConfig
from rsdix.training.objectives import SumObjective


def _timed(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def _dino_steps(quick: bool) -> list[dict]:
    bundle, batch_size = bench_model(quick, quick_batch=16)
    model = bundle.model.train()
    size = bundle.image_size
    patch = getattr(model.visual, "patch_size", None)
    patch = (patch if isinstance(patch, int) else patch[0]) if patch is not None else 1
    local = default_local_size(size, patch)
    g = torch.Generator().manual_seed(0)
    crops = [torch.randn(batch_size, 3, size, size, generator=g) for _ in range(2)]
    crops += [torch.randn(batch_size, 3, local, local, generator=g) for _ in range(4)]
    captions = [f"an aerial image number {i}" for i in range(batch_size)]
    batch = {"image": crops[0], "crops": crops, "text": bundle.tokenizer(captions), "caption": captions}
    cfg = DINOConfig(enabled=True, out_dim=4096, hidden_dim=512, bottleneck_dim=128,
                     crops=MultiCropConfig(n_global=2, n_local=4))
    clip = ClipObjective(ClipLossConfig(method="infonce"))
    dino = DinoTerm(model, bundle.embed_dim, cfg, total_steps=100)
    objectives = {"infonce": clip, "shared": ClipWithDino(clip, dino, 1.0),
                  "separate": SumObjective({"clip": (1.0, clip), "dino": (1.0, dino)})}
    params = [p for p in model.parameters() if p.requires_grad] + dino.dino.trainable_parameters()
    opt = torch.optim.AdamW(params, lr=1e-6)

    def step(name):
        objectives[name](batch, model)["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if name != "infonce":
            dino.after_step(dino.n_steps + 1)

    for name in objectives:
        step(name)  # warm-up
    rounds, per_round = (3, 1) if quick else (4, 2)
    times = {name: [] for name in objectives}
    for _ in range(rounds):
        for name in objectives:
            times[name].append(_timed(lambda: step(name), per_round))
    t = {k: statistics.median(v) for k, v in times.items()}
    where = f"{bundle.name}, batch {batch_size}, {size} px globals, {local} px locals"
    return [
        {"benchmark": f"train step: InfoNCE + DINO (2+4 crops) / InfoNCE ({where})", "metric": "time_ratio",
         "value": t["shared"] / t["infonce"], "unit": "x", "goal": "<= 3.0", "ok": t["shared"] / t["infonce"] <= 3.0,
         "infonce_step_s": t["infonce"], "dino_step_s": t["shared"]},
        {"benchmark": f"CLIP+DINO: shared global pass / separate terms ({where})", "metric": "time_ratio",
         "value": t["shared"] / t["separate"], "unit": "x", "goal": "< 1.0", "ok": t["shared"] / t["separate"] < 1.0,
         "separate_step_s": t["separate"]},
    ]


def _captions(quick: bool) -> list[dict]:
    rng = random.Random(0)
    classes = ["airplane", "ship", "storage tank", "vehicle", "bridge", "harbor", "tennis court"]
    n_images = 300 if quick else 3000
    anns = []
    for i in range(n_images):
        boxes = []
        for _ in range(rng.randint(1, 40)):
            x, y = rng.uniform(0, 780), rng.uniform(0, 780)
            boxes.append(Box(rng.choice(classes), x, y, x + rng.uniform(2, 20), y + rng.uniform(2, 20)))
        anns.append(ImageAnnotation(f"{i}.png", 800, 800, boxes))
    start = time.perf_counter()
    n_caps = sum(len(box_to_captions(a, seed=0)) for a in anns)
    b2c = n_images / (time.perf_counter() - start)

    gen = np.random.default_rng(0)
    n_masks = 5 if quick else 30
    masks = []
    for _ in range(n_masks):  # blocky class-index masks: 16 x 16 px cells of 6 classes
        cells = gen.integers(0, 6, (32, 32))
        masks.append(np.kron(cells, np.ones((16, 16), dtype=np.int64)))
    names = {i: f"class {i}" for i in range(1, 6)}
    mask_to_boxes(masks[0], names)  # warm-up

    structure = ndimage.generate_binary_structure(2, 2)
    m2b_s, floor_s, n_boxes = [], [], 0
    for m in masks:  # interleaved: Mask-to-Box vs its floor, one labelling pass per class
        start = time.perf_counter()
        n_boxes += len(mask_to_boxes(m, names, min_area=16))
        m2b_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        for c in names:  # the scipy work itself: label, bounding slices, component areas
            lab, n = ndimage.label(m == c, structure=structure, output=np.int32)
            ndimage.find_objects(lab)
            np.bincount(lab.ravel(), minlength=n + 1)
        floor_s.append(time.perf_counter() - start)
    m2b = 1.0 / statistics.median(m2b_s)
    m2b_ratio = statistics.median(m2b_s) / statistics.median(floor_s)
    return [
        {"benchmark": f"Box-to-Caption ({n_images} images, 1-40 boxes each)", "metric": "images_per_s",
         "value": b2c, "unit": "img/s", "goal": ">= 500", "ok": b2c >= 500, "captions": n_caps},
        {"benchmark": f"Mask-to-Box / its scipy calls alone ({n_masks} masks of 512 x 512, "
                      f"5 classes, ~400 objects each)", "metric": "time_ratio", "value": m2b_ratio, "unit": "x",
         "goal": "<= 1.5", "ok": m2b_ratio <= 1.5, "masks_per_s": m2b, "boxes": n_boxes},
    ]


def run(quick: bool = False) -> list[dict]:
    return _dino_steps(quick) + _captions(quick)


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
