"""Train/val/test splits without leakage, and the Karpathy JSON export.

Neighbouring patches share land cover, roads and rivers; splits are assigned by scene or by
spatial block (:func:`assign_splits`, :func:`spatial_groups`) so that neighbours never straddle
two splits (:func:`split_leakage` counts the pairs that do); :func:`export_karpathy` writes
validated records as Karpathy JSON.
"""
from __future__ import annotations

import os
import random
import re
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from rsdix.data.captions import CaptionRecord, read_karpathy, write_karpathy
from rsdix.errors import DataError
from rsdix.s2.caption_files import validate_captions


DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)   # RSDiX's TRAIN/VAL split percentages (80, 10, rest)


def scene_of(filename: str) -> str:
    """The scene a patch comes from, from its file name: ``<scene>_r00000_c00224.png`` (this
    module's patches) or ``S2A_L1C_20150925_N0204R065_2329.tif`` (S2LCD: scene, then an index)."""
    stem = Path(filename).stem
    m = re.match(r"^(.*)_r\d+_c\d+$", stem)
    if m:
        return m.group(1)
    return stem.rsplit("_", 1)[0] if "_" in stem else stem


def spatial_groups(table: pd.DataFrame, block_m: float) -> pd.Series:
    """A group per patch: the ``block_m`` x ``block_m`` metre block (in the patch's CRS) holding
    its centre. Splitting by block keeps neighbours together except across block edges."""
    cx = (table["left"] + table["right"]) / 2
    cy = (table["bottom"] + table["top"]) / 2
    return (table["crs"].astype(str) + ":" + np.floor(cx / block_m).astype(int).astype(str) + ":"
            + np.floor(cy / block_m).astype(int).astype(str))


def assign_splits(records: Sequence[CaptionRecord], groups: dict[str, str] | None = None,
                  fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0,
                  names: Sequence[str] = ("train", "val", "test")) -> list[CaptionRecord]:
    """Give every record a split so that all records of a group share it.

    ``groups`` maps filename -> group (scene, spatial block, location); default: the scene from
    the file name (:func:`scene_of`). Groups go, largest first (ties in an order shuffled with
    ``seed``), to the split that brings the image counts closest (least squares) to
    ``fractions``, so shares approach ``fractions`` as closely as whole groups allow. Returns new
    records (the input is not modified).
    """
    if len(fractions) != len(names) or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"fractions must be {len(names)} non-negative numbers summing to 1, got {fractions}")
    group_of = {r.filename: (groups.get(r.filename) if groups is not None else scene_of(r.filename)) for r in records}
    missing = [r.filename for r in records if group_of[r.filename] is None]
    if missing:
        raise DataError(missing[0], "no group for this image")
    sizes = Counter(group_of.values())
    order = sorted(sizes)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda g: -sizes[g])           # largest groups first; ties in seeded order
    total = sum(sizes.values())
    target = {n: f * total for n, f in zip(names, fractions)}
    assigned = dict.fromkeys(names, 0)
    split_of = {}

    def error(n, size):   # squared distance to the target counts after putting ``size`` into ``n``
        return sum((assigned[m] + (size if m == n else 0) - target[m]) ** 2 for m in names)

    for g in order:
        best = min(names, key=lambda n: (error(n, sizes[g]), names.index(n)))
        split_of[g] = best
        assigned[best] += sizes[g]
    return [CaptionRecord(r.filename, split_of[group_of[r.filename]], list(r.captions), list(r.langs),
                          r.image_id, dict(r.meta) | {"group": group_of[r.filename]}) for r in records]


def split_leakage(table: pd.DataFrame, split_col: str = "split") -> int:
    """Pairs of patches that touch or overlap (same CRS, bounds intersecting or sharing an edge)
    but sit in different splits: 0 means no neighbour leaks across splits."""
    t = table.reset_index(drop=True)
    leaks = 0
    for _, g in t.groupby("crs"):
        b = g[["left", "bottom", "right", "top"]].to_numpy()
        s = g[split_col].to_numpy()
        for i in range(len(g)):
            touch = ((b[i + 1:, 0] <= b[i, 2]) & (b[i + 1:, 2] >= b[i, 0])
                     & (b[i + 1:, 1] <= b[i, 3]) & (b[i + 1:, 3] >= b[i, 1]))
            leaks += int((touch & (s[i + 1:] != s[i])).sum())
    return leaks


def export_karpathy(records: Sequence[CaptionRecord], path: str | os.PathLike, dataset: str = "s2lcd",
                    validate: bool = True, expected: int | None = None) -> Path:
    """Write Karpathy JSON after validation (problems raise a :class:`DataError`); every record
    must have a split. Reads the file back to check it."""
    for r in records:
        if r.split not in ("train", "val", "test"):
            raise DataError(f"{path} ({r.filename})", f"split {r.split!r} is not train/val/test; run assign_splits")
    if validate:
        validate_captions(records, expected=expected, source=path).raise_if_bad()
    out = write_karpathy(records, path, dataset=dataset)
    back = read_karpathy(out)
    if [(r.filename, r.captions) for r in back] != [(r.filename, list(r.captions)) for r in records]:
        raise DataError(out, "written file does not read back to the same captions")
    return out


def leakage_table(patches: pd.DataFrame, fractions: Sequence[float] = DEFAULT_FRACTIONS, block_m: float = 5000.0,
                  seed: int = 0) -> pd.DataFrame:
    """Leaking neighbour pairs (:func:`split_leakage`) and split sizes of the kept patches under three
    strategies: a random image split (as RSDiX), by scene, and by ``block_m`` spatial block."""
    kept_table = patches[patches.status == "kept"].reset_index(drop=True)
    kept_recs = [CaptionRecord(f, "", ["-"]) for f in kept_table.filename]
    rng = np.random.default_rng(seed)
    strategies = {
        "random image split (as RSDiX)": rng.choice(["train", "val", "test"], len(kept_table), p=list(fractions)),
        "by scene": [r.split for r in assign_splits(kept_recs, fractions=fractions, seed=seed)],
        f"by {block_m / 1000:g} km block": [r.split for r in assign_splits(
            kept_recs, dict(zip(kept_table.filename, spatial_groups(kept_table, block_m))),
            fractions=fractions, seed=seed)],
    }
    rows = []
    for name, split in strategies.items():
        kept_table["split"] = split
        sizes = kept_table.split.value_counts()
        rows.append(dict(strategy=name, leaking_neighbour_pairs=split_leakage(kept_table),
                         **{s: int(sizes.get(s, 0)) for s in ("train", "val", "test")}))
    return pd.DataFrame(rows)


def split_table(records: Sequence[CaptionRecord]) -> pd.DataFrame:
    """One row per record: file name, split, the group it was split by (its scene) and caption count."""
    return pd.DataFrame([(r.filename, r.split, r.meta["group"], len(r.captions)) for r in records],
                        columns=["filename", "split", "scene", "captions"])
