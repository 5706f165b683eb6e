"""S2LCD construction: tiling, georeference, filters, caption import/export, splits, stats, loader."""
from __future__ import annotations

import json

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

from rsdix.data.captions import CaptionRecord, read_karpathy  # noqa: E402
from rsdix.errors import DataError  # noqa: E402
from rsdix.s2.s2lcd import (assign_splits, cloud_mask, compare_caption_datasets, export_karpathy,  # noqa: E402
                         load_s2lcd, read_caption_table, read_cvat_xml, read_s2lcd, render_true_colour,
                         scene_of, spatial_groups, split_leakage, tile_scene, tile_windows,
                         validate_captions, write_cvat_xml, write_patches)
from rsdix.s2.products import read_scene  # noqa: E402
try:  # helpers shared with test_sentinel2 (tests/ is on sys.path under pytest's default import mode)
    from test_sentinel2 import make_band_folder, write_band  # noqa: E402
except ImportError:  # pragma: no cover - tests run as a package
    from tests.test_sentinel2 import make_band_folder, write_band  # noqa: E402


@pytest.fixture()
def scene(tmp_path):
    make_band_folder(tmp_path / "scene", size=12)
    return read_scene(tmp_path / "scene", bands=("B02", "B03", "B04", "B08"), offset=-1000)


# ---------------------------------------------------------------------------------------------
# tiling and georeference
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


def test_scl_cloud_mask(tmp_path):
    folder = tmp_path / "l2a"
    make_band_folder(folder, size=8)
    scl = np.full((4, 4), 4, np.uint8)
    scl[0, 0] = 9                                    # one 20 m cloud pixel -> 2x2 at 10 m
    scl[3, 3] = 0                                    # one 20 m no-data pixel
    write_band(folder / "SCL_20m.tif", scl, res=20.0)
    scene = read_scene(folder, bands=("B02", "B03", "B04"), offset=-1000)
    clouds, method = cloud_mask(scene)
    assert method == "scl" and clouds.sum() == 4 and clouds[:2, :2].all()
    assert scene.valid.sum() == 64 - 4


