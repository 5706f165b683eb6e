"""rsdix.training.collate: batches of uint8 images normalised on the device exactly as the float
pipeline normalises them; DINO's views without a duplicate crop."""
import dataclasses
import random

import numpy as np
import torch
from PIL import Image

from rsdix.data.transforms import rs_train_transform
from rsdix.training.collate import (ClipCollate, DeviceNormalize, DinoViews, MultiCropTransform, ViewsCollate,
                                   dino_views)
from rsdix.training.dino import DINOConfig, MultiCropConfig
from rsdix.training.photometric import N_PARAMS

MEAN, STD = (0.3690, 0.3811, 0.3434), (0.2033, 0.1854, 0.1799)


def _images(n=6, size=80):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (size, size + 7, 3), dtype=np.uint8)) for _ in range(n)]


def _seeded(transform, image, seed):
    torch.manual_seed(seed)
    random.seed(seed)
    return transform(image)


def test_uint8_batches_normalised_on_the_device_equal_the_float_pipeline():
    """issue #28: float32 batches (294 MiB per 512 images at 224 px) crossed shared memory and the
    host-to-device copy; the workers now ship uint8 and DeviceNormalize makes the floats on the
    device, with torchvision's arithmetic: the batch equals today's float pipeline (to 1e-6; bit for
    bit here), so CPU runs keep their numbers."""
    kwargs = dict(scale=(0.5, 1.0), color_jitter=0.3, zoom_out=1.5)
    as_float = rs_train_transform(64, MEAN, STD, **kwargs)
    as_uint8 = rs_train_transform(64, MEAN, STD, uint8=True, **kwargs)
    images = _images()
    want = torch.stack([_seeded(as_float, im, i) for i, im in enumerate(images)])
    raw = torch.stack([_seeded(as_uint8, im, i) for i, im in enumerate(images)])
    assert raw.dtype == torch.uint8 and raw.element_size() * 4 == want.element_size()
    got = DeviceNormalize(MEAN, STD)({"image": raw, "text": torch.zeros(6, 3)})["image"]
    assert got.dtype == torch.float32 and (got - want).abs().max() <= 1e-6
    assert torch.equal(got, want)
    already = {"image": want}
    assert DeviceNormalize(MEAN, STD)(already)["image"] is want     # floats pass unchanged


def test_dino_views_stack_no_crop_twice():
    """issue #28: DinoViews returned the first global crop as ``image`` and again in ``crops``: the
    collate stacked it twice (1.38 GB of a 1.6 GB batch at the paper's sizes). Now the crops alone
    (uint8, with their photometric parameters); the CLIP term reads the first global crop."""
    cfg = MultiCropConfig(n_global=2, n_local=3, local_size=24, on_device=True)
    views = DinoViews(MultiCropTransform(cfg, 48, MEAN, STD, patch_size=8))
    items = [(_seeded(views, im, i), f"caption {i}") for i, im in enumerate(_images(4))]
    batch = ViewsCollate(lambda caps: torch.zeros(len(caps), 5, dtype=torch.long))(items)
    assert "image" not in batch and len(batch["crops"]) == 5
    assert batch["crop_params"].shape == (4, 5, N_PARAMS)
    image_bytes = sum(c.numel() * c.element_size() for c in batch["crops"])
    assert image_bytes == 4 * 3 * (2 * 48 * 48 + 3 * 24 * 24)   # uint8, each crop once
    out = DeviceNormalize(MEAN, STD)(batch)
    assert "crop_params" not in out and all(c.dtype == torch.float32 for c in out["crops"])
    assert [tuple(c.shape) for c in out["crops"]] == [(4, 3, 48, 48)] * 2 + [(4, 3, 24, 24)] * 3
    with_base = DinoViews(views.multicrop, base=rs_train_transform(48, MEAN, STD, uint8=True))(_images(1)[0])
    assert with_base["image"].dtype == torch.uint8    # clip_view: base, the usual CLIP input besides


def test_clip_collate_keeps_uint8():
    items = [(torch.zeros(3, 8, 8, dtype=torch.uint8), "a"), (torch.ones(3, 8, 8, dtype=torch.uint8), "b")]
    batch = ClipCollate(lambda caps: torch.zeros(len(caps), 5, dtype=torch.long))(items)
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape == (2, 3, 8, 8)


def test_dino_photometrics_go_to_the_gpu_of_a_gpu_run_only(tiny_bundle):
    """``crops.on_device`` None: the GPU of a CUDA run does the colour work; a CPU run keeps the PIL
    path in its workers (faster there, and the numbers of CPU runs stay as they were)."""
    cfg = DINOConfig(enabled=True)
    assert dino_views(cfg, tiny_bundle, cuda=False).multicrop.on_device is False
    assert dino_views(cfg, tiny_bundle, cuda=True).multicrop.on_device is True
    forced = dataclasses.replace(cfg, crops=dataclasses.replace(cfg.crops, on_device=True))
    assert dino_views(forced, tiny_bundle, cuda=False).multicrop.on_device is True
