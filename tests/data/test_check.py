"""Checking a local dataset copy against the registry (rsdix.data.check), directly and from the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from data_fixtures import make_image
from rsdix.__main__ import main
from rsdix.data.check import check_dataset


@pytest.mark.data
def test_data_check_cli(data_root, capsys, tmp_path):
    assert main(["data", "check", "whu_rs19", "--root", str(data_root), "--quick"]) == 0
    out = capsys.readouterr().out
    assert "images: 1005" in out and "result: OK" in out
    assert main(["data", "check", "rsicd", "--root", str(tmp_path)]) == 1
    assert "dataset folder not found" in capsys.readouterr().out


def test_data_check_reports_problems(tmp_path, monkeypatch):
    root = tmp_path / "root"
    folder = root / "ucm_captions"
    make_image(folder / "images" / "1.jpg")
    (folder / "images" / "2.jpg").write_bytes(b"garbage")
    folder.joinpath("dataset_ucm.json").write_text(json.dumps({"images": [
        {"filename": "1.jpg", "split": "train", "sentences": [{"raw": ""}]},
        {"filename": "2.jpg", "split": "weird", "sentences": [{"raw": "ok"}]},
        {"filename": "3.jpg", "split": "test", "sentences": [{"raw": "ok"}]}]}))
    report = check_dataset("ucm_captions", root)
    text = "\n".join(report.errors)
    assert not report.ok
    assert "unknown split 'weird'" in text and "1.jpg caption 0 is empty" in text
    assert "2.jpg: corrupt" in text and "3.jpg: image file not found" in text
    assert any("images: found 3, registry expects 2100" in w for w in report.warnings)


def test_data_check_reports_each_input_class(tmp_path, monkeypatch):
    rasterio = pytest.importorskip("rasterio")
    from PIL import Image
    folder = tmp_path / "root" / "sentinel2" / "eurosat_ms"

    def tile(path, data):
        path.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(path, "w", driver="GTiff", height=8, width=8, count=data.shape[0],
                           dtype=str(data.dtype)) as dst:
            dst.write(data)

    for i in range(3):
        tile(folder / "Forest" / f"{i}.tif", np.full((13, 8, 8), 1000, np.uint16))
    tile(folder / "Forest" / "rgb.tif", np.full((3, 8, 8), 9, np.uint8))
    tile(folder / "Forest" / "empty.tif", np.zeros((13, 8, 8), np.uint16))
    tile(folder / "River" / "0.tif", np.full((13, 8, 8), 1000, np.uint16))
    tile(folder / "river_" / "0.tif", np.full((13, 8, 8), 1000, np.uint16))
    make_image(folder / "River" / "tiny.png", size=(1, 1))
    make_image(folder / "River" / "bomb.png", size=(64, 64))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    report = check_dataset("eurosat_ms", tmp_path / "root")
    text = "\n".join(report.errors)
    assert "empty.tif: tile has no data" in text
    assert "rgb.tif: 3 band(s) of uint8, while 6 of 7 TIFFs have 13 band(s) of uint16" in text
    assert "tiny.png: image is 1x1 pixels" in text and "bomb.png: image too large" in text
    assert "classes 'River' and 'river_' both have the prompt name 'river'" in text
    assert report.facts["unreadable_or_missing_images"] == 3 and report.facts["odd_tiff_layouts"] == 1


def test_data_check_reports_caption_field_problems(tmp_path):
    folder = tmp_path / "root" / "ucm_captions"
    make_image(folder / "images" / "1.jpg")
    folder.joinpath("dataset_ucm.json").write_text(json.dumps({"images": [
        {"filename": "1.jpg", "split": "train", "sentences": [{"raw": 5}]}]}))
    report = check_dataset("ucm_captions", tmp_path / "root")
    assert any("images[0] (1.jpg) sentences[0]: field 'raw': expected a string, got int" in e for e in report.errors)
