"""Scene-classification datasets: one folder per class, or a flat folder + ``filename,label`` CSV,
and class-name cleaning for prompts (``denseresidential`` -> ``dense residential``,
``aGrass`` -> ``grass``, ``DenseResidential`` -> ``dense residential``, ``dense_residential``).
"""
from __future__ import annotations

import csv
import difflib
import io
import os
import re
import warnings
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

from rsdix.data.images import IMAGE_EXTS, load_image, verify_image
from rsdix.data.raster import expected_layout
from rsdix.errors import DataError
from rsdix.utils import progress

# Words seen in RS class names; used to split run-together lower-case names.
RS_WORDS = """
agricultural agriculture air airplane airplanes airport annual apartment area bare bareland baseball
basketball beach bridge bridges building buildings bush car chaparral church circular cloud coastal
commercial container course court crop crossroads cultivated dam dense desert diamond dry dock farm farmland
field fields football forest freeway golf golfcourse grass grassland greenhouse ground harbor harbour
herbaceous highway home homes ice industrial intersection island lake land lake lakes lot low marina
meadow medium mine mobile mountain nursing oil overpass palace park parking parkinglot pasture
permanent pipeline plant plane playground pond port power rail railway range rectangular residential
resident river road rock roundabout runway rural sand sea sealake shed ship shrubbery snow solar space
sparse sports square stadium station storage storagetanks substation swimming tank tanks tennis terrace
thermal track trail transformer tree trees urban vegetation viaduct village wasteland water wetland works yard
""".split()


def _segment(word: str, vocab: frozenset) -> list[str] | None:
    """Split a run-together lower-case word into vocabulary words (fewest pieces), or None."""
    n = len(word)
    best: list[list[str] | None] = [None] * (n + 1)
    best[0] = []
    for end in range(1, n + 1):
        for start in range(max(0, end - 20), end):
            if best[start] is not None and word[start:end] in vocab:
                cand = best[start] + [word[start:end]]
                if best[end] is None or len(cand) < len(best[end]):
                    best[end] = cand
    return best[n]


@lru_cache(maxsize=None)
def _vocab() -> frozenset:
    # run-together names that are not English words are split ("golfcourse" -> "golf course");
    # "farmland" is a word (WHU-RS19's and AID's own class name "Farmland", and UCM's captions)
    words = set(RS_WORDS) - {"golfcourse", "parkinglot", "storagetanks", "bareland", "sealake"}
    return frozenset(words)


def clean_class_name(name: str, overrides: dict[str, str] | None = None) -> str:
    """A prompt-ready class name (lower case, words separated by spaces)."""
    if overrides and name in overrides:
        return overrides[name]
    text = name.strip()
    text = re.sub(r"^[a-z](?=[A-Z])", "", text)           # aGrass -> Grass (RSSCN7 prefixes)
    text = re.sub(r"^\d+[_\-. ]*", "", text)               # 01_forest -> forest
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text)    # DenseResidential -> Dense Residential
    text = re.sub(r"[_\-]+", " ", text).lower()
    words = []
    for word in text.split():
        parts = _segment(word, _vocab()) if word not in _vocab() else None
        words.extend(parts if parts and len(parts) > 1 else [word])
    return " ".join(words)


