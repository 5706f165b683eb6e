"""S2LCD construction: Sentinel-2 scenes -> true-colour patches -> captions -> Karpathy JSON.

S2LCD (Sentinel-2 Land-cover Captioning Dataset, RSDiX paper) has 1533 Sentinel-2 patches of
224x224 pixels with 5 captions each (7665), annotated in CVAT. This module rebuilds the
pipeline that makes such a dataset from raw Sentinel-2 products, and loads the published one.

1. **Read** a scene to reflectance on one grid: :func:`rsdix.s2.products.read_scene`.
2. **Render** true colour (B04/B03/B02) to 8 bit with a documented stretch
   (:func:`render_true_colour`): ``fixed`` maps reflectance ``[vmin, vmax]`` (default 0..0.3)
   linearly to 0..255; ``percentile`` maps each band's ``pct`` percentiles (default 2, 98) *of the
   whole scene* to 0..255, so that every patch of a scene shares one stretch.
3. **Tile** the scene (:func:`tile_scene`): windows of ``size`` pixels every ``stride`` pixels;
   each patch keeps its georeference (CRS, bounds, pixel size; centre in lon/lat) in a sidecar
   table. Filters, applied in this order, each counted:

   * ``nodata``: fraction of invalid pixels (no data in any band, or SCL no-data/defective)
     above ``max_nodata``;
   * ``cloud``: fraction of cloudy pixels among valid ones above ``max_cloud``. Cloudy pixels
     come from the L2A scene classification when loaded (SCL classes 3 cloud shadow,
     8/9 cloud medium/high probability, 10 thin cirrus), otherwise from a simple spectral test
     (:func:`cloud_mask`): bright, white (flat visible spectrum) and hazy.

4. **Write** kept patches as PNG/JPEG (or georeferenced RGB GeoTIFF) and the sidecar table
   (:func:`write_patches`).
5. **Captions**: import CVAT XML (:func:`read_cvat_xml`) or a captioning team's CSV
   (:func:`read_caption_table`), validate them (:func:`validate_captions`), assign train/val/
   test by scene or spatial block so that neighbouring patches never straddle two splits
   (:func:`assign_splits`, :func:`spatial_groups`, :func:`split_leakage`) and export Karpathy
   JSON (:func:`export_karpathy`).
6. **Statistics** against the other caption datasets (:func:`compare_caption_datasets`).
7. **Load the published S2LCD** (``dataset_s2lcd.json`` + TIFF images): :func:`load_s2lcd`.
"""
from __future__ import annotations

import csv
import os
import random
import re
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from rsdix.data.captions import CaptionRecord, read_karpathy, write_karpathy
from rsdix.data.files import read_xml
from rsdix.errors import DataError
from rsdix.data.raster import TRUE_COLOUR, stretch_to_uint8
from rsdix.s2.products import SCL_CLOUD, Scene

# --------------------------------------------------------------------------------------
# facts about the published dataset (for the dataset registry)
S2LCD_INFO = {
    "name": "s2lcd",
    "title": "S2LCD: Sentinel-2 Land-cover Captioning Dataset",
    "images": 1533,
    "captions": 7665,
    "captions_per_image": 5,
    "image_size": 224,
    "image_format": "TIFF (Sentinel-2 true colour patches)",
    "caption_file": "dataset_s2lcd.json",
    "url": "https://github.com/NeuRoNeLab/RSDiX-CLIP/raw/main/S2LCD.zip",
    "homepage": "https://github.com/NeuRoNeLab/RSDiX-CLIP",
    "license": "CC BY-NC-SA 4.0",
    "splits": "none published; RSDiX split 80/10/10 at random; rsdix splits by scene when the file has no split",
    "citation": ("A. Terlizzi, F. Bardozzo, R. Tagliaferri. RSDiX: Lightweight and Data-Efficient VLMs for "
                 "Remote Sensing through Self-Distillation. IJCNN 2025. "
                 "https://ieeexplore.ieee.org/document/11228553"),
}
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)   # RSDiX's TRAIN/VAL split percentages (80, 10, rest)


