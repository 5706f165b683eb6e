"""Image loading with clear errors: RGB files through PIL, multispectral GeoTIFFs rendered to
true colour through :mod:`rsdix.data.raster`."""
from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from rsdix.data.raster import EUROSAT_BANDS, render_multispectral
from rsdix.errors import DataError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


def load_image(path: str | os.PathLike, multispectral_bands=None, **render_kwargs) -> Image.Image:
    """Open ``path`` as an RGB PIL image.

    A GeoTIFF with more than 3 bands or a non-8-bit type is rendered to true colour
    (``multispectral_bands`` names its bands; EuroSAT order by default; a 3-band 16-bit or
    float TIFF is taken as R, G, B and stretched band by band from its 2nd to 98th percentile).
    Raises :class:`DataError` naming the file if it is missing or unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "image file not found")
    if path.suffix.lower() in (".tif", ".tiff"):
        image = _load_tiff(path, multispectral_bands, render_kwargs)
        if image is not None:
            return image
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"corrupt or unreadable image ({exc.__class__.__name__}: {exc})") from exc


def _load_tiff(path: Path, bands, render_kwargs):
    try:
        import rasterio  # heavy: rasterio (GDAL), loaded on use (TIFF images only)
    except ImportError:  # pragma: no cover - rasterio is a dependency
        return None
    try:
        with rasterio.open(path) as src:
            count, dtype = src.count, src.dtypes[0]
    except Exception:  # noqa: BLE001 - not a GeoTIFF rasterio can read: let PIL try
        return None
    if count <= 3 and dtype == "uint8":
        return None

    if bands is None and count == 3:
        # a 16-bit or float true-colour TIFF (bands in R, G, B order, as photometric RGB):
        # its scale (DN or reflectance) is unknown, so stretch each band's 2-98 percentiles
        kwargs = {"method": "percentile", "quantification": 1.0} | dict(render_kwargs)
        return render_multispectral(path, band_names=("B04", "B03", "B02"), **kwargs)
    return render_multispectral(path, band_names=bands or EUROSAT_BANDS, **render_kwargs)


def verify_image(path: str | os.PathLike) -> str | None:
    """Return None if the image reads, else a short description of the problem."""
    try:
        load_image(path)
        return None
    except DataError as exc:
        return exc.problem
