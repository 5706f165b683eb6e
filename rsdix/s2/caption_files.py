"""Caption files of a captioning team: CVAT XML export, caption tables (CSV/TSV), their validation.

:func:`read_cvat_xml` / :func:`write_cvat_xml` (as S2LCD was annotated), :func:`read_caption_table`
(long ``filename, caption`` or wide ``filename, caption_1..caption_N``), :func:`read_annotations`
(either, or Karpathy JSON, by suffix) and :func:`validate_captions` (a :class:`CaptionReport`).
:func:`write_example_annotations` writes the format demo of notebook 02 (not data).
"""
from __future__ import annotations

import csv
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from rsdix.data.captions import CaptionRecord, read_karpathy
from rsdix.data.files import read_xml
from rsdix.errors import DataError
from rsdix.s2.tiling import Tiling
from rsdix.utils import atomic_write_text


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


def write_example_annotations(tilings: Sequence[Tiling], out_dir: str | os.PathLike, per_scene: int = 2,
                              n_captions: int = 5, size: tuple[int, int] = (224, 224)) -> tuple[Path, Path, list[str]]:
    """The caption-file format demo of notebook 02 (placeholder text, not data): for the first
    ``per_scene`` kept patches of every scene, ``n_captions`` captions saying they are examples;
    the first two scenes' go to a CVAT XML export, the others' to a long caption CSV (with one or two
    scenes, the first half of the patches to CVAT, the rest to the CSV). Returns the
    two paths and the example patch file names."""
    out_dir = Path(out_dir)
    by_scene = {}
    for t in tilings:
        names = [f for f in t.table.loc[t.table.status == "kept", "filename"]][:per_scene]
        if names:
            by_scene[t.scene.name] = names
    example = [n for names in by_scene.values() for n in names]

    def text(name, k):
        return f"EXAMPLE caption {k + 1} of {len(example)} patches, format demo only, not a description ({name})"

    scenes = list(by_scene)
    if len(scenes) > 2:
        in_cvat = [n for s in scenes[:2] for n in by_scene[s]]
    else:   # one or two scenes (a synthetic root): the patches split between the two formats
        in_cvat = example[:max(1, len(example) // 2)]
    in_csv = [n for n in example if n not in set(in_cvat)]
    cvat_part = [CaptionRecord(n, "", [text(n, k) for k in range(n_captions)]) for n in in_cvat]
    cvat_file = write_cvat_xml(cvat_part, out_dir / "example_annotations_cvat.xml", sizes={n: size for n in example})
    csv_file = out_dir / "example_captions.csv"
    pd.DataFrame([{"filename": n, "caption": text(n, k), "annotator": "example"}
                  for n in in_csv for k in range(n_captions)],
                 columns=["filename", "caption", "annotator"]).to_csv(csv_file, index=False)
    return cvat_file, csv_file, example