# --------------------------------------------------------------------------------------
# rendering
def render_true_colour(scene: Scene, method: str = "fixed", vmin: float = 0.0, vmax: float = 0.3,
                       pct: tuple[float, float] = (2.0, 98.0)) -> np.ndarray:
    """The scene in true colour (B04, B03, B02) as ``uint8 (H, W, 3)``; no-data is black.

    ``percentile`` statistics are computed over the whole scene's valid pixels, so patches of
    one scene share one stretch (a per-patch stretch would make a lake patch and a forest patch
    look alike).
    """
    rgb = np.stack([scene.band(b) for b in TRUE_COLOUR])
    rgb = np.where(scene.valid[None], rgb, np.nan)
    return stretch_to_uint8(rgb, method=method, vmin=vmin, vmax=vmax, pct=tuple(pct))


# --------------------------------------------------------------------------------------
# clouds
def cloud_mask(scene: Scene, method: str = "auto", scl_classes: Sequence[int] = SCL_CLOUD,
               brightness: float = 0.25, whiteness: float = 0.15, hot: float = 0.0) -> tuple[np.ndarray, str]:
    """Cloudy pixels of a scene and the method used (``"scl"`` or ``"spectral"``).

    ``scl``: SCL class in ``scl_classes``. ``spectral`` (no SCL, e.g. L1C): a pixel is cloudy when
    all of

    * brightness: mean visible reflectance ``(B02 + B03 + B04) / 3 > brightness``;
    * whiteness (Fmask's index): ``sum_b |B_b - mean| / mean < whiteness`` over B02, B03, B04
      (clouds have a flat visible spectrum; soil and vegetation do not). Fmask uses 0.7 as one
      of many tests; alone it must be stricter: 0.15 keeps bright limestone (about 0.2) and
      desert out, while the clouds of the L1C test tile sit near 0.08;
    * haze-optimised transform (Zhang et al. 2002, Fmask): ``B02 - 0.5 * B04 - 0.08 > hot``, which
      separates cloud and haze (blue-bright) from bright soil and sand (red-bright).

    Snow and bright white rooftops pass this test too (a SWIR band would separate snow); use SCL
    when the product has it.
    """
    if method not in ("auto", "scl", "spectral"):
        raise ValueError(f"unknown cloud method {method!r}: use 'auto', 'scl' or 'spectral'")
    if method == "scl" or (method == "auto" and scene.scl is not None):
        if scene.scl is None:
            raise DataError(scene.source, "cloud method 'scl' but the scene has no SCL layer")
        return np.isin(scene.scl, list(scl_classes)) & scene.valid, "scl"
    b, g, r = (scene.band(x) for x in ("B02", "B03", "B04"))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (b + g + r) / 3.0
        white = (np.abs(b - mean) + np.abs(g - mean) + np.abs(r - mean)) / mean
        cloud = (mean > brightness) & (white < whiteness) & (b - 0.5 * r - 0.08 > hot)
    return cloud & scene.valid, "spectral"


def cloud_check(scenes: Iterable[Scene]) -> pd.DataFrame:
    """Per scene: the cloud share of valid pixels by the simple spectral test, and where the product
    has them, by its scene classification layer (SCL; with pixel agreement and IoU of the two
    masks) and by ESA's ``tileInfo.json`` ``cloudyPixelPercentage`` (as fractions)."""
    import json

    rows = []
    for scene in scenes:
        spectral, _ = cloud_mask(scene, "spectral")
        valid = max(int(scene.valid.sum()), 1)
        row = dict(scene=scene.name, spectral_cloud=float(spectral.sum() / valid))
        if scene.scl is not None:
            scl, _ = cloud_mask(scene, "scl")
            row.update(scl_cloud=float(scl.sum() / valid),
                       pixel_agreement=float((scl == spectral)[scene.valid].mean()),
                       iou=float((scl & spectral).sum() / max((scl | spectral).sum(), 1)))
        info = Path(scene.source) / "tileInfo.json"
        if info.exists():
            try:
                row["esa_cloudy_pixel_percentage"] = json.loads(info.read_text())["cloudyPixelPercentage"] / 100
            except (ValueError, KeyError) as exc:
                raise DataError(info, f"no readable cloudyPixelPercentage ({exc})") from exc
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# tiling
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
    from rasterio.warp import transform as warp_transform
    from rasterio.windows import Window, bounds as window_bounds

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
    from rasterio.transform import from_bounds

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
    from PIL import Image

    from rsdix.utils import progress

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
            import rasterio

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
    from rsdix.utils import atomic_write_text

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


