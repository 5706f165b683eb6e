"""The metric study's caption sets from the real caption files, and bad input named clearly."""
from __future__ import annotations

import pytest

from rsdix.errors import DataError
from rsdix.studies.caption_metrics.caption_sets import load_caption_set


def test_real_caption_sets_and_bad_input(data_root, tmp_path):
    sydney = load_caption_set("sydney", data_root)
    assert len(sydney) == 613 and all(c is None for c in sydney.classes)
    ucm = load_caption_set("ucm", data_root)
    assert len(set(ucm.classes)) == 21 and "dense residential" in set(ucm.classes)
    with pytest.raises(DataError, match="unknown caption dataset"):
        load_caption_set("nwpu", data_root)
    (tmp_path / "captions_only").mkdir()
    with pytest.raises(DataError, match="dataset_rsicd.json: caption file not found"):
        load_caption_set("rsicd", tmp_path)
    bad = tmp_path / "captions_only" / "dataset_sydney.json"
    bad.write_text('{"images": [{"filename": "1.tif", "split": "test", "sentences": [{"raw": ""}]}]}')
    with pytest.warns(UserWarning, match=r"dataset_sydney.json: left out 1 empty caption"):
        assert len(load_caption_set("sydney", tmp_path)) == 0

