"""Box-to-Caption and Mask-to-Box on hand-made annotations, with exact expected captions."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from rsdix.data.annotations import (Box, ImageAnnotation, annotations_to_records, article,
                                             box_to_captions, convert, count_phrase, counting_captions,
                                             counting_records, mask_to_boxes, noun_phrase, number_word,
                                             pluralize, position_phrase, read_coco, read_dota, read_mask,
                                             read_masks, read_voc_xml, size_word)
from rsdix.data.captions import read_karpathy
from rsdix.errors import DataError


# ---------------------------------------------------------------- wording
def test_number_words_and_plurals():
    assert [number_word(n) for n in (0, 1, 7, 10, 11, 15)] == ["zero", "one", "seven", "ten", "11", "15"]
    assert pluralize("airplane", 3) == "airplanes"
    assert pluralize("airplane", 1) == "airplane"
    assert pluralize("storage tank", 2) == "storage tanks"
    assert pluralize("bus", 2) == "buses"
    assert pluralize("factory", 2) == "factories"
    assert pluralize("highway", 2) == "highways"  # vowel + y
    assert pluralize("church", 2) == "churches"
    assert pluralize("overpass", 2) == "overpasses"
    assert pluralize("harbor", 0) == "harbors"
    assert pluralize("person", 4) == "people"
    assert count_phrase("ship", 1) == "one ship"
    assert count_phrase("car", 15) == "15 cars"


def test_article_agreement():
    assert article("airplane") == "an"
    assert article("ship") == "a"
    assert article("expressway service area") == "an"
    assert article("unit") == "a"
    assert article("hour") == "an"
    assert article("8 m boat") == "an" and article("11 ships") == "an" and article("110 ships") == "a"
    assert noun_phrase("airplane", 1) == "an airplane"
    assert noun_phrase("airplane", 1, size="large") == "a large airplane"
    assert noun_phrase("oil tank", 1, size="small") == "a small oil tank"
    # no "a small small vehicle"
    assert noun_phrase("small vehicle", 1, size="small") == "a small vehicle"
    assert noun_phrase("ship", 3) == "three ships"


def test_positions_and_sizes():
    w = h = 300
    cells = {(50, 50): "in the upper left", (150, 20): "at the top", (280, 20): "in the upper right",
             (20, 150): "on the left", (150, 150): "in the middle", (250, 160): "on the right",
             (10, 290): "in the lower left", (150, 280): "at the bottom", (299, 299): "in the lower right"}
    for (x, y), phrase in cells.items():
        assert position_phrase(Box("a", x - 1, y - 1, x + 1, y + 1), w, h) == phrase
    assert size_word(Box("a", 0, 0, 20, 20), w, h) == "small"        # 0.44 % of the image
    assert size_word(Box("a", 0, 0, 60, 60), w, h) == ""             # 4 %
    assert size_word(Box("a", 0, 0, 150, 150), w, h) == "large"      # 25 %


# ---------------------------------------------------------------- captions
def airport() -> ImageAnnotation:
    boxes = [Box("airplane", 10, 10, 40, 40), Box("airplane", 50, 20, 80, 50),
             Box("airplane", 200, 200, 230, 230), Box("storage tank", 120, 120, 200, 200),
             Box("ship", 250, 10, 260, 20)]
    return ImageAnnotation("airport.png", 300, 300, boxes)


def test_box_to_captions_exact():
    caps = box_to_captions(airport(), n_captions=8, seed=0)
    assert caps == [
        "A remote sensing image showing three airplanes, one ship and one storage tank.",
        "Three airplanes, mostly in the upper left of the image.",
        "There is a small ship in the upper right of the image.",
        "A storage tank in the middle of the image.",
        "The biggest object in the image is a storage tank in the middle.",
        "Three airplanes are visible in this image.",
        "The image contains one ship.",
        "The image contains one storage tank.",
    ]
    # the default five are the first five; a new seed rewords, never changes facts
    assert box_to_captions(airport(), seed=0) == caps[:5]
    other = box_to_captions(airport(), n_captions=8, seed=1)
    assert other != caps and len(other) == 8
    assert box_to_captions(airport(), n_captions=8, seed=1) == other  # deterministic


def test_box_to_captions_single_and_spread():
    one = ImageAnnotation("a.png", 100, 100, [Box("airplane", 40, 40, 60, 60)])
    caps = box_to_captions(one, seed=0, n_captions=10)
    assert "one airplane" in caps[0] and caps[0].startswith(("There is one", "An aerial", "A remote"))
    assert any("an airplane in the middle of the image" in c.lower() for c in caps)
    assert len(caps) == 3 == len(set(caps))  # inventory, class sentence, count; no "largest" for one box
    spread = ImageAnnotation("b.png", 90, 90, [Box("car", 0, 0, 5, 5), Box("car", 80, 80, 85, 85),
                                               Box("car", 40, 0, 45, 5)])
    sentence = box_to_captions(spread, seed=0, n_captions=10)[1]
    assert sentence in ("Three cars spread across the image.", "There are three cars scattered over the image.")
    together = ImageAnnotation("c.png", 90, 90, [Box("car", 0, 0, 5, 5), Box("car", 10, 10, 15, 15)])
    assert box_to_captions(together, seed=0, n_captions=10)[1] in (
        "Two cars in the upper left of the image.", "There are two cars in the upper left of the image.")
    many = ImageAnnotation("d.png", 90, 90, [Box("car", i, 0, i + 1, 1) for i in range(15)])
    assert "15 cars" in box_to_captions(many, seed=0)[0]


def test_records_and_karpathy_roundtrip(tmp_path):
    empty = ImageAnnotation("empty.png", 10, 10, [])
    with pytest.warns(UserWarning, match="skipped 1 image"):
        records = annotations_to_records([airport(), empty], seed=0, split={"airport.png": "train", "empty.png": "test"})
    assert [r.filename for r in records] == ["airport.png"]
    assert records[0].meta["counts"] == {"airplane": 3, "ship": 1, "storage tank": 1}
    kept = annotations_to_records([empty], skip_empty=False)
    assert kept[0].captions == ["An aerial image."]
    from rsdix.data.captions import write_karpathy

    out = write_karpathy(records, tmp_path / "b2c.json", dataset="toy")
    back = read_karpathy(out)
    assert back[0].captions == box_to_captions(airport(), seed=0) and back[0].split == "train"
    assert json.loads(out.read_text())["images"][0]["counts"]["airplane"] == 3


def test_counting_records():
    anns = [airport(), ImageAnnotation("many.png", 100, 100, [Box("car", i, 0, i + 1, 1) for i in range(12)])]
    recs = counting_records(anns)
    assert [(r.filename, r.meta["count_class"], r.meta["count"]) for r in recs] == [
        ("airport.png", "airplane", 3), ("airport.png", "ship", 1), ("airport.png", "storage tank", 1)]
    cands = recs[0].meta["count_captions"]
    assert len(cands) == 10 and cands[0] == "an aerial image of one airplane." and cands[9].endswith("ten airplanes.")
    assert recs[0].captions == [cands[2]]
    assert counting_captions("ship", 2) == ["an aerial image of one ship.", "an aerial image of two ships."]
    assert [r.meta["count_class"] for r in counting_records(anns, classes=["ship"])] == ["ship"]


# ---------------------------------------------------------------- readers
def coco_dict():
    return {"images": [{"id": 1, "file_name": "p1.jpg", "width": 100, "height": 80},
                       {"id": 2, "file_name": "p2.jpg", "width": 50, "height": 50}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 20, 10]},
                            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [60, 50, 20, 20]},
                            {"id": 3, "image_id": 2, "category_id": 7, "bbox": [0, 0, 50, 50]}],
            "categories": [{"id": 3, "name": "storage-tank"}, {"id": 7, "name": "baseballfield"}]}


def test_read_coco(tmp_path):
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco_dict()))
    anns = read_coco(path)
    assert [a.filename for a in anns] == ["p1.jpg", "p2.jpg"]
    assert anns[0].boxes[1] == Box("storage tank", 60, 50, 80, 70)
    assert anns[1].boxes[0].label == "baseball field"  # cleaned class name
    assert box_to_captions(anns[1], n_captions=2)[1] in ("A large baseball field in the middle of the image.",
                                                          "There is a large baseball field in the middle of the image.")
    out = convert("coco", path, tmp_path / "out.json")
    assert len(read_karpathy(out)) == 2


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["annotations"][0].update(bbox=[90, 10, 30, 10]), "outside the 100x80 image"),
    (lambda d: d["annotations"][2].update(category_id=99), "unknown category id 99"),
    (lambda d: d["annotations"][0].update(image_id=5), "unknown image id 5"),
    (lambda d: d["annotations"][0].update(bbox=[10, 10, 0, 5]), "zero or negative"),
    (lambda d: d.pop("categories"), "missing or non-list key(s) ['categories']"),
    (lambda d: d["annotations"][0].update(bbox=[10, "ten", 5, 5]), "bbox must be [x, y, width, height]"),
    (lambda d: d["annotations"][0].update(bbox=[10, None, 5, 5]), "bbox must be [x, y, width, height]"),
])
def test_coco_bad_input_names_file(tmp_path, mutate, message):
    data = coco_dict()
    mutate(data)
    path = tmp_path / "bad_instances.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="bad_instances.json") as info:
        read_coco(path)
    assert message in str(info.value)


def test_coco_malformed_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [')
    with pytest.raises(DataError, match=r"broken\.json.*malformed COCO JSON"):
        read_coco(path)


def test_box_slightly_outside_is_clipped(tmp_path):
    data = coco_dict()
    data["annotations"][0]["bbox"] = [-0.5, 10, 20, 10]
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    assert read_coco(path)[0].boxes[0].x0 == 0.0


def test_read_dota(tmp_path):
    (tmp_path / "labelTxt").mkdir()
    (tmp_path / "images").mkdir()
    Image.new("RGB", (200, 100)).save(tmp_path / "images" / "P0001.png")
    (tmp_path / "labelTxt" / "P0001.txt").write_text(
        "imagesource:GoogleEarth\ngsd:0.5\n"
        "10 10 30 12 28 30 8 28 small-vehicle 0\n"
        "150 50 190 50 190 90 150 90 plane 1\n")
    anns = read_dota(tmp_path / "labelTxt", image_dir=tmp_path / "images")
    assert anns[0].filename == "P0001.png" and (anns[0].width, anns[0].height) == (200, 100)
    assert anns[0].boxes == [Box("small vehicle", 8, 10, 30, 30), Box("plane", 150, 50, 190, 90)]
    assert len(read_dota(tmp_path / "labelTxt", image_dir=tmp_path / "images", include_difficult=False)[0].boxes) == 1
    (tmp_path / "labelTxt" / "P0001.txt").write_text("150 50 250 50 250 90 150 90 plane 0\n")
    with pytest.raises(DataError, match=r"P0001\.txt:1.*outside the 200x100 image"):
        read_dota(tmp_path / "labelTxt", image_dir=tmp_path / "images")


def test_read_voc_xml(tmp_path):
    xml = tmp_path / "00001.xml"
    xml.write_text("<annotation><filename>00001.jpg</filename><size><width>800</width><height>800</height>"
                   "<depth>3</depth></size><object><name>Expressway-Service-area</name><bndbox><xmin>10</xmin>"
                   "<ymin>20</ymin><xmax>300</xmax><ymax>310</ymax></bndbox></object>"
                   "<object><name>windmill</name><bndbox><xmin>700</xmin><ymin>700</ymin><xmax>720</xmax>"
                   "<ymax>760</ymax></bndbox></object></annotation>")
    ann = read_voc_xml(xml)
    assert ann.filename == "00001.jpg" and ann.boxes[0] == Box("expressway service area", 10, 20, 300, 310)
    caps = box_to_captions(ann, n_captions=9, seed=3)
    assert caps[0] == "A remote sensing image showing one expressway service area and one windmill."
    assert caps[1] in ("A large expressway service area in the upper left of the image.",  # 13 % of the image
                       "There is a large expressway service area in the upper left of the image.")
    assert caps[2] in ("A small windmill in the lower right of the image.",
                       "There is a small windmill in the lower right of the image.")
    xml.write_text("<annotation><size><width>800</width>")
    with pytest.raises(DataError, match=r"00001\.xml.*malformed XML"):
        read_voc_xml(xml)


# ---------------------------------------------------------------- Mask-to-Box
def toy_mask() -> np.ndarray:
    mask = np.zeros((20, 30), dtype=np.uint8)
    mask[2:6, 3:9] = 1        # building, 24 px
    mask[10:18, 20:28] = 1    # building, 64 px
    mask[0:2, 28:30] = 1      # building, 4 px (below min_area)
    mask[12:15, 2:7] = 2      # car, 15 px
    mask[15:16, 7:8] = 2      # car pixel touching the previous diagonally (8-connectivity joins it)
    mask[19, 0] = 255         # void
    return mask


def test_mask_to_boxes_components_and_min_area():
    boxes = mask_to_boxes(toy_mask(), {1: "building", 2: "car"}, min_area=10)
    assert boxes == [Box("building", 3, 2, 9, 6), Box("building", 20, 10, 28, 18), Box("car", 2, 12, 8, 16)]
    four = mask_to_boxes(toy_mask(), {1: "building", 2: "car"}, min_area=1, connectivity=4)
    assert Box("car", 2, 12, 7, 15) in four and Box("car", 7, 15, 8, 16) in four
    assert Box("building", 28, 0, 30, 2) in four
    assert mask_to_boxes(toy_mask(), {1: "building", 2: None}, min_area=10) == boxes[:2]  # class skipped
    touching = np.array([[1, 1, 2, 2]] * 4)  # two indices with one name are one object
    assert mask_to_boxes(touching, {1: "cloud", 2: "cloud"}, min_area=1) == [Box("cloud", 0, 0, 4, 4)]
    with pytest.raises(DataError, match=r"tile_7\.png.*unknown class index \[2\]"):
        mask_to_boxes(toy_mask(), {1: "building"}, where="tile_7.png")


def test_masks_folder_to_captions(tmp_path):
    Image.fromarray(toy_mask(), mode="L").save(tmp_path / "tile_1.png")
    anns = read_masks(tmp_path, {1: "building", 2: "car"}, min_area=10, image_ext=".jpg")
    assert anns[0].filename == "tile_1.jpg" and (anns[0].width, anns[0].height) == (30, 20)
    caps = box_to_captions(anns[0], seed=0)
    assert "two buildings and one car" in caps[0]
    out = convert("masks", tmp_path, tmp_path / "m2b.json", classes={1: "building", 2: "car"}, min_area=10)
    assert read_karpathy(out)[0].captions[0] == caps[0]


def test_mask_not_single_channel(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "colour_mask.png")
    with pytest.raises(DataError, match=r"colour_mask\.png.*not single-channel"):
        read_mask(tmp_path / "colour_mask.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"junk\.png.*unreadable"):
        read_mask(tmp_path / "junk.png")


def test_mask_to_box_on_real_scene_classification(data_root):
    """Mask-to-Box on a real Sentinel-2 L2A scene classification layer (SCL: 8, 9 = cloud)."""
    from tests.conftest import need

    path = need(data_root, "sentinel2/l2a_cog_29RKH_20200219/SCL.tif")
    mask = read_mask(path)
    classes = {i: None for i in range(1, 12)} | {8: "cloud", 9: "cloud"}
    boxes = mask_to_boxes(mask, classes, min_area=20)
    cloud = np.isin(mask, [8, 9])
    assert boxes and all(cloud[int(b.y0):int(b.y1), int(b.x0):int(b.x1)].any() for b in boxes)
    # every kept component has at least min_area pixels, so the boxes cannot outnumber cloud pixels / 20
    assert len(boxes) <= cloud.sum() // 20
    caps = box_to_captions(ImageAnnotation("scl.png", mask.shape[1], mask.shape[0], boxes))
    assert f"{len(boxes)} clouds" in caps[0] or f"{number_word(len(boxes))} clouds" in caps[0]


def test_counting_set_feeds_the_counting_evaluation(tmp_path, tiny_bundle):
    """B2C counting records -> Karpathy JSON -> rsdix.evaluation.suite.counting (RemoteCount style)."""
    from rsdix.evaluation.counting import count_variants
    from rsdix.data.captions import CaptionDataset, write_karpathy
    from rsdix.evaluation.suite import counting

    anns = [airport(), ImageAnnotation("cars.png", 90, 90, [Box("car", 10 * i, 0, 10 * i + 5, 5) for i in range(7)])]
    recs = counting_records(anns)
    for r in recs:
        count, variants = count_variants(r.captions[0])
        assert count == r.meta["count"] and len(variants) == 10
    (tmp_path / "images").mkdir()
    for name in ("airport.png", "cars.png"):
        Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(tmp_path / "images" / name)
    path = write_karpathy(recs, tmp_path / "counting.json", dataset="toy-count")
    ds = CaptionDataset.from_file(path, split="test", mode="eval", transform=tiny_bundle.preprocess_val)
    out = counting(tiny_bundle, ds)
    assert out["n_captions"] == len(recs) == 4 and 0 <= out["top1"] <= 100