# --------------------------------------------------------------------------------------
# captions: CVAT XML
def read_cvat_xml(path: str | os.PathLike, label: str = "caption", split: str = "") -> list[CaptionRecord]:
    """Captions from a CVAT "for images" XML export.

    Layout: ``<annotations><image id=.. name=.. width=.. height=..><mask label="caption" ...>
    <attribute name="caption">text</attribute></mask>...</image></annotations>``. Every child of
    an ``<image>`` whose ``label`` is ``label`` (``mask``, ``tag``, ``box``, ``polygon``) is one
    caption; its text is its ``<attribute>`` (the one named ``caption``/``text``/``description``,
    else the only one), or the element's own text. Images without captions are kept with an
    empty list (see :func:`validate_captions`); an empty caption, or a file with no caption at
    all, is an error naming the file.
    """
    path = Path(path)
    root = read_xml(path, "CVAT annotation file")
    if root.tag != "annotations":
        raise DataError(path, f"not a CVAT annotation file: root element <{root.tag}>, expected <annotations>")
    images = root.findall("image")
    if not images:
        raise DataError(path, "no <image> elements: is this a CVAT 'for images' export?")
    records, labels = [], Counter()
    for el in images:
        name = el.get("name")
        if not name:
            raise DataError(path, f"<image id={el.get('id')!r}> has no 'name'")
        caps = []
        for shape in el:
            labels[shape.get("label")] += 1
            if shape.get("label") != label:
                continue
            text = _cvat_text(shape)
            if not text:
                raise DataError(f"{path} image {name!r}", f"empty caption in <{shape.tag} label={label!r}>")
            caps.append(text)
        meta = {k: el.get(k) for k in ("width", "height") if el.get(k)}
        records.append(CaptionRecord(filename=name, split=split, captions=caps,
                                     image_id=el.get("id", len(records)), meta={"size": meta} if meta else {}))
    if not any(r.captions for r in records):
        found = ", ".join(f"{k!r} x{v}" for k, v in labels.items() if k) or "none"
        raise DataError(path, f"no captions: no element with label={label!r} and text in any of "
                              f"{len(records)} images (labels found: {found})")
    return records


def _cvat_text(shape) -> str:
    attrs = shape.findall("attribute")
    chosen = None
    for a in attrs:
        if (a.get("name") or "").lower() in ("caption", "text", "description", "sentence"):
            chosen = a
            break
    if chosen is None and len(attrs) == 1:
        chosen = attrs[0]
    text = chosen.text if chosen is not None else shape.text
    return " ".join((text or "").split())


