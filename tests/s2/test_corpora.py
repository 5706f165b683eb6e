"""Caption statistics against the public caption datasets (rsdix.s2.corpora)."""
from __future__ import annotations

import json
import warnings

import pytest

from rsdix.data.overview import caption_corpora as overview_corpora, caption_statistics
from rsdix.log import forget_warned
from rsdix.s2.corpora import caption_corpora, caption_stats_rows, compare_caption_datasets, describe_caption_stats, stats_columns


def test_compare_caption_datasets_matched_size():
    small = [["a red roof", "the red roof"], ["green field", "a green field"]]
    big = [[f"word{i} word{i + 1}", f"other{i}"] for i in range(50)]
    table = compare_caption_datasets({"small": small, "big": big}, repeats=3)
    row = table.set_index("dataset")
    assert row.loc["small", "vocabulary"] == 6 and row.loc["big", "images"] == 50
    assert row.loc["big", "vocabulary@2"] <= 6          # at 2 images, at most 6 distinct words
    assert row.loc["small", "self_overlap"] == pytest.approx((2 / 4 + 2 / 3) / 2)


@pytest.mark.data
def test_compare_real_caption_files(data_root):
    corpora = caption_corpora(data_root, names=["UCM", "Sydney"])
    if len(corpora) < 2:
        pytest.skip("caption files absent")
    table = compare_caption_datasets(corpora, sample_images=200, repeats=2).set_index("dataset")
    assert table.loc["UCM", "images"] == 2100 and table.loc["Sydney", "images"] == 613
    assert table.loc["UCM", "vocabulary"] > table.loc["UCM", "vocabulary@200"]


def test_notebooks_01_and_02_read_the_same_caption_corpora(tmp_path):
    """One reader, one empty-caption policy: an image left with no caption is not a corpus image."""
    folder = tmp_path / "captions_only"
    folder.mkdir()
    images = [{"filename": "a.jpg", "split": "test", "sentences": [{"raw": "a red roof"}, {"raw": ""}]},
              {"filename": "b.jpg", "split": "test", "sentences": [{"raw": " "}]},
              {"filename": "c.jpg", "split": "train", "sentences": [{"raw": "a beach"}]}]
    (folder / "dataset_rsitmd.json").write_text(json.dumps({"images": images}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours, theirs = overview_corpora(tmp_path), caption_corpora(tmp_path)
    assert ours == theirs == {"RSITMD": [["a red roof"], ["a beach"]]}
    assert all("dataset_rsitmd.json" in str(w.message) for w in caught) and caught
    # one warning for the two readers: the same file's warning comes once per process (rsdix.log.warn_once)
    assert len(caught) == 1 and "left out 2 empty caption(s) (images[0] (a.jpg) sentences[1], images[1] (b.jpg) " \
        "sentences[0]); 1 image(s) left with none also left out (b.jpg)" in str(caught[0].message)
    forget_warned()   # a new run in the same process
    with pytest.warns(UserWarning, match="left out 2 empty"):
        stats = caption_statistics(tmp_path).set_index("dataset")
    assert stats.loc["RSITMD", "images"] == 2 and stats.loc["RSITMD", "empty_captions_dropped"] == 2


def test_result_rows_and_description_of_the_comparison():
    small = [["a red roof", "the red roof"], ["green field", "a green field"]]
    big = [[f"word{i} word{i + 1}", f"other{i}"] for i in range(50)]
    stats = compare_caption_datasets({"small": small, "big": big}, sample_images=2, repeats=2)
    cols = stats_columns(2)
    assert cols[0] == "dataset" and "vocabulary@2" in cols and "distinct_4@2" in cols
    rows = caption_stats_rows(stats, cols, profile="smoke", seed=0)
    assert len(rows) == 2 * (len(cols) - 1)
    assert rows[0] == dict(model="corpus", dataset="small", task="caption_stats", metric="images", value=2.0, seed=0,
                           split="all", n=2, ci_low=None, ci_high=None, profile="smoke", note="")
    text = describe_caption_stats(stats, 2)
    top = stats.sort_values("vocabulary@2", ascending=False).iloc[0].dataset
    assert text.startswith(f"At 2 images, {top} has the widest vocabulary") and "cannot be checked here" in text
    stats.loc[1, "vocabulary@2"] = stats.loc[0, "vocabulary@2"] + 1
    stats.loc[0, "dataset"] = "S2LCD"
    assert "S2LCD ranks 2 of 2 on matched-size vocabulary." in describe_caption_stats(stats, 2)


def test_s2lcd_as_published_without_splits_is_read(tmp_path):
    """The released dataset_s2lcd.json has no ``split`` fields: notebook 02's comparison reads it
    (it raised DataError "missing 'split'" before)."""
    (tmp_path / "s2lcd").mkdir()
    images = [{"filename": f"p{i}.tif", "sentences": [{"raw": f"a field near river {i}"}, {"raw": ""}]}
              for i in range(3)]
    (tmp_path / "s2lcd" / "dataset_s2lcd.json").write_text(json.dumps({"images": images}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        corpora = caption_corpora(tmp_path, names=["S2LCD"])
    assert corpora == {"S2LCD": [[f"a field near river {i}"] for i in range(3)]}
    assert any("left out 3 empty caption(s)" in str(w.message) for w in caught)
