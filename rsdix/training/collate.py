"""What a training batch is made of: the image views each item gives and the collates that stack
them with tokenised captions.

* :class:`ClipCollate`: ``(image, caption)`` items (CLIP training);
* :class:`LanguageCollate`: ``(image, {lang: caption}, index)`` items, one language per batch
  (RS-M-CLIP, :class:`rsdix.data.parallel_captions.MultilingualCaptionDataset`);
* :class:`ViewsCollate`: items whose image is a dict of views (DINO's multi-crop, :func:`dino_views`);
* :func:`stack_views`: the stacking all three share;
* :class:`DeviceNormalize`: the step that makes the uint8 images of a batch normalised floats once
  the batch is on the training device (the workers ship a quarter of float32's bytes).
"""
from __future__ import annotations

import dataclasses
import random
from typing import Mapping, Sequence

import torch
from torchvision import transforms as T

from rsdix.data.transforms import bundle_mean_std
from rsdix.training.dino import DINOConfig, MultiCropConfig
from rsdix.training.photometric import apply_crop_params, blur_kernel_size, draw_crop_params


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
    """PIL image -> ``{"crops": [...]}``: ``n_global`` crops of ``global_size`` then ``n_local`` of
    ``local_size``.

    ``cfg.on_device`` true: the crops are only cut here (random resized crop and flips, uint8
    tensors) and ``"crop_params"`` (``n_crops x N``) holds each crop's drawn photometric
    augmentation, which :class:`DeviceNormalize` applies to the batch on the training device
    (:mod:`rsdix.training.photometric`). Otherwise every augmentation runs here on the PIL image
    and the crops are normalised float tensors (the PIL path).
    """

    def __init__(self, cfg: MultiCropConfig, size: int, mean: Sequence[float], std: Sequence[float],
                 patch_size: int = 1):
        self.cfg = cfg
        self.global_size = cfg.global_size or size
        self.local_size = cfg.local_size or default_local_size(self.global_size, patch_size)
        self.on_device = bool(getattr(cfg, "on_device", False))
        flips = [T.RandomHorizontalFlip(), T.RandomVerticalFlip()] if cfg.flip else []
        colour = [T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=cfg.colour_jitter),
                  T.RandomGrayscale(p=cfg.grayscale)]
        normalise = [T.ToTensor(), T.Normalize(mean, std)]
        bicubic = T.InterpolationMode.BICUBIC

        def blur(p, size):
            return T.RandomApply([T.GaussianBlur(blur_kernel_size(size), sigma=(0.1, 2.0))], p=p)

        def crop(size, scale):
            return [T.RandomResizedCrop(size, scale=tuple(scale), interpolation=bicubic)] + flips

        g, l_ = self.global_size, self.local_size
        if self.on_device:
            self.globals = [T.Compose(crop(g, cfg.global_scale) + [T.PILToTensor()]) for _ in range(cfg.n_global)]
            self.local = T.Compose(crop(l_, cfg.local_scale) + [T.PILToTensor()])
            return
        self.globals = []
        for i in range(cfg.n_global):
            extra = [blur(cfg.blur[min(i, 1)], g)]
            if i == 1 and cfg.solarize > 0:
                extra.append(T.RandomSolarize(128, p=cfg.solarize))
            self.globals.append(T.Compose(crop(g, cfg.global_scale) + colour + extra + normalise))
        self.local = T.Compose(crop(l_, cfg.local_scale) + colour + [blur(cfg.blur[2], l_)] + normalise)

    @property
    def n_crops(self) -> int:
        return self.cfg.n_global + self.cfg.n_local

    def _params(self, index: int) -> torch.Tensor:
        cfg = self.cfg
        is_global = index < cfg.n_global
        blur_p = cfg.blur[min(index, 1)] if is_global else cfg.blur[2]
        solarize_p = cfg.solarize if index == 1 else 0.0
        return draw_crop_params(cfg.colour_jitter, cfg.grayscale, blur_p, solarize_p)

    def __call__(self, image) -> dict:
        crops = [t(image) for t in self.globals]
        crops += [self.local(image) for _ in range(self.cfg.n_local)]
        if not self.on_device:
            return {"crops": crops}
        return {"crops": crops, "crop_params": torch.stack([self._params(i) for i in range(len(crops))])}


class DinoViews:
    """PIL image -> ``{"crops": [global..., local...], "crop_params"?}`` (:class:`MultiCropTransform`),
    with ``"image"`` only when ``base`` is given (that transform's output: the same CLIP input as runs
    without DINO). Without ``base`` the CLIP term takes the first global crop itself
    (:class:`rsdix.training.dino.ClipWithDino`), so no crop is stacked twice."""

    def __init__(self, multicrop: MultiCropTransform, base=None):
        self.multicrop, self.base = multicrop, base

    def __call__(self, image) -> dict:
        views = self.multicrop(image)
        if self.base is not None:
            views["image"] = self.base(image)
        return views


def dino_views(cfg: DINOConfig, bundle, base=None, cuda: bool | None = None) -> DinoViews:
    """The multi-crop views transform for a model bundle (its input size, patch size and normalisation).
    ``crops.on_device`` None becomes ``cuda`` (default: whether CUDA is available): the photometric
    augmentations on the GPU of a GPU run, on PIL images in the workers of a CPU run."""
    mean, std = bundle_mean_std(bundle)
    patch = getattr(bundle.model.visual, "patch_size", None)
    patch = (patch if isinstance(patch, int) else patch[0]) if patch is not None else 1
    crops = cfg.crops
    if crops.on_device is None:
        crops = dataclasses.replace(crops, on_device=torch.cuda.is_available() if cuda is None else bool(cuda))
    return DinoViews(MultiCropTransform(crops, bundle.image_size, mean, std, patch), base)


# ---------------------------------------------------------------- on the device
class DeviceNormalize:
    """The loop's ``on_device`` step (:func:`rsdix.training.loop.fit`): uint8 images of a batch
    (``"image"``, and each of ``"crops"``) become float tensors normalised with ``mean`` / ``std``,
    on whatever device the batch is on, after the crops' photometric augmentation where the batch
    carries ``"crop_params"`` (:mod:`rsdix.training.photometric`). Float images pass unchanged (a
    transform that normalised already). ``x / 255``, then ``(x - mean) / std``: the arithmetic of
    torchvision's ``ToTensor`` + ``Normalize``, so a CPU run's numbers are those of the float
    pipeline."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)

    def to_float(self, x: torch.Tensor, params: torch.Tensor | None = None) -> torch.Tensor:
        if x.dtype != torch.uint8:
            return x
        x = x.float().div(255)
        if params is not None:
            x = apply_crop_params(x, params)
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return x.sub(mean).div(std)

    def __call__(self, batch: dict) -> dict:
        batch = dict(batch)
        if torch.is_tensor(batch.get("image")):
            batch["image"] = self.to_float(batch["image"])
        if "crops" in batch:
            params = batch.pop("crop_params", None)
            batch["crops"] = [self.to_float(c, None if params is None else params[:, j])
                              for j, c in enumerate(batch["crops"])]
        return batch
