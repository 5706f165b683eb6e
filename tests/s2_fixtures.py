"""Synthetic Sentinel-2 rasters, caption records and an S2LCD-layout folder shared by the tests of
rsdix.s2 (imported by the tests/test_s2_*.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
from rasterio.transform import from_origin  # noqa: E402

from rsdix.data.captions import CaptionRecord  # noqa: E402
from rsdix.s2.products import read_scene  # noqa: E402


X0, Y0 = 600000.0, 5000000.0


def write_band(path, array, res=10.0, crs="EPSG:32632", nodata=None, x0=X0, y0=Y0):
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    with rasterio.open(path, "w", driver="GTiff", count=array.shape[0], height=array.shape[1],
                       width=array.shape[2], dtype=array.dtype, crs=crs,
                       transform=from_origin(x0, y0, res, res), nodata=nodata) as dst:
        dst.write(array)
    return path


def make_band_folder(folder, size=8, offset_dn=1000, crs_b08="EPSG:32632"):
    """B02/B03/B04 at 10 m, B08 at 10 m, B11 at 20 m (half the pixels), values known."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    bands = {}
    for b in ("B02", "B03", "B04"):
        bands[b] = rng.integers(1 + offset_dn, 3000 + offset_dn, (size, size)).astype(np.uint16)
        write_band(folder / f"T32TPS_20220701T101559_{b}_10m.tif", bands[b])
    bands["B08"] = rng.integers(1 + offset_dn, 3000 + offset_dn, (size, size)).astype(np.uint16)
    write_band(folder / "T32TPS_20220701T101559_B08_10m.tif", bands["B08"], crs=crs_b08)
    bands["B11"] = rng.integers(1 + offset_dn, 3000 + offset_dn, (size // 2, size // 2)).astype(np.uint16)
    write_band(folder / "T32TPS_20220701T101559_B11_20m.tif", bands["B11"], res=20.0)
    return bands


@pytest.fixture()
def scene(tmp_path):
    make_band_folder(tmp_path / "scene", size=12)
    return read_scene(tmp_path / "scene", bands=("B02", "B03", "B04", "B08"), offset=-1000)


def records(n=3, k=5):
    return [CaptionRecord(f"S2A_L1C_2015092{i % 2}_N0204R065_{i}.tif", "", [f"caption {j} of image {i}: a river and fields"
                                                                           for j in range(k)]) for i in range(n)]


def make_s2lcd(root, with_split=True, dtype="uint8"):
    (root / "images").mkdir(parents=True)
    images = []
    for i in range(6):
        name = f"S2A_L1C_2015092{i // 2}_N0204R065_{i}.tif"
        data = (np.arange(3 * 16 * 16).reshape(3, 16, 16) % 250).astype(dtype)
        write_band(root / "images" / name, data)
        entry = {"filename": name, "imgid": i, "sentences": [{"raw": f"caption {j} of {i}"} for j in range(5)]}
        if with_split:
            entry["split"] = ["train", "train", "val", "val", "test", "test"][i]
        images.append(entry)
    (root / "dataset_s2lcd.json").write_text(json.dumps({"images": images, "dataset": "s2lcd"}))
