"""Object annotations of detection and segmentation datasets: boxes per image, and boxes from masks.

Readers turn COCO JSON (:func:`read_coco`), DOTA label files (:func:`read_dota`), Pascal-VOC /
DIOR XML (:func:`read_voc`) and class-index masks (Mask-to-Box, RemoteCLIP's M2B:
:func:`read_masks`, :func:`mask_to_boxes`: connected components per class) into
:class:`ImageAnnotation` objects (the image size and its :class:`Box` es). Every malformed
input is a :class:`~rsdix.errors.DataError` naming the file (and line or entry).
:mod:`rsdix.data.box_captions` words them as captions (Box-to-Caption).
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

from rsdix.data.classification import clean_class_name
from rsdix.data.files import read_json, read_xml
from rsdix.data.images import IMAGE_EXTS
from rsdix.errors import DataError
from rsdix.utils import progress


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels (x to the right, y down), with a class name."""
    label: str
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def area(self) -> float:
        return (self.x1 - self.x0) * (self.y1 - self.y0)

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2


@dataclass
class ImageAnnotation:
    """All boxes of one image, with the image size (needed for positions and sizes)."""
    filename: str
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)
    source: str = ""

    def counts(self) -> Counter:
        return Counter(b.label for b in self.boxes)


def _check_box(box: Box, width: float, height: float, where: str, tolerance: float) -> Box:
    """Validate ``box`` against the image; coordinates within ``tolerance`` px outside are clipped."""
    vals = (box.x0, box.y0, box.x1, box.y1)
    if not all(np.isfinite(v) for v in vals):
        raise DataError(where, f"box {list(vals)} has a non-finite coordinate")
    if box.x1 <= box.x0 or box.y1 <= box.y0:
        raise DataError(where, f"box {list(vals)} ({box.label}) has zero or negative width/height")
    if (box.x0 < -tolerance or box.y0 < -tolerance or box.x1 > width + tolerance
            or box.y1 > height + tolerance):
        raise DataError(where, f"box [x0, y0, x1, y1] = {[round(v, 2) for v in vals]} ({box.label}) "
                               f"lies outside the {width}x{height} image")
    return Box(box.label, max(0.0, box.x0), max(0.0, box.y0), min(float(width), box.x1),
               min(float(height), box.y1))


def _name(label: str, class_names: Mapping[str, str] | None, clean: bool) -> str:
    if class_names and label in class_names:
        return class_names[label]
    return clean_class_name(label) if clean else label


def read_coco(path: str | os.PathLike, class_names: Mapping[str, str] | None = None,
              clean_names: bool = True, include_crowd: bool = True,
              tolerance: float = 1.0) -> list[ImageAnnotation]:
    """Read a COCO detection JSON (``images``, ``annotations`` with ``bbox`` = [x, y, w, h],
    ``categories``). Images without annotations are kept (with no boxes)."""
    path = Path(path)
    data = read_json(path, "annotation file", kind="COCO JSON")
    if not isinstance(data, dict):
        raise DataError(path, "malformed COCO JSON: expected an object with 'images', 'annotations', 'categories'")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        raise DataError(path, f"malformed COCO JSON: missing or non-list key(s) {missing}")
    try:
        cats = {c["id"]: _name(str(c["name"]), class_names, clean_names) for c in data["categories"]}
    except (KeyError, TypeError) as exc:
        raise DataError(path, f"malformed COCO JSON: a category lacks 'id' or 'name' ({exc})") from exc
    images: dict = {}
    for i, im in enumerate(data["images"]):
        try:
            images[im["id"]] = ImageAnnotation(str(im["file_name"]), int(im["width"]), int(im["height"]),
                                               source=str(path))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path} images[{i}]", f"malformed image entry: needs id, file_name, width, "
                                                   f"height ({exc.__class__.__name__}: {exc})") from exc
    for i, ann in enumerate(data["annotations"]):
        where = f"{path} annotations[{i}]"
        if not isinstance(ann, dict) or "image_id" not in ann or "category_id" not in ann or "bbox" not in ann:
            raise DataError(where, "malformed annotation: needs image_id, category_id and bbox")
        if ann["category_id"] not in cats:
            raise DataError(where, f"unknown category id {ann['category_id']!r}; categories: {sorted(cats)}")
        image = images.get(ann["image_id"])
        if image is None:
            raise DataError(where, f"unknown image id {ann['image_id']!r}")
        if ann.get("iscrowd") and not include_crowd:
            continue
        bbox = ann["bbox"]
        try:
            if not isinstance(bbox, (list, tuple)):
                raise TypeError(type(bbox).__name__)
            x, y, w, h = (float(v) for v in bbox)
        except (TypeError, ValueError) as exc:
            raise DataError(where, f"bbox must be [x, y, width, height] (4 numbers), got {bbox!r}") from exc
        box = Box(cats[ann["category_id"]], x, y, x + w, y + h)
        image.boxes.append(_check_box(box, image.width, image.height, f"{where} ({image.filename})", tolerance))
    return list(images.values())


