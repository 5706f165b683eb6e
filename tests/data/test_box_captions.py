"""Box-to-Caption (rsdix.data.box_captions) on hand-made annotations, with exact expected captions;
caption records, the counting set and its use by the counting evaluation."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from rsdix.data.annotations import Box, ImageAnnotation
from rsdix.data.box_captions import (annotations_to_records, article, box_to_captions, count_phrase,
                                     counting_captions, counting_records, noun_phrase, number_word, pluralize,
                                     position_phrase, size_word)
from rsdix.data.captions import CaptionDataset, read_karpathy, write_karpathy
from rsdix.evaluation.counting import count_variants, counting


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


def test_counting_set_feeds_the_counting_evaluation(tmp_path, tiny_bundle):
    """B2C counting records -> Karpathy JSON -> rsdix.evaluation.counting.counting (RemoteCount style)."""
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
    # the dry run's cap (evaluate.counting_max_captions): evenly spaced captions, ten variants each
    texts = []
    real = tiny_bundle.tokenizer
    tiny_bundle.tokenizer = lambda batch: (texts.extend(batch), real(batch))[1]
    try:
        capped = counting(tiny_bundle, ds, max_captions=2)
    finally:
        tiny_bundle.tokenizer = real
    assert capped["n_captions"] == 2 and len(texts) == 20
