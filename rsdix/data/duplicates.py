"""Leakage audit, exact part: byte-identical images within and across datasets' splits.

Each image is named by a record ``(dataset, split, path)``; files with the same SHA-1 form
one duplicate group (kind ``exact``). Near-duplicates (kind ``phash``): 64-bit pHash
(``imagehash.phash``) within ``max_bits`` Hamming bits (default 4: resized and re-encoded JPEG
copies of a scene land within 0-2 bits, unrelated scenes at ~32). Flips count as duplicates: each
image is also hashed left-right and top-bottom flipped, and the smallest distance is kept.
Feature near-duplicates (kind ``cosine``): mean-centred cosine similarity of given image features
at or above a threshold (:func:`feature_duplicates`; the features come from
:mod:`rsdix.evaluation.leakage`). Exclusion lists (:func:`exclusion_rows`, :func:`write_exclusions`)
name the training images that duplicate an image of another split or dataset; training configs
read them as ``data.exclude: [file.csv]`` (:func:`read_exclusions`).
"""

from __future__ import annotations

import csv
import hashlib
import os
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import imagehash
import numpy as np
from PIL import ImageOps

from rsdix.data.images import load_image
from rsdix.errors import DataError
from rsdix.utils import progress


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
    for dataset, split, path in progress(records, desc="sha1 of the images", unit="image"):
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
    img = load_image(path)   # multispectral GeoTIFFs rendered to true colour; DataError naming the file
    variants = (img, ImageOps.mirror(img), ImageOps.flip(img))
    return np.stack([imagehash.phash(v).hash.ravel() for v in variants])


def phash_duplicates(records: list[tuple[str, str, Path]], max_bits: int = 4) -> list[Duplicate]:
    """Groups of images whose pHash (flip-invariant) differ by at most ``max_bits`` of 64 bits.

    Groups are connected components of the "within max_bits" relation; ``distance`` is the
    smallest Hamming distance of the member to another member.
    """
    if not records:
        return []
    bits = np.stack([phash_bits(p) for _, _, p in progress(records, desc="pHash of the images", unit="image")])
    pairs, nearest = hamming_pairs(bits, max_bits)
    return grouped(records, pairs, nearest, "phash")


