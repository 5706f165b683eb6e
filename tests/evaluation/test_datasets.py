"""Evaluation datasets: registry names, official splits, class names, clear errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evaluation_fixtures import caption_file  # noqa: F401 (a pytest fixture)
from rsdix.errors import DataError
from rsdix.evaluation.datasets import load_classification, load_retrieval


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown classification dataset"):
        load_classification("NotASet")
    with pytest.raises(DataError, match="unknown captions dataset"):
        load_retrieval("whu_rs19")   # a classification set asked for as captions


def test_empty_split_is_a_clear_error(caption_file):
    with pytest.raises(DataError, match="split 'test' does not exist") as err:
        load_retrieval("toy", path=caption_file, split="test")
    assert str(caption_file) in str(err.value)


def test_real_sets_load_with_official_split_and_names(ucm_root, whu_root, data_root):
    ucm = load_retrieval("UCM", data_root, split="test")   # by title: the caption set
    assert len(ucm) == 210 and len(ucm.texts()) == 1050
    whu = load_classification("WHU-RS19", data_root, max_images=38, seed=0)
    assert len(whu) == 38 and np.bincount(whu.labels).tolist() == [2] * 19
    assert "football field" in whu.class_names and "railway station" in whu.class_names
    ucm_cls = load_classification("UCM", data_root)
    assert len(ucm_cls) == 2100 and "dense residential" in ucm_cls.class_names
    test_only = load_classification("UCM", data_root, split_from="ucm_captions:test")
    assert len(test_only) == 210
    assert {Path(f).name for f in test_only.filenames()} == set(ucm.filenames())
