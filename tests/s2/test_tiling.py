"""Tiling (rsdix.s2.tiling): windows cover a scene exactly once, patch georeference matches the
source window, no-data and cloud filters are counted."""
from __future__ import annotations

import numpy as np
import pytest

from s2_fixtures import scene, write_band  # noqa: F401 (scene is a pytest fixture)
from rsdix.errors import DataError
from rsdix.s2.clouds import cloud_mask
from rsdix.s2.products import read_scene
from rsdix.s2.tiling import read_sidecar, tile_scene, tile_windows, write_patches, write_sidecar

rasterio = pytest.importorskip("rasterio")


@pytest.mark.parametrize("h,w,size", [(12, 12, 4), (12, 8, 4), (9, 6, 3)])
def test_stride_equal_size_covers_exactly_once(h, w, size):
    cover = np.zeros((h, w), int)
    for r, c, ph, pw in tile_windows(h, w, size):
        cover[r:r + ph, c:c + pw] += 1
    assert (cover == 1).all()


def test_drop_and_shift_edges():
    cover = np.zeros((10, 10), int)
    for r, c, ph, pw in tile_windows(10, 10, 4):
        cover[r:r + ph, c:c + pw] += 1
    assert cover.max() == 1 and cover[:8, :8].all() and not cover[8:].any()     # partial strip dropped
    cover[:] = 0
    for r, c, ph, pw in tile_windows(10, 10, 4, edge="shift"):
        cover[r:r + ph, c:c + pw] += 1
    assert cover.min() == 1                                                     # every pixel covered
    assert len(tile_windows(10, 10, 4, stride=2)) == 16                         # overlapping windows
    assert tile_windows(3, 3, 4) == []


def test_patch_georeference_matches_source_window(scene, tmp_path):
    tiling = tile_scene(scene, size=4, max_cloud=1.0)
    assert len(tiling.table) == 9 and tiling.counts["kept"] == 9
    table = write_patches(tiling, tmp_path / "patches", fmt="tif")
    src_path = scene.files["B02"]
    with rasterio.open(src_path) as src:
        for _, row in table.iterrows():
            window = rasterio.windows.Window(row["col_off"], row["row_off"], row["width"], row["height"])
            expected = rasterio.windows.bounds(window, src.transform)
            assert (row["left"], row["bottom"], row["right"], row["top"]) == pytest.approx(expected)
            assert row["crs"] == src.crs.to_string()
            with rasterio.open(tmp_path / "patches" / row["filename"]) as patch:
                assert tuple(patch.bounds) == pytest.approx(expected)
                assert patch.crs == src.crs and patch.count == 3
                np.testing.assert_array_equal(patch.read().transpose(1, 2, 0),
                                              tiling.rgb[row["row_off"]:row["row_off"] + 4,
                                                         row["col_off"]:row["col_off"] + 4])
    # the centre in lon/lat is in UTM zone 32 (6 to 12 degrees east)
    assert table["lon"].between(6, 12).all() and table["lat"].between(40, 50).all()


def test_nodata_and_cloud_filters_are_counted(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    base = np.full((8, 8), 1500, np.uint16)          # dark land: reflectance 0.05
    blue, green, red = base.copy(), base.copy(), base.copy()
    for a in (blue, green, red):
        a[0:4, 4:8] = 8000                           # a bright white (cloud) quarter: reflectance 0.7
    blue[4:8, 0:4] = 0                               # a no-data quarter
    write_band(folder / "B02.tif", blue)
    write_band(folder / "B03.tif", green)
    write_band(folder / "B04.tif", red)
    scene = read_scene(folder, bands=("B02", "B03", "B04"), offset=-1000)
    clouds, method = cloud_mask(scene)
    assert method == "spectral" and clouds.sum() == 16
    tiling = tile_scene(scene, size=4)
    c = tiling.counts
    assert (c["patches"], c["removed_nodata"], c["removed_cloud"], c["kept"]) == (4, 1, 1, 2)
    status = dict(zip(zip(tiling.table.row_off, tiling.table.col_off), tiling.table.status))
    assert status == {(0, 0): "kept", (0, 4): "cloud", (4, 0): "nodata", (4, 4): "kept"}
    # bright but coloured (desert sand: red > green > blue) is not cloud
    sand = tmp_path / "sand"
    sand.mkdir()
    for b, v in (("B02", 3000), ("B03", 3800), ("B04", 4500)):
        write_band(sand / f"{b}.tif", np.full((4, 4), v, np.uint16))
    assert not cloud_mask(read_scene(sand, bands=("B02", "B03", "B04"), offset=-1000))[0].any()


def test_sidecar_round_trip_and_bad_table(scene, tmp_path):
    tiling = tile_scene(scene, size=4, max_cloud=1.0)
    path = write_sidecar([tiling.table, tiling.table], tmp_path / "patches.csv")
    back = read_sidecar(path)
    assert len(back) == 2 * len(tiling.table) and list(back.columns) == list(tiling.table.columns)
    with pytest.raises(DataError, match="patch table not found"):
        read_sidecar(tmp_path / "none.csv")
    (tmp_path / "bad.csv").write_text("patch_id,scene\na,b\n")
    with pytest.raises(DataError, match=r"bad\.csv: not a patch table: missing column"):
        read_sidecar(tmp_path / "bad.csv")