def write_cvat_xml(records: Iterable[CaptionRecord], path: str | os.PathLike, label: str = "caption",
                   sizes: dict[str, tuple[int, int]] | None = None) -> Path:
    """Write captions as CVAT 1.1 XML: one whole-image ``<mask label=..>`` per caption, its text in
    ``<attribute name="caption">``. ``sizes`` maps filename to ``(width, height)``."""
    from rsdix.utils import atomic_write_text

    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    for i, rec in enumerate(records):
        w, h = (sizes or {}).get(rec.filename, (0, 0))
        img = ET.SubElement(root, "image", id=str(i), name=rec.filename, width=str(w), height=str(h))
        for cap in rec.captions:
            mask = ET.SubElement(img, "mask", label=label, source="manual", occluded="0",
                                 rle=f"0, {w * h}", left="0", top="0", width=str(w), height=str(h), z_order="0")
            ET.SubElement(mask, "attribute", name="caption").text = cap
    ET.indent(root)
    return atomic_write_text(path, '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode"))


# --------------------------------------------------------------------------------------
# captions: a captioning team's CSV
_WIDE = re.compile(r"^(caption|sentence|title|raw)[ _-]?(\d+)$", re.IGNORECASE)
_LONG = ("caption", "title", "sentence", "raw", "text")


def read_caption_table(path: str | os.PathLike, sep: str | None = None) -> list[CaptionRecord]:
    """Captions from a CSV/TSV: long (``filename, caption`` per row, optional ``annotator``,
    ``split``) or wide (``filename, caption_1, ..., caption_5``). Empty cells in a wide table
    are skipped; an empty caption in a long table is an error naming the line."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "caption table not found")
    if sep is None:
        sep = "\t" if path.suffix.lower() in (".tsv", ".txt") else ","
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, delimiter=sep)
        fields = [f.strip() for f in (reader.fieldnames or [])]
        reader.fieldnames = fields
        key = next((f for f in fields if f.lower() in ("filename", "image", "name", "file")), None)
        if key is None:
            raise DataError(path, f"no filename column (filename/image/name); columns: {fields}")
        wide = sorted((f for f in fields if _WIDE.match(f)), key=lambda f: int(_WIDE.match(f).group(2)))
        long = next((f for f in fields if f.lower() in _LONG), None)
        if not wide and long is None:
            raise DataError(path, f"no caption column (caption, or caption_1..caption_N); columns: {fields}")
        grouped: dict[str, CaptionRecord] = {}
        for line, row in enumerate(reader, start=2):
            name = (row.get(key) or "").strip()
            if not name:
                raise DataError(f"{path}:{line}", "empty filename")
            rec = grouped.get(name)
            if rec is None:
                rec = grouped[name] = CaptionRecord(filename=name, split=(row.get("split") or "").strip(),
                                                    captions=[], langs=[], image_id=len(grouped))
            if wide:
                caps = [" ".join((row.get(f) or "").split()) for f in wide]
                rec.captions += [c for c in caps if c]
            else:
                cap = " ".join((row.get(long) or "").split())
                if not cap:
                    raise DataError(f"{path}:{line}", f"empty caption for {name!r}")
                rec.captions.append(cap)
            rec.langs = ["en"] * len(rec.captions)
    if not grouped:
        raise DataError(path, "no rows")
    return list(grouped.values())


def read_annotations(path: str | os.PathLike, **kwargs) -> list[CaptionRecord]:
    """CVAT XML, caption CSV/TSV or Karpathy JSON, by suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".xml":
        return read_cvat_xml(path, **kwargs)
    if suffix in (".csv", ".tsv", ".txt"):
        return read_caption_table(path, **kwargs)
    if suffix == ".json":
        return read_karpathy(path, **kwargs)
    raise DataError(path, f"unknown annotation format {suffix!r}: use .xml (CVAT), .csv/.tsv or .json (Karpathy)")


# --------------------------------------------------------------------------------------
# validation
@dataclass
class CaptionReport:
    """What :func:`validate_captions` found; ``problems`` lists ``(where, problem)`` pairs."""

    source: str
    images: int
    captions: int
    captions_per_image: dict
    problems: list = field(default_factory=list)
    duplicates_within: list = field(default_factory=list)   # (filename, caption) repeated for one image
    duplicates_across: list = field(default_factory=list)   # (caption, [filenames]) shared by images

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_bad(self) -> None:
        if self.problems:
            where, problem = self.problems[0]
            more = f" (and {len(self.problems) - 1} more problem(s))" if len(self.problems) > 1 else ""
            raise DataError(where, problem + more)

    def summary(self) -> pd.DataFrame:
        rows = [("images", self.images), ("captions", self.captions),
                ("images by caption count", dict(sorted(self.captions_per_image.items()))),
                ("problems", len(self.problems)), ("duplicate captions within an image", len(self.duplicates_within)),
                ("captions shared by several images", len(self.duplicates_across))]
        return pd.DataFrame(rows, columns=["check", "value"])


def validate_captions(records: Sequence[CaptionRecord], expected: int | None = 5,
                      image_dir: str | os.PathLike | None = None, patches: Iterable[str] | None = None,
                      source: str | os.PathLike = "captions") -> CaptionReport:
    """Check a caption set: every image has ``expected`` captions (None: at least one), no
    caption is empty, images exist in ``image_dir`` (when given), every patch in ``patches``
    (file names) has captions and every captioned image is a known patch. Duplicates are
    reported (not errors): the same caption twice for one image, or shared by several images."""
    source = str(source)
    problems, within, across = [], [], defaultdict(set)
    seen = Counter(r.filename for r in records)
    for name, n in seen.items():
        if n > 1:
            problems.append((f"{source} ({name})", f"image listed {n} times"))
    for rec in records:
        where = f"{source} ({rec.filename})"
        if not rec.captions:
            problems.append((where, "no captions"))
        elif expected is not None and len(rec.captions) != expected:
            problems.append((where, f"{len(rec.captions)} captions, expected {expected}"))
        norm = [" ".join(c.lower().split()) for c in rec.captions]
        for j, c in enumerate(norm):
            if not c:
                problems.append((where, f"caption {j} is empty"))
        for c, n in Counter(norm).items():
            if c and n > 1:
                within.append((rec.filename, c))
        for c in set(norm):
            if c:
                across[c].add(rec.filename)
        if image_dir is not None and not (Path(image_dir) / rec.filename).exists():
            problems.append((Path(image_dir) / rec.filename, f"image file not found (captioned in {source})"))
    if patches is not None:
        patches = set(patches)
        names = set(seen)
        for p in sorted(patches - names):
            problems.append((f"{source} ({p})", "patch has no captions"))
        for p in sorted(names - patches):
            problems.append((f"{source} ({p})", "captioned image is not one of the patches"))
    per_image = Counter(len(r.captions) for r in records)
    shared = [(c, sorted(f)) for c, f in across.items() if len(f) > 1]
    return CaptionReport(source=source, images=len(records), captions=sum(len(r.captions) for r in records),
                         captions_per_image=dict(per_image), problems=problems, duplicates_within=within,
                         duplicates_across=shared)


# --------------------------------------------------------------------------------------
# splits
def scene_of(filename: str) -> str:
    """The scene a patch comes from, from its file name: ``<scene>_r00000_c00224.png`` (this
    module's patches) or ``S2A_L1C_20150925_N0204R065_2329.tif`` (S2LCD: scene, then an index)."""
    stem = Path(filename).stem
    m = re.match(r"^(.*)_r\d+_c\d+$", stem)
    if m:
        return m.group(1)
    return stem.rsplit("_", 1)[0] if "_" in stem else stem


def spatial_groups(table: pd.DataFrame, block_m: float) -> pd.Series:
    """A group per patch: the ``block_m`` x ``block_m`` metre block (in the patch's CRS) holding
    its centre. Splitting by block keeps neighbours together except across block edges."""
    cx = (table["left"] + table["right"]) / 2
    cy = (table["bottom"] + table["top"]) / 2
    return (table["crs"].astype(str) + ":" + np.floor(cx / block_m).astype(int).astype(str) + ":"
            + np.floor(cy / block_m).astype(int).astype(str))


def assign_splits(records: Sequence[CaptionRecord], groups: dict[str, str] | None = None,
                  fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0,
                  names: Sequence[str] = ("train", "val", "test")) -> list[CaptionRecord]:
    """Give every record a split so that all records of a group share it.

    ``groups`` maps filename -> group (scene, spatial block, location); default: the scene from
    the file name (:func:`scene_of`). Groups go, largest first (ties in an order shuffled with
    ``seed``), to the split that brings the image counts closest (least squares) to
    ``fractions``, so shares approach ``fractions`` as closely as whole groups allow. Returns new
    records (the input is not modified).
    """
    if len(fractions) != len(names) or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"fractions must be {len(names)} non-negative numbers summing to 1, got {fractions}")
    group_of = {r.filename: (groups.get(r.filename) if groups is not None else scene_of(r.filename)) for r in records}
    missing = [r.filename for r in records if group_of[r.filename] is None]
    if missing:
        raise DataError(missing[0], "no group for this image")
    sizes = Counter(group_of.values())
    order = sorted(sizes)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda g: -sizes[g])           # largest groups first; ties in seeded order
    total = sum(sizes.values())
    target = {n: f * total for n, f in zip(names, fractions)}
    assigned = dict.fromkeys(names, 0)
    split_of = {}

    def error(n, size):   # squared distance to the target counts after putting ``size`` into ``n``
        return sum((assigned[m] + (size if m == n else 0) - target[m]) ** 2 for m in names)

    for g in order:
        best = min(names, key=lambda n: (error(n, sizes[g]), names.index(n)))
        split_of[g] = best
        assigned[best] += sizes[g]
    return [CaptionRecord(r.filename, split_of[group_of[r.filename]], list(r.captions), list(r.langs),
                          r.image_id, dict(r.meta) | {"group": group_of[r.filename]}) for r in records]


