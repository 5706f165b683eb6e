"""``rsdix data check NAME [--root DIR]``: verify a local copy of a dataset against the
registry (counts, unreadable or missing files, empty captions, unknown splits) and report."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rsdix.data.captions import SPLITS, find_image_dir, read_karpathy
from rsdix.data.classification import check_distinct_names, clean_class_name, read_label_csv, scan_class_folders
from rsdix.data.images import IMAGE_EXTS, verify_image
from rsdix.data.raster import tiff_layout
from rsdix.data.registry import DatasetInfo, get_info
from rsdix.errors import DataError
from rsdix.paths import data_root as resolve_root
from rsdix.utils import progress


@dataclass
class CheckReport:
    name: str
    path: Path
    facts: dict = field(default_factory=dict)      # what was found
    errors: list[str] = field(default_factory=list)  # problems that make the copy unusable as is
    warnings: list[str] = field(default_factory=list)  # differences from the registry

    @property
    def ok(self) -> bool:
        return not self.errors

    def __str__(self) -> str:
        lines = [f"{self.name}: {self.path}"]
        lines += [f"  {k}: {v}" for k, v in self.facts.items()]
        lines += [f"  WARNING {w}" for w in self.warnings]
        lines += [f"  ERROR {e}" for e in self.errors[:20]]
        if len(self.errors) > 20:
            lines.append(f"  ... and {len(self.errors) - 20} more errors")
        lines.append("  result: " + ("OK" if self.ok else f"{len(self.errors)} error(s)"))
        return "\n".join(lines)


def check_dataset(name: str, root=None, verify_images: bool = True) -> CheckReport:
    info = get_info(name)
    folder = resolve_root(root) / info.path
    report = CheckReport(info.name, folder)
    if not folder.is_dir():
        report.errors.append(f"{folder}: dataset folder not found (get it from {info.url})")
        return report
    try:
        if info.kind == "captions":
            _check_captions(info, folder, report, verify_images)
        else:
            _check_classification(info, folder, report, verify_images)
    except DataError as exc:
        report.errors.append(str(exc))
    return report


def _compare(report: CheckReport, what: str, found, expected) -> None:
    if expected is not None and found != expected:
        report.warnings.append(f"{what}: found {found}, registry expects {expected}"
                               + (" (a subset?)" if isinstance(found, int) and found < expected else ""))


def _check_images(paths, report: CheckReport, verify: bool) -> None:
    bad = 0
    for path in progress(paths, desc="checking images", disable=not verify or None):
        problem = verify_image(path) if verify else (None if Path(path).exists() else "image file not found")
        if problem:
            bad += 1
            report.errors.append(f"{path}: {problem}")
    report.facts["unreadable_or_missing_images"] = bad
    if verify:
        _check_tiff_layouts(paths, report)


def _check_tiff_layouts(paths, report: CheckReport) -> None:
    """TIFFs whose band count or type differs from most of the dataset's (a 3-band 8-bit
    tile among 13-band ones) are errors naming the file."""
    layouts = {p: tiff_layout(p) for p in paths if Path(p).suffix.lower() in (".tif", ".tiff")}
    counts = Counter(v for v in layouts.values() if v is not None)
    if len(counts) < 2:
        return
    (usual, n), = counts.most_common(1)
    odd = [(p, v) for p, v in layouts.items() if v is not None and v != usual]
    for p, (bands, dtype) in odd:
        report.errors.append(f"{p}: {bands} band(s) of {dtype}, while {n} of {len(layouts)} TIFFs "
                             f"have {usual[0]} band(s) of {usual[1]}")
    report.facts["odd_tiff_layouts"] = len(odd)


def _check_captions(info: DatasetInfo, folder: Path, report: CheckReport, verify: bool) -> None:
    ann = folder / info.annotation
    records = read_karpathy(ann, allow_empty=True, lenient=True)
    report.facts["images"] = len(records)
    report.facts["captions"] = sum(len(r.captions) for r in records)
    splits = Counter(r.split for r in records)
    report.facts["splits"] = dict(splits)
    for split in splits:
        if split not in SPLITS:
            report.errors.append(f"{ann}: unknown split {split!r} ({splits[split]} images); expected {SPLITS}")
    for rec in records:
        for j, cap in enumerate(rec.captions):
            if not cap.strip():
                report.errors.append(f"{ann}: {rec.filename} caption {j} is empty")
    dupes = [f for f, n in Counter(r.filename for r in records).items() if n > 1]
    for f in dupes:
        report.errors.append(f"{ann}: image {f} listed more than once")
    _compare(report, "images", len(records), info.images)
    _compare(report, "captions", report.facts["captions"], info.captions)
    for split, n in info.splits.items():
        _compare(report, f"{split} images", splits.get(split, 0), n)
    image_dir = find_image_dir(ann)
    _check_images([image_dir / r.filename for r in records], report, verify)


def _check_classification(info: DatasetInfo, folder: Path, report: CheckReport, verify: bool) -> None:
    if info.format == "csv":
        paths, labels, classes = read_label_csv(folder / info.annotation, folder / "images")
    else:
        paths, labels, classes = _scan_lenient(folder, report)
    try:
        check_distinct_names(classes, [clean_class_name(c) for c in classes], folder)
    except DataError as exc:
        report.errors.append(str(exc))
    counts = Counter(labels)
    report.facts["images"] = len(paths)
    report.facts["classes"] = len(classes)
    report.facts["images_per_class"] = f"min {min(counts.values())}, max {max(counts.values())}" if counts else "-"
    _compare(report, "images", len(paths), info.images)
    _compare(report, "classes", len(classes), info.classes)
    _check_images(paths, report, verify)


def _scan_lenient(folder: Path, report: CheckReport):
    """Like scan_class_folders, but an empty class folder is reported, not fatal."""
    classes, paths, labels = [], [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not files:
            report.errors.append(f"{sub}: class folder is empty (no image files)")
            continue
        paths += files
        labels += [len(classes)] * len(files)
        classes.append(sub.name)
    if not classes:
        raise DataError(folder, "no class folders with images")
    return paths, labels, classes


__all__ = ["CheckReport", "check_dataset", "scan_class_folders"]
