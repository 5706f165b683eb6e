"""Cloudy pixels (rsdix.s2.clouds): the SCL mask, and the spectral test compared with SCL and ESA."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from s2_fixtures import make_band_folder, write_band
from rsdix.errors import DataError
from rsdix.s2.clouds import cloud_check, cloud_mask, describe_cloud_check
from rsdix.s2.products import read_scene


def test_scl_cloud_mask(tmp_path):
    folder = tmp_path / "l2a"
    make_band_folder(folder, size=8)
    scl = np.full((4, 4), 4, np.uint8)
    scl[0, 0] = 9                                    # one 20 m cloud pixel -> 2x2 at 10 m
    scl[3, 3] = 0                                    # one 20 m no-data pixel
    write_band(folder / "SCL_20m.tif", scl, res=20.0)
    scene = read_scene(folder, bands=("B02", "B03", "B04"), offset=-1000)
    clouds, method = cloud_mask(scene)
    assert method == "scl" and clouds.sum() == 4 and clouds[:2, :2].all()
    assert scene.valid.sum() == 64 - 4


def test_cloud_check_counts_and_compares_with_scl_and_esa(tmp_path):
    folder = tmp_path / "l2a"
    make_band_folder(folder, size=8)
    scl = np.full((4, 4), 4, np.uint8)
    scl[0, 0] = 9                                    # 4 of 64 pixels cloudy by SCL
    write_band(folder / "SCL_20m.tif", scl, res=20.0)
    (folder / "tileInfo.json").write_text(json.dumps({"cloudyPixelPercentage": 12.5}))
    scene = read_scene(folder, bands=("B02", "B03", "B04"), offset=-1000)
    row = cloud_check([scene]).iloc[0]
    assert row["scl_cloud"] == pytest.approx(4 / 64) and row["esa_cloudy_pixel_percentage"] == 0.125
    spectral = cloud_mask(scene, "spectral")[0]
    assert row["spectral_cloud"] == pytest.approx(spectral.sum() / 64)
    assert 0 <= row["iou"] <= 1 and 0 <= row["pixel_agreement"] <= 1
    (folder / "tileInfo.json").write_text("{not json")
    with pytest.raises(DataError, match="tileInfo.json"):
        cloud_check([scene])


def test_describe_cloud_check_names_each_comparison():
    table = pd.DataFrame([dict(scene="l2a", spectral_cloud=0.02, scl_cloud=0.1, iou=0.25, pixel_agreement=0.9),
                          dict(scene="l1c", spectral_cloud=0.3, esa_cloudy_pixel_percentage=0.4)])
    lines = describe_cloud_check(table).splitlines()
    assert lines[0].startswith("l2a: SCL says 10.0% cloud/shadow/cirrus, the simple test 2.0% (IoU 0.25)")
    assert lines[1] == "l1c: simple test 30.0% of valid pixels vs ESA 40.0%."
