"""The pretrained regime's pieces: the class split of UCM-Captions (real labels), the exclusion lists that keep
one side, stage 1's overrides, and the chance level of retrieval mR by hand."""
from math import comb

import pandas as pd
import pytest

from rsdix import config
from rsdix.studies.efficiency.design import load_efficiency_config
from rsdix.studies.efficiency.regimes import (RegimeState, chance_mR, class_split, pretrain_overrides,
                                              run_prefix, write_exclusions)


def test_chance_mR_by_hand():
    """2 images with 1 caption each, k = 1: text->image 1/2; image->text 1 - C(1, 1) / C(2, 1) = 1/2."""
    assert chance_mR(2, [1, 1], ks=(1,)) == pytest.approx(50.0)
    # 3 images, captions 2, 1, 1 (T = 4), k = 2: t2i 2/3; i2t: 1 - C(2,2)/C(4,2), 1 - C(3,2)/C(4,2) twice
    i2t = ((1 - comb(2, 2) / comb(4, 2)) + 2 * (1 - comb(3, 2) / comb(4, 2))) / 3
    assert chance_mR(3, [2, 1, 1], ks=(2,)) == pytest.approx(100 * (2 / 3 + i2t) / 2)


SOURCE_CLASSES = ["agricultural", "baseballdiamond", "buildings", "denseresidential", "freeway", "harbor",
                  "mediumresidential", "overpass", "river", "sparseresidential", "tenniscourt"]


def test_class_split_and_exclusion_lists_keep_one_side(ucm_root, tmp_path):
    cfg = load_efficiency_config("cpu_pretrained", pretrain={"split": "classes", "source_classes": SOURCE_CLASSES})
    split = class_split(cfg, ucm_root.parent)
    assert len(split.source) == 11 and len(split.target) == 10 and not set(split.source) & set(split.target)
    assert not split.files["source"] & split.files["target"]
    assert len(split.files["source"]) + len(split.files["target"]) == 2100
    lists = write_exclusions(split, cfg, tmp_path, ucm_root.parent)
    only_target = set(pd.read_csv(lists["target"])["file"].map(lambda p: p.rsplit("/", 1)[-1]))
    assert only_target == split.files["source"]          # the target pool excludes every source image
    over = pretrain_overrides(cfg, RegimeState(source_exclude=[lists["source"]]))
    assert over["loss"]["method"] == "infonce" and over["loop"]["steps"] == cfg.pretrain.steps
    assert over["data"]["exclude"] == [lists["source"]] and "pretrained" not in over
    assert run_prefix(cfg) == "pt-" and run_prefix(load_efficiency_config("cpu")) == ""


def test_image_split_takes_half_of_every_class_and_only_training_images(ucm_root):
    cfg = load_efficiency_config("cpu_pretrained")
    split = class_split(cfg, ucm_root.parent)
    source, target = split.files["source"], split.files["target"]
    assert not source & target and len(source | target) == 1680          # UCM-Captions' training images
    labels = pd.read_csv(ucm_root / "labels.csv").set_index("filename")["label"]
    per_class = pd.Series([labels[f] for f in source]).value_counts()
    assert len(per_class) == 21 and per_class.between(38, 41).all()      # half of 77-81 per class
    assert class_split(cfg, ucm_root.parent).files["source"] == source    # seeded


def test_unknown_source_class_is_one_error(ucm_root):
    cfg = config.load("efficiency", {"regime": "pretrained", "grid": {"infonce": [0.1]}, "steps": {0.1: 2},
                                     "pretrain": {"enabled": True, "split": "classes", "source_classes": ["airplane", "volcano"]}})
    with pytest.raises(Exception, match="volcano"):
        class_split(cfg, ucm_root.parent)
