"""The leakage audit (``rsdix data leakage A [B ...]``): exact, perceptual-hash and feature
near-duplicates within every dataset's splits and across datasets, as duplicate groups, counts
per pair of dataset/split and an exclusion list that training configs read (``data.exclude``).

    audit = leakage_audit(["ucm_captions", "whu_rs19"], root)
    audit.counts            # a, b, exact, phash, cosine: duplicate pairs per dataset/split pair
    audit.write(out_dir)    # leakage_groups.csv, leakage_exclude.csv, leakage_counts.csv

The three kinds (:mod:`rsdix.data.duplicates`): ``exact`` byte-identical files (SHA-1); ``phash``
64-bit perceptual hashes within ``max_bits`` (default 4) bits, flips included; ``cosine``
mean-centred cosine of image features ``>= threshold`` (default 0.999; one group per pair). The
features are read through the feature cache (:mod:`rsdix.models.features`) from a given model, or from
rsdix's tiny preset with fixed random weights (seed 0): near-identical pixels give near-identical
features (resized and re-encoded copies score >= 0.9994), so it finds copies and near-uniform
look-alikes (plain sea or forest tiles), not semantic neighbours. So the exclusion list takes
cosine groups only from a given (trained) model; with the random-weight default it holds the exact
and perceptual-hash duplicates, and the cosine groups are reported for inspection.
Caption sets contribute their official splits (``train``/``val``/``test``), classification sets
all their images (split ``all``); a set whose files are those of another audited set (UCM as a
classification set is the UCM-Captions images) is audited once. ``max_per_split`` audits at most
that many images of each dataset/split (evenly spaced; the dry run's cap, ``leakage/<profile>.yaml``);
the notes say which were cut.

    cfg = config.load("leakage", "paper")                      # notebook 01
    audit = leakage_audit(names, root, **cfg.audit_kwargs())
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from rsdix.config import option
from rsdix.data.captions import find_image_dir, read_captions
from rsdix.data.classification import read_label_csv, scan_class_folders
from rsdix.data.images import load_image
from rsdix.data.duplicates import (COSINE_THRESHOLD, Duplicate, exact_duplicates, exclusion_rows, feature_duplicates,
                                pair_counts, phash_duplicates, write_exclusions, write_groups)
from rsdix.data.registry import get_info, source_path
from rsdix.errors import DataError
from rsdix.models.features import FeatureCache, encode_images
from rsdix.models import load_model
from rsdix.paths import cache_dir, data_root
from rsdix.results import write_table

KINDS = ("exact", "phash", "cosine")
FEATURE_PRESET = "rsdix-tiny"   # fixed random weights (seed 0) when no model is given


@dataclass
class LeakageConfig:
    """Settings of notebook 01's audit (``rsdix/configs/leakage/<profile>.yaml``)."""
    max_bits: int = option(4, min=0, max=64)   # pHash bits of 64 within which two images are duplicates
    threshold: float = option(COSINE_THRESHOLD, min=-1, max=1)   # mean-centred feature cosine
    max_per_split: int | None = option(None, min=1)   # images audited per dataset/split (None: all)
    batch_size: int = option(64, min=1)

    def audit_kwargs(self) -> dict:
        return {"max_bits": self.max_bits, "threshold": self.threshold, "max_per_split": self.max_per_split,
                "batch_size": self.batch_size}


def cap_per_split(records: list[tuple[str, str, Path]], cap: int | None) -> tuple[list, list[str]]:
    """At most ``cap`` evenly spaced records of each dataset/split, and a note per cut split."""
    if cap is None:
        return records, []
    by_split: dict[tuple[str, str], list] = {}
    for rec in records:
        by_split.setdefault(rec[:2], []).append(rec)
    out, notes = [], []
    for (dataset, split), recs in by_split.items():
        if len(recs) > cap:
            step = len(recs) / cap
            recs = [recs[int(k * step)] for k in range(cap)]
            notes.append(f"{dataset}/{split}: {cap} of {len(by_split[(dataset, split)])} images audited "
                         f"(max_per_split)")
        out += recs
    return out, notes


class ImageFiles:
    """The images of a list of files, with the interface :func:`rsdix.models.features.encode_images` needs."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = [Path(p) for p in paths]
        self.transform = None

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int):
        return load_image(self.paths[index])

    def filenames(self) -> list[str]:
        return [str(p) for p in self.paths]


def dataset_records(name: str, root: str | os.PathLike | None = None) -> list[tuple[str, str, Path]]:
    """``(dataset, split, image path)`` of every image of registry dataset ``name`` present under
    the data root: a caption set's images in their official splits, a classification set's as ``all``."""
    info = get_info(name)
    path = source_path(name, root)
    if info.kind == "captions":
        images = find_image_dir(path)
        records = [(info.name, r.split, images / r.filename) for r in read_captions(path, allow_empty=True)]
        if not records or not records[0][2].exists():
            raise DataError(images, f"{info.title}: images not found (a captions-only copy?)")
        return records
    paths, _, _ = read_label_csv(path, path.parent / "images") if info.format == "csv" else scan_class_folders(path)
    return [(info.name, "all", Path(p)) for p in paths]


def default_feature_model():
    """rsdix's tiny preset with the random weights of seed 0 (the global RNG left as it was)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return load_model(FEATURE_PRESET)


