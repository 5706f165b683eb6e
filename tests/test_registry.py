"""Dataset registry: complete entries, download + layout (from a local archive), offline errors,
and the RS training transforms."""
from __future__ import annotations

import dataclasses
import urllib.error
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from rsdix.data import registry
from rsdix.errors import DataError, OfflineError

EXPECTED = {"UCM", "Sydney", "RSICD", "RSITMD", "NWPU", "S2LCD", "EuroSAT", "EuroSAT-MS", "RESISC45", "AID", "WHU-RS19",
            "RSSCN7", "PatternNet", "OPTIMAL-31", "RSC11", "MLRSNet", "RSI-CB128", "RSI-CB256", "WHU-earth"}


def test_registry_covers_the_papers_datasets():
    titles = {info.title for info in registry.REGISTRY.values()}
    assert EXPECTED <= titles
    for info in registry.REGISTRY.values():
        assert info.citation and info.url, info.name
        assert info.kind in ("captions", "classification")
        if info.kind == "captions":
            assert info.annotation and info.annotation.endswith(".json")
        if info.splits and info.images:
            assert sum(info.splits.values()) == info.images, info.name
    assert registry.get_info("WHU-RS19").name == "whu_rs19"
    with pytest.raises(DataError, match="unknown dataset"):
        registry.get_info("imagenet")


def test_reference_dataset_names_match_registry_titles():
    from rsdix.results import reference_numbers

    ref = set(reference_numbers()["dataset"]) - {"average-13"}
    titles = [(info.kind, info.title) for info in registry.REGISTRY.values()]
    assert ref <= {title for _, title in titles}
    assert len(titles) == len(set(titles))  # with its task, a result row's dataset names one entry


def test_eurosat_ms_is_compared_with_the_published_eurosat_numbers_and_says_so():
    from rsdix.results import reference_numbers

    plain, ref = reference_numbers(aliases=False), reference_numbers()
    assert "EuroSAT-MS" not in set(plain["dataset"])
    ms, rgb = ref[ref["dataset"] == "EuroSAT-MS"], plain[plain["dataset"] == "EuroSAT"]
    assert len(ms) == len(rgb) > 0 and list(ms["value"]) == list(rgb["value"])
    assert all(n.startswith("published on EuroSAT") for n in ms["note"])
    assert len(ref) == len(plain) + len(ms)
    assert registry.get_info("EuroSAT").name == "eurosat_rgb" and registry.get_info("EuroSAT-MS").name == "eurosat_ms"
    from rsdix.reporting.summary import published_beside

    ours = pd.DataFrame({"dataset": ["EuroSAT-MS", "EuroSAT"], "task": "zero-shot", "metric": "top1"})
    shown = published_beside(ours).set_index("dataset")["published"]
    assert "(on EuroSAT)" in shown["EuroSAT-MS"] and "(on" not in shown["EuroSAT"]


def _class_zip(path, classes=("beach", "forest")):
    with zipfile.ZipFile(path, "w") as zf:
        for cls in classes:
            for i in range(2):
                img = Image.new("RGB", (4, 4), (i * 50, 0, 0))
                tmp = path.parent / f"{cls}{i}.png"
                img.save(tmp)
                zf.write(tmp, f"Archive/2750/{cls}/{cls}{i}.png")
    return path


def test_download_lays_out_class_folders(tmp_path, monkeypatch):
    archive = _class_zip(tmp_path / "toy.zip")
    info = dataclasses.replace(registry.REGISTRY["eurosat_rgb"], download_urls=(archive.as_uri(),))
    monkeypatch.setitem(registry.REGISTRY, "eurosat_rgb", info)
    target = registry.download("eurosat_rgb", tmp_path / "root")
    ds = registry.load_dataset("eurosat_rgb", tmp_path / "root")
    assert target == tmp_path / "root" / "eurosat_rgb" and ds.classes == ["beach", "forest"] and len(ds) == 4


def test_download_offline_is_one_clear_line(tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(registry.urllib.request, "urlopen", refuse)
    with pytest.raises(OfflineError) as err:
        registry.download("eurosat_rgb", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "EuroSAT" in msg and "place it at" in msg
    with pytest.raises(OfflineError, match="no direct download link.*get it from"):
        registry.download("aid", tmp_path)


def test_load_missing_dataset_names_folder(tmp_path):
    with pytest.raises(DataError, match=r"resisc45.*not found under the data root"):
        registry.load_dataset("resisc45", tmp_path)


def test_rs_train_transform_shapes_and_rot90():
    from rsdix.data.transforms import RandomRot90, rs_train_transform

    t = rs_train_transform(16, (0.5,) * 3, (0.25,) * 3)
    x = t(Image.new("RGB", (40, 30), (128, 64, 0)))
    assert x.shape == (3, 16, 16) and torch.isfinite(x).all()
    arr = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3) * 10
    img = Image.fromarray(arr)
    seen = {np.asarray(RandomRot90()(img)).tobytes() for _ in range(60)}
    assert len(seen) == 4                                      # the four lossless rotations
    assert all(sorted(np.frombuffer(s, np.uint8)) == sorted(arr.ravel()) for s in seen)


def test_zoom_out_mirrors_the_scene_around_its_centre():
    import random

    from rsdix.data.transforms import RandomZoomOut, rs_train_transform

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


def test_download_caption_dataset_layout(tmp_path, monkeypatch):
    import json

    src = tmp_path / "src" / "S2LCD"
    (src / "images").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(src / "images" / "a.tif")
    (src / "dataset_s2lcd.json").write_text(json.dumps({"images": [
        {"filename": "a.tif", "split": "test", "sentences": [{"raw": "green fields"}]}]}))
    archive = tmp_path / "S2LCD.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in src.rglob("*"):
            zf.write(f, f.relative_to(tmp_path / "src"))
    info = dataclasses.replace(registry.REGISTRY["s2lcd"], download_urls=(archive.as_uri(),))
    monkeypatch.setitem(registry.REGISTRY, "s2lcd", info)
    registry.download("s2lcd", tmp_path / "root")
    ds = registry.load_dataset("s2lcd", tmp_path / "root", split="test", mode="eval")
    assert ds.texts() == ["green fields"]
