"""RemoteCLIP-style data scaling: captions from detection boxes and segmentation masks (B2C).

Box-to-Caption (B2C) turns object boxes with class labels (:mod:`rsdix.data.annotations`:
COCO, DOTA, VOC readers and Mask-to-Box) into several short captions per image. The result
is written as Karpathy JSON, so a converted detection or segmentation dataset trains and
evaluates like any caption dataset.

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

Command line (:func:`main`; :func:`convert` does the work)::

    rsdix box-captions coco instances.json out.json
    rsdix box-captions dota labelTxt/ out.json --images images/
    rsdix box-captions voc Annotations/ out.json
    rsdix box-captions masks masks/ out.json --classes 1=building 2=car
"""
from __future__ import annotations

import os
import random
import warnings
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from rsdix.data.annotations import Box, ImageAnnotation, read_coco, read_dota, read_masks, read_voc
from rsdix.data.captions import CaptionRecord, write_karpathy
from rsdix.errors import DataError


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
