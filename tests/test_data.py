"""Data layer: caption/classification readers, class-name cleaning, multispectral rendering,
registry checks, and every bad-input case naming the file."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from rsdix.data.captions import CaptionDataset, read_captions, read_karpathy, select_split, write_karpathy
from rsdix.data.classification import ClassificationDataset, clean_class_name, read_overrides
from rsdix.data.images import load_image
from rsdix.errors import DataError


def _img(path, color=(10, 20, 30), size=(8, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


@pytest.fixture
def karpathy(tmp_path):
    images = []
    for i, split in enumerate(["train", "train", "val", "test"]):
        _img(tmp_path / "images" / f"{i}.jpg", (i * 40, 0, 0))
        images.append({"filename": f"{i}.jpg", "split": split,
                       "sentences": [{"raw": f"caption {i} a"}, {"raw": f"caption {i} b"},
                                     {"raw": f"legenda {i}", "lang": "pt"}]})
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"images": images, "dataset": "toy"}))
    return path


def test_karpathy_reader_and_views(karpathy):
    recs = read_karpathy(karpathy)
    assert [r.split for r in recs] == ["train", "train", "val", "test"]
    assert recs[0].langs == ["en", "en", "pt"]
    train = CaptionDataset.from_file(karpathy, split="train", languages=["en"], seed=3)
    assert len(train) == 2
    image, caption = train[1]
    assert isinstance(image, Image.Image) and caption in ("caption 1 a", "caption 1 b")
    # deterministic given seed/epoch/index; different epochs can differ
    assert train[1][1] == train[1][1]
    draws = set()
    for epoch in range(20):
        train.set_epoch(epoch)
        draws.add(train[0][1])
    assert draws == {"caption 0 a", "caption 0 b"}
    test = CaptionDataset.from_file(karpathy, split="test", mode="eval")
    assert test.texts() == ["caption 3 a", "caption 3 b", "legenda 3"]
    assert test.text_to_image() == [0, 0, 0]
    both = CaptionDataset.from_file(karpathy, split=["val", "test"], mode="eval")
    assert both.text_to_image() == [0, 0, 0, 1, 1, 1]


def test_karpathy_roundtrip(karpathy, tmp_path):
    recs = read_karpathy(karpathy)
    out = write_karpathy(recs, tmp_path / "out.json", dataset="toy")
    again = read_karpathy(out)
    assert [(r.filename, r.split, r.captions, r.langs) for r in again] == \
           [(r.filename, r.split, r.captions, r.langs) for r in recs]
    data = json.loads(out.read_text())
    assert data["images"][0]["sentences"][0]["tokens"] == ["caption", "0", "a"]


def test_openclip_csv(tmp_path):
    _img(tmp_path / "images" / "a.png")
    csv = tmp_path / "train.csv"
    csv.write_text("filename,title\na.png,first caption\na.png,second caption\n")
    recs = read_captions(csv)
    assert len(recs) == 1 and recs[0].captions == ["first caption", "second caption"]
    tsv = tmp_path / "x.tsv"
    tsv.write_text("filename\ttitle\tsplit\na.png\tone\ttest\n")
    assert read_captions(tsv)[0].split == "test"


@pytest.mark.parametrize("content,needle", [
    ("{not json", "malformed JSON"),
    ('{"foo": []}', "expected a top-level 'images' list"),
    ('{"images": [{"filename": "0.jpg", "split": "train", "sentences": [{"raw": "  "}]}]}', "empty caption"),
    ('{"images": [{"split": "train", "sentences": [{"raw": "x"}]}]}', "missing 'filename'"),
])
def test_bad_caption_files_name_the_file(tmp_path, content, needle):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DataError) as err:
        read_karpathy(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_bad_csv_names_file(tmp_path):
    csv = tmp_path / "caps.csv"
    csv.write_text("filename,title\na.png,\n")
    with pytest.raises(DataError, match=r"caps\.csv:2.*empty caption"):
        read_captions(csv)
    csv.write_text("file,text\na.png,x\n")
    with pytest.raises(DataError, match="missing column"):
        read_captions(csv)


def test_missing_and_corrupt_images(karpathy, tmp_path):
    (tmp_path / "images" / "1.jpg").unlink()
    with pytest.raises(DataError, match=r"1\.jpg.*not found"):
        CaptionDataset.from_file(karpathy, split="train")
    (tmp_path / "images" / "0.jpg").write_bytes(b"not an image at all")
    ds = CaptionDataset.from_file(karpathy, split=None, skip_bad=True)
    assert len(ds) == 2 and len(ds.skipped) == 2
    assert {p.rsplit("/", 1)[-1] for p, _ in ds.skipped} == {"0.jpg", "1.jpg"}
    with pytest.raises(DataError, match=r"0\.jpg.*corrupt"):
        load_image(tmp_path / "images" / "0.jpg")


def test_unknown_split(karpathy):
    with pytest.raises(DataError, match=r"dataset\.json.*split 'validation' does not exist"):
        select_split(read_karpathy(karpathy), "validation", karpathy)


@pytest.mark.parametrize("raw,clean", [
    ("denseresidential", "dense residential"), ("aGrass", "grass"), ("DenseResidential", "dense residential"),
    ("dense_residential", "dense residential"), ("footballfield", "football field"),
    ("railwaystation", "railway station"), ("storagetanks", "storage tanks"), ("Forest", "forest"),
    ("HerbaceousVegetation", "herbaceous vegetation"), ("SeaLake", "sea lake"), ("fResident", "resident"),
    ("baseballdiamond", "baseball diamond"), ("mobilehomepark", "mobile home park"), ("river", "river"),
])
def test_clean_class_name(raw, clean):
    assert clean_class_name(raw) == clean


def test_class_name_overrides(tmp_path):
    path = tmp_path / "names.json"
    path.write_text(json.dumps({"fResident": "residential area"}))
    assert clean_class_name("fResident", read_overrides(path)) == "residential area"


def test_classification_folders_and_csv(tmp_path):
    for cls in ("denseresidential", "beach"):
        for i in range(2):
            _img(tmp_path / "ds" / cls / f"{cls}{i}.jpg")
    ds = ClassificationDataset.from_folders(tmp_path / "ds")
    assert ds.classes == ["beach", "denseresidential"] and ds.class_names == ["beach", "dense residential"]
    assert ds.labels == [0, 0, 1, 1]
    (tmp_path / "ds" / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty.*class folder is empty"):
        ClassificationDataset.from_folders(tmp_path / "ds")
    csv = tmp_path / "labels.csv"
    _img(tmp_path / "flat" / "a.jpg")
    csv.write_text("filename,label\na.jpg,beach\n")
    ds = ClassificationDataset.from_csv(csv, tmp_path / "flat")
    assert ds.classes == ["beach"] and ds[0][1] == 0
    with pytest.raises(DataError, match=r"labels\.csv.*unknown class label.*'beach'"):
        ClassificationDataset.from_csv(csv, tmp_path / "flat", classes=["forest"])
    with pytest.raises(DataError, match="2 class names given for 1 classes"):
        ClassificationDataset([tmp_path / "flat" / "a.jpg"], [0], ["beach"], class_names=["a", "b"])


def test_multispectral_true_colour(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    from rsdix.data.raster import stretch_to_uint8, true_colour

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


# --- real data (skips when ../shared/data is absent) ---------------------------------------

@pytest.mark.data
def test_real_ucm_captions(ucm_root):
    recs = read_karpathy(ucm_root / "dataset_ucm.json")
    assert len(recs) == 2100 and sum(len(r.captions) for r in recs) == 10500
    test = CaptionDataset.from_file(ucm_root / "dataset_ucm.json", split="test", mode="eval")
    assert len(test) == 210 and len(test.texts()) == 1050


@pytest.mark.data
def test_real_whu_and_eurosat(whu_root, eurosat_ms_root):
    whu = ClassificationDataset.from_folders(whu_root)
    assert len(whu) == 1005 and len(whu.classes) == 19
    assert "football field" in whu.class_names and "railway station" in whu.class_names
    euro = ClassificationDataset.from_folders(eurosat_ms_root)
    assert len(euro.classes) == 10 and "herbaceous vegetation" in euro.class_names
    image = euro.load(0)
    assert image.size == (64, 64) and image.mode == "RGB"
    assert np.asarray(image).std() > 1.0        # a real rendering, not a blank image


@pytest.mark.data
def test_data_check_cli(data_root, capsys, tmp_path):
    from rsdix.__main__ import main

    assert main(["data", "check", "whu_rs19", "--root", str(data_root), "--quick"]) == 0
    out = capsys.readouterr().out
    assert "images: 1005" in out and "result: OK" in out
    assert main(["data", "check", "rsicd", "--root", str(tmp_path)]) == 1
    assert "dataset folder not found" in capsys.readouterr().out


def test_data_check_reports_problems(tmp_path, monkeypatch):
    from rsdix.data.check import check_dataset

    root = tmp_path / "root"
    folder = root / "ucm_captions"
    _img(folder / "images" / "1.jpg")
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


@pytest.mark.parametrize("name,text", [("names.json", '{"aGrass": "grass",'), ("names.yaml", "a: [b\n")])
def test_malformed_class_name_override_names_the_file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError, match=name):
        read_overrides(path)