def _image_size(image_path: Path) -> tuple[int, int]:
    try:
        with Image.open(image_path) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(image_path, f"corrupt or unreadable image ({exc.__class__.__name__})") from exc


def _find_image(stem: str, image_dir: Path) -> Path | None:
    for ext in IMAGE_EXTS + tuple(e.upper() for e in IMAGE_EXTS):
        candidate = image_dir / f"{stem}{ext}"
        if candidate.exists():
            return candidate
    return None


def _annotation_files(folder: str | os.PathLike, pattern: str, what: str) -> list[Path]:
    """The sorted files of ``folder`` matching ``pattern``, with a progress bar to iterate them;
    a missing folder or one without such files is a DataError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, f"{what} folder not found")
    files = sorted(folder.glob(pattern))
    if not files:
        raise DataError(folder, f"no {what} files matching {pattern!r} in this folder")
    return progress(files, desc=f"read {folder.name}", unit="file", disable=len(files) < 100)


def read_dota_txt(path: str | os.PathLike, width: int, height: int, filename: str | None = None,
                  class_names: Mapping[str, str] | None = None, clean_names: bool = True,
                  include_difficult: bool = True, tolerance: float = 1.0) -> ImageAnnotation:
    """Read one DOTA-style label file: ``x1 y1 x2 y2 x3 y3 x4 y4 class [difficult]`` per line
    (``imagesource:``/``gsd:`` header lines are skipped); each polygon becomes its bounding box."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "annotation file not found")
    ann = ImageAnnotation(filename or path.stem + ".png", width, height, source=str(path))
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith(("imagesource", "gsd")):
            continue
        parts = line.split()
        where = f"{path}:{lineno}"
        if len(parts) < 9:
            raise DataError(where, f"expected 'x1 y1 x2 y2 x3 y3 x4 y4 class [difficult]', got {line!r}")
        try:
            coords = [float(v) for v in parts[:8]]
        except ValueError as exc:
            raise DataError(where, f"non-numeric coordinate in {line!r}") from exc
        if len(parts) > 9 and parts[9] == "1" and not include_difficult:
            continue
        xs, ys = coords[0::2], coords[1::2]
        box = Box(_name(parts[8], class_names, clean_names), min(xs), min(ys), max(xs), max(ys))
        ann.boxes.append(_check_box(box, width, height, where, tolerance))
    return ann


def read_dota(label_dir: str | os.PathLike, image_dir: str | os.PathLike | None = None,
              sizes: Mapping[str, tuple[int, int]] | None = None, **kwargs) -> list[ImageAnnotation]:
    """Read a folder of DOTA-style ``.txt`` label files. Image sizes come from ``sizes``
    (stem -> (width, height)) or from the image of the same stem in ``image_dir``."""
    files = _annotation_files(label_dir, "*.txt", "label")
    out = []
    for txt in files:
        if sizes and txt.stem in sizes:
            (w, h), name = sizes[txt.stem], txt.stem + ".png"
        else:
            if image_dir is None:
                raise DataError(txt, "image size unknown: pass image_dir (the images) or sizes")
            image = _find_image(txt.stem, Path(image_dir))
            if image is None:
                raise DataError(txt, f"no image named {txt.stem}.* in {image_dir}")
            (w, h), name = _image_size(image), image.name
        out.append(read_dota_txt(txt, w, h, filename=name, **kwargs))
    return out


