"""rsdix.data.synthetic: a data root in the registry's layouts that every loader reads."""
from __future__ import annotations

import numpy as np
import pytest

from rsdix.data import registry
from rsdix.data.images import load_image
from rsdix.data.synthetic import EUROSAT_CLASSES, UCM_CLASSES, is_synthetic, write_synthetic_root


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    return write_synthetic_root(tmp_path_factory.mktemp("synthetic") / "data", per_class=3, image_size=48)


def test_the_registry_finds_and_loads_every_synthetic_set(synthetic_root):
    assert is_synthetic(synthetic_root)
    present = set(registry.available(synthetic_root))
    assert {"ucm_captions", "ucm_classification", "whu_rs19", "eurosat_ms"} <= present
    ucm = registry.load_dataset("ucm_captions", synthetic_root, split="train")
    assert len(ucm) == 21 and all(len(r.captions) == 5 for r in ucm.records)
    test = registry.load_dataset("ucm_captions", synthetic_root, split="test")
    assert len(test) == 21                                          # one test image per class
    whu = registry.load_dataset("whu_rs19", synthetic_root)
    assert len(whu.class_names) == 19
    ms = registry.load_dataset("eurosat_ms", synthetic_root)
    assert len(ms) == 3 * len(EUROSAT_CLASSES)
    assert np.asarray(load_image(ms.samples[0][0])).shape == (64, 64, 3)   # 13 bands rendered to true colour


def test_classes_differ_and_images_of_a_class_vary(synthetic_root):
    """Each class has its own colour: the mean colours of two classes are further apart than two
    images of one class."""
    images = sorted((synthetic_root / "ucm_captions" / "images").glob("*.jpg"), key=lambda p: int(p.stem))
    first, second, other = (np.asarray(load_image(p), float).mean(axis=(0, 1)) for p in images[:2] + images[3:4])
    assert np.abs(first - other).sum() > np.abs(first - second).sum()
    assert len(UCM_CLASSES) == 21


def test_writing_again_is_a_no_op(synthetic_root):
    before = (synthetic_root / "ucm_captions" / "dataset_ucm.json").stat().st_mtime_ns
    write_synthetic_root(synthetic_root)
    assert (synthetic_root / "ucm_captions" / "dataset_ucm.json").stat().st_mtime_ns == before


def test_a_missing_root_gives_the_synthetic_one_said_in_one_line_and_an_existing_root_wins(tmp_path, caplog):
    from rsdix.data.synthetic import root_or_synthetic

    root, synthetic = root_or_synthetic(tmp_path / "nowhere", tmp_path / "syn", "the smoke profile")
    assert synthetic and root == tmp_path / "syn" and is_synthetic(root)
    assert "no data root at" in caplog.text and "the smoke profile runs on a generated synthetic sample" in caplog.text
    (tmp_path / "real").mkdir()
    assert root_or_synthetic(tmp_path / "real", tmp_path / "syn2", "x") == ((tmp_path / "real").resolve(), False)
    assert not (tmp_path / "syn2").exists()


def test_a_profile_other_than_smoke_without_data_stops_naming_data_root(tmp_path, monkeypatch):
    import pytest

    from rsdix.reporting import reproduce

    monkeypatch.setenv("RSDIX_RUNS", str(tmp_path / "runs"))
    with pytest.raises(SystemExit, match=r"no data root at .*nowhere: set DATA_ROOT=\.\.\. \(make\).*rsdix data plan"):
        reproduce.run("cpu", data_root=str(tmp_path / "nowhere"))
