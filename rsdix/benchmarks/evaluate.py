"""Evaluation speed: retrieval metrics on random 10k x 50k features, and the feature cache
(hit rate and speed-up of a second evaluation of the same model and images)."""
from __future__ import annotations

import tempfile
import time

import numpy as np
import torch
from PIL import Image

from rsdix.evaluation.retrieval import retrieval_metrics
from rsdix.evaluation.zero_shot import zero_shot
from rsdix.models.features import FeatureCache
from rsdix.models import load_model


def _retrieval(n_img: int, n_txt: int, dim: int = 512) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(n_img, dim, generator=g), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(n_txt, dim, generator=g), dim=-1)
    t2i = torch.arange(n_txt) % n_img
    start = time.perf_counter()
    img @ txt.T                                            # the bare similarity matmul, for scale
    matmul_s = time.perf_counter() - start
    start = time.perf_counter()
    metrics = retrieval_metrics(img, txt, t2i)
    total_s = time.perf_counter() - start
    name = f"retrieval metrics {n_img} images x {n_txt} texts, dim {dim} (both directions)"
    return [{"benchmark": name, "metric": "seconds", "value": total_s, "unit": "s"},
            {"benchmark": name, "metric": "time / one full similarity matmul", "value": total_s / matmul_s,
             "unit": "ratio"},
            {"benchmark": name, "metric": "mR on random features (chance)", "value": metrics["mR"], "unit": "%"}]


class _Synthetic:
    """``n`` random RGB images in memory, with the dataset interface encode_images needs."""

    def __init__(self, n: int, size: int = 64):
        rng = np.random.default_rng(0)
        self.images = [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(n)]
        self.labels = [i % 5 for i in range(n)]
        self.classes = [f"class{c}" for c in range(5)]
        self.class_names = ["beach", "forest", "river", "airport", "farmland"]
        self.source = "synthetic"
        self.transform = None

    def __len__(self):
        return len(self.images)

    def load(self, i):
        return self.images[i]

    def filenames(self):
        return [f"synthetic/{i}.png" for i in range(len(self.images))]


def _cache(n: int) -> list[dict]:
    bundle = load_model("rsdix-tiny")
    ds = _Synthetic(n)
    with tempfile.TemporaryDirectory() as folder:
        cache = FeatureCache(folder)
        start = time.perf_counter()
        zero_shot(bundle, ds, "rs", cache=cache, dataset_name="synthetic")
        first_s = time.perf_counter() - start
        first = (cache.stats.hits, cache.stats.misses)
        start = time.perf_counter()
        zero_shot(bundle, ds, "rs", cache=FeatureCache(folder), dataset_name="synthetic")  # new session: disk
        second_s = time.perf_counter() - start
        again = FeatureCache(folder)
        zero_shot(bundle, ds, "rs", cache=again, dataset_name="synthetic")
    name = f"feature cache, zero-shot of rsdix-tiny on {n} synthetic images, evaluated twice"
    return [{"benchmark": name, "metric": "hit rate, second evaluation", "value": again.stats.hit_rate,
             "unit": "fraction", "note": f"first evaluation: {first[0]} hits, {first[1]} misses"},
            {"benchmark": name, "metric": "images encoded, second evaluation", "value": again.stats.images_encoded,
             "unit": "images"},
            {"benchmark": name, "metric": "first / second evaluation time", "value": first_s / second_s,
             "unit": "ratio"}]


def run(quick: bool = False) -> list[dict]:
    sizes = (2000, 10000) if quick else (10000, 50000)
    return _retrieval(*sizes) + _cache(128 if quick else 512)


if __name__ == "__main__":  # pragma: no cover
    for row in run(quick=True):
        print(row)
