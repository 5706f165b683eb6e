"""Image-caption datasets: Karpathy JSON and OpenCLIP CSV/TSV.

* Karpathy JSON: ``{"images": [{"filename", "split", "sentences": [{"raw", "tokens", "lang"?}]}]}``
  with the images in a folder beside it (``images/`` or the JSON's folder).
* OpenCLIP CSV/TSV: ``filename`` and ``title`` columns, one row per caption.

Training view (:class:`CaptionDataset` with ``mode="train"``): one item per image, one of its
captions drawn at random (deterministic given seed, epoch and index, so a resumed run draws
the same captions). Evaluation view (``mode="eval"``): every caption of every image, through
:meth:`CaptionDataset.texts` and :meth:`CaptionDataset.text_to_image`.
"""
from __future__ import annotations

import csv
import io
import json
import os
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from rsdix.data.images import load_image, verify_image
from rsdix.data.raster import expected_layout
from rsdix.data.files import read_json
from rsdix.data.textstats import tokenize
from rsdix.errors import DataError
from rsdix.log import warn_once
from rsdix.utils import atomic_write_text, progress

SPLITS = ("train", "val", "test")
# the longest caption kept whole (characters): CLIP reads 77 tokens (~300 characters); a longer
# "caption" is a paste error or a document, and scoring it costs seconds. Longer ones are cut at a
# word boundary, with one warning counting them (:func:`limit_length`).
MAX_CAPTION_CHARS = 2000
KNOWN_SPLITS = SPLITS + ("restval",)   # Karpathy's restval is read as val


@dataclass
class CaptionRecord:
    filename: str
    split: str
    captions: list[str]
    langs: list[str] = field(default_factory=list)  # one language code per caption ("en" default)
    image_id: int | str | None = None
    meta: dict = field(default_factory=dict)
    # where each caption was read ("images[3] sentences[1]", "line 7"), for messages; not compared
    where: list = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self):
        if not self.langs:
            self.langs = ["en"] * len(self.captions)


def read_karpathy(path: str | os.PathLike, allow_empty: bool = False,
                  missing_split: str | None = None, lenient: bool = False) -> list[CaptionRecord]:
    """Read a Karpathy-format JSON file. Empty captions, missing fields, a field of the wrong
    type (a number as ``filename`` or caption), an unknown split (not train/val/test/restval)
    and a filename listed twice in one split are errors naming the entry and field (a counting
    set lists an image once per ``count_class``: that is allowed).

    ``missing_split``: the split given to entries without one (None: a missing split is an error).
    ``lenient``: let unknown splits and repeated filenames through (``rsdix data check`` reports them).
    """
    path = Path(path)
    data = read_json(path, "caption file")
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise DataError(path, "not a Karpathy caption file: expected a top-level 'images' list")
    records, long = [], []
    seen: dict[tuple[str, str], int] = {}
    for i, entry in enumerate(images):
        where = f"{path} images[{i}]"
        if not isinstance(entry, dict):
            raise DataError(where, "entry is not an object")
        filename = entry.get("filename")
        if filename is None or filename == "":
            raise DataError(where, "missing 'filename'")
        if not isinstance(filename, str):
            raise DataError(where, f"field 'filename': expected a string, got {type(filename).__name__} {filename!r}")
        split = entry.get("split", missing_split)
        if split is None:
            raise DataError(f"{where} ({filename})", "missing 'split'")
        if not isinstance(split, str):
            raise DataError(f"{where} ({filename})", f"field 'split': expected a string, got {type(split).__name__}")
        if not lenient and split not in KNOWN_SPLITS and split != missing_split:
            raise DataError(f"{where} ({filename})", f"field 'split': unknown split {split!r}; "
                                                     f"expected one of {list(KNOWN_SPLITS)}")
        split = "val" if split == "restval" else split
        key = (split, filename, str(entry.get("count_class", "")))   # counting sets: one entry per class
        if not lenient and key in seen:
            raise DataError(f"{where} ({filename})", f"filename listed twice in split {split!r} "
                                                     f"(also images[{seen[key]}])")
        seen.setdefault(key, i)
        sentences = entry.get("sentences")
        if not isinstance(sentences, list) or not sentences:
            raise DataError(f"{where} ({filename})", "no 'sentences'")
        caps, langs, places = [], [], []
        for j, sent in enumerate(sentences):
            swhere = f"{where} ({filename}) sentences[{j}]"
            if not isinstance(sent, (dict, str)):
                raise DataError(swhere, f"expected an object or a string, got {type(sent).__name__}")
            raw = sent.get("raw") if isinstance(sent, dict) else sent
            if raw is None and isinstance(sent, dict) and sent.get("tokens"):
                tokens = sent["tokens"]
                if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                    raise DataError(swhere, "field 'tokens': expected a list of strings")
                raw = " ".join(tokens)
            if raw is not None and not isinstance(raw, str):
                raise DataError(swhere, f"field 'raw': expected a string, got {type(raw).__name__} {raw!r}")
            lang = sent.get("lang", "en") if isinstance(sent, dict) else "en"
            if not isinstance(lang, str):
                raise DataError(swhere, f"field 'lang': expected a string, got {type(lang).__name__}")
            raw = limit_length((raw or "").strip(), f"images[{i}] ({filename}) sentences[{j}]", long)
            if not raw and not allow_empty:
                raise DataError(f"{where} ({filename}) sentences[{j}]", "empty caption")
            caps.append(raw)
            langs.append(lang)
            places.append(f"images[{i}] ({filename}) sentences[{j}]")
        records.append(CaptionRecord(filename=filename, split=split, captions=caps, langs=langs,
                                     image_id=entry.get("imgid", entry.get("id", i)), where=places))
    warn_long(long, path)
    return records


