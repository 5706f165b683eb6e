"""RemoteCLIP-style data scaling: captions from detection boxes and segmentation masks.

Box-to-Caption (B2C) turns object boxes with class labels into several short captions per
image; Mask-to-Box (M2B) turns class-index masks into boxes (connected components per class)
and then applies B2C. The result is written as Karpathy JSON, so a converted detection or
segmentation dataset trains and evaluates like any caption dataset.

    anns = read_coco("instances_train.json")                  # or read_dota / read_voc_xml / read_masks
    records = annotations_to_records(anns, n_captions=5, seed=0)
    write_karpathy(records, "dataset_dota_b2c.json", dataset="dota-b2c")

Captions are built from facts about the boxes, worded by templates:

* inventory: "There are three airplanes and one ship in the image."
* per class, with count and coarse position (3x3 grid of box centres) and relative size
  (box area / image area): "A large storage tank in the middle of the image.",
  "Five airplanes, mostly in the upper left of the image."
* the largest object: "The largest object is a ship at the bottom of the image."
* a plain count: "Fifteen cars can be seen."

Counts are written as words up to ten and as digits above; plurals, "a"/"an" and
"There is"/"There are" agree with them. Given ``seed`` the captions are a deterministic
function of the annotation (the template choice is drawn from ``random.Random(f"{seed}:{file}")``).

:func:`counting_records` builds a RemoteCount-style set: images holding 1..10 objects of a
class, each with the ten candidate captions "an aerial image of N <class>" (N = 1..10), for the
counting evaluation (the right count should rank first).

Command line::

    python -m rsdix.data.annotations coco instances.json out.json
    python -m rsdix.data.annotations dota labelTxt/ out.json --images images/
    python -m rsdix.data.annotations voc Annotations/ out.json
    python -m rsdix.data.annotations masks masks/ out.json --classes 1=building 2=car
"""
from __future__ import annotations

import argparse
import os
import random
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from rsdix.data.captions import CaptionRecord, write_karpathy
from rsdix.data.classification import clean_class_name
from rsdix.data.images import IMAGE_EXTS
from rsdix.data.files import read_json, read_xml
from rsdix.errors import DataError

__all__ = [
    "Box", "ImageAnnotation", "read_coco", "read_dota", "read_dota_txt", "read_voc_xml", "read_voc",
    "read_mask", "mask_to_boxes", "read_masks", "number_word", "pluralize", "article", "count_phrase", "noun_phrase",
    "position_cell", "position_phrase", "size_word", "box_to_captions", "annotations_to_records",
    "counting_captions", "counting_records", "convert",
]


# --------------------------------------------------------------------------------------------
# Annotations
# --------------------------------------------------------------------------------------------
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
    from PIL import Image, UnidentifiedImageError

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
    from rsdix.utils import progress

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


# --------------------------------------------------------------------------------------------
# Mask-to-Box
# --------------------------------------------------------------------------------------------
def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A class-index mask (2-D integer array) from a single-channel PNG (modes L, P, I, I;16)
    or a one-band GeoTIFF. Colour or multi-band masks are errors."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "mask file not found")
    if path.suffix.lower() in (".tif", ".tiff"):
        import rasterio

        try:
            with rasterio.open(path) as src:
                if src.count != 1:
                    raise DataError(path, f"mask has {src.count} bands; expected a single-band class-index raster")
                return np.asarray(src.read(1))
        except rasterio.errors.RasterioIOError as exc:
            raise DataError(path, f"unreadable mask ({exc})") from exc
    from PIL import Image, UnidentifiedImageError

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
    from scipy import ndimage

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


# --------------------------------------------------------------------------------------------
# Wording
# --------------------------------------------------------------------------------------------
_NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                 "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
                 "eighteen", "nineteen", "twenty"]
_IRREGULAR = {"person": "people", "man": "men", "woman": "women", "child": "children", "leaf": "leaves",
              "sheep": "sheep", "fish": "fish", "aircraft": "aircraft", "deer": "deer", "series": "series",
              "foot": "feet", "tooth": "teeth", "mouse": "mice", "goose": "geese", "ox": "oxen",
              "roof": "roofs", "chief": "chiefs", "cliff": "cliffs", "knife": "knives", "shelf": "shelves",
              "wolf": "wolves", "half": "halves", "photo": "photos", "piano": "pianos", "potato": "potatoes",
              "tomato": "tomatoes", "volcano": "volcanoes", "hero": "heroes", "cactus": "cacti",
              "bus": "buses", "gas": "gases", "lens": "lenses", "overpass": "overpasses", "campus": "campuses"}
