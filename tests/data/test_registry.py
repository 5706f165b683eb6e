"""Dataset registry (rsdix.data.registry): complete entries matching the published numbers'
names, download + layout (from a local archive), offline errors."""
from __future__ import annotations

import dataclasses
import json
import urllib.error
import zipfile

import pytest
from PIL import Image

from rsdix.data import registry
from rsdix.errors import DataError, OfflineError
from rsdix.results import reference_numbers


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
    ref = set(reference_numbers()["dataset"]) - {"average-13"}
    titles = [(info.kind, info.title) for info in registry.REGISTRY.values()]
    assert ref <= {title for _, title in titles}
    assert len(titles) == len(set(titles))  # with its task, a result row's dataset names one entry


def test_eurosat_ms_is_compared_with_the_published_eurosat_numbers_and_says_so():
    plain, ref = reference_numbers(aliases=False), reference_numbers()
    assert "EuroSAT-MS" not in set(plain["dataset"])
    ms, rgb = ref[ref["dataset"] == "EuroSAT-MS"], plain[plain["dataset"] == "EuroSAT"]
    assert len(ms) == len(rgb) > 0 and list(ms["value"]) == list(rgb["value"])
    assert all(n.startswith("published on EuroSAT") for n in ms["note"])
    assert len(ref) == len(plain) + len(ms)
    assert registry.get_info("EuroSAT").name == "eurosat_rgb" and registry.get_info("EuroSAT-MS").name == "eurosat_ms"


def class_zip(path, classes=("beach", "forest")):
    with zipfile.ZipFile(path, "w") as zf:
        for cls in classes:
            for i in range(2):
                img = Image.new("RGB", (4, 4), (i * 50, 0, 0))
                tmp = path.parent / f"{cls}{i}.png"
                img.save(tmp)
                zf.write(tmp, f"Archive/2750/{cls}/{cls}{i}.png")
    return path


def test_download_lays_out_class_folders(tmp_path, monkeypatch):
    archive = class_zip(tmp_path / "toy.zip")
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
    with pytest.raises(OfflineError, match="get it from .* .no direct download link. and lay it out as"):
        registry.download("aid", tmp_path)


def test_load_missing_dataset_names_folder(tmp_path):
    with pytest.raises(DataError, match=r"resisc45.*not found under the data root"):
        registry.load_dataset("resisc45", tmp_path)


def test_download_caption_dataset_layout(tmp_path, monkeypatch):
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


def test_one_voice_for_how_to_get_a_dataset(tmp_path):
    """A missing dataset's error, `rsdix data download` and `rsdix data plan` give the same advice: no
    `rsdix data download` for a set without a direct link (RSICD said "or `rsdix data download rsicd`",
    and that command then said it has no direct download link)."""
    from rsdix.data.registry import REGISTRY, how_to_get, source_path

    rsicd = how_to_get("rsicd", tmp_path)
    assert "rsdix data download" not in rsicd and f"{tmp_path}/" in rsicd
    with pytest.raises(DataError) as err:
        source_path("rsicd", tmp_path)
    assert rsicd in str(err.value)
    direct = [n for n, i in REGISTRY.items() if i.download_urls]
    assert all(how_to_get(n).startswith(f"`rsdix data download {n}`") for n in direct)
