"""Sentinel-2 products: band files, product metadata, radiometry, a scene on one pixel grid.

A *scene* here is one Sentinel-2 acquisition read from either

* a folder with one GeoTIFF (or JP2) per band, named with the band somewhere in the file
  name (``B02.tif``, ``T32UPC_20220615T101559_B04_10m.jp2``, ``sentinel.dolomites.b4.tif``,
  ``..._B8A.tif``; ``SCL`` for the Level-2A scene classification), or a ``.SAFE`` product
  folder (its ``GRANULE/<id>/IMG_DATA``; for L2A each band from the finest of ``R10m``,
  ``R20m``, ``R60m`` that has it), or
* one multi-band GeoTIFF (band names from its band descriptions, or ``band_order``, or the
  product order ``B01..B08, B8A, B09..B12`` for 13 (L1C) and 12 (L2A, no B10) bands).

Bands at 10, 20 and 60 m are resampled to one common grid (the finest band's grid, or a
``resolution`` you choose): nearest neighbour when a band is upsampled (each 20 m pixel
becomes 2x2 identical 10 m pixels, DNs unchanged), pixel averaging when it is downsampled.
The SCL layer is always resampled with nearest neighbour (it holds class codes).

Radiometry (ESA Sentinel-2 product specification)::

    reflectance = (DN + RADIO_ADD_OFFSET) / QUANTIFICATION_VALUE       (L1C, top of atmosphere)
    reflectance = (DN + BOA_ADD_OFFSET) / BOA_QUANTIFICATION_VALUE     (L2A, bottom of atmosphere)

QUANTIFICATION_VALUE is 10000. Processing baseline 04.00 (products generated from 25 January
2022) introduced the offset -1000 (the DNs carry +1000 so that dark pixels keep negative
noise); older baselines have no offset. The offset is read, in this order, from an explicit
argument, the product's ``MTD_*.xml``, or the processing baseline in a product name
(``..._N0400_...``) found in the file name, folder name or a JSON sidecar (``tileInfo.json``,
BigEarthNet ``*_labels_metadata.json``). When none of these says, reading stops with an error
asking you to state it: a wrong offset shifts every reflectance by 0.1.

No-data: DN 0 is the product's NODATA special value; a file's own declared nodata value and
NaN are no-data as well. A band's no-data pixels become NaN in its reflectance; a
pixel is valid (``Scene.valid``) when every loaded band has data there.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from rsdix.data.files import read_xml
from rsdix.data.raster import to_reflectance
from rsdix.errors import DataError

# native resolution (m) of every band
BAND_RESOLUTION = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
                   "B08": 10, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20, "SCL": 20}
# product order (the MTD's bandId 0..12); L2A products have no B10
L1C_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
L2A_BANDS = tuple(b for b in L1C_BANDS if b != "B10")
DEFAULT_BANDS = ("B02", "B03", "B04", "B08")

# Level-2A scene classification (SCL) codes
SCL_CLASSES = {0: "no data", 1: "saturated or defective", 2: "dark area pixels", 3: "cloud shadows",
               4: "vegetation", 5: "not vegetated", 6: "water", 7: "unclassified",
               8: "cloud medium probability", 9: "cloud high probability", 10: "thin cirrus", 11: "snow"}
SCL_NODATA = (0, 1)
SCL_CLOUD = (3, 8, 9, 10)   # clouds, thin cirrus and cloud shadows

BASELINE_OFFSET_FROM = 4.0   # processing baseline 04.00 introduced the -1000 offset
OFFSET_BASELINE_04 = -1000.0
QUANTIFICATION = 10000.0

_BAND_RE = re.compile(r"(?:^|[._\-\s])(B(?:0?[1-9]|1[0-2]|8A)|SCL)(?=$|[._\-\s])", re.IGNORECASE)
_PRODUCT_RE = re.compile(r"S2[ABCD]_MSI(L1C|L2A)_(\d{8})T\d{6}_N(\d{2})(\d{2})_R\d{3}")
_RASTER_EXTS = (".tif", ".tiff", ".jp2")


# --------------------------------------------------------------------------------------
# names
def band_name(text: str) -> str | None:
    """Canonical band name (``B02``, ``B8A``, ``SCL``) found in a file name or description."""
    text = Path(str(text)).name
    if text.lower().endswith(_RASTER_EXTS):
        text = text.rsplit(".", 1)[0]
    matches = _BAND_RE.findall(text)
    if not matches:
        return None
    raw = matches[-1].upper()
    if raw == "SCL" or raw == "B8A":
        return raw
    return f"B{int(raw[1:]):02d}"


def band_dirs(folder: Path) -> list[Path]:
    """Folders holding a scene's band files: the folder itself, or for a ``.SAFE`` product its
    ``GRANULE/<id>/IMG_DATA`` (L1C) or ``IMG_DATA/R10m, R20m, R60m`` (L2A, finest first)."""
    granules = sorted(folder.glob("GRANULE/*/IMG_DATA"))
    if len(granules) > 1:
        raise DataError(folder, f"{len(granules)} granules in this product; pass one GRANULE/<id>/IMG_DATA folder")
    if granules:
        folder = granules[0]
    subs = [folder / r for r in ("R10m", "R20m", "R60m") if (folder / r).is_dir()]
    return subs or [folder]


def find_band_files(folder: str | os.PathLike, bands: Sequence[str] | None = None) -> dict[str, Path]:
    """Map band name -> file for a folder with one raster per band.

    ``bands`` (canonical names) are required: a missing one is an error naming the folder and
    the bands that are there. Two files for the same band are an error too.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "band folder not found")
    found: dict[str, Path] = {}
    for sub in band_dirs(folder):
        here: dict[str, Path] = {}
        for path in sorted(sub.iterdir()):
            if path.suffix.lower() not in _RASTER_EXTS or path.name.startswith("."):
                continue
            name = band_name(path.name)
            if name is None:
                continue
            if name in here:
                raise DataError(sub, f"two files for band {name}: {here[name].name} and {path.name}")
            here[name] = path
        for name, path in here.items():
            found.setdefault(name, path)   # SAFE L2A: the finest resolution folder first
    if bands is not None:
        missing = [b for b in bands if b not in found]
        if missing:
            have = ", ".join(sorted(found)) or "no band files"
            raise DataError(folder / f"{missing[0]}.tif",
                            f"band file missing: {', '.join(missing)} not found in {folder} (have {have})")
        found = {b: found[b] for b in bands}
    return found