def read_voc_xml(path: str | os.PathLike, class_names: Mapping[str, str] | None = None,
                 clean_names: bool = True, include_difficult: bool = True,
                 tolerance: float = 1.0) -> ImageAnnotation:
    """Read one Pascal-VOC / DIOR style XML (``<size>``, ``<object><name><bndbox>``)."""
    path = Path(path)
    root = read_xml(path, "annotation file")
    try:
        width = int(float(root.findtext("size/width")))
        height = int(float(root.findtext("size/height")))
    except (TypeError, ValueError) as exc:
        raise DataError(path, "missing or non-numeric <size><width>/<height>") from exc
    filename = (root.findtext("filename") or path.stem + ".jpg").strip()
    if "." not in filename:
        filename += ".jpg"
    ann = ImageAnnotation(filename, width, height, source=str(path))
    for i, obj in enumerate(root.iter("object")):
        where = f"{path} object[{i}]"
        label = (obj.findtext("name") or "").strip()
        if not label:
            raise DataError(where, "object without <name>")
        if not include_difficult and (obj.findtext("difficult") or "0").strip() == "1":
            continue
        bnd = obj.find("bndbox")
        if bnd is None:
            raise DataError(where, f"object {label!r} has no <bndbox>")
        try:
            x0, y0, x1, y1 = (float(bnd.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError) as exc:
            raise DataError(where, f"object {label!r}: missing or non-numeric xmin/ymin/xmax/ymax") from exc
        ann.boxes.append(_check_box(Box(_name(label, class_names, clean_names), x0, y0, x1, y1),
                                    width, height, where, tolerance))
    return ann


def read_voc(xml_dir: str | os.PathLike, **kwargs) -> list[ImageAnnotation]:
    """Read a folder of VOC/DIOR XML files."""
    return [read_voc_xml(f, **kwargs) for f in _annotation_files(xml_dir, "*.xml", "annotation")]


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A class-index mask (2-D integer array) from a single-channel PNG (modes L, P, I, I;16)
    or a one-band GeoTIFF. Colour or multi-band masks are errors."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "mask file not found")
    if path.suffix.lower() in (".tif", ".tiff"):
        import rasterio  # heavy: rasterio (GDAL), loaded on use (GeoTIFF masks only)

        try:
            with rasterio.open(path) as src:
                if src.count != 1:
                    raise DataError(path, f"mask has {src.count} bands; expected a single-band class-index raster")
                return np.asarray(src.read(1))
        except rasterio.errors.RasterioIOError as exc:
            raise DataError(path, f"unreadable mask ({exc})") from exc

    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L", "1"):
                raise DataError(path, f"mask is not single-channel (PIL mode {mode!r}, {len(im.getbands())} "
                                      f"bands); expected a class-index PNG (mode L, P or I)")
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(path, f"corrupt or unreadable mask ({exc.__class__.__name__})") from exc
    return arr.astype(np.int64)


def mask_to_boxes(mask: np.ndarray, classes: Mapping[int, str | None], min_area: int = 16,
                  connectivity: int = 8, ignore: Iterable[int] = (0, 255),
                  where: str = "mask") -> list[Box]:
    """Connected components of each class in ``mask`` -> boxes (``scipy.ndimage.label``).

    ``classes`` maps class index -> name (``None`` to skip that class; indices with the same
    name are merged into one class before labelling); indices in ``ignore``
    (background, void) are skipped; any other index not in ``classes`` is an error.
    Components smaller than ``min_area`` pixels are dropped. Boxes use pixel-edge
    coordinates: a component covering columns 2..4 gives x0 = 2, x1 = 5.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise DataError(where, f"mask must be 2-D, got shape {mask.shape}")
    if connectivity not in (4, 8):
        raise ValueError("connectivity must be 4 or 8")
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    ignore = set(ignore)
    if np.issubdtype(mask.dtype, np.integer) and mask.size and 0 <= mask.min() and mask.max() < 1 << 16:
        values = [int(v) for v in np.flatnonzero(np.bincount(mask.ravel()))]  # 10x faster than np.unique
    else:
        values = [int(v) for v in np.unique(mask)]
    unknown = [v for v in values if v not in ignore and v not in classes]
    if unknown:
        raise DataError(where, f"unknown class index {unknown} in mask; known: {sorted(classes)}, "
                               f"ignored: {sorted(ignore)}")
    by_name: dict[str, list[int]] = {}  # indices sharing a name form one class ("cloud": 8, 9)
    for value in values:
        if value not in ignore and classes.get(value) is not None:
            by_name.setdefault(str(classes[value]), []).append(value)
    boxes = []
    for name, indices in by_name.items():
        binary = (mask == indices[0]) if len(indices) == 1 else np.isin(mask, indices)
        labels, n = ndimage.label(binary, structure=structure, output=np.int32)
        if n == 0:
            continue
        areas = np.bincount(labels.ravel(), minlength=n + 1)
        for k, sl in enumerate(ndimage.find_objects(labels), start=1):
            if sl is None or areas[k] < min_area:
                continue
            boxes.append(Box(name, float(sl[1].start), float(sl[0].start), float(sl[1].stop), float(sl[0].stop)))
    return boxes


def read_masks(mask_dir: str | os.PathLike, classes: Mapping[int, str | None], min_area: int = 16,
               connectivity: int = 8, ignore: Iterable[int] = (0, 255), image_ext: str | None = None,
               pattern: str = "*.png") -> list[ImageAnnotation]:
    """Mask-to-Box over a folder of class-index masks (one per image, same stem as the image).

    ``image_ext`` names the image file extension for the caption file (default: the mask's).
    """
    out = []
    for path in _annotation_files(mask_dir, pattern, "mask"):
        mask = read_mask(path)
        boxes = mask_to_boxes(mask, classes, min_area, connectivity, ignore, where=str(path))
        name = path.stem + (image_ext if image_ext else path.suffix)
        out.append(ImageAnnotation(name, int(mask.shape[1]), int(mask.shape[0]), boxes, source=str(path)))
    return out
