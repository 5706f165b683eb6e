"""Caption files (rsdix.s2.caption_files): CVAT XML round trip and variants, caption tables, validation."""
from __future__ import annotations

import json

import pytest

from s2_fixtures import records
from rsdix.data.captions import read_karpathy
from rsdix.errors import DataError
from rsdix.s2.caption_files import read_caption_table, read_cvat_xml, validate_captions, write_cvat_xml
from rsdix.s2.splits import assign_splits, export_karpathy


def test_cvat_round_trip_and_karpathy(tmp_path):
    recs = records()
    path = write_cvat_xml(recs, tmp_path / "annotations.xml", sizes={r.filename: (224, 224) for r in recs})
    back = read_cvat_xml(path)
    assert [(r.filename, r.captions) for r in back] == [(r.filename, r.captions) for r in recs]
    assert back[0].meta["size"] == {"width": "224", "height": "224"}
    split = assign_splits(back, fractions=(0.5, 0.5, 0.0), seed=0)
    out = export_karpathy(split, tmp_path / "dataset.json", expected=5)
    again = read_karpathy(out)
    assert [(r.filename, r.captions, r.split) for r in again] == [(r.filename, r.captions, r.split) for r in split]
    assert json.loads(out.read_text())["images"][0]["sentences"][0]["tokens"][:2] == ["caption", "0"]


def test_cvat_variants(tmp_path):
    xml = tmp_path / "cvat.xml"
    xml.write_text("""<annotations><version>1.1</version>
      <image id="0" name="a.tif"><mask label="caption" rle="0, 4"><attribute name="text">A lake
         between   mountains.</attribute></mask><tag label="other"/></image>
      <image id="1" name="b.tif"><tag label="caption">Fields near a town.</tag></image>
      <image id="2" name="c.tif"/></annotations>""")
    recs = read_cvat_xml(xml)
    assert [r.captions for r in recs] == [["A lake between mountains."], ["Fields near a town."], []]
    report = validate_captions(recs, expected=1, source=xml)
    assert not report.ok and report.problems == [(f"{xml} (c.tif)", "no captions")]
    with pytest.raises(DataError, match=r"cvat\.xml \(c\.tif\): no captions"):
        report.raise_if_bad()


@pytest.mark.parametrize("text,message", [
    ("<annotations><image id='0' name='a.tif'><mask label='water'/></image></annotations>",
     r"bad\.xml: no captions: no element with label='caption'.*'water'"),
    ("<annotations><image id='0' name='a.tif'><mask label='caption'><attribute name='caption'> </attribute>"
     "</mask></image></annotations>", r"bad\.xml image 'a\.tif': empty caption"),
    ("<annotations><image id='0' name='a.tif'>", r"bad\.xml: malformed XML"),
    ("<Annotations/>", r"bad\.xml: not a CVAT annotation file"),
])
def test_bad_cvat_names_file(tmp_path, text, message):
    path = tmp_path / "bad.xml"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_cvat_xml(path)


def test_caption_csv_long_and_wide(tmp_path):
    long = tmp_path / "long.csv"
    long.write_text("filename,caption,annotator\na.png,A lake.,x\na.png,Water and hills.,y\nb.png,Fields.,x\n")
    assert [(r.filename, r.captions) for r in read_caption_table(long)] == [
        ("a.png", ["A lake.", "Water and hills."]), ("b.png", ["Fields."])]
    wide = tmp_path / "wide.tsv"
    wide.write_text("image\tcaption_2\tcaption_1\na.png\tsecond\tfirst\n")
    assert read_caption_table(wide)[0].captions == ["first", "second"]
    bad = tmp_path / "bad.csv"
    bad.write_text("filename,caption\na.png,\n")
    with pytest.raises(DataError, match=r"bad\.csv:2: empty caption for 'a\.png'"):
        read_caption_table(bad)
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("filename,label\na.png,x\n")
    with pytest.raises(DataError, match=r"nocol\.csv: no caption column"):
        read_caption_table(nocol)


def test_validation_reports(tmp_path):
    recs = records(3)
    recs[0].captions[1] = recs[0].captions[0]                # duplicate within an image
    recs[1].captions[0] = recs[2].captions[0] = "a river"    # shared by two images
    recs[2].captions.pop()                                   # 4 captions
    report = validate_captions(recs, expected=5, patches=[r.filename for r in recs[:2]] + ["lost.png"],
                               image_dir=tmp_path, source="caps.csv")
    problems = [p for _, p in report.problems]
    assert "4 captions, expected 5" in problems
    assert "patch has no captions" in problems and "captioned image is not one of the patches" in problems
    assert sum("image file not found" in p for p in problems) == 3
    assert len(report.duplicates_within) == 1 and report.duplicates_across == [
        ("a river", sorted([recs[1].filename, recs[2].filename]))]
    with pytest.raises(ValueError):
        export_karpathy(assign_splits(recs), tmp_path / "x.json", expected=5)


def test_example_annotations_fill_both_formats_from_one_scene(tmp_path):
    """One scene (the synthetic root's): the CSV got no rows and reading it back failed ("no filename
    column"); the patches now split between the CVAT export and the CSV."""
    from types import SimpleNamespace

    import pandas as pd

    from rsdix.s2.caption_files import read_annotations, write_example_annotations

    table = pd.DataFrame({"filename": [f"p{i}.png" for i in range(4)], "status": "kept"})
    tiling = SimpleNamespace(table=table, scene=SimpleNamespace(name="only"))
    cvat, csv, example = write_example_annotations([tiling], tmp_path, per_scene=4)
    got_cvat, got_csv = read_annotations(cvat), read_annotations(csv)
    assert [r.filename for r in got_cvat] == ["p0.png", "p1.png"] and [r.filename for r in got_csv] == ["p2.png", "p3.png"]
    assert example == [f"p{i}.png" for i in range(4)]
