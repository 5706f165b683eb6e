"""Image transforms.

* Evaluation and pretrained models: open_clip's own preprocessing (``bundle.preprocess_val``).
* Training on RS images: :func:`rs_train_transform`, which adds the augmentations that make
  sense for nadir imagery, where "up" has no meaning: horizontal and vertical flips, 90-degree
  rotations, and a random resized crop; optionally a zoom-out (reflection padding), so a model
  trained on one ground sampling distance also sees scenes at a coarser one.
"""
from __future__ import annotations

import random
from typing import Sequence

from torchvision import transforms as T
from torchvision.transforms import functional as F


class RandomRot90:
    """Rotate by a random multiple of 90 degrees (lossless on square images)."""

    def __call__(self, image):
        k = random.randrange(4)
        return image if k == 0 else F.rotate(image, 90 * k)

    def __repr__(self) -> str:
        return "RandomRot90()"


class RandomZoomOut:
    """With probability ``p``, shrink the scene by a random factor in ``[1, max_factor]`` of its side
    by mirroring it outwards (reflection padding), then let the crop resize it back.

    A random resized crop only zooms *in*. Datasets differ in ground sampling distance (UCM 0.3 m
    over 256 px = 77 m; WHU-RS19 0.5 m over 600 px = 300 m), so a model trained on one sees the
    others' objects at a scale it never met. Land cover continues across an image border much like
    its mirror image, so reflection is a cheap stand-in for a wider field of view.
    """

    def __init__(self, max_factor: float = 2.0, p: float = 0.5):
        if max_factor < 1:
            raise ValueError(f"zoom-out factor must be >= 1, got {max_factor}")
        self.max_factor, self.p = float(max_factor), float(p)

    def __call__(self, image):
        if self.max_factor <= 1 or random.random() >= self.p:
            return image
        w, h = F.get_image_size(image)
        factor = random.uniform(1.0, self.max_factor)
        # reflection needs padding < side: mirror repeatedly for factors above 3
        while factor > 1.0 + 1e-6:
            step = min(factor, 2.99)
            pad_w, pad_h = int(round(w * (step - 1) / 2)), int(round(h * (step - 1) / 2))
            if pad_w < 1 and pad_h < 1:
                break
            image = F.pad(image, [pad_w, pad_h, pad_w, pad_h], padding_mode="reflect")
            w, h = F.get_image_size(image)
            factor /= step
        return image

    def __repr__(self) -> str:
        return f"RandomZoomOut(max_factor={self.max_factor}, p={self.p})"


def rs_train_transform(image_size: int, mean: Sequence[float], std: Sequence[float],
                       scale: tuple[float, float] = (0.5, 1.0), flips: bool = True, rot90: bool = True,
                       color_jitter: float = 0.0, zoom_out: float = 1.0, zoom_out_p: float = 0.5,
                       uint8: bool = False) -> T.Compose:
    """RS training augmentation: random resized crop, flips, 90-degree rotations, optional jitter,
    optional zoom-out (:class:`RandomZoomOut`, ``zoom_out`` = largest shrink factor, 1 = off).
    ``uint8=True`` stops before ``ToTensor`` + ``Normalize``: a uint8 tensor, which the training
    loop normalises on its device (:class:`rsdix.training.collate.DeviceNormalize`, the same arithmetic).

    Randomness comes from python's ``random`` and torch's global RNG, so a seeded run
    (and a resumed run that restores RNG states) draws the same augmentations.
    """
    steps = [RandomZoomOut(zoom_out, zoom_out_p)] if zoom_out > 1 else []
    steps += [T.RandomResizedCrop(image_size, scale=scale, interpolation=T.InterpolationMode.BICUBIC,
                                 antialias=True)]
    if flips:
        steps += [T.RandomHorizontalFlip(), T.RandomVerticalFlip()]
    if rot90:
        steps.append(RandomRot90())
    if color_jitter:
        steps.append(T.ColorJitter(color_jitter, color_jitter, color_jitter / 2))
    steps += [T.PILToTensor()] if uint8 else [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(steps)


def bundle_train_transform(bundle, augment: str | None = "rs", **kwargs):
    """The training transform for a model bundle: RS augmentation or open_clip's default."""
    if augment is None or augment == "none":
        return bundle.preprocess_val
    if augment == "openclip":
        return bundle.preprocess_train
    if augment == "rs":
        return rs_train_transform(bundle.image_size, *bundle_mean_std(bundle), **kwargs)
    raise ValueError(f"unknown augmentation {augment!r}: use 'rs', 'openclip' or 'none'")


def bundle_mean_std(bundle) -> tuple[Sequence[float], Sequence[float]]:
    """The normalisation of a model bundle: its preprocess config's, else its eval transform's."""
    pre = bundle.preprocess_config or {}
    mean = pre.get("mean") or find_normalize(bundle.preprocess_val).mean
    std = pre.get("std") or find_normalize(bundle.preprocess_val).std
    return mean, std


def find_normalize(transform) -> T.Normalize:
    for step in getattr(transform, "transforms", []):
        if isinstance(step, T.Normalize):
            return step
    raise ValueError("no Normalize step in the transform")

