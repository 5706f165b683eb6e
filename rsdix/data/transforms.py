"""Image transforms.

* Evaluation and pretrained models: open_clip's own preprocessing (``bundle.preprocess_val``).
* Training on RS images: :func:`rs_train_transform`, which adds the augmentations that make
  sense for nadir imagery, where "up" has no meaning: horizontal and vertical flips, 90-degree
  rotations, and a random resized crop.
"""
from __future__ import annotations

import random
from typing import Sequence

import torch
from torchvision import transforms as T
from torchvision.transforms import functional as F


class RandomRot90:
    """Rotate by a random multiple of 90 degrees (lossless on square images)."""

    def __call__(self, image):
        k = random.randrange(4)
        return image if k == 0 else F.rotate(image, 90 * k)

    def __repr__(self) -> str:
        return "RandomRot90()"


def rs_train_transform(image_size: int, mean: Sequence[float], std: Sequence[float],
                       scale: tuple[float, float] = (0.5, 1.0), flips: bool = True, rot90: bool = True,
                       color_jitter: float = 0.0) -> T.Compose:
    """RS training augmentation: random resized crop, flips, 90-degree rotations, optional jitter.

    Randomness comes from python's ``random`` and torch's global RNG, so a seeded run
    (and a resumed run that restores RNG states) draws the same augmentations.
    """
    steps = [T.RandomResizedCrop(image_size, scale=scale, interpolation=T.InterpolationMode.BICUBIC,
                                 antialias=True)]
    if flips:
        steps += [T.RandomHorizontalFlip(), T.RandomVerticalFlip()]
    if rot90:
        steps.append(RandomRot90())
    if color_jitter:
        steps.append(T.ColorJitter(color_jitter, color_jitter, color_jitter / 2))
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(steps)


def eval_transform(image_size: int, mean: Sequence[float], std: Sequence[float]) -> T.Compose:
    """Resize the short side, centre-crop, normalise (open_clip's evaluation recipe)."""
    return T.Compose([T.Resize(image_size, interpolation=T.InterpolationMode.BICUBIC, antialias=True),
                      T.CenterCrop(image_size), T.ToTensor(), T.Normalize(mean, std)])


def bundle_train_transform(bundle, augment: str | None = "rs", **kwargs):
    """The training transform for a model bundle: RS augmentation or open_clip's default."""
    if augment is None or augment == "none":
        return bundle.preprocess_val
    if augment == "openclip":
        return bundle.preprocess_train
    if augment == "rs":
        pre = bundle.preprocess_config or {}
        mean = pre.get("mean") or _find_normalize(bundle.preprocess_val).mean
        std = pre.get("std") or _find_normalize(bundle.preprocess_val).std
        return rs_train_transform(bundle.image_size, mean, std, **kwargs)
    raise ValueError(f"unknown augmentation {augment!r}: use 'rs', 'openclip' or 'none'")


def _find_normalize(transform) -> T.Normalize:
    for step in getattr(transform, "transforms", []):
        if isinstance(step, T.Normalize):
            return step
    raise ValueError("no Normalize step in the transform")


def denormalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Undo normalisation (for showing images)."""
    mean = torch.as_tensor(mean, dtype=x.dtype).view(-1, 1, 1)
    std = torch.as_tensor(std, dtype=x.dtype).view(-1, 1, 1)
    return (x * std + mean).clamp(0, 1)
