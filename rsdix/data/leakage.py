"""Leakage audit, exact part: byte-identical images within and across datasets' splits.

Each image is named by a record ``(dataset, split, path)``; files with the same SHA-1 form
one duplicate group. The perceptual-hash and feature near-duplicate parts are not built yet.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from rsdix.errors import DataError


@dataclass(frozen=True)
class Duplicate:
    """One member of a duplicate group."""

    group: int
    dataset: str
    split: str
    file: str
    kind: str
    distance: float


def file_sha1(path: Path) -> str:
    """SHA-1 of a file's bytes; a missing file is a DataError naming it."""
    try:
        return hashlib.sha1(Path(path).read_bytes()).hexdigest()
    except OSError as err:
        raise DataError(str(path), f"cannot read image: {err.strerror or err}") from err


def exact_duplicates(records: list[tuple[str, str, Path]]) -> list[Duplicate]:
    """Groups of byte-identical files among ``(dataset, split, path)`` records (groups of 2+)."""
    by_hash: dict[str, list[tuple[str, str, Path]]] = defaultdict(list)
    for dataset, split, path in records:
        by_hash[file_sha1(path)].append((dataset, split, path))
    rows: list[Duplicate] = []
    members = [m for m in by_hash.values() if len(m) > 1]
    for group, member_list in enumerate(members):
        for dataset, split, path in member_list:
            rows.append(Duplicate(group, dataset, split, str(path), "exact", 0.0))
    return rows


def pair_counts(rows: list[Duplicate]) -> Counter:
    """Number of duplicate file pairs per unordered pair of ``dataset/split``."""
    groups: dict[int, list[Duplicate]] = defaultdict(list)
    for row in rows:
        groups[row.group].append(row)
    counts: Counter = Counter()
    for members in groups.values():
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                key = tuple(sorted((f"{a.dataset}/{a.split}", f"{b.dataset}/{b.split}")))
                counts[key] += 1
    return counts


def write_groups(rows: list[Duplicate], out: Path) -> Path:
    """Write the groups as CSV: group, dataset, split, file, kind, distance."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["group", "dataset", "split", "file", "kind", "distance"])
        for r in rows:
            writer.writerow([r.group, r.dataset, r.split, r.file, r.kind, r.distance])
    return out
