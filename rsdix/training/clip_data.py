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
from rsdix.data.parallel_captions import MultilingualCaptionDataset
from rsdix.data.captions import CaptionDataset, find_image_dir, read_captions_dropping_empty, select_split
from rsdix.data.duplicates import check_exclusions_used, read_exclusions
from rsdix.data.registry import caption_file
from rsdix.data.shards import ShardDataset, is_shard_spec, shard_urls
from rsdix.data.transforms import bundle_train_transform
from rsdix.errors import ConfigError
from rsdix.paths import data_root
from rsdix.training.collate import dino_views


@dataclass
class ClipDataConfig:
    datasets: list = field(default_factory=lambda: ["ucm_captions"])  # registry names, caption files or
                                                                       # shards:FOLDER / shards:PATTERN.tar
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
    shuffle_buffer: int = option(1000, min=0)  # shards: samples in the seeded shuffle buffer of each process
    exclude: list = field(default_factory=list)  # exclusion lists (CSV, `rsdix data leakage`): images left out
    skip_bad: bool = False  # skip unreadable images (verified first) and samples of cut-short shards, counted


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
    """The training image-caption dataset: one random caption per image, RS augmentation (its
    images uint8 tensors: train through :func:`rsdix.training.clip.build_setup`, whose ``on_device``
    step normalises them, or apply :class:`rsdix.training.collate.DeviceNormalize` yourself).

    ``cfg`` is a :class:`rsdix.training.clip.ClipTrainConfig` (its ``data`` and ``dino`` sections
    and ``loop.seed``, the default of ``seed``); ``bundle`` the model's (input size, normalisation).
    """
    seed = cfg.loop.seed if seed is None else seed
    # rs: uint8 images, normalised on the training device (rsdix.training.collate.DeviceNormalize)
    kwargs = ({"scale": tuple(cfg.data.crop_scale), "zoom_out": cfg.data.zoom_out,
               "color_jitter": cfg.data.color_jitter, "uint8": True} if cfg.data.augment == "rs" else {})
    transform = bundle_train_transform(bundle, cfg.data.augment, **kwargs)
    if cfg.dino.enabled:  # multi-crop views; the CLIP image is a global crop or this transform's output
        transform = dino_views(cfg.dino, bundle, transform if cfg.dino.clip_view == "base" else None,
                               cuda=torch.cuda.is_available() and not cfg.loop.cpu)
    dataset_cls = MultilingualCaptionDataset if cfg.data.languages else CaptionDataset
    lang_kwargs = {"languages": list(cfg.data.languages)} if cfg.data.languages else {}
    if any(is_shard_spec(n) for n in cfg.data.datasets):
        return _shard_dataset(cfg, transform, seed)
    parts, matched = [], set()
    excluded = read_exclusions(cfg.data.exclude, data_root(cfg.data.data_root)) if cfg.data.exclude else {}
    for name in cfg.data.datasets:
        path = Path(name) if str(name).endswith((".json", ".csv", ".tsv")) else caption_file(name, cfg.data.data_root)
        if not path.is_absolute() and not path.exists() and cfg.data.data_root:
            path = Path(cfg.data.data_root) / path
        records = select_split(read_captions_dropping_empty(path), cfg.data.split, path)
        if excluded:   # paths in the lists are relative to the data root
            files = {r.filename: (find_image_dir(path) / r.filename).resolve() for r in records}
            matched |= set(files.values()) & set(excluded)
            records = [r for r in records if files[r.filename] not in excluded]
        records = subset_records(records, cfg.data.fraction, seed)
        ds = dataset_cls(records, find_image_dir(path), transform=transform, seed=seed, source=path,
                         skip_bad=cfg.data.skip_bad, **lang_kwargs)
        if cfg.data.cache_images:
            CachedImages(ds, int(round(bundle.image_size * 1.15)))
        parts.append(ds)
    check_exclusions_used(excluded, matched, data_root(cfg.data.data_root))
    return parts[0] if len(parts) == 1 else ConcatCaptions(parts)


def _shard_dataset(cfg, transform, seed: int) -> ShardDataset:
    """A ``shards:`` entry of ``data.datasets``: webdataset shards streamed through
    :class:`rsdix.data.shards.ShardDataset` (one entry, the whole data set; no ``fraction``,
    ``languages`` or image cache: shards are the data as written)."""
    names = list(cfg.data.datasets)
    if len(names) != 1:
        raise ConfigError(f"data.datasets: a shards entry cannot be mixed with other datasets ({names}); "
                          f"write them into one set of shards")
    if cfg.data.fraction != 1 or cfg.data.languages or cfg.data.exclude:
        raise ConfigError(f"data.datasets: {names[0]}: data.fraction, data.languages and data.exclude do not "
                          f"apply to shards (write the subset, language or kept images as their own shards)")
    return ShardDataset(shard_urls(names[0], cfg.data.data_root), transform, seed=seed,
                        shuffle_buffer=cfg.data.shuffle_buffer, source=str(names[0]), skip_bad=cfg.data.skip_bad)
