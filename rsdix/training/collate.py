"""What a training batch is made of: the image views each item gives and the collates that stack
them with tokenised captions.

* :class:`ClipCollate`: ``(image, caption)`` items (CLIP training);
* :class:`LanguageCollate`: ``(image, {lang: caption}, index)`` items, one language per batch
  (RS-M-CLIP, :class:`rsdix.data.parallel_captions.MultilingualCaptionDataset`);
* :class:`ViewsCollate`: items whose image is a dict of views (DINO's multi-crop, :func:`dino_views`);
* :func:`stack_views`: the stacking all three share.
"""
from __future__ import annotations

import random
from typing import Mapping, Sequence

import torch
from torchvision import transforms as T

from rsdix.data.transforms import find_normalize
from rsdix.training.dino import DINOConfig, MultiCropConfig


class ClipCollate:
    """``[(image, caption)] -> {"image", "text" (token ids), "caption"}``; picklable for workers.
    Items ``(image, caption, key)`` (a :class:`~rsdix.data.shards.ShardDataset` with ``with_keys``)
    add ``"key"``."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, items):
        images, captions, *keys = zip(*items)
        batch = {"image": torch.stack(images), "text": self.tokenizer(list(captions)), "caption": list(captions)}
        if keys:
            batch["key"] = list(keys[0])
        return batch


def batch_language(indices: Sequence[int], languages: Sequence[str], seed: int = 0,
                   weights: Sequence[float] | None = None, epoch: int = 0) -> str:
    """The language of a batch: a seeded draw (``weights``: sampling probabilities) keyed by
    the batch's images, so it does not depend on workers, batch position or resumption."""
    rng = random.Random(f"lang-{seed}-{epoch}-{','.join(map(str, sorted(indices)))}")
    return rng.choices(list(languages), weights=weights, k=1)[0]


class LanguageCollate:
    """``[(image, {lang: caption}, index)] -> {"image", "text", "caption", "lang"}``.

    ``per="batch"`` (default, RS-M-CLIP: a language per step) or ``per="item"`` (a language per
    image). Images without the drawn language fall back to English, else their first language;
    ``self.fallbacks`` counts those. ``image`` items may be tensors or dicts of views (multi-crop:
    ``{"image": t, "crops": [t, ...]}``), which are stacked per key.
    """

    def __init__(self, tokenizer, languages: Sequence[str], seed: int = 0,
                 weights: Sequence[float] | None = None, per: str = "batch"):
        if per not in ("batch", "item"):
            raise ValueError(f"per must be 'batch' or 'item', got {per!r}")
        self.tokenizer, self.languages, self.seed = tokenizer, list(languages), seed
        self.weights = list(weights) if weights is not None else None
        if self.weights is not None and len(self.weights) != len(self.languages):
            raise ValueError("one weight per language")
        self.per = per
        self.fallbacks = 0

    def __call__(self, items):
        images, caps_by_lang, indices = zip(*items)
        if self.per == "batch":
            wanted = [batch_language(indices, self.languages, self.seed, self.weights)] * len(items)
        else:
            wanted = [batch_language([i], self.languages, self.seed, self.weights) for i in indices]
        captions, langs = [], []
        for want, caps in zip(wanted, caps_by_lang):
            lang = want if want in caps else ("en" if "en" in caps else next(iter(caps)))
            self.fallbacks += lang != want
            captions.append(caps[lang])
            langs.append(lang)
        batch = stack_views(images)
        batch.update(text=self.tokenizer(captions), caption=captions, lang=langs)
        return batch