# --------------------------------------------------------------------------------------
# radiometry
@dataclass
class Radiometry:
    """How DNs become reflectance: ``(DN + offset[band]) / quantification``."""

    quantification: float = QUANTIFICATION
    offsets: dict[str, float] = field(default_factory=dict)   # band -> offset; missing = default
    default_offset: float = 0.0
    level: str | None = None          # "L1C" (top of atmosphere) or "L2A" (bottom of atmosphere)
    baseline: str | None = None       # processing baseline, e.g. "04.00"
    source: str = "stated"            # where the numbers came from (MTD path, product name, ...)
    nodata_dn: float | None = 0.0     # the products' NODATA special value
    saturated_dn: float | None = 65535.0

    def offset(self, band: str) -> float:
        return self.offsets.get(band, self.default_offset)

    def to_reflectance(self, dn: np.ndarray, band_names: Sequence[str]) -> np.ndarray:
        """``(bands,H,W)`` DNs to float32 reflectance (no masking: see :func:`read_scene`)."""
        offs = np.asarray([self.offset(b) for b in band_names], dtype=np.float64).reshape(-1, 1, 1)
        return to_reflectance(dn, offset=offs, quantification=self.quantification, nodata=None)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read_mtd(path: str | os.PathLike) -> Radiometry:
    """Radiometric constants from a product's ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``."""
    path = Path(path)
    root = read_xml(path, "product metadata (MTD XML)")
    quant, offsets, baseline, level, bands = None, {}, None, None, {}
    special = {}
    for el in root.iter():
        tag = _local(el.tag)
        if tag in ("QUANTIFICATION_VALUE", "BOA_QUANTIFICATION_VALUE") and el.text:
            quant = float(el.text)
        elif tag in ("RADIO_ADD_OFFSET", "BOA_ADD_OFFSET") and el.text:
            offsets[int(el.get("band_id"))] = float(el.text)
        elif tag == "PROCESSING_BASELINE" and el.text:
            baseline = el.text.strip()
        elif tag == "PROCESSING_LEVEL" and el.text:
            level = "L2A" if "2A" in el.text else "L1C" if "1C" in el.text else None
        elif tag == "Spectral_Information" and el.get("bandId") is not None:
            bands[int(el.get("bandId"))] = band_name(el.get("physicalBand", ""))
        elif tag == "Special_Values":
            text = {_local(c.tag): (c.text or "").strip() for c in el}
            if text.get("SPECIAL_VALUE_TEXT") and text.get("SPECIAL_VALUE_INDEX"):
                special[text["SPECIAL_VALUE_TEXT"].upper()] = float(text["SPECIAL_VALUE_INDEX"])
    if quant is None:
        raise DataError(path, "no QUANTIFICATION_VALUE (or BOA_QUANTIFICATION_VALUE) in the product metadata")
    order = bands or dict(enumerate(L1C_BANDS))
    named = {}
    for band_id, off in offsets.items():
        if band_id not in order or order[band_id] is None:
            raise DataError(path, f"RADIO_ADD_OFFSET for unknown band_id {band_id}")
        named[order[band_id]] = off
    if offsets and len(set(offsets.values())) == 1:
        default = next(iter(offsets.values()))
    else:
        default = 0.0
    if not offsets and baseline and _baseline_number(baseline) >= BASELINE_OFFSET_FROM:
        raise DataError(path, f"processing baseline {baseline} but no RADIO_ADD_OFFSET/BOA_ADD_OFFSET list")
    return Radiometry(quantification=quant, offsets=named, default_offset=default, level=level,
                      baseline=baseline, source=str(path), nodata_dn=special.get("NODATA", 0.0),
                      saturated_dn=special.get("SATURATED", 65535.0))