def split_leakage(table: pd.DataFrame, split_col: str = "split") -> int:
    """Pairs of patches that touch or overlap (same CRS, bounds intersecting or sharing an edge)
    but sit in different splits: 0 means no neighbour leaks across splits."""
    t = table.reset_index(drop=True)
    leaks = 0
    for _, g in t.groupby("crs"):
        b = g[["left", "bottom", "right", "top"]].to_numpy()
        s = g[split_col].to_numpy()
        for i in range(len(g)):
            touch = ((b[i + 1:, 0] <= b[i, 2]) & (b[i + 1:, 2] >= b[i, 0])
                     & (b[i + 1:, 1] <= b[i, 3]) & (b[i + 1:, 3] >= b[i, 1]))
            leaks += int((touch & (s[i + 1:] != s[i])).sum())
    return leaks


def export_karpathy(records: Sequence[CaptionRecord], path: str | os.PathLike, dataset: str = "s2lcd",
                    validate: bool = True, expected: int | None = None) -> Path:
    """Write Karpathy JSON after validation (problems raise a :class:`DataError`); every record
    must have a split. Reads the file back to check it."""
    for r in records:
        if r.split not in ("train", "val", "test"):
            raise DataError(f"{path} ({r.filename})", f"split {r.split!r} is not train/val/test; run assign_splits")
    if validate:
        validate_captions(records, expected=expected, source=path).raise_if_bad()
    out = write_karpathy(records, path, dataset=dataset)
    back = read_karpathy(out)
    if [(r.filename, r.captions) for r in back] != [(r.filename, list(r.captions)) for r in records]:
        raise DataError(out, "written file does not read back to the same captions")
    return out