def limit_length(caption: str, where: str, long: list) -> str:
    """``caption``, cut to :data:`MAX_CAPTION_CHARS` at a word boundary when longer (``where`` and its
    length then added to ``long``, for :func:`warn_long`)."""
    if len(caption) <= MAX_CAPTION_CHARS:
        return caption
    long.append((where, len(caption)))
    cut = caption[:MAX_CAPTION_CHARS]
    space = cut.rfind(" ")
    return (cut[:space] if space > MAX_CAPTION_CHARS // 2 else cut).rstrip()


def warn_long(long: list, source, stacklevel: int = 3) -> None:
    """One warning naming ``source``, how many captions were cut and the first one."""
    if long:
        where, n = long[0]
        warnings.warn(f"{source}: cut {len(long)} caption(s) longer than {MAX_CAPTION_CHARS} characters to "
                      f"{MAX_CAPTION_CHARS} (first: {where}, {n} characters)", stacklevel=stacklevel)


def read_openclip_csv(path: str | os.PathLike, img_key: str = "filename", caption_key: str = "title",
                      sep: str | None = None, split: str = "train",
                      allow_empty: bool = False) -> list[CaptionRecord]:
    """Read an OpenCLIP CSV/TSV (one row per caption); rows of the same image are grouped.

    A ``split`` column, when present, overrides the ``split`` argument per row.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "caption file not found")
    if sep is None:
        sep = "\t" if path.suffix.lower() in (".tsv", ".txt") else ","
    try:
        text = path.read_bytes().decode("utf-8")   # no newline translation: a quoted \r stays
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                              "save the file as UTF-8 (it may be Latin-1)") from exc
    with io.StringIO(text, newline="") as fh:
        reader = csv.DictReader(fh, delimiter=sep)
        try:
            missing = {img_key, caption_key} - set(reader.fieldnames or [])
            if missing:
                raise DataError(path, f"missing column(s) {sorted(missing)}; found {reader.fieldnames}")
            grouped = _group_rows(reader, path, img_key, caption_key, sep, split, allow_empty)
        except csv.Error as exc:   # a field over csv's limit (128 KB), a NUL ...
            raise DataError(f"{path}:{reader.line_num + 1}", f"not readable as CSV ({exc})") from exc
    return list(grouped.values())


def _group_rows(reader, path: Path, img_key: str, caption_key: str, sep: str, split: str,
                allow_empty: bool) -> dict[str, CaptionRecord]:
    """The rows of an OpenCLIP CSV grouped by image (see :func:`read_openclip_csv`)."""
    grouped: dict[str, CaptionRecord] = {}
    long: list = []
    for row in reader:
        line = reader.line_num
        if None in row:
            raise DataError(f"{path}:{line}", f"more fields than the header's {len(reader.fieldnames)} "
                                              f"(an unquoted {'tab' if sep == chr(9) else 'comma'} in a caption?)")
        if any(v is None for v in row.values()):
            raise DataError(f"{path}:{line}", f"fewer fields than the header's {len(reader.fieldnames)}")
        caption = limit_length((row[caption_key] or "").strip(), f"line {line}", long)
        if not caption and not allow_empty:
            raise DataError(f"{path}:{line}", f"empty caption for {row[img_key]!r}")
        name = row[img_key]
        rec = grouped.get(name)
        row_split = row.get("split") or split
        if row.get("split") and row_split not in KNOWN_SPLITS:
            raise DataError(f"{path}:{line}", f"column 'split': unknown split {row_split!r}; "
                                              f"expected one of {list(KNOWN_SPLITS)}")
        if rec is None:
            rec = grouped[name] = CaptionRecord(filename=name, split=row_split,
                                                captions=[], langs=[], image_id=len(grouped))
        rec.captions.append(caption)
        rec.langs.append(row.get("lang") or "en")
        rec.where.append(f"line {line}")
    warn_long(long, path, stacklevel=4)
    return grouped


def read_captions(path: str | os.PathLike, **kwargs) -> list[CaptionRecord]:
    """Read Karpathy JSON or OpenCLIP CSV/TSV by file suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return read_karpathy(path, **kwargs)
    if suffix in (".csv", ".tsv", ".txt"):
        return read_openclip_csv(path, **kwargs)
    raise DataError(path, f"unknown caption file format {suffix!r}: use .json (Karpathy) or .csv/.tsv")


def read_captions_dropping_empty(path: str | os.PathLike) -> list[CaptionRecord]:
    """:func:`read_captions`, leaving out empty captions and the images left with none, with one
    warning naming the file, the counts and the first images (the published RSITMD file has an
    image, ``mountain_2378.tif``, whose five captions are all empty). Training and retrieval
    read caption sets this way; a malformed file still raises."""
    return drop_empty_captions(read_captions(path, allow_empty=True), path, stacklevel=3)


def drop_empty_captions(records: Iterable[CaptionRecord], source, stacklevel: int = 2) -> list[CaptionRecord]:
    """Records without their empty (blank) captions and without the images left with none, with one
    warning naming ``source``, the counts and the first such images (none when nothing was empty).
    The one empty-caption policy of every reader that tolerates them (training, retrieval, the
    caption statistics, the metric study)."""
    kept, empty, no_caption, places = [], 0, [], []
    for rec in records:
        caps = [(c, lang) for c, lang in zip(rec.captions, rec.langs) if c.strip()]
        empty += len(rec.captions) - len(caps)
        places += [rec.where[j] if j < len(rec.where) else f"{rec.filename} caption {j}"
                   for j, c in enumerate(rec.captions) if not c.strip()]
        if not caps:
            no_caption.append(rec.filename)
            continue
        if len(caps) < len(rec.captions):
            rec = CaptionRecord(filename=rec.filename, split=rec.split, captions=[c for c, _ in caps],
                                langs=[lang for _, lang in caps], image_id=rec.image_id, meta=rec.meta)
        kept.append(rec)
    if empty:
        lost = f"; {len(no_caption)} image(s) left with none also left out ({', '.join(no_caption[:3])}" \
               f"{', ...' if len(no_caption) > 3 else ''})" if no_caption else ""
        first = ", ".join(places[:3]) + (", ..." if len(places) > 3 else "")
        # once per process: notebook 03 reads a caption set once per training run
        warn_once(f"{source}: left out {empty} empty caption(s) ({first}){lost}", stacklevel=stacklevel + 1)
    return kept


def write_karpathy(records: Iterable[CaptionRecord], path: str | os.PathLike, dataset: str = "") -> Path:
    """Write records as Karpathy JSON (tokens: lower-cased words, punctuation stripped)."""
    images, sent_id = [], 0
    for i, rec in enumerate(records):
        sentences = []
        for cap, lang in zip(rec.captions, rec.langs):
            sent = {"raw": cap, "tokens": tokenize(cap), "imgid": i, "sentid": sent_id}
            if lang != "en":
                sent["lang"] = lang
            sentences.append(sent)
            sent_id += 1
        entry = {"filename": rec.filename, "imgid": i, "split": rec.split, "sentences": sentences,
                 "sentids": [s["sentid"] for s in sentences]}
        entry.update(rec.meta)
        images.append(entry)
    return atomic_write_text(path, json.dumps({"images": images, "dataset": dataset}, indent=1))


def select_split(records: Sequence[CaptionRecord], split: str | Sequence[str] | None,
                 source: str | os.PathLike = "captions") -> list[CaptionRecord]:
    """Records of the given split(s); an unknown or empty split is an error."""
    if split is None:
        return list(records)
    wanted = [split] if isinstance(split, str) else list(split)
    present = sorted({r.split for r in records})
    for s in wanted:
        if s not in present:
            raise DataError(source, f"split {s!r} does not exist or is empty; splits present: {present}")
    return [r for r in records if r.split in wanted]


def find_image_dir(caption_file: str | os.PathLike) -> Path:
    """The conventional image folder beside a caption file: ``images/`` or ``imgs/``, else its folder."""
    folder = Path(caption_file).parent
    for name in ("images", "imgs", "Images"):
        if (folder / name).is_dir():
            return folder / name
    return folder


class CaptionDataset:
    """A torch-style dataset of images and captions.

    ``mode="train"``: ``ds[i] -> (image, caption)`` with one caption drawn at random;
    ``mode="eval"``: ``ds[i] -> image``; texts through :meth:`texts`.
    ``languages`` restricts captions to those languages; ``skip_bad`` verifies every image
    up front and drops unreadable ones, counting them in ``self.skipped`` (otherwise a
    missing image is an error at construction and a corrupt one when it is loaded).
    """

    def __init__(self, records: Sequence[CaptionRecord], image_dir: str | os.PathLike,
                 transform: Callable | None = None, mode: str = "train", seed: int = 0,
                 languages: Sequence[str] | None = None, skip_bad: bool = False,
                 source: str | os.PathLike = "captions", check_files: bool = True):
        if mode not in ("train", "eval"):
            raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
        self.image_dir = Path(image_dir)
        self.transform = transform
        self.mode = mode
        self.seed = seed
        self.epoch = 0
        self.source = str(source)
        self.skipped: list[tuple[str, str]] = []
        records = list(records)
        if languages is not None:
            records = [_filter_langs(r, languages) for r in records]
            records = [r for r in records if r.captions]
        if not records:
            raise DataError(source, "no images in this selection (empty split or language filter)")
        self.layout = expected_layout([self.image_dir / r.filename for r in records])
        if check_files or skip_bad:
            kept = []
            todo = (progress(records, desc=f"verify images of {Path(str(source)).name}", unit="image")
                    if skip_bad else records)   # skip_bad decodes every image: long on a large set
            for rec in todo:
                path = self.image_dir / rec.filename
                problem = (verify_image(path, self.layout) if skip_bad else
                           (None if path.exists() else "image file not found"))
                if problem is None:
                    kept.append(rec)
                elif skip_bad:
                    self.skipped.append((str(path), problem))
                else:
                    raise DataError(path, f"{problem} (listed in {source})")
            if self.skipped:
                warnings.warn(f"{source}: skipped {len(self.skipped)} unreadable image(s), "
                              f"first: {self.skipped[0][0]} ({self.skipped[0][1]})")
            records = kept
        self.records = records

    @classmethod
    def from_file(cls, caption_file: str | os.PathLike, split=None, image_dir=None, **kwargs):
        records = select_split(read_captions_dropping_empty(caption_file), split, caption_file)
        image_dir = image_dir or find_image_dir(caption_file)
        return cls(records, image_dir, source=caption_file, **kwargs)

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def caption_index(self, index: int) -> int:
        rng = random.Random(f"{self.seed}-{self.epoch}-{index}")
        return rng.randrange(len(self.records[index].captions))

    def load(self, index: int):
        image = load_image(self.image_dir / self.records[index].filename, layout=self.layout)
        return self.transform(image) if self.transform is not None else image

    def __getitem__(self, index: int):
        image = self.load(index)
        if self.mode == "eval":
            return image
        rec = self.records[index]
        return image, rec.captions[self.caption_index(index)]

    # evaluation view -------------------------------------------------------------
    def texts(self) -> list[str]:
        return [c for r in self.records for c in r.captions]

    def text_to_image(self) -> list[int]:
        return [i for i, r in enumerate(self.records) for _ in r.captions]

    def filenames(self) -> list[str]:
        return [r.filename for r in self.records]

    def image_paths(self) -> list[Path]:
        return [self.image_dir / r.filename for r in self.records]


def _filter_langs(rec: CaptionRecord, languages) -> CaptionRecord:
    pairs = [(c, l) for c, l in zip(rec.captions, rec.langs) if l in languages]
    return CaptionRecord(rec.filename, rec.split, [c for c, _ in pairs], [l for _, l in pairs],
                         rec.image_id, rec.meta)
