"""The published S2LCD (rsdix.s2.dataset): its layout, 16-bit TIFFs, splits by scene, a clear error."""
from __future__ import annotations

import numpy as np
import pytest

from s2_fixtures import make_s2lcd
from rsdix.errors import DataError
from rsdix.s2.dataset import S2LCD_INFO, describe_s2lcd, load_s2lcd, read_s2lcd
from rsdix.s2.splits import scene_of


def test_load_s2lcd_layout(tmp_path):
    make_s2lcd(tmp_path / "s2lcd")
    ds = load_s2lcd(tmp_path / "s2lcd", split="test")
    assert len(ds) == 2 and len(ds.texts()) == 10
    image = ds[0]
    assert image.size == (16, 16) and image.mode == "RGB"


def test_load_s2lcd_16bit_tiffs_and_no_splits(tmp_path):
    make_s2lcd(tmp_path / "s2lcd", with_split=False, dtype="uint16")
    recs = read_s2lcd(tmp_path / "s2lcd", fractions=(0.34, 0.33, 0.33))
    splits = {}
    for r in recs:
        splits.setdefault(scene_of(r.filename), set()).add(r.split)
    assert all(len(s) == 1 for s in splits.values()) and len({r.split for r in recs}) == 3
    ds = load_s2lcd(tmp_path / "s2lcd", split=None)
    arr = np.asarray(ds[0])
    assert arr.dtype == np.uint8 and arr.shape == (16, 16, 3) and arr.max() == 255


def test_load_s2lcd_missing_says_where_to_get_it(tmp_path):
    with pytest.raises(DataError, match=r"nowhere: S2LCD not found.*S2LCD\.zip"):
        load_s2lcd(tmp_path / "nowhere")


def test_describe_s2lcd_lists_the_facts_and_what_loads(tmp_path):
    text = describe_s2lcd(tmp_path / "nowhere")
    assert f"{'images':>18}: {S2LCD_INFO['images']}" in text and "not available here:" in text
    make_s2lcd(tmp_path / "s2lcd")
    assert describe_s2lcd(tmp_path / "s2lcd").endswith("S2LCD loaded: 6 images, 30 captions")
