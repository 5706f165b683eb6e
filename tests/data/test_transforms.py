"""Remote-sensing training transforms (rsdix.data.transforms): shapes, lossless rotations, zoom-out."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from rsdix.data.transforms import RandomRot90, RandomZoomOut, rs_train_transform


def test_rs_train_transform_shapes_and_rot90():
    t = rs_train_transform(16, (0.5,) * 3, (0.25,) * 3)
    x = t(Image.new("RGB", (40, 30), (128, 64, 0)))
    assert x.shape == (3, 16, 16) and torch.isfinite(x).all()
    arr = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3) * 10
    img = Image.fromarray(arr)
    seen = {np.asarray(RandomRot90()(img)).tobytes() for _ in range(60)}
    assert len(seen) == 4                                      # the four lossless rotations
    assert all(sorted(np.frombuffer(s, np.uint8)) == sorted(arr.ravel()) for s in seen)


def test_zoom_out_mirrors_the_scene_around_its_centre():
    arr = np.random.default_rng(0).integers(0, 255, (20, 20, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    random.seed(0)
    assert RandomZoomOut(3.0, p=0.0)(img) is img                  # p = 0: untouched
    for _ in range(20):
        out = np.asarray(RandomZoomOut(2.0, p=1.0)(img))
        h = out.shape[0]
        assert out.shape[0] == out.shape[1] and 20 <= h <= 40
        pad = (h - 20) // 2
        assert np.array_equal(out[pad:pad + 20, pad:pad + 20], arr)   # the original sits in the middle
        if pad:                                                   # and its border is mirrored outwards
            assert np.array_equal(out[pad - 1, pad:pad + 20], arr[1])
    big = np.asarray(RandomZoomOut(6.0, p=1.0)(img))              # > 3x: mirrored repeatedly
    assert 20 <= big.shape[0] <= 120 and np.isfinite(big).all()
    with pytest.raises(ValueError, match="zoom-out factor"):
        RandomZoomOut(0.5)
    x = rs_train_transform(16, (0.5,) * 3, (0.25,) * 3, zoom_out=3.0, zoom_out_p=1.0)(img)
    assert x.shape == (3, 16, 16)