def scan_class_folders(root: str | os.PathLike, exts: Sequence[str] = IMAGE_EXTS):
    """``(paths, labels, classes)`` from one folder per class (sorted class order)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "dataset folder not found")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(root, "no class folders found")
    paths, labels = [], []
    for label, cls in enumerate(classes):
        files = sorted(p for p in (root / cls).iterdir() if p.suffix.lower() in exts)
        if not files:
            raise DataError(root / cls, "class folder is empty (no image files)")
        paths += files
        labels += [label] * len(files)
    return paths, labels, classes


CLASS_LIST = "classes.txt"   # beside a label CSV: the set's class names, one a line (optional)


def read_label_csv(csv_path: str | os.PathLike, image_dir: str | os.PathLike | None = None,
                   classes: Sequence[str] | None = None, allow_new_classes: bool = False):
    """``(paths, labels, classes)`` from a ``filename,label`` CSV and a flat image folder.

    The class list is ``classes``, else ``classes.txt`` beside the CSV (one name a line), else the
    labels the CSV uses. A label outside a given list is a DataError naming its line and the closest
    class name; without a list, a rare label (under a fifth of the median class's rows) that is close
    to a common one (``agricultral`` among 100 ``agricultural``) is taken for a typo the same way.
    ``allow_new_classes`` takes such labels as new classes (after the listed ones), with a warning.
    """
    csv_path = Path(csv_path)
    if not csv_path.exists():
        raise DataError(csv_path, "label file not found")
    image_dir = Path(image_dir) if image_dir else csv_path.parent / "images"
    try:
        text = csv_path.read_bytes().decode("utf-8")   # no newline translation: a quoted \r stays
    except UnicodeDecodeError as exc:
        raise DataError(csv_path, f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                                  f"{exc.start}); save the file as UTF-8") from exc
    with io.StringIO(text, newline="") as fh:
        reader = csv.DictReader(fh)
        try:
            rows, first_line = _label_rows(reader, csv_path)
        except csv.Error as exc:   # a field over csv's limit (128 KB) ...
            raise DataError(f"{csv_path}:{reader.line_num + 1}", f"not readable as CSV ({exc})") from exc
    if not rows:
        raise DataError(csv_path, "label file has no rows")
    listed = csv_path.parent / CLASS_LIST
    if classes is None and listed.is_file():
        classes = [c.strip() for c in listed.read_text(encoding="utf-8").splitlines() if c.strip()]
    source = "the classes given" if classes is not None and not listed.is_file() else str(listed)
    if classes is None:
        classes, unknown = _likely_typos(rows)
        source = "the labels used"
    else:
        classes = list(classes)
        unknown = sorted({label for _, label, _ in rows} - set(classes))
    if unknown and not allow_new_classes:
        label = next(lab for _, lab, _ in rows if lab in unknown)
        line = next(n for _, lab, n in rows if lab == label)
        close = difflib.get_close_matches(label, classes, n=1, cutoff=0.6)
        hint = f"closest class: {close[0]!r}" if close else f"classes: {list(classes)[:8]}"
        more = f" ({len(unknown)} such labels)" if len(unknown) > 1 else ""
        raise DataError(f"{csv_path}:{line}", f"label {label!r} is not a class of {source}{more}; {hint} (a typo? "
                                              f"allow_new_classes=True takes it as a new class)")
    if unknown:
        warnings.warn(f"{csv_path}: {len(unknown)} label(s) outside {source} taken as new classes: {unknown[:5]}")
        classes = list(classes) + [c for c in unknown if c not in classes]
    index = {c: i for i, c in enumerate(classes)}
    return [image_dir / f for f, _, _ in rows], [index[label] for _, label, _ in rows], list(classes)


def _label_rows(reader, csv_path: Path) -> tuple[list, dict]:
    """``(filename, label, line)`` rows of a label CSV and the first line of each file."""
    rows, first_line = [], {}
    if not {"filename", "label"} <= set(reader.fieldnames or []):
        raise DataError(csv_path, f"expected a header with columns filename,label; found {reader.fieldnames}")
    for row in reader:
        line = reader.line_num
        if None in row or any(v is None for v in row.values()):
            raise DataError(f"{csv_path}:{line}", f"{'more' if None in row else 'fewer'} fields than the "
                                                  f"header's {len(reader.fieldnames)}")
        name, label = row["filename"].strip(), row["label"].strip()
        if not name or not label:
            raise DataError(f"{csv_path}:{line}", "empty filename or label")
        if name in first_line:
            first, first_label = first_line[name]
            same = "the same label" if first_label == label else f"labels {first_label!r} and {label!r}"
            raise DataError(f"{csv_path}:{line}", f"file {name!r} listed twice (lines {first} and "
                                                  f"{line}, {same})")
        first_line[name] = (line, label)
        rows.append((name, label, line))
    return rows, first_line


def _likely_typos(rows) -> tuple[list[str], list[str]]:
    """``(classes, suspects)`` of labels used without a class list: a suspect is a label under a fifth
    of the median class's rows that is close (difflib ratio >= 0.8) to a more common label."""
    counts = Counter(label for _, label, _ in rows)
    median = sorted(counts.values())[len(counts) // 2]
    common = [c for c, n in counts.items() if n * 5 >= median]
    suspects = sorted(c for c, n in counts.items() if n * 5 < median
                      and difflib.get_close_matches(c, common, n=1, cutoff=0.8))
    return sorted(set(counts) - set(suspects)), suspects


def check_distinct_names(classes: Sequence[str], class_names: Sequence[str], source) -> None:
    """``DataError`` naming both classes when two of them get the same prompt name
    (folders ``DenseResidential`` and ``dense_residential`` both clean to ``dense residential``)."""
    seen: dict[str, str] = {}
    for cls, name in zip(classes, class_names):
        if name in seen:
            raise DataError(source, f"classes {seen[name]!r} and {cls!r} both have the prompt name {name!r}: "
                                    "merge or rename the folders, or give a class-name override")
        seen[name] = cls


class ClassificationDataset:
    """``ds[i] -> (image, label)``; ``classes`` (raw) and ``class_names`` (cleaned for prompts)."""

    def __init__(self, paths, labels, classes, transform: Callable | None = None,
                 class_names: Sequence[str] | None = None, overrides: dict | None = None,
                 skip_bad: bool = False, source: str | os.PathLike = "dataset", check_files: bool = True):
        self.transform = transform
        self.classes = list(classes)
        self.source = str(source)
        if class_names is not None:
            if len(class_names) != len(self.classes):
                raise DataError(source, f"{len(class_names)} class names given for {len(self.classes)} "
                                        f"classes ({self.classes})")
            self.class_names = list(class_names)
        else:
            self.class_names = [clean_class_name(c, overrides) for c in self.classes]
        check_distinct_names(self.classes, self.class_names, source)
        self.skipped: list[tuple[str, str]] = []
        samples = []
        paths, labels = list(paths), list(labels)
        self.layout = expected_layout(paths)   # a TIFF of another band count / type is an error when read
        pairs = zip(paths, labels)
        if skip_bad:   # decodes every image: long on a large set
            pairs = progress(pairs, total=len(paths), desc=f"verify images of {Path(str(source)).name}", unit="image")
        for path, label in pairs:
            problem = None
            if skip_bad:
                problem = verify_image(path, self.layout)
            elif check_files and not Path(path).exists():
                raise DataError(path, f"image file not found (listed in {source})")
            if problem:
                self.skipped.append((str(path), problem))
            else:
                samples.append((Path(path), int(label)))
        if self.skipped:
            warnings.warn(f"{source}: skipped {len(self.skipped)} unreadable image(s), "
                          f"first: {self.skipped[0][0]} ({self.skipped[0][1]})")
        if not samples:
            raise DataError(source, "no images")
        self.samples = samples

    @classmethod
    def from_folders(cls, root, **kwargs):
        paths, labels, classes = scan_class_folders(root)
        return cls(paths, labels, classes, source=root, **kwargs)

    @classmethod
    def from_csv(cls, csv_path, image_dir=None, classes=None, allow_new_classes: bool = False, **kwargs):
        paths, labels, classes = read_label_csv(csv_path, image_dir, classes, allow_new_classes)
        return cls(paths, labels, classes, source=csv_path, **kwargs)

    @property
    def labels(self) -> list[int]:
        return [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int):
        image = load_image(self.samples[index][0], layout=self.layout)
        return self.transform(image) if self.transform is not None else image

    def __getitem__(self, index: int):
        return self.load(index), self.samples[index][1]

    def filenames(self) -> list[str]:
        return [str(p) for p, _ in self.samples]
