"""File manifests: the exact list of files an evaluation read, one SHA-256 per file, and one hash of
the whole list. Two labs whose rows carry the same manifest hash scored the same bytes.

    frame = build_manifest(paths, labels, root)        # path (relative to root), label, sha256, bytes
    write_manifest(frame, "whu_rs19.all.csv", {"dataset": "whu_rs19"})   # -> the manifest hash
    manifest_hash(read_manifest("whu_rs19.all.csv"))

The hash covers each file's relative path (``/``-separated), label and content hash, sorted by path,
so it does not depend on where the data root is or on the order files were listed in.
"""
from __future__ import annotations

import hashlib
import io
import os
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import pandas as pd

from rsdix.errors import DataError
from rsdix import utils
from rsdix.utils import atomic_write_text

COLUMNS = ["path", "label", "sha256", "bytes"]
HASH_KEY = "manifest_sha256"


@lru_cache(maxsize=200_000)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return utils.file_sha256(path)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (remembered per path, size and modification time in this process)."""
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise DataError(path, "file listed for evaluation not found") from None
    return _digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def relative(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """``path`` relative to ``root`` with ``/`` separators (``..`` where it lies outside)."""
    return Path(os.path.relpath(Path(path).resolve(), Path(root).resolve())).as_posix()


def build_manifest(paths: Sequence, labels: Sequence[str] | None, root: str | os.PathLike) -> pd.DataFrame:
    """One row per file: ``path`` relative to ``root``, ``label`` (blank when None), ``sha256``, ``bytes``."""
    labels = [""] * len(paths) if labels is None else [str(label) for label in labels]
    if len(labels) != len(paths):
        raise DataError("manifest", f"{len(labels)} labels for {len(paths)} files")
    rows = [{"path": relative(p, root), "label": label, "sha256": file_sha256(p), "bytes": Path(p).stat().st_size}
            for p, label in zip(paths, labels)]
    return pd.DataFrame(rows, columns=COLUMNS)


def manifest_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of the sorted ``path<TAB>label<TAB>sha256`` lines: the manifest's identity."""
    lines = sorted(f"{p}\t{'' if pd.isna(label) else label}\t{s}\n"
                   for p, label, s in zip(frame["path"], frame["label"], frame["sha256"]))
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def write_manifest(frame: pd.DataFrame, path: str | os.PathLike, header: dict | None = None) -> str:
    """Write ``frame`` as CSV under ``# key: value`` comment lines (``header``, then the hash);
    returns the manifest hash."""
    digest = manifest_hash(frame)
    lines = [f"# {key}: {value}" for key, value in (header or {}).items()] + [f"# {HASH_KEY}: {digest}"]
    body = io.StringIO()
    frame[COLUMNS].to_csv(body, index=False)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(path), "\n".join(lines) + "\n" + body.getvalue())
    return digest


def read_manifest(path: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """``(rows, header)`` of a manifest file; a file whose rows do not give its recorded hash is
    one DataError (edited by hand, or truncated)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "manifest file not found")
    text = path.read_text(encoding="utf-8")
    header = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        key, _, value = line[1:].partition(":")
        header[key.strip()] = value.strip()
    frame = pd.read_csv(io.StringIO(text), comment="#", dtype={"label": str}, keep_default_na=False)
    if list(frame.columns) != COLUMNS:
        raise DataError(path, f"expected columns {COLUMNS}, found {list(frame.columns)}")
    if header.get(HASH_KEY) and header[HASH_KEY] != manifest_hash(frame):
        raise DataError(path, f"rows do not give the recorded {HASH_KEY} (edited or truncated)")
    return frame, header


def compare_manifest(frame: pd.DataFrame, expected: pd.DataFrame) -> str | None:
    """What differs between two manifests (files only in one, files whose bytes differ), or None."""
    a, b = dict(zip(frame["path"], frame["sha256"])), dict(zip(expected["path"], expected["sha256"]))
    only_here, only_there = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    changed = sorted(p for p in set(a) & set(b) if a[p] != b[p])
    parts = [f"{label} ({len(items)}): {', '.join(items[:3])}{', ...' if len(items) > 3 else ''}"
             for label, items in (("not in the expected list", only_here), ("missing", only_there),
                                  ("different bytes", changed)) if items]
    return "; ".join(parts) or None
