"""What is under the data root: counts, splits, caption statistics, class balance
(the tables of notebook 01)."""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from rsdix.data.captions import read_karpathy
from rsdix.data.check import check_dataset
from rsdix.data.registry import CAPTIONS_ONLY, REGISTRY, available, get_info, load_dataset
from rsdix.data.textstats import stats_table
from rsdix.paths import data_root as resolve_root


def overview_table(root=None, verify_images: bool = True) -> pd.DataFrame:
    """One row per registered dataset present under the data root, checked against the registry."""
    rows = []
    for name in available(root):
        info = REGISTRY[name]
        report = check_dataset(name, root, verify_images=verify_images)
        facts = report.facts
        rows.append({"dataset": info.title, "registry_name": name, "kind": info.kind,
                     "images": facts.get("images"), "expected_images": info.images,
                     "captions": facts.get("captions"), "classes": facts.get("classes"),
                     "splits": ", ".join(f"{k} {v}" for k, v in sorted(facts.get("splits", {}).items())),
                     "problems": len(report.errors), "status": "OK" if report.ok else "ERRORS"})
    return pd.DataFrame(rows)


EMPTY_DROPPED: dict[str, int] = {}


def caption_corpora(root=None, split: str | None = None, names: Sequence[str] | None = None,
                    extra: Mapping[str, str | os.PathLike] | None = None) -> dict[str, list[list[str]]]:
    """Captions per image of every caption corpus present (full datasets or caption-only copies),
    keyed by dataset title; ``names`` keeps only those titles, ``extra`` adds title -> Karpathy
    JSON (e.g. S2LCD). Absent files are left out.

    Empty captions (RSITMD has some) are dropped for statistics, and an image left with none is
    left out; both are counted in ``EMPTY_DROPPED[title]`` and in a warning naming the file:
    never silently.
    """
    base = resolve_root(root)
    files = {}
    for name, rel in CAPTIONS_ONLY.items():
        info = get_info(name)
        full = base / info.path / (info.annotation or "")
        files[info.title] = full if full.is_file() else base / rel
    files.update({title: Path(path) for title, path in (extra or {}).items()})
    corpora = {}
    for title, path in files.items():
        if (names is not None and title not in names) or not path.exists():
            continue
        records = [r for r in read_karpathy(path, allow_empty=True) if split is None or r.split == split]
        caps = [[c for c in r.captions if c.strip()] for r in records]
        dropped = sum(len(r.captions) for r in records) - sum(len(c) for c in caps)
        EMPTY_DROPPED[title] = dropped
        if dropped:
            gone = sum(1 for c in caps if not c)
            warnings.warn(f"{path}: dropped {dropped} empty caption(s) from the statistics "
                          f"({gone} image(s) had no caption left and are left out)")
        corpora[title] = [c for c in caps if c]
    return corpora


def caption_statistics(root=None) -> pd.DataFrame:
    table = stats_table(caption_corpora(root))
    table["empty_captions_dropped"] = table["dataset"].map(EMPTY_DROPPED).fillna(0).astype(int)
    return table


def class_balance(root=None) -> pd.DataFrame:
    """Images per class of every classification set present."""
    rows = []
    for name in available(root):
        info = REGISTRY[name]
        if info.kind != "classification":
            continue
        ds = load_dataset(name, root)
        counts = pd.Series(ds.labels).value_counts().sort_index()
        for label, n in counts.items():
            rows.append({"dataset": f"{info.title} ({name})", "class": ds.classes[label],
                         "class_name": ds.class_names[label], "images": int(n)})
    return pd.DataFrame(rows)
