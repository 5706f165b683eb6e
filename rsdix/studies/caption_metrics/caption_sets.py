"""The metric study's captions: one dataset's distinct captions per image with the image's class
(:class:`CaptionSet`, :func:`load_caption_set`), the normalised form every study caption is scored
in, the class names the edits swap (:func:`class_terms`) and seeded sampling (:func:`subsample`,
:func:`seeded_rng`)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from rsdix.data.captions import drop_empty_captions, read_karpathy, select_split
from rsdix.data.classification import clean_class_name
from rsdix.data.textstats import tokenize
from rsdix.errors import DataError
from rsdix.paths import data_root as resolve_root
from rsdix.utils import stable_hash

DATASETS = ("ucm", "sydney", "rsicd", "rsitmd")
DATASET_FILES = {"ucm": "ucm_captions/dataset_ucm.json", "sydney": "captions_only/dataset_sydney.json",
                 "rsicd": "captions_only/dataset_rsicd.json", "rsitmd": "captions_only/dataset_rsitmd.json"}
DATASET_NAMES = {"ucm": "UCM", "sydney": "Sydney", "rsicd": "RSICD", "rsitmd": "RSITMD"}
# Sydney-Captions' seven classes (the file names carry no class)
SYDNEY_CLASSES = ("residential", "airport", "meadow", "river", "ocean", "industrial", "runway")


@dataclass
class CaptionSet:
    """One dataset's captions: distinct captions per image, and the image's class when known."""

    dataset: str
    filenames: list[str]
    captions: list[list[str]]
    classes: list[str | None]
    source: str = ""
    n_empty: int = 0  # empty captions in the file, left out (reported by a warning)

    def __len__(self) -> int:
        return len(self.filenames)


def normalise(text: str) -> str:
    """Lower-case words, punctuation dropped (the form every study caption is scored in)."""
    return " ".join(tokenize(text))


def _class_from_filename(name: str) -> str | None:
    match = re.match(r"^([A-Za-z]+)_\d+\.\w+$", Path(name).name)
    return match.group(1).lower() if match else None


def load_caption_set(dataset: str, data_root=None, split: str | Sequence[str] | None = None) -> CaptionSet:
    """Read one of :data:`DATASETS` (Karpathy JSON under the data root), with image classes:
    UCM from ``labels.csv``, RSICD/RSITMD from file-name prefixes, Sydney none."""
    if dataset not in DATASET_FILES:
        raise DataError(dataset, f"unknown caption dataset; use one of {DATASETS}")
    path = resolve_root(data_root) / DATASET_FILES[dataset]
    records = read_karpathy(path, allow_empty=True)
    if split:
        records = select_split(records, split, source=path)
    n_captions = sum(len(rec.captions) for rec in records)
    records = drop_empty_captions(records, path)  # one warning with the counts
    n_empty = n_captions - sum(len(rec.captions) for rec in records)
    labels = {}
    if dataset == "ucm":
        label_csv = path.parent / "labels.csv"
        if label_csv.exists():
            frame = pd.read_csv(label_csv)
            labels = dict(zip(frame["filename"], frame["label"]))
    filenames, captions, classes = [], [], []
    for rec in records:
        caps = list(dict.fromkeys(c for c in (normalise(x) for x in rec.captions) if c))
        if not caps:   # only punctuation left after normalising
            continue
        cls = labels.get(rec.filename) if dataset == "ucm" else _class_from_filename(rec.filename)
        filenames.append(rec.filename)
        captions.append(caps)
        classes.append(clean_class_name(cls) if cls else None)
    return CaptionSet(dataset, filenames, captions, classes, source=str(path), n_empty=n_empty)


def class_terms(caption_sets: Sequence[CaptionSet]) -> list[str]:
    """Scene/class names across datasets (cleaned, e.g. 'dense residential'), plus Sydney's."""
    terms = set(SYDNEY_CLASSES)
    for cs in caption_sets:
        terms.update(c for c in cs.classes if c)
    return sorted(terms)


def seeded_rng(seed: int, *keys) -> np.random.Generator:
    """A generator seeded by ``seed`` and stable hashes of ``keys`` (the same draws for the same
    dataset, image and purpose, whatever else was drawn before)."""
    return np.random.default_rng([seed] + [int(stable_hash(k, 8), 16) for k in keys])


def subsample(cs: CaptionSet, n_images: int | None, seed: int) -> np.ndarray:
    """Seeded image indices (all when ``n_images`` is None or larger than the set)."""
    rng = seeded_rng(seed, cs.dataset)
    if n_images is None or n_images >= len(cs):
        return np.arange(len(cs))
    return np.sort(rng.choice(len(cs), size=n_images, replace=False))