def _baseline_number(baseline: str) -> float:
    try:
        return float(baseline)
    except ValueError:
        return float(baseline[:2]) + float(baseline[2:]) / 100.0


def product_info(text: str) -> dict | None:
    """Level, sensing date and processing baseline from a product name inside ``text``."""
    m = _PRODUCT_RE.search(text)
    if m is None:
        return None
    return {"product": m.group(0), "level": m.group(1), "date": m.group(2),
            "baseline": f"{m.group(3)}.{m.group(4)}"}


def find_mtd(source: str | os.PathLike) -> Path | None:
    """The product metadata XML beside ``source`` (a band folder or a multi-band file)."""
    source = Path(source)
    folder = source if source.is_dir() else source.parent
    candidates = []
    if source.is_file():
        candidates.append(source.with_name(source.stem + "_MTD.xml"))
    candidates += [folder / "MTD_MSIL1C.xml", folder / "MTD_MSIL2A.xml", folder.parent / "MTD_MSIL1C.xml",
                   folder.parent / "MTD_MSIL2A.xml"]
    for c in candidates:
        if c.exists():
            return c
    if source.is_dir():
        mtds = sorted(folder.glob("*MTD*.xml"))
        if len(mtds) == 1:
            return mtds[0]
    return None


def _sidecar_product(source: Path) -> tuple[dict, str] | None:
    """A product name in the file/folder name or in a small JSON sidecar beside the data."""
    for text in (source.name, source.parent.name if source.is_file() else source.name):
        info = product_info(text)
        if info:
            return info, f"product name {info['product']}"
    folder = source if source.is_dir() else source.parent
    for js in sorted(folder.glob("*.json"))[:5]:
        if js.stat().st_size > 1_000_000:
            continue
        try:
            text = js.read_text(errors="replace")
        except OSError:
            continue
        info = product_info(text)
        if info:
            return info, f"product name {info['product']} in {js.name}"
    return None


