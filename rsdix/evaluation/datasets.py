"""The evaluation datasets: registry lookup by key or title, classification sets (folders or a
label CSV, optional class names, restricted to a caption split's images) and caption sets (an
official split, optional languages), with seeded subsampling for the smoke profile."""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from rsdix.data.captions import CaptionDataset, find_image_dir, read_captions_dropping_empty, select_split
from rsdix.data.classification import ClassificationDataset, read_label_csv, scan_class_folders
from rsdix.data.registry import get_info, source_path
from rsdix.errors import DataError


DATASET_NOTES = {
    "eurosat_ms": "EuroSAT-MS tiles rendered to true colour (B04/B03/B02)",
}


def dataset_note(name: str, config) -> str:
    """The note every row of dataset ``name`` carries: how it differs from the published set."""
    parts = [DATASET_NOTES.get(name, "")]
    if name in config.split_from:
        parts.append(f"images of {config.split_from[name]} only")
    return "; ".join(p for p in parts if p)


def resolve_dataset(name: str, kind: str):
    """A registry entry (:mod:`rsdix.data.registry`) by key (``whu_rs19``) or by title
    (``WHU-RS19``, ``UCM``) of the given kind (``classification`` or ``captions``)."""
    try:
        return get_info(name, kind)
    except DataError as exc:
        raise DataError(name, f"{exc.problem} (or pass path=)") from None


SUBSET_SUFFIX = re.compile(r": (\d+) of \d+$")   # what split_label appends to a subsampled split


def split_label(split: str, dataset) -> str:
    """The ``split`` column of a result row on ``dataset``: the split's name, and, where the set was
    subsampled (``max_images``), how many of its images were kept (``"test: 120 of 210"``), so a
    row on a subset never shares its key with a row on the whole split (notebooks 03 and 05)."""
    subset = getattr(dataset, "subset", None)
    return f"{split}: {subset[0]} of {subset[1]}" if subset else split


def base_split(label) -> str:
    """The split a ``split`` column names, without what :func:`split_label` and ``split_from`` add:
    ``"test: 120 of 210"`` -> ``"test"``, ``"ucm_captions:test"`` -> ``"test"``,
    ``"ucm_captions:test: 105 of 210"`` -> ``"test"``; blank for a missing one."""
    text = "" if label is None or (isinstance(label, float) and label != label) else str(label)
    text = SUBSET_SUFFIX.sub("", text)
    return text.rpartition(":")[2]


def split_images(label) -> float:
    """How many images a ``split`` label says its subset kept (``"test: 120 of 210"`` -> 120);
    infinity for a whole split, so sorting by it puts whole splits first."""
    match = SUBSET_SUFFIX.search("" if label is None else str(label))
    return float(match.group(1)) if match else math.inf


def _subsample(n_items: int, labels: Sequence[int] | None, max_items: int | None, seed: int) -> list[int]:
    """Seeded subset indices, sorted. With labels: ``max_items // n_classes`` (at least one) per
    class, all of a smaller class, so the subset can be smaller than ``max_items``; with more
    classes than ``max_items``, one image of each of ``max_items`` seeded classes (the class list,
    and so zero-shot chance, stays whole)."""
    if max_items is None or n_items <= max_items:
        return list(range(n_items))
    rng = np.random.default_rng(seed)
    if labels is None:
        return sorted(rng.choice(n_items, size=max_items, replace=False).tolist())
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if len(classes) > max_items:
        classes = np.sort(rng.choice(classes, size=max_items, replace=False))
    per = max(1, max_items // len(classes))
    keep = []
    for c in classes:
        pool = np.flatnonzero(labels == c)
        keep += rng.choice(pool, size=min(per, len(pool)), replace=False).tolist()
    return sorted(keep)


def load_classification(name: str, root: str | os.PathLike | None = None, max_images: int | None = None,
                        seed: int = 0, class_names: Sequence[str] | dict | None = None,
                        path: str | os.PathLike | None = None, split_from: str | None = None
                        ) -> ClassificationDataset:
    """A classification set of the dataset registry (key or title) or a folder/CSV at ``path``.

    ``class_names`` replaces the cleaned folder names: a list in class order (e.g. translated
    names) or a mapping ``folder -> name`` that must cover every class folder exactly.
    ``split_from="ucm_captions:test"`` keeps only the images of that caption set's split.
    """
    path = Path(source_path(resolve_dataset(name, "classification").name, root) if path is None else path)
    if path.suffix.lower() == ".csv":
        paths, labels, classes = read_label_csv(path, path.parent / "images")
    else:
        paths, labels, classes = scan_class_folders(path)
    if split_from:   # "caption_set:split": keep the images of that split (no train images in a test)
        cap_name, _, cap_split = split_from.partition(":")
        wanted = {r.filename for r in load_retrieval(cap_name, root, cap_split or "test").records}
        chosen = [i for i in range(len(paths)) if Path(paths[i]).name in wanted]
        if not chosen:
            raise DataError(path, f"no image of {split_from} is in this classification set")
        paths, labels = [paths[i] for i in chosen], [labels[i] for i in chosen]
    keep = _subsample(len(paths), labels, max_images, seed)
    names = resolve_class_names(class_names, classes, path)
    dataset = ClassificationDataset([paths[i] for i in keep], [labels[i] for i in keep], classes,
                                    class_names=names, source=path)
    dataset.subset = (len(keep), len(paths)) if len(keep) < len(paths) else None   # for split_label
    return dataset


def resolve_class_names(class_names, classes: list[str], source) -> list[str] | None:
    """Class names in class order from a list or a ``folder -> name`` mapping (None: keep the folder names)."""
    if class_names is None:
        return None
    if isinstance(class_names, dict):
        missing = [c for c in classes if c not in class_names]
        unknown = [c for c in class_names if c not in classes]
        if missing or unknown:
            raise DataError(source, f"class-name mapping does not match the class folders: "
                                    f"missing {missing}, unknown {unknown}")
        return [class_names[c] for c in classes]
    class_names = list(class_names)
    if len(class_names) != len(classes):
        raise DataError(source, f"{len(class_names)} class names given for {len(classes)} classes "
                                f"({classes})")
    return class_names


def load_retrieval(name: str, root: str | os.PathLike | None = None, split: str = "test",
                   max_images: int | None = None, seed: int = 0, languages: Sequence[str] | None = None,
                   path: str | os.PathLike | None = None) -> CaptionDataset:
    """The official ``split`` of a caption set of the dataset registry (key or title) or a caption file
    at ``path``; ``languages`` keeps only captions in those languages."""
    if path is None:
        path = source_path(resolve_dataset(name, "captions").name, root)
    records = select_split(read_captions_dropping_empty(path), split, path)
    keep = _subsample(len(records), None, max_images, seed)
    dataset = CaptionDataset([records[i] for i in keep], find_image_dir(path), transform=None, mode="eval",
                             languages=languages, source=path)
    dataset.subset = (len(keep), len(records)) if len(keep) < len(records) else None   # for split_label
    return dataset
