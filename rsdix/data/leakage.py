"""Leakage audit, exact part: byte-identical images within and across datasets' splits.

Each image is named by a record ``(dataset, split, path)``; files with the same SHA-1 form
one duplicate group (kind ``exact``). Near-duplicates (kind ``phash``): 64-bit pHash
(``imagehash.phash``) within ``max_bits`` Hamming bits (default 4: resized and re-encoded JPEG
copies of a scene land within 0-2 bits, unrelated scenes at ~32). Flips count as duplicates: each
image is also hashed left-right and top-bottom flipped, and the smallest distance is kept. The
feature (cosine) near-duplicate part is not built yet.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageOps

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


def phash_bits(path: Path) -> np.ndarray:
    """(3, 64) bool: pHash of the image, of its left-right flip and of its top-bottom flip."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB") if img.mode not in ("RGB", "L") else img.copy()
    except (OSError, ValueError) as err:
        raise DataError(str(path), f"cannot read image: {err}") from err
    variants = (img, ImageOps.mirror(img), ImageOps.flip(img))
    return np.stack([imagehash.phash(v).hash.ravel() for v in variants])


def phash_duplicates(records: list[tuple[str, str, Path]], max_bits: int = 4) -> list[Duplicate]:
    """Groups of images whose pHash (flip-invariant) differ by at most ``max_bits`` of 64 bits.

    Groups are connected components of the "within max_bits" relation; ``distance`` is the
    smallest Hamming distance of the member to another member.
    """
    if not records:
        return []
    bits = np.stack([phash_bits(p) for _, _, p in records])  # (n, 3, 64)
    plain = bits[:, 0, :].astype(np.int16)
    dist = np.full((len(records), len(records)), 64, dtype=np.int16)
    for v in range(3):
        other = bits[:, v, :].astype(np.int16)
        d = plain @ (1 - other).T + (1 - plain) @ other.T
        dist = np.minimum(dist, np.minimum(d, d.T))
    np.fill_diagonal(dist, 64)
    parent = list(range(len(records)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(dist <= max_bits, 1))):
        parent[root(int(i))] = root(int(j))
    comps: dict[int, list[int]] = defaultdict(list)
    for i in range(len(records)):
        comps[root(i)].append(i)
    rows: list[Duplicate] = []
    for group, members in enumerate(m for m in comps.values() if len(m) > 1):
        for i in members:
            dataset, split, path = records[i]
            rows.append(Duplicate(group, dataset, split, str(path), "phash", float(dist[i].min())))
    return rows
