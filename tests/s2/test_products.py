"""Sentinel-2 reading and radiometry (rsdix.s2.products): synthetic GeoTIFFs in tmp_path plus the
real fixtures."""
from __future__ import annotations

import numpy as np
import pytest

from s2_fixtures import make_band_folder, write_band
from rsdix.data.raster import to_reflectance
from rsdix.errors import DataError
from rsdix.s2.products import band_name, check_reflectance, find_band_files, read_mtd, read_scene, resolve_radiometry

rasterio = pytest.importorskip("rasterio")


@pytest.mark.parametrize("text,expected", [
    ("B02.tif", "B02"), ("sentinel.dolomites.b4.tif", "B04"), ("T32UPC_20220615T101559_B8A_20m.jp2", "B8A"),
    ("S2A_MSIL2A_20170617T113321_36_85_B12.tif", "B12"), ("SCL.tif", "SCL"), ("b10", "B10"),
    ("S2B_MSIL1C_20220615T101559_N0400_R065_T32UPC_20220615T122549.tif", None), ("Band_1", None)])
def test_band_name(text, expected):
    assert band_name(text) == expected


def test_stated_offset_and_common_grid(tmp_path):
    bands = make_band_folder(tmp_path / "scene")
    scene = read_scene(tmp_path / "scene", bands=("B02", "B03", "B04", "B11"), offset=-1000)
    assert scene.shape == (8, 8) and scene.resolution == 10.0
    # hand-computed reflectance for B02
    np.testing.assert_array_equal(scene.band("B02"), ((bands["B02"].astype(np.float64) - 1000) / 10000).astype(np.float32))
    # 20 m B11 upsampled by nearest neighbour: each 20 m pixel becomes a 2x2 block
    expected = np.kron(bands["B11"].astype(np.float64), np.ones((2, 2)))
    np.testing.assert_array_equal(scene.band("B11"), ((expected - 1000) / 10000).astype(np.float32))
    # at 20 m, the 10 m bands are averaged over 2x2 blocks
    coarse = read_scene(tmp_path / "scene", bands=("B02", "B11"), offset=-1000, resolution=20)
    mean = bands["B02"].astype(np.float64).reshape(4, 2, 4, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(coarse.band("B02"), (mean - 1000) / 10000, atol=1e-6)
    assert coarse.shape == (4, 4) and coarse.transform.a == 20


def test_nodata_zero_is_nan_per_band(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    a = np.full((4, 4), 2000, np.uint16)
    b = a.copy()
    b[1, 2] = 0
    write_band(folder / "B02.tif", a)
    write_band(folder / "B03.tif", b)
    write_band(folder / "B04.tif", a)
    scene = read_scene(folder, bands=("B02", "B03", "B04"), offset=0)
    assert np.isnan(scene.band("B03")[1, 2]) and not np.isnan(scene.band("B02")[1, 2])
    assert not scene.valid[1, 2] and scene.valid.sum() == 15


def test_missing_band_file_names_it(tmp_path):
    make_band_folder(tmp_path / "scene")
    with pytest.raises(DataError, match=r"B8A\.tif.*band file missing: B8A"):
        read_scene(tmp_path / "scene", bands=("B02", "B8A"), offset=0)


def test_mismatched_crs_names_the_file(tmp_path):
    make_band_folder(tmp_path / "scene", crs_b08="EPSG:32633")
    with pytest.raises(DataError, match=r"B08_10m\.tif.*CRS"):
        read_scene(tmp_path / "scene", bands=("B02", "B08"), offset=0)


def test_unknown_offset_is_an_error_not_a_guess(tmp_path):
    make_band_folder(tmp_path / "scene")
    with pytest.raises(DataError, match=r"scene: cannot tell the radiometric offset"):
        read_scene(tmp_path / "scene", bands=("B02",))


def test_baseline_from_product_name(tmp_path):
    folder = tmp_path / "S2B_MSIL2A_20220701T101559_N0400_R065_T32TPS_20220701T130159"
    make_band_folder(folder)
    radio = resolve_radiometry(folder)
    assert radio.default_offset == -1000 and radio.baseline == "04.00" and radio.level == "L2A"
    old = tmp_path / "S2A_MSIL1C_20170729T153601_N0205_R111_T19UDP_20170729T153557"
    make_band_folder(old)
    assert resolve_radiometry(old).default_offset == 0


def test_mtd_l2a_and_conflict(tmp_path):
    mtd = tmp_path / "MTD_MSIL2A.xml"
    mtd.write_text("""<?xml version="1.0"?><n1:Level-2A_User_Product xmlns:n1="x"><n1:General_Info>
      <Product_Info><PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL><PROCESSING_BASELINE>05.09</PROCESSING_BASELINE>
      </Product_Info><Product_Image_Characteristics>
      <QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
      </QUANTIFICATION_VALUES_LIST><BOA_ADD_OFFSET_VALUES_LIST>
      <BOA_ADD_OFFSET band_id="1">-1000</BOA_ADD_OFFSET><BOA_ADD_OFFSET band_id="2">-1000</BOA_ADD_OFFSET>
      </BOA_ADD_OFFSET_VALUES_LIST></Product_Image_Characteristics></n1:General_Info></n1:Level-2A_User_Product>""")
    radio = read_mtd(mtd)
    assert radio.level == "L2A" and radio.offset("B02") == -1000 and radio.offset("B03") == -1000
    make_band_folder(tmp_path)
    with pytest.raises(DataError, match=r"MTD_MSIL2A\.xml: stated offset 0 disagrees"):
        read_scene(tmp_path, bands=("B02",), offset=0)


def test_malformed_mtd_names_file(tmp_path):
    bad = tmp_path / "MTD_MSIL1C.xml"
    bad.write_text("<Level-1C_User_Product><oops>")
    with pytest.raises(DataError, match=r"MTD_MSIL1C\.xml: malformed XML"):
        read_mtd(bad)


TOA = ["S2B_MSIL1C_20200406T101559_N0209_R065_T32UPC_20200406T130159",
       "S2B_MSIL1C_20220615T101559_N0400_R065_T32UPC_20220615T122549"]


@pytest.mark.data
@pytest.mark.parametrize("stem", TOA)
def test_reflectance_equals_toa_fixture(data_root, stem):
    folder = data_root / "sentinel2/l1c_with_toa"
    if not (folder / f"{stem}.tif").exists():
        pytest.skip("l1c_with_toa fixture absent")
    with rasterio.open(folder / f"{stem}_toa.tif") as src:
        toa = src.read()
    with rasterio.open(folder / f"{stem}.tif") as src:
        dn = src.read()
    scene = read_scene(folder / f"{stem}.tif", bands=None)
    expected_offset = -1000 if "_N0400_" in stem else 0
    assert scene.radiometry.default_offset == expected_offset
    assert scene.radiometry.source.endswith("_MTD.xml")
    valid = dn != 0                        # DN 0 is the products' NODATA value -> NaN
    assert np.array_equal(np.isnan(scene.reflectance), ~valid)
    np.testing.assert_array_equal(scene.reflectance[valid], toa[valid])   # exact, float32
    # without masking, the whole array equals the fixture (it leaves DN 0 at 0 + offset)
    raw = scene.radiometry.to_reflectance(dn, scene.band_names)
    np.testing.assert_array_equal(raw, toa)
    # the other baseline's offset would be off by 0.1 everywhere
    wrong = to_reflectance(dn, offset=-1000 - expected_offset, nodata=None)
    np.testing.assert_allclose(np.abs(wrong - toa), 0.1, atol=1e-6)


@pytest.mark.data
def test_real_multiresolution_patch(data_root):
    folder = data_root / "sentinel2/bigearthnet_patch/S2A_MSIL2A_20170617T113321_36_85"
    if not folder.exists():
        pytest.skip("BigEarthNet patch absent")
    scene = read_scene(folder, bands=("B02", "B05", "B09"))
    assert scene.shape == (120, 120) and scene.resolution == 10
    assert scene.radiometry.default_offset == 0 and "N0205" in scene.radiometry.source
    with rasterio.open(next(folder.glob("*_B09.tif"))) as src:
        b09 = src.read(1).astype(np.float64)
    np.testing.assert_array_equal(scene.band("B09"), (np.kron(b09, np.ones((6, 6))) / 10000).astype(np.float32))


@pytest.mark.data
def test_real_l2a_with_scl(data_root):
    folder = data_root / "sentinel2/l2a_cog_29RKH_20200219"
    if not folder.exists():
        pytest.skip("L2A COG absent")
    scene = read_scene(folder, offset=0)
    assert scene.scl is not None and scene.scl.shape == scene.shape
    # SCL is at 200 m, bands at 100 m: nearest neighbour keeps class codes
    assert set(np.unique(scene.scl)) <= set(range(12))


def test_safe_l2a_layout(tmp_path):
    """A .SAFE L2A product: bands from the finest R10m/R20m/R60m folder, offset from its MTD."""
    safe = tmp_path / "S2B_MSIL2A_20220701T101559_N0400_R065_T32TPS_20220701T130159.SAFE"
    img = safe / "GRANULE" / "L2A_T32TPS_A000001_20220701T101559" / "IMG_DATA"
    for res, bands in (("R10m", ("B02", "B03", "B04", "TCI")), ("R20m", ("B02", "B05", "SCL")), ("R60m", ("B01", "B02"))):
        (img / res).mkdir(parents=True)
        px = 8 * 10 // int(res[1:3])
        for b in bands:
            value = {"R10m": 1100, "R20m": 1200, "R60m": 1300}[res]
            arr = np.full((px, px), 4 if b == "SCL" else value, np.uint8 if b == "SCL" else np.uint16)
            write_band(img / res / f"T32TPS_20220701T101559_{b}_{res[1:]}.jp2.tif", arr, res=float(res[1:3]))
    (safe / "MTD_MSIL2A.xml").write_text(
        "<n1:Level-2A_User_Product xmlns:n1='x'><BOA_QUANTIFICATION_VALUE>10000</BOA_QUANTIFICATION_VALUE>"
        "<BOA_ADD_OFFSET band_id='1'>-1000</BOA_ADD_OFFSET><PROCESSING_BASELINE>04.00</PROCESSING_BASELINE>"
        "<PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL></n1:Level-2A_User_Product>")
    files = find_band_files(safe, ("B01", "B02", "B05"))
    assert files["B02"].parent.name == "R10m" and files["B05"].parent.name == "R20m" and files["B01"].parent.name == "R60m"
    scene = read_scene(safe, bands=("B02", "B05"))
    assert scene.shape == (8, 8) and scene.scl is not None
    assert scene.name.startswith("S2B_MSIL2A_20220701T101559_N0400")
    np.testing.assert_allclose(scene.band("B02"), 0.01)                       # (1100 - 1000) / 10000
    np.testing.assert_allclose(scene.band("B05"), 0.02)


@pytest.mark.data
def test_check_reflectance_against_fixture_and_bad_reference(data_root, tmp_path):
    folder = data_root / "sentinel2/l1c_with_toa"
    if not (folder / f"{TOA[1]}.tif").exists():
        pytest.skip("l1c_with_toa fixture absent")
    row = check_reflectance(folder / f"{TOA[1]}.tif")
    assert row["exactly_equal"] and row["max_abs_diff"] == 0.0 and row["offset"] == -1000
    assert row["valid_values"] > 0 and row["offset_from"].endswith("_MTD.xml")
    with pytest.raises(DataError, match="reference reflectance raster not found"):
        check_reflectance(folder / f"{TOA[1]}.tif", tmp_path / "missing_toa.tif")
    small = tmp_path / "small_toa.tif"
    write_band(small, np.zeros((3, 3), np.float32))
    with pytest.raises(DataError, match="shape"):
        check_reflectance(folder / f"{TOA[1]}.tif", small)


@pytest.mark.parametrize("band,res,dx,dy,size", [
    ("B03", 10.0, 10.0, 0.0, 8),       # shifted one pixel east
    ("B03", 10.0, 0.0, 20.0, 8),       # shifted two pixels north
    ("B11", 20.0, 20.0, 0.0, 4),       # a 20 m band shifted by one 20 m pixel
    ("SCL", 20.0, 0.0, -20.0, 4),      # the SCL layer on another grid
    ("B04", 10.0, 0.0, 0.0, 6),        # a cropped band (another extent)
])
def test_band_on_another_grid_is_an_error_naming_it(tmp_path, band, res, dx, dy, size):
    from s2_fixtures import X0, Y0
    folder = tmp_path / "s"
    folder.mkdir()
    for b in ("B02", "B03", "B04"):
        write_band(folder / f"{b}.tif", np.full((8, 8), 2000, np.uint16))
    dtype, value = (np.uint8, 4) if band == "SCL" else (np.uint16, 2000)
    write_band(folder / f"{band}.tif", np.full((size, size), value, dtype), res=res, x0=X0 + dx, y0=Y0 + dy)
    wanted = ("B02", "B03", "B04") + (("B11",) if band == "B11" else ())
    with pytest.raises(DataError, match=rf"{band}\.tif: extent .* differs from B02\.tif's .* a band on another grid"):
        read_scene(folder, bands=wanted, offset=0)
    # stated resampling: read, and the uncovered pixels are NaN / invalid (old behaviour, silent)
    scene = read_scene(folder, bands=wanted, offset=0, resample_extent=True)
    assert scene.shape == (8, 8) and 0 < scene.valid.sum() < 64
    # within half a pixel is the same grid (floating-point noise in a GeoTIFF's origin)
    write_band(folder / f"{band}.tif", np.full((int(80 / res),) * 2, value, dtype), res=res, x0=X0 + 0.1 * res)
    assert read_scene(folder, bands=wanted, offset=0).valid.all()
