"""The construction run (rsdix.s2.construction): its config validated at load, scenes, patches
built from a scene folder, result rows."""
from __future__ import annotations

import pandas as pd
import pytest

from s2_fixtures import make_band_folder
from rsdix import config
from rsdix.errors import ConfigError
from rsdix.s2.construction import (S2LCDConfig, SceneSpec, build_patches, describe_run, scene_specs, tiling_counts,
                                   tiling_rows)
from rsdix.s2.tiling import read_sidecar


def test_profiles_load_and_bad_values_name_the_key():
    for profile in config.config_names("s2lcd"):
        cfg = config.load("s2lcd", profile)
        assert isinstance(cfg, S2LCDConfig) and all(isinstance(s, SceneSpec) for s in scene_specs(cfg))
    for override, message in [(dict(stretch="linear"), "stretch: 'linear' is not one of"),
                              (dict(max_cloud=1.5), "max_cloud: 1.5 must be <= 1"),
                              (dict(vmax=0.0), "vmax: 0.0 must be above vmin"),
                              (dict(fractions=[0.5, 0.5]), "fractions: [0.5, 0.5] must be 3"),
                              (dict(scenes=[{"path": "x", "size": 0}]), "scenes[0]: size: 0 must be >= 1"),
                              (dict(scenes=[{"path": "x", "sise": 4}]), "unknown key(s) ['sise']")]:
        with pytest.raises(ConfigError, match="smoke.yaml") as err:
            config.load("s2lcd", "smoke", **override)
        assert message in str(err.value)


def test_build_patches_writes_images_sidecar_and_result_rows(tmp_path):
    make_band_folder(tmp_path / "data" / "scene", size=8)
    cfg = config.load("s2lcd", {"scenes": [{"path": "scene", "offset": -1000, "size": 4,
                                            "bands": ["B02", "B03", "B04"]}], "max_cloud": 1.0})
    assert describe_run(cfg).splitlines()[-1] == "stretch=fixed vmin=0.0 vmax=0.3  max_nodata=0.0 max_cloud=1.0"
    tilings, patches = build_patches(cfg, tmp_path / "work", tmp_path / "data")
    assert len(tilings) == 1 and len(patches) == 4 and (patches.status == "kept").all()
    assert all((tmp_path / "work" / "images" / f).exists() for f in patches.filename)
    pd.testing.assert_frame_equal(read_sidecar(tmp_path / "work" / "patches.csv")[["patch_id", "status"]],
                                  patches[["patch_id", "status"]])
    counts = tiling_counts(tilings)
    rows = tiling_rows(counts, profile="smoke", seed=0)
    assert [(r["metric"], r["value"]) for r in rows] == [("patches", 4), ("removed_nodata", 0),
                                                         ("removed_cloud", 0), ("kept", 4)]
    assert {(r["model"], r["task"], r["split"], r["profile"], r["seed"]) for r in rows} == {
        ("s2lcd-pipeline", "s2lcd_tiling", "all", "smoke", 0)}


def test_a_scene_missing_from_the_root_is_skipped_in_one_line_and_none_at_all_is_an_error(tmp_path, caplog):
    """A user's data root without this repository's Sentinel-2 test scenes: notebook 02 goes on with the
    scenes it has (one warning per missing one) and stops with one line naming them when it has none."""
    from rsdix.errors import DataError

    make_band_folder(tmp_path / "data" / "a")
    cfg = S2LCDConfig(scenes=[{"path": "a", "offset": 0, "size": 8}, {"path": "sentinel2/missing", "size": 8}])
    tilings, _ = build_patches(cfg, tmp_path / "work", tmp_path / "data")
    assert len(tilings) == 1 and "skipping scene sentinel2/missing: not under the data root" in caplog.text
    with pytest.raises(DataError, match="none of the S2LCD scenes .* is under this data root: sentinel2/missing"):
        build_patches(S2LCDConfig(scenes=[{"path": "sentinel2/missing", "size": 8}]), tmp_path / "w2", tmp_path / "data")
