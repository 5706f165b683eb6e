"""Multispectral rasters (rsdix.data.raster): true colour from 13-band tiles, stretches, band counts."""
from __future__ import annotations

import numpy as np
import pytest

from rsdix.data.images import load_image
from rsdix.data.raster import stretch_to_uint8, true_colour
from rsdix.errors import DataError

rasterio = pytest.importorskip("rasterio")
from rasterio.transform import from_origin  # noqa: E402


def test_multispectral_true_colour(tmp_path):
    data = np.zeros((13, 4, 4), dtype=np.uint16)
    data[3], data[2], data[1] = 3000, 1500, 0          # B04 red 0.3, B03 green 0.15, B02 blue 0
    path = tmp_path / "tile.tif"
    with rasterio.open(path, "w", driver="GTiff", height=4, width=4, count=13, dtype="uint16",
                       crs="EPSG:32632", transform=from_origin(0, 40, 10, 10)) as dst:
        dst.write(data)
    rgb = np.asarray(load_image(path))
    assert rgb.shape == (4, 4, 3)
    assert tuple(rgb[0, 0]) == (255, 128, 0)             # fixed stretch 0..0.3 reflectance
    assert tuple(true_colour(data)[0, 0]) == (255, 128, 0)
    refl = np.stack([np.linspace(0, 1, 100).reshape(10, 10)] * 3)
    pct = stretch_to_uint8(refl, "percentile", pct=(0, 100))
    assert pct.min() == 0 and pct.max() == 255
    bad = tmp_path / "five.tif"
    with rasterio.open(bad, "w", driver="GTiff", height=2, width=2, count=5, dtype="uint16") as dst:
        dst.write(np.zeros((5, 2, 2), dtype=np.uint16))
    with pytest.raises(DataError, match=r"five\.tif.*expected 13 bands"):
        load_image(bad)