# --------------------------------------------------------------------------------------
# statistics
COMPARISON = ("UCM", "Sydney", "RSICD", "RSITMD")   # dataset titles, in table order


def caption_corpora(data_root=None, names: Sequence[str] | None = None,
                    s2lcd_root: str | os.PathLike | None = None) -> dict[str, list[list[str]]]:
    """Captions per image of the comparison datasets found under the data root (and S2LCD's,
    when its ``dataset_s2lcd.json`` is found), read by :func:`rsdix.data.overview.caption_corpora`
    (the same reader and empty-caption policy as notebook 01); absent files are left out."""
    from rsdix.data.overview import caption_corpora as corpora_under_root
    from rsdix.paths import data_root as resolve

    root = resolve(data_root)
    s2 = find_s2lcd(s2lcd_root or root / "s2lcd", required=False)
    wanted = [n for n in COMPARISON + ("S2LCD",) if names is None or n in names]
    found = corpora_under_root(root, names=wanted, extra={"S2LCD": s2} if s2 is not None else None)
    return {n: found[n] for n in wanted if n in found}


def compare_caption_datasets(corpora: dict[str, Sequence[Sequence[str]]], sample_images: int | None = None,
                             repeats: int = 5, seed: int = 0) -> pd.DataFrame:
    """Side-by-side caption statistics, one row per dataset.

    Full-corpus statistics come from :func:`rsdix.data.textstats.caption_stats`. Vocabulary and
    distinct-n grow with corpus size, so they are also given at a matched size: the mean over
    ``repeats`` random samples of ``sample_images`` images (default: the smallest corpus),
    columns suffixed ``@N``. ``self_overlap``: mean word-set Jaccard between two captions of the
    same image (low = the captions describe an image in different words).
    """
    from rsdix.data.textstats import caption_stats, matched_stats, self_overlap

    n = sample_images or min(len(c) for c in corpora.values())
    rows = []
    for name, caps in corpora.items():
        row = caption_stats(caps, name)
        row["self_overlap"] = self_overlap(caps)
        row.update(matched_stats(caps, n_images=min(n, len(caps)), repeats=repeats, seed=seed))
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# the published S2LCD
def find_s2lcd(root: str | os.PathLike | None = None, required: bool = True) -> Path | None:
    """``dataset_s2lcd.json`` under ``root`` (default ``<data root>/s2lcd``), at most two levels down."""
    from rsdix.paths import data_root

    if root is None:
        root = data_root(required=False) / "s2lcd"
    root = Path(root)
    if root.is_file():
        return root
    for cand in [root / "dataset_s2lcd.json", *root.glob("*/dataset_s2lcd.json"), *root.glob("*/*/dataset_s2lcd.json")]:
        if cand.exists():
            return cand
    if required:
        raise DataError(root, f"S2LCD not found (no dataset_s2lcd.json): S2LCD is not downloadable here; "
                              f"download {S2LCD_INFO['url']} on a connected machine and unzip it into {root}")
    return None


def find_s2lcd_images(caption_file: Path) -> Path:
    folder = caption_file.parent
    for name in ("images", "S2LCD_images", "imgs", "Images", "S2LCD"):
        if (folder / name).is_dir():
            return folder / name
    return folder


