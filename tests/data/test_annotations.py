"""Object annotations (rsdix.data.annotations): COCO, DOTA and VOC readers with every bad input
naming the file, and Mask-to-Box on hand-made and real class masks."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from rsdix.data.annotations import Box, ImageAnnotation, mask_to_boxes, read_coco, read_dota, read_mask, read_masks, read_voc_xml
from rsdix.data.box_captions import box_to_captions, convert, number_word
from rsdix.data.captions import read_karpathy
from rsdix.errors import DataError
from conftest import need


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