@dataclass
class LeakageAudit:
    """Duplicate rows of every kind, counts per pair of dataset/split, the exclusion rows, and the
    settings (threshold, bits, feature model) and notes (sets audited once, sets left out)."""
    rows: list[Duplicate]
    counts: pd.DataFrame
    exclusions: list[dict]
    images: dict[str, int]
    settings: dict
    notes: list[str] = field(default_factory=list)
    root: Path | None = None

    def write(self, out: str | os.PathLike) -> dict[str, Path]:
        """``leakage_groups.csv`` (group, dataset, split, file, kind, distance), ``leakage_exclude.csv``
        (``data.exclude`` list: dataset, split, file relative to the data root, reason) and
        ``leakage_counts.csv`` / ``.md``."""
        out = Path(out)
        groups = write_groups(self.rows, out / "leakage_groups.csv")
        exclude = write_exclusions(self.exclusions, out / "leakage_exclude.csv", self.root)
        counts, counts_md = write_table(self.counts, "leakage_counts", out)
        return {"groups": groups, "exclude": exclude, "counts": counts, "counts_md": counts_md}

    def summary(self) -> str:
        lines = [f"images: {self.images}",
                 f"settings: {', '.join(f'{k}={v}' for k, v in self.settings.items())}"]
        lines += [f"note: {n}" for n in self.notes]
        lines.append(self.counts.to_string(index=False) if len(self.counts) else "no duplicates found")
        lines.append(f"{len(self.exclusions)} training image(s) in the exclusion list")
        return "\n".join(lines)


def count_table(rows: list[Duplicate]) -> pd.DataFrame:
    """Duplicate pairs per unordered pair of ``dataset/split`` (``a == b``: within one split), one
    column per kind, sorted by pair."""
    per_kind = {kind: pair_counts([r for r in rows if r.kind == kind]) for kind in KINDS}
    pairs = sorted(set().union(*per_kind.values()))
    return pd.DataFrame([{"a": a, "b": b, **{k: int(per_kind[k].get((a, b), 0)) for k in KINDS}}
                         for a, b in pairs], columns=["a", "b", *KINDS])


def renumber(rows: list[Duplicate], start: int) -> tuple[list[Duplicate], int]:
    """Rows with group numbers shifted to start at ``start`` (groups of all kinds in one CSV)."""
    ids = {g: start + i for i, g in enumerate(dict.fromkeys(r.group for r in rows))}
    out = [Duplicate(ids[r.group], r.dataset, r.split, r.file, r.kind, r.distance) for r in rows]
    return out, start + len(ids)


def leakage_audit(names: Sequence[str], root: str | os.PathLike | None = None, bundle=None,
                  threshold: float = COSINE_THRESHOLD, max_bits: int = 4, cache: FeatureCache | None = None,
                  batch_size: int = 64, skip_missing: bool = False, max_per_split: int | None = None) -> LeakageAudit:
    """The audit of registry datasets ``names`` together (within and across them).

    ``bundle``: the model whose cached image features the cosine part compares (None: the tiny
    preset with fixed random weights); ``cache``: the feature cache (default under the cache
    folder); ``skip_missing``: a dataset absent from the data root is noted and left out, not an error;
    ``max_per_split``: audit at most that many images per dataset/split (:func:`cap_per_split`).
    """
    if not names:
        raise DataError("leakage", "give one or more registry datasets to audit")
    records, notes, by_files = [], [], {}
    for name in names:
        try:
            recs = dataset_records(name, root)
        except DataError as exc:
            if not skip_missing:
                raise
            notes.append(f"{name} left out: {exc}")
            continue
        files = frozenset(p.resolve() for _, _, p in recs)
        same = next((other for other, f in by_files.items() if files <= f), None)
        if same:
            notes.append(f"{name}: the same image files as {same}, audited once (as {same})")
            continue
        by_files[get_info(name).name] = files
        records += recs
    if not records:
        raise DataError("leakage", f"none of {list(names)} is under the data root")
    records, cut = cap_per_split(records, max_per_split)
    notes += cut
    rows, next_group = [], 0
    exact, next_group = renumber(exact_duplicates(records), next_group)
    phash, next_group = renumber(phash_duplicates(records, max_bits), next_group)
    random_model = bundle is None   # the random-weight preset: its cosine groups are look-alikes too
    bundle = bundle if bundle is not None else default_feature_model()
    cache = cache if cache is not None else FeatureCache(cache_dir() / "features")
    feats = encode_images(bundle, ImageFiles([p for _, _, p in records]), cache,
                          dataset_name="leakage:" + "+".join(by_files), split="all", batch_size=batch_size,
                          desc="features for the leakage audit")
    cosine, next_group = renumber(feature_duplicates(records, feats.numpy(), threshold), next_group)
    rows = exact + phash + cosine
    images = {}
    for dataset, split, _ in records:
        images[f"{dataset}/{split}"] = images.get(f"{dataset}/{split}", 0) + 1
    settings = {"phash_max_bits": max_bits, "cosine_threshold": threshold, "max_per_split": max_per_split,
                "feature_model": bundle.name + (" (random weights, seed 0)" if bundle.name == FEATURE_PRESET else "")}
    kinds = ("exact", "phash") if random_model else ("exact", "phash", "cosine")
    settings["exclusion_kinds"] = "+".join(kinds)
    return LeakageAudit(rows, count_table(rows), exclusion_rows(rows, kinds=kinds), images, settings, notes,
                        data_root(root))
