"""Caption files and datasets (rsdix.data.captions): Karpathy JSON and OpenCLIP CSV readers,
views, round trip, and every bad-input case naming the file."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from data_fixtures import karpathy, make_image  # noqa: F401 (karpathy is a pytest fixture)
from rsdix.data.captions import CaptionDataset, read_captions, read_karpathy, select_split, write_karpathy
from rsdix.data.images import load_image
from rsdix.errors import DataError


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
    make_image(tmp_path / "images" / "a.png")
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


@pytest.mark.data
def test_real_ucm_captions(ucm_root):
    recs = read_karpathy(ucm_root / "dataset_ucm.json")
    assert len(recs) == 2100 and sum(len(r.captions) for r in recs) == 10500
    test = CaptionDataset.from_file(ucm_root / "dataset_ucm.json", split="test", mode="eval")
    assert len(test) == 210 and len(test.texts()) == 1050