def read_s2lcd(root: str | os.PathLike | None = None, fractions: Sequence[float] = DEFAULT_FRACTIONS,
               seed: int = 0) -> list[CaptionRecord]:
    """S2LCD's records; when the file has no splits, they are assigned by scene (``seed``)."""
    path = find_s2lcd(root)
    records = read_karpathy(path, missing_split="")
    if records and all(r.split for r in records):
        return records
    return assign_splits(records, fractions=fractions, seed=seed)


def load_s2lcd(root: str | os.PathLike | None = None, split: str | Sequence[str] | None = "test",
               transform=None, mode: str = "eval", seed: int = 0, **kwargs):
    """The published S2LCD as a :class:`rsdix.data.captions.CaptionDataset`.

    ``root``: the folder holding ``dataset_s2lcd.json`` (default ``<data root>/s2lcd``); images
    are read from ``images/`` (or ``S2LCD_images/``) beside it, TIFFs through
    :func:`rsdix.data.images.load_image` (8-bit RGB TIFFs as they are, 16-bit or float
    3-band TIFFs stretched to 8 bit).
    """
    from rsdix.data.captions import CaptionDataset, select_split

    path = find_s2lcd(root)
    records = select_split(read_s2lcd(path, seed=seed), split, path)
    return CaptionDataset(records, find_s2lcd_images(path), transform=transform, mode=mode, seed=seed,
                          source=path, **kwargs)


# --------------------------------------------------------------------------------------
# the construction run (notebook 02)
@dataclass
class SceneSpec:
    """One scene of a construction run; ``path`` is relative to the data root."""

    path: str
    offset: float | None = None       # state the radiometric offset when the product does not
    bands: list | None = field(default_factory=lambda: ["B02", "B03", "B04", "B08"])  # None: all
    resolution: float | None = None
    size: int = 224
    stride: int | None = None


@dataclass
class S2LCDConfig:
    scenes: list = field(default_factory=list)       # SceneSpec mappings
    stretch: str = "fixed"                           # fixed | percentile (see render_true_colour)
    vmin: float = 0.0
    vmax: float = 0.3
    pct: tuple = (2.0, 98.0)
    edge: str = "drop"
    max_nodata: float = 0.0
    max_cloud: float = 0.05
    cloud_method: str = "auto"
    fmt: str = "png"
    fractions: tuple = DEFAULT_FRACTIONS
    block_m: float = 5000.0
    compare: tuple = ("UCM", "Sydney", "RSICD", "RSITMD")
    sample_images: int = 500
    repeats: int = 5


def scene_specs(cfg: S2LCDConfig) -> list[SceneSpec]:
    from rsdix.config import from_dict

    return [s if isinstance(s, SceneSpec) else from_dict(SceneSpec, dict(s), f"scenes[{i}]")
            for i, s in enumerate(cfg.scenes)]


def build_patches(cfg: S2LCDConfig, out_dir: str | os.PathLike, data_root=None) -> tuple[list[Tiling], pd.DataFrame]:
    """Read, render, tile, filter and write every scene of ``cfg``; writes ``patches.csv``
    (all patches, kept or not, with georeference) under ``out_dir``. Returns the tilings and
    the table."""
    from rsdix.paths import data_root as resolve
    from rsdix.s2.products import read_scene
    from rsdix.utils import progress

    root = resolve(data_root)
    out_dir = Path(out_dir)
    tilings, tables = [], []
    for spec in progress(scene_specs(cfg), desc="scenes"):
        scene = read_scene(root / spec.path, bands=spec.bands, resolution=spec.resolution, offset=spec.offset)
        rgb = render_true_colour(scene, cfg.stretch, cfg.vmin, cfg.vmax, tuple(cfg.pct))
        tiling = tile_scene(scene, size=spec.size, stride=spec.stride, edge=cfg.edge, max_nodata=cfg.max_nodata,
                            max_cloud=cfg.max_cloud, cloud_method=cfg.cloud_method, rgb=rgb)
        tiling.table = write_patches(tiling, out_dir / "images", fmt=cfg.fmt)
        tilings.append(tiling)
        tables.append(tiling.table)
    table = pd.concat(tables, ignore_index=True)
    write_sidecar(table, out_dir / "patches.csv")
    return tilings, table
