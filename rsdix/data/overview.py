"""What is under the data root: counts, splits, caption statistics, class balance
(the tables of notebook 01)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from rsdix.data.captions import drop_empty_captions, read_karpathy
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


def caption_corpora(root=None, split: str | None = None, names: Sequence[str] | None = None,
                    extra: Mapping[str, str | os.PathLike] | None = None) -> dict[str, list[list[str]]]:
    """Captions per image of every caption corpus present (full datasets or caption-only copies),
    keyed by dataset title; ``names`` keeps only those titles, ``extra`` adds title -> Karpathy
    JSON (e.g. S2LCD). Absent files are left out.

    Empty captions (RSITMD has some) are left out, and an image left with none too, with one warning
    naming the file (:func:`rsdix.data.captions.drop_empty_captions`): never silently.
    """
    return {title: [r.captions for r in records]
            for title, (records, _) in _corpus_records(root, split, names, extra).items()}


def _corpus_records(root, split, names, extra) -> dict[str, tuple[list, int]]:
    """Title -> (records without empty captions, number of empty captions left out)."""
    base = resolve_root(root)
    files = {}
    for name, rel in CAPTIONS_ONLY.items():
        info = get_info(name)
        full = base / info.path / (info.annotation or "")
        files[info.title] = full if full.is_file() else base / rel
    files.update({title: Path(path) for title, path in (extra or {}).items()})
    out = {}
    for title, path in files.items():
        if (names is not None and title not in names) or not path.exists():
            continue
        records = [r for r in read_karpathy(path, allow_empty=True) if split is None or r.split == split]
        n_captions = sum(len(r.captions) for r in records)
        records = drop_empty_captions(records, path)
        out[title] = (records, n_captions - sum(len(r.captions) for r in records))
    return out


def caption_statistics(root=None) -> pd.DataFrame:
    """Caption statistics of every corpus present, one row per dataset, with the number of empty
    captions left out (``empty_captions_dropped``)."""
    found = _corpus_records(root, None, None, None)
    table = stats_table({title: [r.captions for r in records] for title, (records, _) in found.items()})
    table["empty_captions_dropped"] = table["dataset"].map({t: n for t, (_, n) in found.items()}).fillna(0).astype(int)
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
