"""Caption files and datasets (rsdix.data.captions): Karpathy JSON and OpenCLIP CSV readers,
views, round trip, and every bad-input case naming the file."""
from __future__ import annotations

import json
import warnings

import pytest
from PIL import Image

from data_fixtures import karpathy, make_image  # noqa: F401 (karpathy is a pytest fixture)
from rsdix.data.captions import (CaptionDataset, CaptionRecord, read_captions, read_captions_dropping_empty, read_karpathy,
                                 select_split, write_karpathy)
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


def _karpathy_file(tmp_path, images, name="bad.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"images": images}))
    return path


@pytest.mark.parametrize("entry,needle", [
    ({"filename": 17, "split": "train", "sentences": [{"raw": "a"}]}, r"images\[0\]: field 'filename': expected a string, got int"),
    ({"filename": ["a.jpg"], "split": "train", "sentences": [{"raw": "a"}]}, r"images\[0\]: field 'filename'.*list"),
    ({"filename": "a.jpg", "split": "train", "sentences": [{"raw": 42}]}, r"images\[0\] \(a\.jpg\) sentences\[0\]: field 'raw': expected a string, got int"),
    ({"filename": "a.jpg", "split": "train", "sentences": [{"tokens": ["a", 3]}]}, r"sentences\[0\]: field 'tokens'"),
    ({"filename": "a.jpg", "split": "train", "sentences": [{"raw": "a", "lang": 1}]}, r"sentences\[0\]: field 'lang'"),
    ({"filename": "a.jpg", "split": "train", "sentences": [7]}, r"sentences\[0\]: expected an object or a string"),
    ({"filename": "a.jpg", "split": "tset", "sentences": [{"raw": "a"}]}, r"images\[0\] \(a\.jpg\): field 'split': unknown split 'tset'"),
    ({"filename": "a.jpg", "split": 1, "sentences": [{"raw": "a"}]}, r"field 'split': expected a string"),
])
def test_wrong_field_types_and_values_name_entry_and_field(tmp_path, entry, needle):
    path = _karpathy_file(tmp_path, [entry])
    with pytest.raises(DataError, match=r"bad\.json .*" + needle):
        read_karpathy(path)


def test_filename_listed_twice_in_a_split_is_an_error(tmp_path):
    sent = [{"raw": "a"}]
    path = _karpathy_file(tmp_path, [{"filename": "a.jpg", "split": "test", "sentences": sent},
                                     {"filename": "b.jpg", "split": "test", "sentences": sent},
                                     {"filename": "a.jpg", "split": "test", "sentences": sent}])
    with pytest.raises(DataError, match=r"images\[2\] \(a\.jpg\): filename listed twice in split 'test' \(also images\[0\]\)"):
        read_karpathy(path)
    # the same file in two splits, restval read as val, and lenient reading (data check) pass
    ok = _karpathy_file(tmp_path, [{"filename": "a.jpg", "split": "train", "sentences": sent},
                                   {"filename": "a.jpg", "split": "restval", "sentences": sent}], "ok.json")
    assert [r.split for r in read_karpathy(ok)] == ["train", "val"]
    assert len(read_karpathy(path, lenient=True)) == 3
    counting = _karpathy_file(tmp_path, [{"filename": "a.jpg", "split": "test", "sentences": sent, "count_class": c}
                                         for c in ("car", "ship")], "count.json")
    assert len(read_karpathy(counting)) == 2          # a counting set: one entry per (image, class)


def test_latin1_caption_files_name_the_encoding(tmp_path):
    path = tmp_path / "latin.json"
    path.write_bytes(json.dumps({"images": [{"filename": "a.jpg", "split": "train",
                                             "sentences": [{"raw": "caf\u00e9"}]}]},
                                ensure_ascii=False).encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.json: not UTF-8 text \(byte 0xe9 at offset \d+\)"):
        read_karpathy(path)
    csv_path = tmp_path / "latin.csv"
    csv_path.write_bytes("filename,title\na.jpg,caf\u00e9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.csv: not UTF-8 text"):
        read_captions(csv_path)


def test_csv_unknown_split_names_the_line(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("filename,title,split\na.jpg,one,train\nb.jpg,two,tset\n")
    with pytest.raises(DataError, match=r"c\.csv:3: column 'split': unknown split 'tset'"):
        read_captions(path)


def test_training_and_retrieval_leave_out_empty_captions_with_a_warning(tmp_path):
    # the published RSITMD file has an image whose five captions are all empty
    from rsdix.data.captions import CaptionDataset, read_captions_dropping_empty
    caps = tmp_path / "caps.json"
    caps.write_text(json.dumps({"images": [
        {"filename": "a.jpg", "split": "train", "sentences": [{"raw": "a field"}, {"raw": " "}]},
        {"filename": "b.jpg", "split": "train", "sentences": [{"raw": ""}, {"raw": ""}]},
        {"filename": "c.jpg", "split": "test", "sentences": [{"raw": "a road"}]}]}))
    with pytest.raises(DataError, match="empty caption"):
        read_captions(caps)                               # the strict reader still refuses
    with pytest.warns(UserWarning, match=r"caps\.json: left out 3 empty caption\(s\) \(images\[0\] \(a\.jpg\) sentences\[1\], "
                                         r"images\[1\] \(b\.jpg\) sentences\[0\], .*\); 1 image\(s\) left with none also "
                                         r"left out \(b\.jpg\)"):
        records = read_captions_dropping_empty(caps)
    assert [(r.filename, r.captions, r.langs) for r in records] == [("a.jpg", ["a field"], ["en"]),
                                                                    ("c.jpg", ["a road"], ["en"])]
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        make_image(tmp_path / name)
    again = tmp_path / "again.json"   # the warning comes once per file and content in a process
    again.write_text(caps.read_text())
    with pytest.warns(UserWarning, match=r"again\.json: left out 3"):
        ds = CaptionDataset.from_file(again, split="train", image_dir=tmp_path)
    assert [r.filename for r in ds.records] == ["a.jpg"]


def test_a_caption_over_the_documented_length_is_cut_with_a_counted_warning(tmp_path):
    from rsdix.data.captions import MAX_CAPTION_CHARS

    caps = tmp_path / "caps.json"
    huge = "a field " * 131072                     # 1 MB
    caps.write_text(json.dumps({"images": [
        {"filename": "a.jpg", "split": "train", "sentences": [{"raw": huge}, {"raw": "a road"}, {"raw": huge}]}]}))
    with pytest.warns(UserWarning, match=rf"caps\.json: cut 2 caption\(s\) longer than {MAX_CAPTION_CHARS} characters "
                                         rf"to {MAX_CAPTION_CHARS} \(first: images\[0\] \(a\.jpg\) sentences\[0\], "
                                         rf"1048575 characters\)"):
        [rec] = read_captions(caps)
    assert len(rec.captions[0]) <= MAX_CAPTION_CHARS and rec.captions[0].startswith("a field a field")
    assert rec.captions[1] == "a road"
    csv_file = tmp_path / "caps.csv"
    csv_file.write_text(f"filename,title\na.jpg,a road\nb.jpg,{huge[:10000]}\n")
    with pytest.warns(UserWarning, match=r"caps\.csv: cut 1 caption\(s\) .* \(first: line 3, 9999 characters\)"):
        read_captions(csv_file)
    csv_file.write_text(f"filename,title\na.jpg,a road\nb.jpg,{huge}\n")   # over csv's own field limit
    with pytest.raises(DataError, match=r"caps\.csv:3: not readable as CSV \(field larger than field limit"):
        read_captions(csv_file)


def test_a_csv_caption_row_with_an_unquoted_comma_is_an_error_not_a_cut_caption(tmp_path):
    csv_file = tmp_path / "caps.csv"
    csv_file.write_text("filename,title\na.jpg,a road\nb.jpg,a beach, white waves\n")
    with pytest.raises(DataError, match=r"caps\.csv:3: more fields than the header's 2 \(an unquoted comma"):
        read_captions(csv_file)


# ---------------------------------------------------------------- property (hypothesis): caption JSON

from hypothesis import strategies as st  # noqa: E402

from property_fixtures import SIZES, TEXT, run  # noqa: E402
from rsdix.data import captions as caption_module  # noqa: E402

JUNK = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT, st.just([]), st.just({}))
SENTENCE = st.one_of(st.fixed_dictionaries({}, optional={"raw": st.one_of(TEXT, JUNK, st.just("w " * 1200)),
                                                         "tokens": st.one_of(st.lists(TEXT, max_size=3), JUNK),
                                                         "lang": st.one_of(st.sampled_from(["en", "de"]), JUNK)}),
                     TEXT, JUNK)
ENTRY = st.one_of(st.fixed_dictionaries({}, optional={
    "filename": st.one_of(st.sampled_from(["a.jpg", "b.png", "dir/c.tif"]), TEXT, JUNK),
    "split": st.one_of(st.sampled_from(["train", "val", "test", "restval", "bogus"]), JUNK),
    "sentences": st.one_of(st.lists(SENTENCE, max_size=3), JUNK),
    "imgid": JUNK, "count_class": st.one_of(st.none(), TEXT)}), JUNK)
DOCUMENT = st.one_of(st.fixed_dictionaries({"images": st.one_of(st.lists(ENTRY, max_size=4), JUNK)}),
                     st.lists(ENTRY, max_size=2), JUNK)


def _caption_json_read_or_refused(document, raw_bytes):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "dataset_x.json"
        path.write_bytes(raw_bytes if raw_bytes is not None else json.dumps(document).encode())
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # long captions: cut with a warning (checked elsewhere)
                records = read_karpathy(path)
        except DataError as exc:
            assert exc.where.startswith(str(path)) and "\n" not in exc.problem
            return
        for rec in records:
            assert isinstance(rec.filename, str) and rec.filename and rec.split in caption_module.SPLITS
            assert rec.captions and len(rec.captions) == len(rec.langs)
            assert all(isinstance(c, str) and c == c.strip() and 0 < len(c) <= caption_module.MAX_CAPTION_CHARS
                       for c in rec.captions)


@pytest.mark.parametrize("n", SIZES)
def test_property_caption_json_reads_as_valid_records_or_one_error_naming_the_file(n):
    run(_caption_json_read_or_refused, n, DOCUMENT, st.one_of(st.none(), st.none(), st.binary(max_size=60)))


def test_the_empty_caption_warning_comes_once_per_file_and_content(tmp_path):
    """Issue 31: notebook 03 printed RSITMD's empty-caption warning once per training run (5 times
    in the dry run): every catch_warnings() block of the image loader reset Python's once rule."""
    import warnings
    path = tmp_path / "caps.json"
    write_karpathy([CaptionRecord("a.jpg", "train", ["a road", " "])], path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            read_captions_dropping_empty(path)
            with warnings.catch_warnings():   # what the image loader does for every image
                pass
    assert [str(w.message) for w in caught if "empty caption" in str(w.message)] == \
        [f"{path}: left out 1 empty caption(s) (images[0] (a.jpg) sentences[1])"]
