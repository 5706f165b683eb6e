"""Data-loader throughput per worker at 224 px, and the workers a GPU's training rate needs.

One data-loader worker is one process on one core, so images per CPU second measured here in one
process with one thread (``time.process_time``: other load on the machine does not count) is a
worker's rate. On UCM-Captions images (256-px TIFF, decoded each time):

* the RS training view (``data.augment: rs``) at 224 px, handed over as float32 (``ToTensor`` +
  ``Normalize`` in the worker, as before issue #28) and as uint8 (normalised on the device by
  :class:`rsdix.training.collate.DeviceNormalize`, what training does now);
* DINO's multi-crop views of ``paper_dino.yaml`` (2 global crops of 224 px, 8 local crops of 96 px):
  every augmentation on PIL images in the worker (``dino.crops.on_device: false``) and only the
  crops cut there (``on_device: true``, the default), with the photometric part
  (:mod:`rsdix.training.photometric`) timed per image on this CPU for reference (on a GPU it is
  a few elementwise passes over the batch);
* the workers a target training rate needs: ``ceil(rate / images per s per worker)``, for the rates
  of :data:`TARGET_RATES` (estimates, not measurements: no GPU has run here).
"""
from __future__ import annotations

import math
import os
import random
import time

import torch

from rsdix.data.images import load_image
from rsdix.data.registry import available, load_dataset
from rsdix.data.transforms import rs_train_transform
from rsdix.training.collate import DeviceNormalize, MultiCropTransform
from rsdix.training.dino import MultiCropConfig

SIZE, LOCAL = 224, 96
MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)   # OpenAI CLIP's
# images/s a training process consumes (estimates): ViT-B/32, batch 512, bf16 on one H100, InfoNCE
# (issue #28's estimate, to be replaced by `rsdix bench --only gpu` on a GPU box)
TARGET_RATES = {"ViT-B/32 on one H100 (estimate)": 5000}


def _rate(fn, images, seconds_floor: float = 1e-9) -> float:
    """Images per CPU second of this process (``time.process_time``): a worker's rate on a core of
    its own, whatever else runs on the machine."""
    start = time.process_time()
    for i, image in enumerate(images):
        torch.manual_seed(i)
        random.seed(i)
        fn(image)
    return len(images) / max(time.process_time() - start, seconds_floor)


def workers_for(rate: float, per_worker: float) -> int:
    """Data-loader workers needed to deliver ``rate`` images/s at ``per_worker`` images/s each."""
    return math.ceil(rate / per_worker) if per_worker > 0 else 0


def run(quick: bool = False) -> list[dict]:
    if "ucm_captions" not in available():
        return [{"benchmark": "data loader per worker", "metric": "skipped", "value": float("nan"), "unit": "",
                 "note": "UCM-Captions not under the data root"}]
    ds = load_dataset("ucm_captions", split="train", transform=None)
    n = 12 if quick else 96
    paths = [ds.image_dir / r.filename for r in ds.records[:n]]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        as_float = rs_train_transform(SIZE, MEAN, STD)
        as_uint8 = rs_train_transform(SIZE, MEAN, STD, uint8=True)
        pil = MultiCropConfig(n_global=2, n_local=8, local_size=LOCAL, on_device=False)
        dino_worker = MultiCropTransform(pil, SIZE, MEAN, STD, patch_size=16)
        dino_cut = MultiCropTransform(MultiCropConfig(n_global=2, n_local=8, local_size=LOCAL, on_device=True), SIZE, MEAN, STD, 16)
        decoded = [load_image(p) for p in paths[:max(4, n // 4)]]
        rates = {
            "rs view, float32 out": _rate(lambda p: as_float(load_image(p)), paths),
            "rs view, uint8 out": _rate(lambda p: as_uint8(load_image(p)), paths),
            "DINO 2x224 + 8x96, all on PIL": _rate(lambda im: dino_worker(im), decoded),
            "DINO 2x224 + 8x96, crops only": _rate(lambda im: dino_cut(im), decoded),
        }
        decode = _rate(load_image, paths)
        views = [dino_cut(im) for im in decoded]
        norm = DeviceNormalize(MEAN, STD)
        batch = {"crops": [torch.stack([v["crops"][j] for v in views]) for j in range(10)],
                 "crop_params": torch.stack([v["crop_params"] for v in views])}
        start = time.process_time()
        norm(batch)
        device_ms = (time.process_time() - start) / len(views) * 1000
    finally:
        torch.set_num_threads(threads)
    for name in ("DINO 2x224 + 8x96, all on PIL", "DINO 2x224 + 8x96, crops only"):   # + the decode they skip
        rates[name] = 1 / (1 / rates[name] + 1 / decode)
    where = f"UCM images, {SIZE} px, one worker = 1 process x 1 thread, {n} images"
    load = os.getloadavg()[0]   # other work on the machine slows every rate here
    rows = [{"benchmark": f"data loader per worker ({where})", "metric": f"{name} images/s",
             "value": rate, "unit": "img/s", "load_average": load} for name, rate in rates.items()]
    rows.append({"benchmark": f"data loader per worker ({where})",
                 "metric": "DINO photometric augmentation on this CPU, per image (device part)",
                 "value": device_ms, "unit": "ms", "load_average": load})
    for target, rate in TARGET_RATES.items():
        for name in ("rs view, uint8 out", "DINO 2x224 + 8x96, crops only"):
            rows.append({"benchmark": f"data-loader workers for a training rate ({where})",
                         "metric": f"{name}: workers for {rate} img/s ({target})",
                         "value": float(workers_for(rate, rates[name])), "unit": "workers", "load_average": load})
    return rows


def markdown(rows: list[dict]) -> str:
    """The loader table of docs/paper.md from this module's rows of ``figures/bench.csv``."""
    lines = ["| what (one worker: 1 process, 1 thread) | value |", "|---|---|"]
    for r in rows:
        unit = {"img/s": "images/s", "ms": "ms", "workers": "workers"}.get(r["unit"], r["unit"])
        value = f"{r['value']:.0f}" if r["unit"] != "ms" else f"{r['value']:.0f}"
        lines.append(f"| {r['metric'].removesuffix(' images/s')} | {value} {unit} |")
    return "\n".join(lines)


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