def resolve_radiometry(source: str | os.PathLike, offset: float | None = None,
                       quantification: float | None = None, mtd: str | os.PathLike | None = None,
                       level: str | None = None) -> Radiometry:
    """The radiometric constants of a product: stated > MTD XML > baseline in a product name.

    A stated ``offset`` that disagrees with the MTD is an error (one of them is wrong).
    """
    source = Path(source)
    mtd_path = Path(mtd) if mtd is not None else find_mtd(source)
    if mtd_path is not None:
        radio = read_mtd(mtd_path)
        if offset is not None and any(abs(radio.offset(b) - offset) > 0 for b in L1C_BANDS):
            raise DataError(mtd_path, f"stated offset {offset:g} disagrees with the product metadata "
                                      f"({radio.default_offset:g}); drop the argument or fix the metadata")
        if quantification is not None and quantification != radio.quantification:
            raise DataError(mtd_path, f"stated quantification {quantification:g} disagrees with the "
                                      f"product metadata ({radio.quantification:g})")
        return radio
    quant = QUANTIFICATION if quantification is None else float(quantification)
    if offset is not None:
        return Radiometry(quantification=quant, default_offset=float(offset), level=level, source="stated")
    found = _sidecar_product(source)
    if found is not None:
        info, where = found
        off = OFFSET_BASELINE_04 if _baseline_number(info["baseline"]) >= BASELINE_OFFSET_FROM else 0.0
        return Radiometry(quantification=quant, default_offset=off, level=level or info["level"],
                          baseline=info["baseline"], source=where)
    raise DataError(source, "cannot tell the radiometric offset: no MTD_*.xml and no product name with a "
                            "processing baseline (..._N0400_...) beside it; state it: offset=-1000 for "
                            "baseline 04.00 or later (products since 25 January 2022), offset=0 before")


# --------------------------------------------------------------------------------------
# scenes
@dataclass
class Scene:
    """One Sentinel-2 acquisition on one pixel grid.

    ``reflectance`` is ``(bands, H, W)`` float32 with NaN where that band has no data;
    ``valid`` is True where every band has data and SCL, when present, is not no-data or
    saturated/defective.
    """

    name: str
    band_names: tuple[str, ...]
    reflectance: np.ndarray
    valid: np.ndarray
    crs: object
    transform: object
    radiometry: Radiometry
    source: Path
    scl: np.ndarray | None = None
    dn: np.ndarray | None = None
    files: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.reflectance.shape[1], self.reflectance.shape[2]

    @property
    def resolution(self) -> float:
        return abs(self.transform.a)

    @property
    def bounds(self):
        from rasterio.transform import array_bounds  # heavy: rasterio (GDAL), loaded on use

        h, w = self.shape
        return array_bounds(h, w, self.transform)  # (west, south, east, north)

    def band(self, name: str) -> np.ndarray:
        if name not in self.band_names:
            raise DataError(self.source, f"band {name} not loaded (have {', '.join(self.band_names)})")
        return self.reflectance[self.band_names.index(name)]

    def nodata_fraction(self) -> float:
        return float(1.0 - self.valid.mean())


def _open(path: Path):
    import rasterio  # heavy: rasterio (GDAL), loaded on use

    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise DataError(path, f"cannot read raster: {exc}") from exc


def _grid(src, resolution: float | None):
    """(crs, transform, height, width) of ``src``'s extent at ``resolution`` (None: its own)."""
    from rasterio.transform import from_origin  # heavy: rasterio (GDAL), loaded on use

    if resolution is None or abs(abs(src.transform.a) - resolution) < 1e-9:
        return src.crs, src.transform, src.height, src.width
    b = src.bounds
    width = int(round((b.right - b.left) / resolution))
    height = int(round((b.top - b.bottom) / resolution))
    return src.crs, from_origin(b.left, b.top, resolution, resolution), height, width


def _read_on_grid(src, index: int, grid, categorical: bool, where: Path) -> tuple[np.ndarray, np.ndarray]:
    """Band ``index`` of ``src`` on ``grid``: (float32 values, bool valid)."""
    from rasterio.enums import Resampling  # heavy: rasterio (GDAL), loaded on use
    from rasterio.warp import reproject  # heavy: rasterio (GDAL), loaded on use

    crs, transform, height, width = grid
    data = src.read(index).astype(np.float32)
    nodata = src.nodatavals[index - 1]
    valid = np.isfinite(data)
    if nodata is not None and not np.isnan(nodata):
        valid &= data != np.float32(nodata)
    if src.transform == transform and src.height == height and src.width == width:
        return data, valid
    if src.crs != crs:
        raise DataError(where, f"CRS {src.crs} differs from the scene's CRS {crs}; "
                               "every band of a scene must share one CRS (reproject it first)")
    src_res, dst_res = abs(src.transform.a), abs(transform.a)
    method = Resampling.nearest if (categorical or src_res >= dst_res) else Resampling.average
    out = np.full((height, width), np.nan, dtype=np.float32)
    filled = np.where(valid, data, np.nan).astype(np.float32)
    reproject(filled, out, src_transform=src.transform, src_crs=src.crs, dst_transform=transform,
              dst_crs=crs, resampling=method, src_nodata=np.nan, dst_nodata=np.nan)
    return out, np.isfinite(out)