class ViewsCollate:
    """``[(views dict or tensor, caption)] -> {"image", "crops"?, "text", "caption"}``; picklable."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, items):
        images, captions = zip(*items)
        batch = stack_views(images)
        batch.update(text=self.tokenizer(list(captions)), caption=list(captions))
        return batch


def stack_views(images) -> dict:
    """Stack a batch of image items: tensors -> ``{"image": B x ...}``; dicts of views -> each
    key stacked (lists of tensors, such as multi-crop views, stacked position by position)."""
    first = images[0]
    if torch.is_tensor(first):
        return {"image": torch.stack(list(images))}
    if isinstance(first, Mapping):
        out = {}
        for key, value in first.items():
            if torch.is_tensor(value):
                out[key] = torch.stack([im[key] for im in images])
            else:
                out[key] = [torch.stack([im[key][j] for im in images]) for j in range(len(value))]
        return out
    raise TypeError(f"cannot batch images of type {type(first).__name__}; use a transform that returns tensors")


# ---------------------------------------------------------------- DINO multi-crop views
def default_local_size(global_size: int, patch_size: int = 1) -> int:
    """DINO's local/global ratio 96/224, rounded to a multiple of the patch size (at least one patch)."""
    size = round(global_size * 96 / 224 / patch_size) * patch_size
    return max(patch_size, int(size))


class MultiCropTransform:
    """PIL image -> list of tensors: ``n_global`` crops of ``global_size`` then ``n_local`` of ``local_size``."""

    def __init__(self, cfg: MultiCropConfig, size: int, mean: Sequence[float], std: Sequence[float],
                 patch_size: int = 1):
        self.cfg = cfg
        self.global_size = cfg.global_size or size
        self.local_size = cfg.local_size or default_local_size(self.global_size, patch_size)
        flips = [T.RandomHorizontalFlip(), T.RandomVerticalFlip()] if cfg.flip else []
        colour = [T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=cfg.colour_jitter),
                  T.RandomGrayscale(p=cfg.grayscale)]
        normalise = [T.ToTensor(), T.Normalize(mean, std)]
        bicubic = T.InterpolationMode.BICUBIC

        def blur(p, size):
            kernel = max(3, (size // 10) | 1)  # odd kernel, about a tenth of the crop
            return T.RandomApply([T.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=p)

        def crop(size, scale):
            return [T.RandomResizedCrop(size, scale=tuple(scale), interpolation=bicubic)] + flips + colour

        g, l_ = self.global_size, self.local_size
        self.globals = []
        for i in range(cfg.n_global):
            extra = [blur(cfg.blur[min(i, 1)], g)]
            if i == 1 and cfg.solarize > 0:
                extra.append(T.RandomSolarize(128, p=cfg.solarize))
            self.globals.append(T.Compose(crop(g, cfg.global_scale) + extra + normalise))
        self.local = T.Compose(crop(l_, cfg.local_scale) + [blur(cfg.blur[2], l_)] + normalise)

    @property
    def n_crops(self) -> int:
        return self.cfg.n_global + self.cfg.n_local

    def __call__(self, image) -> list[torch.Tensor]:
        crops = [t(image) for t in self.globals]
        crops += [self.local(image) for _ in range(self.cfg.n_local)]
        return crops


class DinoViews:
    """PIL image -> ``{"image": CLIP view, "crops": [global..., local...]}``.

    The CLIP view is the first global crop (RS-M-CLIP: the CLIP loss on a global view) or,
    with ``base``, that transform's output (the same CLIP input as runs without DINO).
    """

    def __init__(self, multicrop: MultiCropTransform, base=None):
        self.multicrop, self.base = multicrop, base

    def __call__(self, image) -> dict:
        crops = self.multicrop(image)
        return {"image": crops[0] if self.base is None else self.base(image), "crops": crops}


def dino_views(cfg: DINOConfig, bundle, base=None) -> DinoViews:
    """The multi-crop views transform for a model bundle (its input size, patch size and normalisation)."""
    pre = bundle.preprocess_config or {}
    norm = None if pre.get("mean") else find_normalize(bundle.preprocess_val)
    mean = pre.get("mean") or norm.mean
    std = pre.get("std") or norm.std
    patch = getattr(bundle.model.visual, "patch_size", None)
    patch = (patch if isinstance(patch, int) else patch[0]) if patch is not None else 1
    return DinoViews(MultiCropTransform(cfg.crops, bundle.image_size, mean, std, patch), base)