# words spelled with a vowel but said with a consonant sound, and the reverse
_A_BEFORE = ("uni", "use", "usu", "uti", "eu", "one", "once", "ewe", "ukr", "ura", "uro")
_AN_BEFORE = ("hour", "honest", "honor", "honour", "heir")
_SIZE_WORDS = ("small", "large", "big", "tiny", "huge", "little")

POSITIONS = [["in the upper left", "at the top", "in the upper right"],
             ["on the left", "in the middle", "on the right"],
             ["in the lower left", "at the bottom", "in the lower right"]]


def number_word(n: int, max_word: int = 10) -> str:
    """``3 -> "three"``; numbers above ``max_word`` (default ten) are written as digits."""
    if n < 0:
        raise ValueError(f"a count cannot be negative: {n}")
    return _NUMBER_WORDS[n] if n <= min(max_word, 20) else str(n)


def pluralize(noun: str, n: int = 2) -> str:
    """Plural of a (possibly multi-word) class name when ``n != 1``; the last word is inflected:
    "storage tank" -> "storage tanks", "bus" -> "buses", "factory" -> "factories"."""
    if n == 1 or not noun:
        return noun
    head, _, last = noun.rpartition(" ")
    low = last.lower()
    if low in _IRREGULAR:
        plural = _IRREGULAR[low]
    elif low.endswith(("s", "x", "z", "ch", "sh")):
        plural = last + "es"
    elif low.endswith("y") and len(low) > 1 and low[-2] not in "aeiou":
        plural = last[:-1] + "ies"
    else:
        plural = last + "s"
    if low in _IRREGULAR and last[:1].isupper():
        plural = plural.capitalize()
    return f"{head} {plural}" if head else plural


def article(phrase: str) -> str:
    """ "a" or "an" for the phrase, by the sound of its first word ("an airplane", "a unit",
    "an hour", "a 10 m ship" is left to the caller: digits get "a" except 8, 11, 18, 80...)."""
    word = phrase.strip().split(" ")[0].lower()
    if not word:
        return "a"
    if word.startswith(_AN_BEFORE):
        return "an"
    if word.startswith(_A_BEFORE):
        return "a"
    if word[0].isdigit():  # "an 8", "an 11", "an 18", "an 80", "an 11000"; "a 1", "a 110"
        eleven_or_eighteen = word.startswith(("11", "18")) and len(word) in (2, 5)
        return "an" if word.startswith("8") or eleven_or_eighteen else "a"
    return "an" if word[0] in "aeiou" else "a"


def count_phrase(name: str, n: int) -> str:
    """ "one ship", "three airplanes", "15 cars"."""
    return f"{number_word(n)} {pluralize(name, n)}"


def noun_phrase(name: str, n: int, size: str = "") -> str:
    """ "three airplanes", "a large ship", "a small vehicle" (no size word doubled)."""
    if size and name.split(" ")[0].lower() in _SIZE_WORDS:
        size = ""
    core = f"{size} {name}".strip() if n == 1 else f"{size} {pluralize(name, n)}".strip()
    if n == 1:
        return f"{article(core)} {core}"
    return f"{number_word(n)} {core}"


def position_cell(x: float, y: float, width: float, height: float) -> tuple[int, int]:
    """(row, column) of a point in a 3x3 grid over the image."""
    col = min(2, max(0, int(3 * x / width)))
    row = min(2, max(0, int(3 * y / height)))
    return row, col


def position_phrase(box: Box, width: float, height: float) -> str:
    """Coarse position of the box centre: "in the upper left", "in the middle", "at the bottom"..."""
    row, col = position_cell(*box.centre, width, height)
    return POSITIONS[row][col]


def size_word(box: Box, width: float, height: float, small: float = 0.01, large: float = 0.1) -> str:
    """ "small" below ``small``, "large" above ``large`` (fractions of the image area), else ""."""
    frac = box.area / float(width * height)
    return "small" if frac < small else ("large" if frac > large else "")


