"""Image loading with clear errors: RGB files through PIL, multispectral GeoTIFFs rendered to
true colour through :mod:`rsdix.data.raster`."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from rsdix.data.raster import EUROSAT_BANDS, open_chip, render_multispectral
from rsdix.errors import DataError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
MIN_SIDE = 4   # pixels: a smaller image (a 1x1 placeholder, a 3x3 thumbnail) is an error
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")   # 16/32-bit and float single-band modes


def load_image(path: str | os.PathLike, multispectral_bands=None, layout: tuple | None = None,
               **render_kwargs) -> Image.Image:
    """Open ``path`` as an RGB PIL image.

    A GeoTIFF with more than 3 bands or a non-8-bit type is rendered to true colour
    (``multispectral_bands`` names its bands; EuroSAT order by default; a 3-band 16-bit or
    float TIFF is taken as R, G, B and stretched band by band from its 2nd to 98th percentile).
    An image under ``MIN_SIDE`` pixels a side, or one over PIL's decompression-bomb limit
    (``PIL.Image.MAX_IMAGE_PIXELS``, a header claiming a huge size), is an error. A 16-bit
    grayscale image (mode ``I;16``/``I``) is scaled to 8 bit by the full 16-bit range
    (``value * 255 / 65535``), not clipped; one with values outside 0..65535, or a float
    image (mode ``F``), is scaled by its own min..max.
    ``layout`` (``(band count, dtype)``, :func:`rsdix.data.raster.expected_layout`): the layout of the
    set's TIFFs; a TIFF of another one (an 8-bit RGB tile among 13-band ones) is an error.
    Raises :class:`DataError` naming the file if it is missing, unreadable, too small or too large.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "image file not found")
    if path.suffix.lower() in (".tif", ".tiff"):
        image = _load_tiff(path, multispectral_bands, render_kwargs, layout)
        if image is not None:
            check_size(path, *image.size)
            return image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                check_size(path, *im.size)
                im.load()
                if im.mode in WIDE_MODES:
                    return Image.fromarray(to_uint8(np.asarray(im))).convert("RGB")
                return im.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(path, f"image too large, possibly a decompression bomb ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(path, f"corrupt or unreadable image ({exc.__class__.__name__}: {exc})") from exc


def check_size(path, width: int, height: int, min_side: int = MIN_SIDE) -> None:
    """``DataError`` naming the file if the image is under ``min_side`` pixels a side."""
    if width < min_side or height < min_side:
        raise DataError(path, f"image is {width}x{height} pixels; at least {min_side}x{min_side} expected")


def to_uint8(array: np.ndarray) -> np.ndarray:
    """A 16-bit (or wider, or float) single-band array as uint8: by 65535 when it fits 0..65535
    as integers, else by its own min..max (see :func:`load_image`)."""
    arr = np.asarray(array)
    values = arr.astype(np.float64)
    if arr.dtype.kind in "ui" and values.min() >= 0 and values.max() <= 65535:
        lo, hi = 0.0, 65535.0
    else:
        finite = values[np.isfinite(values)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    scaled = (np.nan_to_num(values, nan=lo) - lo) / ((hi - lo) or 1.0)
    return (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _load_tiff(path: Path, bands, render_kwargs, layout=None):
    try:
        with open_chip(path) as src:
            count, dtype = src.count, src.dtypes[0]
    except Exception:  # noqa: BLE001 - not a GeoTIFF rasterio can read: let PIL try
        return None
    if layout is not None and (count, dtype) != tuple(layout):
        raise DataError(path, f"{count} band(s) of {dtype}, while this set's TIFFs have {layout[0]} band(s) of "
                              f"{layout[1]} (an RGB image among multispectral tiles?)")
    if count == 1:
        return None   # single band (e.g. 16-bit grayscale): PIL, scaled as above
    if count <= 3 and dtype == "uint8":
        if bands is not None and count != len(bands):
            raise DataError(path, f"expected a {len(bands)}-band multispectral tile, found {count} "
                                  f"band(s) of {dtype} (an RGB image among multispectral tiles?)")
        return None

    if bands is None and count == 3:
        # a 16-bit or float true-colour TIFF (bands in R, G, B order, as photometric RGB):
        # its scale (DN or reflectance) is unknown, so stretch each band's 2-98 percentiles
        kwargs = {"method": "percentile", "quantification": 1.0} | dict(render_kwargs)
        return render_multispectral(path, band_names=("B04", "B03", "B02"), **kwargs)
    return render_multispectral(path, band_names=bands or EUROSAT_BANDS, **render_kwargs)


def verify_image(path: str | os.PathLike, layout: tuple | None = None) -> str | None:
    """Return None if the image reads (in ``layout``, when given), else a short description of the problem."""
    try:
        load_image(path, layout=layout)
        return None
    except DataError as exc:
        return exc.problem
