"""Image loading (rsdix.data.images): size bounds, decompression bombs, 16-bit grayscale scaling,
and the same problems as counted skips with skip_bad."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from data_fixtures import make_image
from rsdix.data.classification import ClassificationDataset
from rsdix.data.images import MIN_SIDE, load_image, to_uint8, verify_image
from rsdix.errors import DataError


@pytest.mark.parametrize("size", [(1, 1), (3, 3), (1, 64), (64, 2)])
def test_images_under_the_minimum_size_are_errors(tmp_path, size):
    path = make_image(tmp_path / "tiny.png", size=size)
    with pytest.raises(DataError, match=rf"tiny\.png: image is {size[0]}x{size[1]} pixels; at least {MIN_SIDE}x{MIN_SIDE}"):
        load_image(path)
    assert load_image(make_image(tmp_path / "ok.png", size=(MIN_SIDE, MIN_SIDE))).size == (MIN_SIDE, MIN_SIDE)


@pytest.mark.parametrize("limit", [16 * 16 // 2 - 1, 16 * 16 - 1])   # error range, warning range
def test_decompression_bomb_is_a_data_error_and_a_counted_skip(tmp_path, monkeypatch, limit):
    root = tmp_path / "ds"
    big = make_image(root / "a" / "big.png", size=(16, 16))
    make_image(root / "a" / "small.png", size=(4, 4))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(DataError, match=r"big\.png: image too large, possibly a decompression bomb"):
        load_image(big)
    assert "decompression bomb" in verify_image(big)
    with pytest.warns(UserWarning, match="skipped 1 unreadable image"):
        ds = ClassificationDataset.from_folders(root, skip_bad=True)
    assert len(ds) == 1 and ds.skipped[0][0] == str(big) and "decompression bomb" in ds.skipped[0][1]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_grayscale_is_scaled_by_65535_not_clipped(tmp_path, suffix):
    values = np.array([[0, 257, 32768, 65535]] * 4, dtype=np.uint16)   # 257 * 255 / 65535 = 1
    path = tmp_path / f"gray16{suffix}"
    Image.fromarray(values).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")
    rgb = np.asarray(load_image(path))
    assert rgb.shape == (4, 4, 3)
    assert rgb[0, :, 0].tolist() == [0, 1, 128, 255]          # old: [0, 255, 255, 255]
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_to_uint8_ranges():
    assert to_uint8(np.array([0, 65535], np.uint16)).tolist() == [0, 255]
    assert to_uint8(np.array([-10, 0, 10], np.int32)).tolist() == [0, 128, 255]    # own range
    assert to_uint8(np.array([0.0, 0.5, np.nan], np.float32)).tolist() == [0, 255, 0]
    assert to_uint8(np.array([100000, 200000], np.int32)).tolist() == [0, 255]      # beyond 16 bit


@pytest.mark.parametrize("fmt, suffix", [("PNG", ".png"), ("JPEG", ".jpg"), ("TIFF", ".tif"), ("BMP", ".bmp"),
                                         ("WEBP", ".webp")])
def test_cut_or_garbled_images_are_one_line_naming_the_file(tmp_path, fmt, suffix):
    import io
    import random

    buf = io.BytesIO()
    Image.fromarray((np.random.RandomState(0).rand(32, 32, 3) * 255).astype("uint8")).save(buf, format=fmt)
    data, rng = buf.getvalue(), random.Random(0)
    for k in range(30):
        damaged = bytearray(data[:rng.randrange(1, len(data))] if k % 2 else data)
        for _ in range(0 if k % 2 else 4):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        path = tmp_path / f"x{k}{suffix}"
        path.write_bytes(bytes(damaged))
        try:
            load_image(path)
        except DataError as exc:
            assert exc.where == str(path) and "\n" not in str(exc)
