"""Data pipeline throughput: images/s of the UCM training view (decode + RS augmentation)."""
from __future__ import annotations

import time

from rsdix.data.registry import available, load_dataset
from rsdix.data.transforms import rs_train_transform


def run(quick: bool = False) -> list[dict]:
    if "ucm_captions" not in available():
        return [{"benchmark": "ucm train view", "metric": "skipped", "value": float("nan"), "unit": "",
                 "note": "UCM-Captions not under the data root"}]
    transform = rs_train_transform(128, (0.5,) * 3, (0.25,) * 3)
    ds = load_dataset("ucm_captions", split="train", transform=transform)
    n = 64 if quick else 256
    start = time.perf_counter()
    for i in range(n):
        ds[i]
    per_s = n / (time.perf_counter() - start)
    return [{"benchmark": "ucm train view (decode + rs aug, 128 px, 1 process)", "metric": "images_per_s",
             "value": per_s, "unit": "img/s"}]
