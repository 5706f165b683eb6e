"""Splits (rsdix.s2.splits): scene from file name, grouped splits, leakage between neighbours, export."""
from __future__ import annotations

import numpy as np
import pytest

from s2_fixtures import records, scene  # noqa: F401 (scene is a pytest fixture)
from rsdix.data.captions import CaptionRecord
from rsdix.errors import DataError
from rsdix.s2.splits import assign_splits, export_karpathy, leakage_table, scene_of, spatial_groups, split_leakage
from rsdix.s2.tiling import tile_scene


def test_export_requires_splits(tmp_path):
    with pytest.raises(DataError, match=r"x\.json \(S2A.*split '' is not train/val/test"):
        export_karpathy(records(1), tmp_path / "x.json")


def test_scene_of():
    assert scene_of("S2A_L1C_20150925_N0204R065_2329.tif") == "S2A_L1C_20150925_N0204R065"
    assert scene_of("l2a_dolomites_bands_r00224_c00448.png") == "l2a_dolomites_bands"


def test_grouped_splits_never_split_a_group():
    recs = [CaptionRecord(f"scene{g}_{i}.tif", "", ["x"]) for g in range(10) for i in range(g + 1)]
    out = assign_splits(recs, seed=3)
    by_group = {}
    for r in out:
        by_group.setdefault(r.meta["group"], set()).add(r.split)
    assert all(len(s) == 1 for s in by_group.values())
    assert {r.split for r in out} == {"train", "val", "test"}
    assert out == assign_splits(recs, seed=3)             # deterministic
    assert [r.split for r in recs] == [""] * len(recs)   # input untouched


def test_scene_split_has_no_leak_but_random_split_does(scene):
    table = tile_scene(scene, size=2, max_cloud=1.0).table
    table["split"] = np.where(np.arange(len(table)) % 2, "train", "test")    # checkerboard-ish
    assert split_leakage(table) > 0
    table["split"] = "train"
    assert split_leakage(table) == 0
    groups = spatial_groups(table, block_m=40.0)     # 3x3 blocks of 2x2 patches (20 m each)
    assert groups.nunique() == 9 and groups.value_counts().eq(4).all()
    table["split"] = np.where(groups == groups.iloc[0], "test", "train")
    # only patches along the block edges touch the other split
    assert 0 < split_leakage(table) < len(table)


def test_assign_splits_image_without_a_group_is_a_clear_error():
    recs = [CaptionRecord(f"scene{i}_r00000_c00000.png", "", ["a field"], ["en"]) for i in range(3)]
    groups = {recs[0].filename: "g0", recs[1].filename: "g1"}        # recs[2] has no group
    with pytest.raises(DataError, match="scene2_r00000_c00000.png.*no group"):
        assign_splits(recs, groups=groups)


def test_leakage_table_compares_three_strategies(scene):
    table = tile_scene(scene, size=2, max_cloud=1.0).table
    table["filename"] = table["patch_id"] + ".png"
    leakage = leakage_table(table, fractions=(0.5, 0.25, 0.25), block_m=40.0, seed=0)
    assert list(leakage.strategy) == ["random image split (as RSDiX)", "by scene", "by 0.04 km block"]
    assert (leakage[["train", "val", "test"]].sum(axis=1) == len(table)).all()
    assert leakage.set_index("strategy").loc["by scene", "leaking_neighbour_pairs"] == 0   # one scene: one split