def test_render_stretch(scene):
    fixed = render_true_colour(scene, "fixed", vmin=0.0, vmax=0.3)
    r = scene.band("B04")
    expected = (np.clip(r / 0.3, 0, 1) * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(fixed[..., 0], expected)
    pct = render_true_colour(scene, "percentile", pct=(0, 100))
    assert pct[..., 0].min() == 0 and pct[..., 0].max() == 255


# ---------------------------------------------------------------------------------------------
# captions
def records(n=3, k=5):
    return [CaptionRecord(f"S2A_L1C_2015092{i % 2}_N0204R065_{i}.tif", "", [f"caption {j} of image {i}: a river and fields"
                                                                           for j in range(k)]) for i in range(n)]


def test_cvat_round_trip_and_karpathy(tmp_path):
    recs = records()
    path = write_cvat_xml(recs, tmp_path / "annotations.xml", sizes={r.filename: (224, 224) for r in recs})
    back = read_cvat_xml(path)
    assert [(r.filename, r.captions) for r in back] == [(r.filename, r.captions) for r in recs]
    assert back[0].meta["size"] == {"width": "224", "height": "224"}
    split = assign_splits(back, fractions=(0.5, 0.5, 0.0), seed=0)
    out = export_karpathy(split, tmp_path / "dataset.json", expected=5)
    again = read_karpathy(out)
    assert [(r.filename, r.captions, r.split) for r in again] == [(r.filename, r.captions, r.split) for r in split]
    assert json.loads(out.read_text())["images"][0]["sentences"][0]["tokens"][:2] == ["caption", "0"]


def test_cvat_variants(tmp_path):
    xml = tmp_path / "cvat.xml"
    xml.write_text("""<annotations><version>1.1</version>
      <image id="0" name="a.tif"><mask label="caption" rle="0, 4"><attribute name="text">A lake
         between   mountains.</attribute></mask><tag label="other"/></image>
      <image id="1" name="b.tif"><tag label="caption">Fields near a town.</tag></image>
      <image id="2" name="c.tif"/></annotations>""")
    recs = read_cvat_xml(xml)
    assert [r.captions for r in recs] == [["A lake between mountains."], ["Fields near a town."], []]
    report = validate_captions(recs, expected=1, source=xml)
    assert not report.ok and report.problems == [(f"{xml} (c.tif)", "no captions")]
    with pytest.raises(DataError, match=r"cvat\.xml \(c\.tif\): no captions"):
        report.raise_if_bad()


@pytest.mark.parametrize("text,message", [
    ("<annotations><image id='0' name='a.tif'><mask label='water'/></image></annotations>",
     r"bad\.xml: no captions: no element with label='caption'.*'water'"),
    ("<annotations><image id='0' name='a.tif'><mask label='caption'><attribute name='caption'> </attribute>"
     "</mask></image></annotations>", r"bad\.xml image 'a\.tif': empty caption"),
    ("<annotations><image id='0' name='a.tif'>", r"bad\.xml: malformed XML"),
    ("<Annotations/>", r"bad\.xml: not a CVAT annotation file"),
])
def test_bad_cvat_names_file(tmp_path, text, message):
    path = tmp_path / "bad.xml"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_cvat_xml(path)


def test_caption_csv_long_and_wide(tmp_path):
    long = tmp_path / "long.csv"
    long.write_text("filename,caption,annotator\na.png,A lake.,x\na.png,Water and hills.,y\nb.png,Fields.,x\n")
    assert [(r.filename, r.captions) for r in read_caption_table(long)] == [
        ("a.png", ["A lake.", "Water and hills."]), ("b.png", ["Fields."])]
    wide = tmp_path / "wide.tsv"
    wide.write_text("image\tcaption_2\tcaption_1\na.png\tsecond\tfirst\n")
    assert read_caption_table(wide)[0].captions == ["first", "second"]
    bad = tmp_path / "bad.csv"
    bad.write_text("filename,caption\na.png,\n")
    with pytest.raises(DataError, match=r"bad\.csv:2: empty caption for 'a\.png'"):
        read_caption_table(bad)
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("filename,label\na.png,x\n")
    with pytest.raises(DataError, match=r"nocol\.csv: no caption column"):
        read_caption_table(nocol)


def test_validation_reports(tmp_path):
    recs = records(3)
    recs[0].captions[1] = recs[0].captions[0]                # duplicate within an image
    recs[1].captions[0] = recs[2].captions[0] = "a river"    # shared by two images
    recs[2].captions.pop()                                   # 4 captions
    report = validate_captions(recs, expected=5, patches=[r.filename for r in recs[:2]] + ["lost.png"],
                               image_dir=tmp_path, source="caps.csv")
    problems = [p for _, p in report.problems]
    assert "4 captions, expected 5" in problems
    assert "patch has no captions" in problems and "captioned image is not one of the patches" in problems
    assert sum("image file not found" in p for p in problems) == 3
    assert len(report.duplicates_within) == 1 and report.duplicates_across == [
        ("a river", sorted([recs[1].filename, recs[2].filename]))]
    with pytest.raises(ValueError):
        export_karpathy(assign_splits(recs), tmp_path / "x.json", expected=5)


def test_export_requires_splits(tmp_path):
    with pytest.raises(DataError, match=r"x\.json \(S2A.*split '' is not train/val/test"):
        export_karpathy(records(1), tmp_path / "x.json")


# ---------------------------------------------------------------------------------------------
# splits
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


# ---------------------------------------------------------------------------------------------
# statistics
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
    from rsdix.s2.s2lcd import caption_corpora

    corpora = caption_corpora(data_root, names=["UCM", "Sydney"])
    if len(corpora) < 2:
        pytest.skip("caption files absent")
    table = compare_caption_datasets(corpora, sample_images=200, repeats=2).set_index("dataset")
    assert table.loc["UCM", "images"] == 2100 and table.loc["Sydney", "images"] == 613
    assert table.loc["UCM", "vocabulary"] > table.loc["UCM", "vocabulary@200"]


# ---------------------------------------------------------------------------------------------
# the published S2LCD (same layout, synthetic content)
def make_s2lcd(root, with_split=True, dtype="uint8"):
    (root / "images").mkdir(parents=True)
    images = []
    for i in range(6):
        name = f"S2A_L1C_2015092{i // 2}_N0204R065_{i}.tif"
        data = (np.arange(3 * 16 * 16).reshape(3, 16, 16) % 250).astype(dtype)
        write_band(root / "images" / name, data)
        entry = {"filename": name, "imgid": i, "sentences": [{"raw": f"caption {j} of {i}"} for j in range(5)]}
        if with_split:
            entry["split"] = ["train", "train", "val", "val", "test", "test"][i]
        images.append(entry)
    (root / "dataset_s2lcd.json").write_text(json.dumps({"images": images, "dataset": "s2lcd"}))


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


def test_assign_splits_image_without_a_group_is_a_clear_error():
    recs = [CaptionRecord(f"scene{i}_r00000_c00000.png", "", ["a field"], ["en"]) for i in range(3)]
    groups = {recs[0].filename: "g0", recs[1].filename: "g1"}        # recs[2] has no group
    with pytest.raises(DataError, match="scene2_r00000_c00000.png.*no group"):
        assign_splits(recs, groups=groups)


def test_notebooks_01_and_02_read_the_same_caption_corpora(tmp_path):
    """One reader, one empty-caption policy: an image left with no caption is not a corpus image."""
    import warnings

    from rsdix.data.overview import caption_corpora as overview_corpora
    from rsdix.s2.s2lcd import caption_corpora

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


def test_cloud_check_counts_and_compares_with_scl_and_esa(tmp_path):
    import json

    from rsdix.s2.s2lcd import cloud_check

    folder = tmp_path / "l2a"
    make_band_folder(folder, size=8)
    scl = np.full((4, 4), 4, np.uint8)
    scl[0, 0] = 9                                    # 4 of 64 pixels cloudy by SCL
    write_band(folder / "SCL_20m.tif", scl, res=20.0)
    (folder / "tileInfo.json").write_text(json.dumps({"cloudyPixelPercentage": 12.5}))
    scene = read_scene(folder, bands=("B02", "B03", "B04"), offset=-1000)
    row = cloud_check([scene]).iloc[0]
    assert row["scl_cloud"] == pytest.approx(4 / 64) and row["esa_cloudy_pixel_percentage"] == 0.125
    spectral = cloud_mask(scene, "spectral")[0]
    assert row["spectral_cloud"] == pytest.approx(spectral.sum() / 64)
    assert 0 <= row["iou"] <= 1 and 0 <= row["pixel_agreement"] <= 1
    (folder / "tileInfo.json").write_text("{not json")
    with pytest.raises(DataError, match="tileInfo.json"):
        cloud_check([scene])