def _cap(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def _join(items: Sequence[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


_INVENTORY = ["There {be} {items} in the image.", "An aerial image with {items}.",
              "A remote sensing image showing {items}."]
_ONE = ["{np} {pos} of the image.", "There is {np} {pos} of the image."]
_MANY_TOGETHER = ["{np} {pos} of the image.", "There are {np} {pos} of the image."]
_MANY_MOSTLY = ["{np}, mostly {pos} of the image.", "There are {np}, most of them {pos} of the image."]
_MANY_SPREAD = ["{np} spread across the image.", "There are {np} scattered over the image."]
_LARGEST = ["The largest object is {np} {pos} of the image.", "The biggest object in the image is {np} {pos}."]
_COUNT = ["{np} can be seen.", "{np} are visible in this image.", "The image contains {np}."]
_COUNT_ONE = ["{np} can be seen.", "{np} is visible in this image.", "The image contains {np}."]


def _class_sentence(name: str, boxes: Sequence[Box], width: int, height: int, rng: random.Random,
                    small: float, large: float) -> str:
    n = len(boxes)
    if n == 1:
        box = boxes[0]
        np_ = noun_phrase(name, 1, size_word(box, width, height, small, large))
        return _cap(rng.choice(_ONE).format(np=np_, pos=position_phrase(box, width, height)))
    cells = Counter(position_cell(*b.centre, width, height) for b in boxes)
    (row, col), top = cells.most_common(1)[0]
    np_ = noun_phrase(name, n)
    if top == n:
        template = rng.choice(_MANY_TOGETHER)
    elif top > n / 2:
        template = rng.choice(_MANY_MOSTLY)
    else:
        template = rng.choice(_MANY_SPREAD)
    return _cap(template.format(np=np_, pos=POSITIONS[row][col]))


def box_to_captions(ann: ImageAnnotation, n_captions: int = 5, seed: int = 0, small: float = 0.01,
                    large: float = 0.1, empty_caption: str | None = None) -> list[str]:
    """Up to ``n_captions`` distinct captions for one annotated image (deterministic in ``seed``).

    Order: the inventory sentence, one sentence per class (most frequent first), the largest
    object (if there are several objects), then plain counts, until ``n_captions`` are made.
    An image without boxes gets ``[empty_caption]`` (or no caption when it is None).
    """
    if not ann.boxes:
        return [empty_caption] if empty_caption else []
    rng = random.Random(f"{seed}:{ann.filename}")
    w, h = ann.width, ann.height
    by_class: dict[str, list[Box]] = {}
    for box in ann.boxes:
        by_class.setdefault(box.label, []).append(box)
    order = sorted(by_class, key=lambda c: (-len(by_class[c]), c))
    items = [count_phrase(c, len(by_class[c])) for c in order]
    template = rng.choice(_INVENTORY)
    be = "is" if len(by_class[order[0]]) == 1 else "are"
    captions = [_cap(template.format(be=be, items=_join(items)))]
    captions += [_class_sentence(c, by_class[c], w, h, rng, small, large) for c in order]
    if len(ann.boxes) > 1:
        big = max(ann.boxes, key=lambda b: (b.area, -b.y0, -b.x0))
        np_ = noun_phrase(big.label, 1)
        captions.append(_cap(rng.choice(_LARGEST).format(np=np_, pos=position_phrase(big, w, h))))
    for c in order:
        n = len(by_class[c])
        np_ = count_phrase(c, n)
        captions.append(_cap(rng.choice(_COUNT_ONE if n == 1 else _COUNT).format(np=np_)))
    unique = list(dict.fromkeys(captions))
    return unique[:n_captions]


def annotations_to_records(annotations: Iterable[ImageAnnotation], n_captions: int = 5, seed: int = 0,
                           split: str | Mapping[str, str] | Callable[[str], str] = "train",
                           skip_empty: bool = True, empty_caption: str = "An aerial image.",
                           **caption_kwargs) -> list[CaptionRecord]:
    """Caption records (one per image) ready for :func:`rsdix.data.captions.write_karpathy`.

    ``split`` is one split for all, a filename -> split mapping, or a function of the filename.
    Images without boxes are skipped (with a warning that counts them) unless ``skip_empty``
    is False, in which case they get ``empty_caption``. Each record's ``meta["counts"]`` holds
    the object count per class.
    """
    records, skipped = [], []
    for ann in annotations:
        if isinstance(split, str):
            s = split
        elif callable(split):
            s = split(ann.filename)
        else:
            if ann.filename not in split:
                raise DataError(ann.source or ann.filename, f"no split given for {ann.filename!r}")
            s = split[ann.filename]
        caps = box_to_captions(ann, n_captions, seed, empty_caption=None if skip_empty else empty_caption,
                               **caption_kwargs)
        if not caps:
            skipped.append(ann.filename)
            continue
        records.append(CaptionRecord(ann.filename, s, caps, meta={"counts": dict(sorted(ann.counts().items()))}))
    if skipped:
        warnings.warn(f"skipped {len(skipped)} image(s) without boxes, first: {skipped[0]}")
    return records


# --------------------------------------------------------------------------------------------
# Counting set (RemoteCount style)
# --------------------------------------------------------------------------------------------
COUNT_TEMPLATE = "an aerial image of {np}."


def counting_captions(name: str, max_count: int = 10, template: str = COUNT_TEMPLATE) -> list[str]:
    """Candidate captions for counts 1..max_count: index i states count i + 1."""
    return [template.format(np=count_phrase(name, n)) for n in range(1, max_count + 1)]


def counting_records(annotations: Iterable[ImageAnnotation], classes: Sequence[str] | None = None,
                     max_count: int = 10, split: str = "test",
                     template: str = COUNT_TEMPLATE) -> list[CaptionRecord]:
    """A counting evaluation set: one record per (image, class) with 1..``max_count`` objects of
    that class. ``captions`` holds the true caption; ``meta`` holds ``count``, ``count_class`` and
    ``count_captions`` (the ``max_count`` candidates, index i = count i + 1). The metric: the
    candidate with the right count should score highest (top-1 accuracy over records)."""
    out = []
    for ann in annotations:
        counts = ann.counts()
        for name in sorted(counts):
            if classes is not None and name not in classes:
                continue
            n = counts[name]
            if not 1 <= n <= max_count:
                continue
            cands = counting_captions(name, max_count, template)
            out.append(CaptionRecord(ann.filename, split, [cands[n - 1]],
                                     meta={"count": n, "count_class": name, "count_captions": cands}))
    return out


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def convert(kind: str, source: str | os.PathLike, out: str | os.PathLike, images: str | None = None,
            classes: Mapping[int, str] | None = None, n_captions: int = 5, seed: int = 0,
            split: str = "train", min_area: int = 16, dataset: str = "") -> Path:
    """Read annotations of ``kind`` (coco, dota, voc, masks), caption them, write Karpathy JSON."""
    if kind == "coco":
        anns = read_coco(source)
    elif kind == "dota":
        anns = read_dota(source, image_dir=images)
    elif kind in ("voc", "dior"):
        anns = read_voc(source)
    elif kind == "masks":
        if not classes:
            raise DataError(source, "mask conversion needs the class map (e.g. --classes 1=building 2=car)")
        anns = read_masks(source, classes, min_area=min_area, image_ext=None)
    else:
        raise ValueError(f"unknown annotation kind {kind!r}: coco, dota, voc, masks")
    records = annotations_to_records(anns, n_captions=n_captions, seed=seed, split=split)
    return write_karpathy(records, out, dataset=dataset or f"{Path(source).stem}-b2c")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m rsdix.data.annotations", description=__doc__.split("\n")[0])
    p.add_argument("kind", choices=["coco", "dota", "voc", "dior", "masks"])
    p.add_argument("source", help="COCO JSON, or folder of DOTA txt / VOC xml / mask PNG files")
    p.add_argument("out", help="output Karpathy JSON")
    p.add_argument("--images", help="image folder (DOTA: to read image sizes)")
    p.add_argument("--classes", nargs="*", default=[], help="mask class map: index=name ...")
    p.add_argument("--n-captions", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="train")
    p.add_argument("--min-area", type=int, default=16)
    args = p.parse_args(argv)
    classes = {}
    for item in args.classes:
        idx, _, name = item.partition("=")
        classes[int(idx)] = name.replace("_", " ")
    path = convert(args.kind, args.source, args.out, args.images, classes, args.n_captions, args.seed,
                   args.split, args.min_area)
    print(f"wrote {path}")


if __name__ == "__main__":  # pragma: no cover
    main()