def check_extent(src, ref, path: Path, ref_path: Path) -> None:
    """``DataError`` naming ``path`` when ``src`` does not cover ``ref``'s extent (each edge
    within half a pixel of ``src``'s size): another tile, a cropped band, a shifted grid."""
    half = abs(src.transform.a) / 2
    a, b = src.bounds, ref.bounds
    shifts = [abs(x - y) for x, y in zip((a.left, a.bottom, a.right, a.top), (b.left, b.bottom, b.right, b.top))]
    if max(shifts) > half:
        raise DataError(path, f"extent (left {a.left:g}, bottom {a.bottom:g}, right {a.right:g}, top {a.top:g}) "
                              f"differs from {ref_path.name}'s ({b.left:g}, {b.bottom:g}, {b.right:g}, {b.top:g}) "
                              f"by up to {max(shifts):g} m: a band on another grid; pass "
                              "resample_extent=True to resample it anyway")


def read_scene(source: str | os.PathLike, bands: Sequence[str] | None = DEFAULT_BANDS,
               resolution: float | None = None, offset: float | None = None,
               quantification: float | None = None, mtd: str | os.PathLike | None = None,
               band_order: Sequence[str] | None = None, scl: bool | str | os.PathLike = True,
               name: str | None = None, zero_is_nodata: bool = True, keep_dn: bool = False,
               resample_extent: bool = False) -> Scene:
    """Read a Sentinel-2 scene (band folder or multi-band GeoTIFF) to reflectance on one grid.

    ``bands``: canonical band names to load (None: all present). ``resolution``: grid spacing in
    metres (None: the finest loaded band). ``offset``/``quantification``: state the radiometry
    when the product does not (see module doc). ``scl``: load the L2A scene classification when
    a ``SCL`` file is in the folder (or give its path; False: never). ``zero_is_nodata``: treat
    DN 0 as no-data (the products' NODATA value). Every band (and SCL) must cover the extent of
    the finest band (to half a pixel of its own size): a band on another extent or a shifted
    grid is an error naming its file, unless ``resample_extent=True`` resamples it onto the
    scene's grid anyway (the pixels it does not cover become NaN).
    """
    source = Path(source)
    if not source.exists():
        raise DataError(source, "Sentinel-2 scene not found (expected a band folder or a GeoTIFF)")
    radio = resolve_radiometry(source, offset=offset, quantification=quantification, mtd=mtd)
    if source.is_dir():
        files = find_band_files(source, None)
        scl_path = files.pop("SCL", None)
        wanted = list(bands) if bands is not None else [b for b in L1C_BANDS if b in files]
        files = find_band_files(source, wanted) if bands is not None else {b: files[b] for b in wanted}
        files.pop("SCL", None)
        layers = [(b, p, 1) for b, p in files.items()]
    else:
        src = _open(source)
        with src:
            names = _multiband_names(src, band_order, source)
        wanted = list(bands) if bands is not None else list(names)
        missing = [b for b in wanted if b not in names]
        if missing:
            raise DataError(source, f"band(s) {', '.join(missing)} not in this file (bands: {', '.join(names)})")
        layers = [(b, source, names.index(b) + 1) for b in wanted]
        files = {b: source for b in wanted}
        scl_path = None
    if scl is False:
        scl_path = None
    elif scl is not True:
        scl_path = Path(scl)
    # reference grid: the finest band (first of those in the requested order)
    srcs = {}
    try:
        for _, path, _ in layers:
            if path not in srcs:
                srcs[path] = _open(path)
        finest = min(layers, key=lambda l: abs(srcs[l[1]].transform.a))
        ref = srcs[finest[1]]
        grid = _grid(ref, resolution)
        for _, path, _ in layers:
            if srcs[path].crs != ref.crs:
                raise DataError(path, f"CRS {srcs[path].crs} differs from {ref.crs} of {finest[1].name}; "
                                      "every band of a scene must share one CRS")
            if not resample_extent:
                check_extent(srcs[path], ref, path, finest[1])
        h, w = grid[2], grid[3]
        dn = np.empty((len(layers), h, w), dtype=np.float32)
        band_ok = np.ones((len(layers), h, w), dtype=bool)
        for i, (b, path, idx) in enumerate(layers):
            values, ok = _read_on_grid(srcs[path], idx, grid, False, path)
            if zero_is_nodata and radio.nodata_dn is not None:
                ok &= values != radio.nodata_dn
            dn[i] = values
            band_ok[i] = ok
    finally:
        for s in srcs.values():
            s.close()
    valid = band_ok.all(axis=0)
    scl_arr = None
    if scl_path is not None:
        with _open(scl_path) as s:
            if s.crs != grid[0]:
                raise DataError(scl_path, f"CRS {s.crs} differs from the scene's CRS {grid[0]}")
            if not resample_extent and layers:
                with _open(finest[1]) as ref:
                    check_extent(s, ref, scl_path, finest[1])
            values, ok = _read_on_grid(s, 1, grid, True, scl_path)
        scl_arr = np.where(ok, values, 0).astype(np.uint8)
        valid &= ~np.isin(scl_arr, SCL_NODATA)
    refl = radio.to_reflectance(dn, [l[0] for l in layers])
    refl[~band_ok] = np.nan   # a band's no-data only; ``valid`` combines all bands and SCL
    if radio.level is None and scl_arr is not None:
        radio.level = "L2A"
    return Scene(name=name or _scene_name(source), band_names=tuple(l[0] for l in layers),
                 reflectance=refl, valid=valid, crs=grid[0], transform=grid[1], radiometry=radio,
                 source=source, scl=scl_arr, dn=dn if keep_dn else None,
                 files={b: str(p) for b, p in files.items()} | ({"SCL": str(scl_path)} if scl_path else {}))


