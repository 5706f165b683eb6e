"""The training data of CLIP runs: caption datasets of the config, a seeded share of their images,
the augmentation, optionally DINO's multi-crop views, cached decoded images, and the collate
function that tokenises the captions.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from rsdix.config import option
from rsdix.data.captions import CaptionDataset, find_image_dir, read_captions, select_split
from rsdix.data.registry import caption_file
from rsdix.data.transforms import bundle_train_transform
from rsdix.errors import ConfigError
from rsdix.training.dino import dino_views
from rsdix.training.multilingual import MultilingualCaptionDataset


@dataclass
class ClipDataConfig:
    datasets: list = field(default_factory=lambda: ["ucm_captions"])  # registry names or caption files
    split: str = "train"
    fraction: float = option(1.0, min=0, max=1, min_exclusive=True)  # share of the training images used (data-efficiency study)
    augment: Literal["rs", "openclip", "none"] = "rs"
    crop_scale: tuple = (0.5, 1.0)
    zoom_out: float = option(1.0, min=1)  # largest zoom-out (reflection padding) factor; 1 = off
    color_jitter: float = option(0.0, min=0)  # brightness/contrast strength (saturation half of it); 0 = off
    cache_images: bool = False          # keep decoded images (resized to ~1.15x model size) in memory
    data_root: str | None = None
    languages: list | None = None       # multilingual: sample one of these languages per step (None: any caption)
    language_per: Literal["batch", "item"] = "batch"  # one language per step (batch) or per item


class ConcatCaptions(torch.utils.data.ConcatDataset):
    def set_epoch(self, epoch: int) -> None:
        for d in self.datasets:
            d.set_epoch(epoch)


class CachedImages:
    """Wraps ``CaptionDataset.load`` to decode each image once (resized to ``size``)."""

    def __init__(self, dataset, size: int):
        self.dataset, self.size, self.cache = dataset, size, {}
        transform, dataset.transform = dataset.transform, None
        self.transform = transform
        self._orig_load = dataset.load
        dataset.load = self.load

    def load(self, index: int):
        img = self.cache.get(index)
        if img is None:
            img = self._orig_load(index)  # transform is None: a PIL image
            img.thumbnail((self.size, self.size))
            self.cache[index] = img
        return self.transform(img) if self.transform is not None else img


def subset_records(records: list, fraction: float, seed: int) -> list:
    """A seeded random ``fraction`` of the records (at least one), in their original order."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"data.fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return list(records)
    k = max(1, round(fraction * len(records)))
    keep = sorted(random.Random(f"subset-{seed}").sample(range(len(records)), k))
    return [records[i] for i in keep]


def build_train_dataset(cfg, bundle, seed: int | None = None):
    """The training image-caption dataset: one random caption per image, RS augmentation.

    ``cfg`` is a :class:`rsdix.training.clip.ClipTrainConfig` (its ``data`` and ``dino`` sections
    and ``loop.seed``, the default of ``seed``); ``bundle`` the model's (input size, normalisation).
    """
    seed = cfg.loop.seed if seed is None else seed
    kwargs = ({"scale": tuple(cfg.data.crop_scale), "zoom_out": cfg.data.zoom_out,
               "color_jitter": cfg.data.color_jitter} if cfg.data.augment == "rs" else {})
    transform = bundle_train_transform(bundle, cfg.data.augment, **kwargs)
    if cfg.dino.enabled:  # multi-crop views; the CLIP image is a global crop or this transform's output
        transform = dino_views(cfg.dino, bundle, transform if cfg.dino.clip_view == "base" else None)
    dataset_cls = MultilingualCaptionDataset if cfg.data.languages else CaptionDataset
    lang_kwargs = {"languages": list(cfg.data.languages)} if cfg.data.languages else {}
    parts = []
    for name in cfg.data.datasets:
        path = Path(name) if str(name).endswith((".json", ".csv", ".tsv")) else caption_file(name, cfg.data.data_root)
        if not path.is_absolute() and not path.exists() and cfg.data.data_root:
            path = Path(cfg.data.data_root) / path
        records = select_split(read_captions(path), cfg.data.split, path)
        records = subset_records(records, cfg.data.fraction, seed)
        ds = dataset_cls(records, find_image_dir(path), transform=transform, seed=seed, source=path,
                         **lang_kwargs)
        if cfg.data.cache_images:
            CachedImages(ds, int(round(bundle.image_size * 1.15)))
        parts.append(ds)
    return parts[0] if len(parts) == 1 else ConcatCaptions(parts)


class ClipCollate:
    """``[(image, caption)] -> {"image", "text" (token ids), "caption"}``; picklable for workers."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, items):
        images, captions = zip(*items)
        return {"image": torch.stack(images), "text": self.tokenizer(list(captions)), "caption": list(captions)}