def hamming_pairs(bits: np.ndarray, max_bits: int, chunk: int = 2048) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Index pairs ``(i, j)``, ``i < j``, of the (N, 3, 64) hashes (plain, and two flips) whose
    flip-invariant Hamming distance is ``<= max_bits``, and each row's distance to its nearest
    other row (64 for N = 1). Row chunks against all rows, as a float32 product of +-1 codes
    (``64 - a.b = 2 * hamming``): memory ``chunk x N``, not N x N (50k images: 0.4 GB, not 15 GB)."""
    n = len(bits)
    signs = bits.astype(np.float32) * 2.0 - 1.0              # (N, 3, 64): +-1
    plain = signs[:, 0, :]
    nearest = np.full(n, 64.0)
    rows, cols = [], []
    for start in range(0, n, chunk):
        block = plain[start:start + chunk]
        # a pair's distance: the smallest over (flip of j vs plain i) and (plain j vs flip of i)
        dist = np.full((len(block), n), 64.0, dtype=np.float32)
        for v in range(3):
            dist = np.minimum(dist, (64.0 - block @ signs[:, v, :].T) / 2.0)
            dist = np.minimum(dist, (64.0 - signs[start:start + chunk, v, :] @ plain.T) / 2.0)
        dist = np.rint(dist)
        dist[np.arange(len(block)), np.arange(start, start + len(block))] = 64.0
        if n > 1:
            nearest[start:start + len(block)] = dist.min(axis=1)
        i, j = np.nonzero(dist <= max_bits)
        keep = start + i < j
        rows.append(start + i[keep])
        cols.append(j[keep])
    return (np.concatenate(rows), np.concatenate(cols)), nearest


def grouped(records: list[tuple[str, str, Path]], pairs: tuple[np.ndarray, np.ndarray], distance: np.ndarray,
            kind: str) -> list[Duplicate]:
    """Duplicate rows of the connected components (2+ members) of the graph of index ``pairs``
    ``(i, j)``; ``distance[i]``: member i's distance to its nearest other member."""
    parent = list(range(len(records)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*pairs):
        parent[root(int(i))] = root(int(j))
    comps: dict[int, list[int]] = defaultdict(list)
    for i in range(len(records)):
        comps[root(i)].append(i)
    rows: list[Duplicate] = []
    for group, members in enumerate(m for m in comps.values() if len(m) > 1):
        for i in members:
            dataset, split, path = records[i]
            rows.append(Duplicate(group, dataset, split, str(path), kind, float(distance[i])))
    return rows


COSINE_THRESHOLD = 0.999   # mean-centred cosine; resized / re-encoded JPEG copies score >= 0.9994 (tests)


def feature_duplicates(records: list[tuple[str, str, Path]], features, threshold: float = COSINE_THRESHOLD,
                       centre: bool = True, chunk: int = 2048) -> list[Duplicate]:
    """Pairs of images whose feature vectors (one row per record) have cosine similarity
    ``>= threshold`` after subtracting the mean feature (``centre``: a random or weak encoder puts
    every image near one direction; centring spreads them). One group per pair (not connected
    components: similarity chains through runs of uniform images, e.g. sea tiles); ``distance``
    is ``1 - cosine`` of the pair."""
    feats = np.asarray(features, dtype=np.float32)
    if feats.ndim != 2 or len(feats) != len(records):
        raise DataError("leakage", f"{len(feats)} feature rows for {len(records)} images")
    if not np.isfinite(feats).all():
        raise DataError("leakage", "image features hold NaN or infinite values")
    if centre and len(feats) > 1:
        feats = feats - feats.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    feats = feats / np.where(norms > 0, norms, 1.0)
    rows: list[Duplicate] = []
    for start in range(0, len(feats), chunk):      # chunks of rows: 40k images stay within memory
        sims = feats[start:start + chunk] @ feats.T
        for i, j in zip(*np.nonzero(sims >= threshold)):
            a, b = start + int(i), int(j)
            if a < b:
                group, distance = len(rows) // 2, float(1.0 - sims[i, j])
                for k in (a, b):
                    dataset, split, path = records[k]
                    rows.append(Duplicate(group, dataset, split, str(path), "cosine", max(distance, 0.0)))
    return rows


def exclusion_rows(rows: list[Duplicate], train_splits: Sequence[str] = ("train",),
                   kinds: Sequence[str] = ("exact", "phash", "cosine")) -> list[dict]:
    """Training images to leave out: every member of a ``train_splits`` split whose duplicate group
    (of one of ``kinds``) also holds an image of another split or another dataset (one row per file)."""
    groups: dict[tuple[str, int], list[Duplicate]] = defaultdict(list)
    for r in rows:
        if r.kind in kinds:
            groups[(r.kind, r.group)].append(r)
    out: dict[str, dict] = {}
    for (kind, _), members in groups.items():
        for r in members:
            others = {(m.dataset, m.split) for m in members if m.file != r.file} - {(r.dataset, r.split)}
            if r.split in train_splits and others:
                reason = f"{kind} duplicate of " + ", ".join(sorted(f"{d}/{s}" for d, s in others))
                out.setdefault(r.file, {"dataset": r.dataset, "split": r.split, "file": r.file, "reason": reason})
    return list(out.values())


def write_exclusions(rows: list[dict], out: Path, root: str | os.PathLike | None = None) -> Path:
    """An exclusion list (CSV: dataset, split, file, reason), file paths relative to ``root``
    (the data root) where they lie under it, so the list travels with the data."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    base = Path(root).resolve() if root is not None else None
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["dataset", "split", "file", "reason"])
        writer.writeheader()
        for r in rows:
            path = Path(r["file"]).resolve()
            rel = path.relative_to(base) if base is not None and path.is_relative_to(base) else path
            writer.writerow({**r, "file": rel.as_posix()})
    return out


def read_exclusions(paths: Sequence[str | os.PathLike], root: str | os.PathLike | None = None) -> dict[Path, Path]:
    """The image files (resolved paths) named by exclusion lists, each mapped to the list naming it;
    relative paths are under ``root``. A missing file or one without a ``file`` column is a DataError
    naming it."""
    out: dict[Path, Path] = {}
    for p in paths or []:
        p = Path(p)
        if not p.is_file():
            raise DataError(p, "exclusion list not found")
        with p.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if "file" not in (reader.fieldnames or []):
                raise DataError(p, f"exclusion list needs a 'file' column; found {reader.fieldnames}")
            for line, row in enumerate(reader, start=2):
                if not (row["file"] or "").strip():
                    raise DataError(f"{p}:{line}", "blank 'file'")
                f = Path(row["file"])
                out.setdefault((f if f.is_absolute() or root is None else Path(root) / f).resolve(), p)
    return out


def check_exclusions_used(excluded: dict[Path, Path], matched: set[Path], root=None) -> None:
    """After the training images were filtered: an exclusion list none of whose entries named one of
    them is a DataError (paths written on another machine, or for other datasets); one with some
    unmatched entries is a warning with their count and the first ones."""
    lists: dict[Path, list[Path]] = defaultdict(list)
    for image, source in excluded.items():
        lists[source].append(image)
    where = f" (relative entries are taken under the data root {root})" if root is not None else ""
    for source, images in lists.items():
        unmatched = [image for image in images if image not in matched]
        first = ", ".join(str(u) for u in unmatched[:3]) + (", ..." if len(unmatched) > 3 else "")
        if len(unmatched) == len(images):
            raise DataError(source, f"none of its {len(images)} entries is an image of the training data{where}; "
                                    f"written on another machine, or for other datasets? first: {first}")
        if unmatched:
            warnings.warn(f"{source}: {len(unmatched)} of its {len(images)} entries match no training image "
                          f"(other datasets?): {first}", stacklevel=2)