def _multiband_names(src, band_order, path: Path) -> tuple[str, ...]:
    if band_order is not None:
        if len(band_order) != src.count:
            raise DataError(path, f"band_order names {len(band_order)} bands, the file has {src.count}")
        return tuple(band_name(b) or b for b in band_order)
    from_desc = [band_name(d) if d else None for d in src.descriptions]
    if all(from_desc) and len(set(from_desc)) == src.count:
        return tuple(from_desc)
    if src.count == len(L1C_BANDS):
        return L1C_BANDS
    if src.count == len(L2A_BANDS):
        return L2A_BANDS
    raise DataError(path, f"cannot tell which of its {src.count} bands is which (no band descriptions); "
                          "pass band_order=(...)")


def _scene_name(source: Path) -> str:
    info = product_info(source.name)
    if info:
        return info["product"]
    return source.stem if source.is_file() else source.name


def check_reflectance(dn_file: str | os.PathLike, expected_file: str | os.PathLike | None = None) -> dict:
    """Read ``dn_file`` (digital numbers + product metadata) as reflectance and compare it with a
    reference reflectance raster (default: ``<stem>_toa.tif`` beside it): the radiometry used,
    value counts and the largest absolute difference on pixels valid in both."""
    import rasterio  # heavy: rasterio (GDAL), loaded on use

    dn_file = Path(dn_file)
    expected_file = Path(expected_file) if expected_file else dn_file.with_name(dn_file.stem + "_toa.tif")
    if not expected_file.exists():
        raise DataError(expected_file, "reference reflectance raster not found")
    scene = read_scene(dn_file, bands=None)
    with rasterio.open(expected_file) as src:
        expected = src.read()
    if expected.shape != scene.reflectance.shape:
        raise DataError(expected_file, f"shape {expected.shape} differs from {dn_file.name}'s {scene.reflectance.shape}")
    ok = np.isfinite(scene.reflectance) & np.isfinite(expected)
    diff = np.abs(scene.reflectance[ok] - expected[ok])
    return dict(product=scene.name, baseline=scene.radiometry.baseline, offset=scene.radiometry.default_offset,
                quantification=scene.radiometry.quantification,
                offset_from=scene.radiometry.source.split("/")[-1], valid_values=int(ok.sum()),
                nodata_values=int((~ok).sum()), max_abs_diff=float(diff.max()) if diff.size else 0.0,
                exactly_equal=bool(np.array_equal(scene.reflectance[ok], expected[ok])))
