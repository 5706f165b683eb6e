"""Classification datasets (rsdix.data.classification): class folders and label CSVs, class-name
cleaning and overrides, malformed override files naming the file."""
from __future__ import annotations


import warnings

import numpy as np
import pytest

from data_fixtures import make_image
from rsdix.data.classification import ClassificationDataset, clean_class_name
from rsdix.errors import DataError


@pytest.mark.parametrize("raw,clean", [
    ("denseresidential", "dense residential"), ("aGrass", "grass"), ("DenseResidential", "dense residential"),
    ("dense_residential", "dense residential"), ("footballfield", "football field"),
    ("railwaystation", "railway station"), ("storagetanks", "storage tanks"), ("Forest", "forest"),
    ("HerbaceousVegetation", "herbaceous vegetation"), ("SeaLake", "sea lake"), ("fResident", "resident"),
    ("baseballdiamond", "baseball diamond"), ("mobilehomepark", "mobile home park"), ("river", "river"),
])
def test_clean_class_name(raw, clean):
    assert clean_class_name(raw) == clean


def test_class_name_overrides():
    assert clean_class_name("fResident", {"fResident": "residential area"}) == "residential area"


def test_classification_folders_and_csv(tmp_path):
    for cls in ("denseresidential", "beach"):
        for i in range(2):
            make_image(tmp_path / "ds" / cls / f"{cls}{i}.jpg")
    ds = ClassificationDataset.from_folders(tmp_path / "ds")
    assert ds.classes == ["beach", "denseresidential"] and ds.class_names == ["beach", "dense residential"]
    assert ds.labels == [0, 0, 1, 1]
    (tmp_path / "ds" / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty.*class folder is empty"):
        ClassificationDataset.from_folders(tmp_path / "ds")
    csv = tmp_path / "labels.csv"
    make_image(tmp_path / "flat" / "a.jpg")
    csv.write_text("filename,label\na.jpg,beach\n")
    ds = ClassificationDataset.from_csv(csv, tmp_path / "flat")
    assert ds.classes == ["beach"] and ds[0][1] == 0
    with pytest.raises(DataError, match=r"labels\.csv:\d+: label 'beach' is not a class of the classes given"):
        ClassificationDataset.from_csv(csv, tmp_path / "flat", classes=["forest"])
    with pytest.raises(DataError, match="2 class names given for 1 classes"):
        ClassificationDataset([tmp_path / "flat" / "a.jpg"], [0], ["beach"], class_names=["a", "b"])


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


def test_label_csv_header_classes_and_duplicates(tmp_path):
    from rsdix.data.classification import read_label_csv
    path = tmp_path / "labels.csv"
    path.write_text("a.png,forest\nb.png,river\n")
    with pytest.raises(DataError, match=r"labels\.csv: expected a header with columns filename,label"):
        read_label_csv(path)
    path.write_text("filename,label\na.png,forest\nb.png,river\nc.png,forrest\n")
    with pytest.raises(DataError, match=r"labels\.csv:4: label 'forrest' is not a class of the classes given; closest class: 'forest'"):
        read_label_csv(path, classes=["forest", "river"])
    path.write_text("filename,label\na.png,forest\nb.png,river\na.png,river\n")
    with pytest.raises(DataError, match=r"labels\.csv:4: file 'a\.png' listed twice \(lines 2 and 4, labels 'forest' and 'river'\)"):
        read_label_csv(path)
    path.write_text("filename,label\na.png,forest\na.png,forest\n")
    with pytest.raises(DataError, match=r"lines 2 and 3, the same label"):
        read_label_csv(path)
    path.write_bytes("filename,label\na.png,for\u00eat\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"labels\.csv: not UTF-8 text"):
        read_label_csv(path)


def test_class_folders_cleaning_to_one_prompt_name_are_an_error(tmp_path):
    root = tmp_path / "ds"
    for cls in ("DenseResidential", "dense_residential", "forest"):
        make_image(root / cls / "0.png")
    with pytest.raises(DataError, match=r"ds: classes 'DenseResidential' and 'dense_residential' both have "
                                        r"the prompt name 'dense residential'"):
        ClassificationDataset.from_folders(root)
    # an override that separates them makes the dataset loadable
    ds = ClassificationDataset.from_folders(root, overrides={"dense_residential": "dense residential area"})
    assert ds.class_names == ["dense residential", "dense residential area", "forest"]


def test_a_label_typo_is_an_error_naming_the_line_and_the_closest_class(tmp_path):
    from rsdix.data.classification import read_label_csv

    path = tmp_path / "labels.csv"
    rows = [f"{c}{i}.jpg,{c}" for c in ("agricultural", "airplane", "beach") for i in range(20)]
    rows.insert(30, "typo.jpg,agricultral")
    path.write_text("filename,label\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"labels\.csv:32: label 'agricultral' is not a class of the labels used; "
                                        r"closest class: 'agricultural'"):
        read_label_csv(path)
    with pytest.warns(UserWarning, match=r"1 label\(s\) outside the labels used taken as new classes: \['agricultral'\]"):
        _, labels, classes = read_label_csv(path, allow_new_classes=True)
    assert classes == ["agricultural", "airplane", "beach", "agricultral"] and labels[30] == 3
    (tmp_path / "classes.txt").write_text("agricultural\nairplane\nbeach\nriver\n")
    path.write_text("filename,label\na.jpg,agricultural\nb.jpg,beech\n")
    with pytest.raises(DataError, match=r"labels\.csv:3: label 'beech' is not a class of .*classes\.txt; closest "
                                        r"class: 'beach'"):
        read_label_csv(path)
    _, labels, classes = read_label_csv(path, allow_new_classes=True)
    assert classes == ["agricultural", "airplane", "beach", "river", "beech"] and labels == [0, 4]


# ---------------------------------------------------------------- property (hypothesis): label CSV

from hypothesis import strategies as st  # noqa: E402

from property_fixtures import SIZES, TEXT, run  # noqa: E402

CELL = st.one_of(st.sampled_from(["a.jpg", "b.jpg", "c.jpg", "forest", "river", "forrest", " beach "]), TEXT)


def _label_csv_read_or_refused(rows, quoted, header, allow_new):
    import csv as csv_module
    import io
    import tempfile
    from pathlib import Path

    from rsdix.data.classification import read_label_csv

    buf = io.StringIO()
    if quoted:
        csv_module.writer(buf).writerows([header] + rows)
    else:
        buf.write("\n".join(",".join(r) for r in [header] + rows) + "\n")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "labels.csv"
        path.write_bytes(buf.getvalue().encode("utf-8", "surrogatepass"))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # labels taken as new classes (allow_new)
                paths, labels, classes = read_label_csv(path, allow_new_classes=allow_new)
        except DataError as exc:
            assert exc.where.startswith(str(path)) and "\n" not in exc.problem
            return
        assert len(paths) == len(labels) > 0 and len(set(classes)) == len(classes)
        assert all(0 <= i < len(classes) and classes[i] == classes[i].strip() != "" for i in labels)
        if quoted and header == ["filename", "label"]:   # the rows as written: each file with its own label
            assert [(p.name, classes[i]) for p, i in zip(paths, labels)] == [
                (Path(f.strip()).name, lab.strip()) for f, lab in (r for r in rows if r)]


@pytest.mark.parametrize("n", SIZES)
def test_property_label_csv_reads_consistently_or_one_error_naming_the_file(n):
    run(_label_csv_read_or_refused, n, st.lists(st.lists(CELL, min_size=1, max_size=3).map(lambda r: (r + r)[:2])
                                                | st.lists(CELL, min_size=0, max_size=4), max_size=6),
        st.booleans(), st.sampled_from([["filename", "label"], ["label", "filename", "x"], ["file", "label"]]),
        st.booleans())
