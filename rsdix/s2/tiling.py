"""Tiling a scene into georeferenced patches, filtering them, writing them and their sidecar table.

:func:`tile_scene` cuts windows of ``size`` pixels every ``stride`` pixels; each patch keeps
its georeference (CRS, bounds, pixel size; centre in lon/lat) in a sidecar table. Filters,
applied in this order, each counted:

* ``nodata``: fraction of invalid pixels (no data in any band, or SCL no-data/defective)
  above ``max_nodata``;
* ``cloud``: fraction of cloudy pixels among valid ones above ``max_cloud``
  (:func:`rsdix.s2.clouds.cloud_mask`).

:func:`write_patches` writes the kept patches as PNG/JPEG (or georeferenced RGB GeoTIFF);
:func:`write_sidecar` / :func:`read_sidecar` the patch table.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from rsdix.errors import DataError
from rsdix.s2.clouds import cloud_mask
from rsdix.s2.products import Scene
from rsdix.s2.render import render_true_colour
from rsdix.utils import atomic_write_text, progress


def tile_windows(height: int, width: int, size: int, stride: int | None = None,
                 edge: str = "drop") -> list[tuple[int, int, int, int]]:
    """Patch windows ``(row_off, col_off, height, width)`` over a ``height x width`` grid.

    ``edge="drop"``: windows that would cross the border are left out (with ``stride == size`` the
    windows cover the scene exactly once, up to a strip narrower than ``size`` at the right and
    bottom). ``edge="shift"``: one more window flush with each border, so every pixel is covered
    (the last row/column of windows then overlaps its neighbour).
    """
    stride = size if stride is None else stride
    if size <= 0 or stride <= 0:
        raise ValueError(f"size and stride must be positive, got size={size}, stride={stride}")
    if edge not in ("drop", "shift"):
        raise ValueError(f"unknown edge mode {edge!r}: use 'drop' or 'shift'")

    def starts(n):
        if n < size:
            return []
        s = list(range(0, n - size + 1, stride))
        if edge == "shift" and s[-1] != n - size:
            s.append(n - size)
        return s

    return [(r, c, size, size) for r in starts(height) for c in starts(width)]


@dataclass
class Tiling:
    """The outcome of :func:`tile_scene`: one row per patch (kept or not) and filter counts."""

    table: pd.DataFrame
    counts: dict
    rgb: np.ndarray | None = None
    scene: Scene | None = None

    @property
    def kept(self) -> pd.DataFrame:
        return self.table[self.table["status"] == "kept"]


def tile_scene(scene: Scene, size: int = 224, stride: int | None = None, edge: str = "drop",
               max_nodata: float = 0.0, max_cloud: float = 0.05, cloud_method: str = "auto",
               rgb: np.ndarray | None = None, **cloud_kwargs) -> Tiling:
    """Cut a scene into patches with georeference and filter them (see module doc).

    Returns a :class:`Tiling` whose ``table`` has, per patch: ``patch_id``, ``scene``,
    ``row_off``, ``col_off``, ``height``, ``width``, ``crs``, ``left``, ``bottom``, ``right``,
    ``top`` (in the CRS), ``res``, ``lon``, ``lat`` (centre, WGS84), ``nodata_fraction``,
    ``cloud_fraction``, ``cloud_method`` and ``status`` (``kept``, ``nodata`` or ``cloud``);
    ``counts`` says how many patches there were and what each filter removed.
    """
    from rasterio.warp import transform as warp_transform  # heavy: rasterio (GDAL), loaded on use
    from rasterio.windows import Window, bounds as window_bounds  # heavy: rasterio (GDAL), loaded on use

    h, w = scene.shape
    windows = tile_windows(h, w, size, stride, edge)
    clouds, method = cloud_mask(scene, cloud_method, **cloud_kwargs)
    rows = []
    for r, c, ph, pw in windows:
        valid = scene.valid[r:r + ph, c:c + pw]
        n_valid = int(valid.sum())
        nodata = 1.0 - n_valid / valid.size
        cloud = float(clouds[r:r + ph, c:c + pw].sum() / n_valid) if n_valid else float("nan")
        left, bottom, right, top = window_bounds(Window(c, r, pw, ph), scene.transform)
        status = "nodata" if nodata > max_nodata else "cloud" if cloud > max_cloud else "kept"
        rows.append(dict(patch_id=f"{scene.name}_r{r:05d}_c{c:05d}", scene=scene.name, row_off=r, col_off=c,
                         height=ph, width=pw, crs=scene.crs.to_string(), left=left, bottom=bottom,
                         right=right, top=top, res=scene.resolution, nodata_fraction=nodata,
                         cloud_fraction=cloud, cloud_method=method, status=status))
    table = pd.DataFrame(rows, columns=["patch_id", "scene", "row_off", "col_off", "height", "width", "crs",
                                        "left", "bottom", "right", "top", "res", "nodata_fraction",
                                        "cloud_fraction", "cloud_method", "status"])
    if len(table):
        cx = ((table["left"] + table["right"]) / 2).tolist()
        cy = ((table["bottom"] + table["top"]) / 2).tolist()
        lon, lat = warp_transform(scene.crs, "EPSG:4326", cx, cy)
        table.insert(table.columns.get_loc("res") + 1, "lon", lon)
        table.insert(table.columns.get_loc("lon") + 1, "lat", lat)
    counts = {"scene": scene.name, "patches": len(table),
              "removed_nodata": int((table["status"] == "nodata").sum()),
              "removed_cloud": int((table["status"] == "cloud").sum()),
              "kept": int((table["status"] == "kept").sum()), "cloud_method": method,
              "scene_nodata_fraction": scene.nodata_fraction(),
              "scene_cloud_fraction": float(clouds.sum() / max(scene.valid.sum(), 1))}
    if rgb is None:
        rgb = render_true_colour(scene)
    return Tiling(table=table, counts=counts, rgb=rgb, scene=scene)


def patch_transform(row) -> "object":
    """The affine transform of a patch from its sidecar row (north-up)."""
    from rasterio.transform import from_bounds  # heavy: rasterio (GDAL), loaded on use

    return from_bounds(row["left"], row["bottom"], row["right"], row["top"], int(row["width"]), int(row["height"]))


def patch_rgb(tiling: Tiling, row) -> np.ndarray:
    r, c = int(row["row_off"]), int(row["col_off"])
    return tiling.rgb[r:r + int(row["height"]), c:c + int(row["width"])]


def write_patches(tiling: Tiling, out_dir: str | os.PathLike, fmt: str = "png", quality: int = 95,
                  include: Sequence[str] = ("kept",)) -> pd.DataFrame:
    """Write the patches whose status is in ``include`` and return the table with ``filename``.

    ``fmt``: ``png`` (lossless), ``jpg`` (``quality``) or ``tif`` (a georeferenced 3-band uint8
    GeoTIFF carrying the patch's CRS and transform, like S2LCD's TIFF images).
    """
    fmt = fmt.lower().lstrip(".")
    if fmt not in ("png", "jpg", "jpeg", "tif"):
        raise ValueError(f"unknown patch format {fmt!r}: use png, jpg or tif")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = tiling.table.copy()
    names = []
    for _, row in progress(table.iterrows(), total=len(table), desc=f"write {tiling.counts.get('scene', '')} patches",
                           unit="patch", leave=False):
        if row["status"] not in include:
            names.append("")
            continue
        name = f"{row['patch_id']}.{fmt}"
        arr = patch_rgb(tiling, row)
        if fmt == "tif":
            import rasterio  # heavy: rasterio (GDAL), loaded on use

            with rasterio.open(out_dir / name, "w", driver="GTiff", dtype="uint8", count=3,
                               height=arr.shape[0], width=arr.shape[1], crs=row["crs"],
                               transform=patch_transform(row), photometric="RGB") as dst:
                dst.write(arr.transpose(2, 0, 1))
        elif fmt == "png":
            Image.fromarray(arr).save(out_dir / name)
        else:
            Image.fromarray(arr).save(out_dir / name, quality=quality)
        names.append(name)
    table["filename"] = names
    return table


def write_sidecar(tables: pd.DataFrame | Iterable[pd.DataFrame], path: str | os.PathLike) -> Path:
    """Write the patch table(s) as CSV (one row per patch; georeference and filter outcome)."""
    table = tables if isinstance(tables, pd.DataFrame) else pd.concat(list(tables), ignore_index=True)
    return atomic_write_text(path, table.to_csv(index=False))


def read_sidecar(path: str | os.PathLike) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise DataError(path, "patch table not found")
    table = pd.read_csv(path, keep_default_na=False)
    missing = {"patch_id", "scene", "crs", "left", "bottom", "right", "top", "status"} - set(table.columns)
    if missing:
        raise DataError(path, f"not a patch table: missing column(s) {sorted(missing)}")
    return table
