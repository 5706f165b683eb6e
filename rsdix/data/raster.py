"""Multispectral rasters (GeoTIFF) and true-colour rendering.

Conventions: arrays are ``(bands, height, width)``; reflectance = (DN + offset) / quantification.
True colour = B04/B03/B02 (red, green, blue). Two documented stretches map reflectance to 8 bit:

* ``fixed``: reflectance in ``[vmin, vmax]`` (default 0..0.3, a common choice for Sentinel-2
  land scenes) is mapped linearly to 0..255 and clipped;
* ``percentile``: per band, the ``pct`` percentiles (default 2 and 98) of valid pixels are
  mapped to 0..255 and clipped.
"""
from __future__ import annotations

import os
import warnings
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from rsdix.errors import DataError

# EuroSAT-MS band order (as published): B01..B12 then B8A
EUROSAT_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A")
TRUE_COLOUR = ("B04", "B03", "B02")


@contextmanager
def open_chip(path: str | os.PathLike):
    """``rasterio.open(path)`` for reading an image chip, without rasterio's
    ``NotGeoreferencedWarning``: dataset chips (UCM's TIFFs, EuroSAT-MS tiles) carry no
    georeference and need none, and notebook 01 printed the warning once per file (5,662 lines)
    over the warnings that matter."""
    import rasterio  # heavy: rasterio (GDAL), loaded on use
    from rasterio.errors import NotGeoreferencedWarning  # with rasterio, loaded on use

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            yield src


def read_raster(path: str | os.PathLike, bands=None):
    """Read a GeoTIFF as ``(array[bands,H,W], profile)``; ``bands`` are 1-based indexes."""
    from rasterio.errors import RasterioError  # heavy: rasterio (GDAL), loaded on use

    path = Path(path)
    if not path.exists():
        raise DataError(path, "raster file not found")
    try:
        with open_chip(path) as src:
            n = len(bands) if isinstance(bands, (list, tuple)) else 1 if bands is not None else src.count
            if Image.MAX_IMAGE_PIXELS and src.width * src.height > Image.MAX_IMAGE_PIXELS:   # PIL's decompression-bomb limit, as for RGB files
                raise DataError(path, f"raster too large, possibly a decompression bomb: {src.width}x{src.height} "
                                      f"pixels x {n} band(s) (over PIL.Image.MAX_IMAGE_PIXELS = "
                                      f"{Image.MAX_IMAGE_PIXELS})")
            array = src.read(bands) if bands is not None else src.read()
            profile = dict(src.profile)
            profile["descriptions"] = src.descriptions
    except (RasterioError, MemoryError) as exc:
        reason = " ".join(str(exc).split())[:200] or exc.__class__.__name__
        raise DataError(path, f"cannot read raster ({exc.__class__.__name__}: {reason})") from exc
    return array, profile


def to_reflectance(dn: np.ndarray, offset: float = 0.0, quantification: float = 10000.0,
                   nodata: float | None = 0) -> np.ndarray:
    """Digital numbers to reflectance: ``(DN + offset) / quantification``; nodata -> NaN."""
    dn = np.asarray(dn)
    refl = (dn.astype(np.float64) + offset) / quantification
    if nodata is not None:
        refl = np.where(dn == nodata, np.nan, refl)
    return refl.astype(np.float32)


def stretch_to_uint8(refl: np.ndarray, method: str = "fixed", vmin: float = 0.0, vmax: float = 0.3,
                     pct: tuple[float, float] = (2.0, 98.0)) -> np.ndarray:
    """Map reflectance ``(3,H,W)`` to ``uint8 (H,W,3)`` with a documented stretch (see module doc)."""
    refl = np.asarray(refl, dtype=np.float32)
    out = np.zeros(refl.shape, dtype=np.float32)
    for b in range(refl.shape[0]):
        band = refl[b]
        if method == "fixed":
            lo, hi = vmin, vmax
        elif method == "percentile":
            valid = band[np.isfinite(band)]
            if valid.size == 0:
                lo, hi = 0.0, 1.0
            else:
                lo, hi = np.percentile(valid, pct)
        else:
            raise ValueError(f"unknown stretch {method!r}: use 'fixed' or 'percentile'")
        scale = (hi - lo) if hi > lo else 1.0
        out[b] = (band - lo) / scale
    out = np.nan_to_num(out, nan=0.0)
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0)


def true_colour(array: np.ndarray, band_names=EUROSAT_BANDS, offset: float = 0.0,
                quantification: float = 10000.0, method: str = "fixed", **stretch) -> np.ndarray:
    """True-colour uint8 image ``(H,W,3)`` from a multiband DN array with named bands."""
    names = list(band_names)
    try:
        idx = [names.index(b) for b in TRUE_COLOUR]
    except ValueError as exc:
        raise DataError("bands", f"true colour needs {TRUE_COLOUR}, have {names}") from exc
    refl = to_reflectance(array[idx], offset=offset, quantification=quantification, nodata=None)
    return stretch_to_uint8(refl, method=method, **stretch)


def render_multispectral(path: str | os.PathLike, band_names=EUROSAT_BANDS, **kwargs):
    """Read a multispectral tile and return a PIL RGB image (true colour)."""
    array, _ = read_raster(path)
    check_tile(path, array, band_names)
    return Image.fromarray(true_colour(array, band_names=band_names, **kwargs))


def check_tile(path, array: np.ndarray, band_names=EUROSAT_BANDS) -> None:
    """``DataError`` naming the file when a multispectral tile has the wrong band count, a
    non-numeric type, or no data (every value NaN, or every value 0, the no-data value)."""
    if array.shape[0] != len(band_names):
        raise DataError(path, f"expected {len(band_names)} bands ({', '.join(band_names)}), "
                              f"found {array.shape[0]} ({array.dtype})")
    if array.dtype.kind not in "uif":
        raise DataError(path, f"unsupported band type {array.dtype}; expected integer or float")
    if array.dtype.kind == "f" and not np.isfinite(array).any():
        raise DataError(path, "tile has no data: every value is NaN or infinite")
    if not np.any(array):
        raise DataError(path, "tile has no data: every value is 0 (the no-data value)")


def tiff_layout(path: str | os.PathLike) -> tuple[int, str] | None:
    """``(band count, dtype)`` of a GeoTIFF, or None if rasterio cannot open it."""
    try:
        with open_chip(path) as src:
            return src.count, src.dtypes[0]
    except Exception:  # noqa: BLE001 - not a GeoTIFF: the image check reports it
        return None


def expected_layout(paths, sample: int = 16) -> tuple[int, str] | None:
    """The ``(band count, dtype)`` most of a set's TIFFs have, from up to ``sample`` of them evenly
    spread (None when the set holds no TIFF rasterio reads). Loading a tile of another layout is then
    an error (:func:`rsdix.data.images.load_image` ``layout=``), not only in ``rsdix data check``."""
    tiffs = [p for p in paths if str(p).lower().endswith((".tif", ".tiff"))]
    if not tiffs:
        return None
    step = max(1, len(tiffs) // sample)
    layouts = Counter(v for v in (tiff_layout(p) for p in tiffs[::step][:sample]) if v is not None)
    return layouts.most_common(1)[0][0] if layouts else None
