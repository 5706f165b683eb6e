"""Multispectral rasters (rsdix.data.raster): true colour from 13-band tiles, stretches, band counts."""
from __future__ import annotations

import numpy as np
import pytest

from rsdix.data.images import load_image
from rsdix.data.classification import ClassificationDataset
from rsdix.data.raster import EUROSAT_BANDS, stretch_to_uint8, true_colour
from rsdix.errors import DataError

rasterio = pytest.importorskip("rasterio")
from rasterio.transform import from_origin  # noqa: E402


def test_multispectral_true_colour(tmp_path):
    data = np.zeros((13, 4, 4), dtype=np.uint16)
    data[3], data[2], data[1] = 3000, 1500, 0          # B04 red 0.3, B03 green 0.15, B02 blue 0
    path = tmp_path / "tile.tif"
    with rasterio.open(path, "w", driver="GTiff", height=4, width=4, count=13, dtype="uint16",
                       crs="EPSG:32632", transform=from_origin(0, 40, 10, 10)) as dst:
        dst.write(data)
    rgb = np.asarray(load_image(path))
    assert rgb.shape == (4, 4, 3)
    assert tuple(rgb[0, 0]) == (255, 128, 0)             # fixed stretch 0..0.3 reflectance
    assert tuple(true_colour(data)[0, 0]) == (255, 128, 0)
    refl = np.stack([np.linspace(0, 1, 100).reshape(10, 10)] * 3)
    pct = stretch_to_uint8(refl, "percentile", pct=(0, 100))
    assert pct.min() == 0 and pct.max() == 255
    bad = tmp_path / "five.tif"
    with rasterio.open(bad, "w", driver="GTiff", height=2, width=2, count=5, dtype="uint16") as dst:
        dst.write(np.zeros((5, 2, 2), dtype=np.uint16))
    with pytest.raises(DataError, match=r"five\.tif.*expected 13 bands"):
        load_image(bad)


def _write_tile(path, data, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", height=data.shape[1], width=data.shape[2], count=data.shape[0],
                       dtype=str(data.dtype), crs="EPSG:32632", transform=from_origin(0, 40, 10, 10), **kwargs) as dst:
        dst.write(data)
    return path


def ms_tile(value=1000, dtype=np.uint16, bands=13, size=8):
    return np.full((bands, size, size), value, dtype=dtype)


@pytest.mark.parametrize("data,needle", [
    (ms_tile(0), "every value is 0 \\(the no-data value\\)"),
    (ms_tile(np.nan, np.float32), "every value is NaN"),
    (ms_tile(np.inf, np.float32), "every value is NaN or infinite"),
    (ms_tile(bands=12), "expected 13 bands .* found 12 \\(uint16\\)"),
])
def test_no_data_and_wrong_band_tiles_are_errors(tmp_path, data, needle):
    path = _write_tile(tmp_path / "bad.tif", data)
    with pytest.raises(DataError, match=rf"bad\.tif: .*{needle}"):
        load_image(path)
    partly = ms_tile(np.nan, np.float32)
    partly[:, 0, 0] = 0.1                                      # one valid pixel: rendered
    assert load_image(_write_tile(tmp_path / "partly.tif", partly)).size == (8, 8)


def test_rgb_tif_among_multispectral_tiles(tmp_path):
    rgb = _write_tile(tmp_path / "rgb.tif", ms_tile(100, np.uint8, bands=3))
    with pytest.raises(DataError, match=r"rgb\.tif: expected a 13-band multispectral tile, found 3 band\(s\) of uint8"):
        load_image(rgb, multispectral_bands=EUROSAT_BANDS)
    assert load_image(rgb).size == (8, 8)                       # without a band list: an RGB image


def test_no_data_tiles_are_counted_skips(tmp_path):
    root = tmp_path / "ms"
    _write_tile(root / "Forest" / "ok.tif", ms_tile())
    empty = _write_tile(root / "Forest" / "empty.tif", ms_tile(0))
    nan = _write_tile(root / "River" / "nan.tif", ms_tile(np.nan, np.float32))
    _write_tile(root / "River" / "ok.tif", ms_tile())
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable image\(s\), first: .*empty\.tif \(tile has no data"):
        ds = ClassificationDataset.from_folders(root, skip_bad=True)
    assert len(ds) == 2 and [p for p, _ in ds.skipped] == [str(empty), str(nan)]


def test_a_tile_of_another_layout_is_an_error_when_read_not_only_in_data_check(tmp_path):
    root = tmp_path / "ms"
    for i in range(3):
        _write_tile(root / "Forest" / f"f{i}.tif", ms_tile())
    rgb = _write_tile(root / "River" / "rgb.tif", ms_tile(100, np.uint8, bands=3))
    _write_tile(root / "River" / "ok.tif", ms_tile())
    ds = ClassificationDataset.from_folders(root)
    assert ds.layout == (13, "uint16")
    with pytest.raises(DataError, match=r"rgb\.tif: 3 band\(s\) of uint8, while this set's TIFFs have 13 band\(s\) "
                                        r"of uint16"):
        ds[[str(p) for p, _ in ds.samples].index(str(rgb))]
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image\(s\), first: .*rgb\.tif \(3 band"):
        ds = ClassificationDataset.from_folders(root, skip_bad=True)
    assert len(ds) == 4


def test_a_raster_over_the_pixel_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from PIL import Image

    tile = _write_tile(tmp_path / "big.tif", ms_tile(size=64))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)   # 64 x 64 = 4096 pixels: "too large" here
    with pytest.raises(DataError, match=r"big\.tif: raster too large, possibly a decompression bomb: 64x64 pixels"):
        load_image(tile)


def test_a_chip_without_georeference_reads_without_a_warning(tmp_path):
    """Issue 31: notebook 01 printed rasterio's NotGeoreferencedWarning once per UCM/EuroSAT file
    (5,662 lines), burying the warnings that matter."""
    import warnings
    data = np.full((13, 4, 4), 1000, dtype=np.uint16)
    path = tmp_path / "chip.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", driver="GTiff", height=4, width=4, count=13, dtype="uint16") as dst:
            dst.write(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_image(path)
    assert [w for w in caught if w.category.__name__ == "NotGeoreferencedWarning"] == []
