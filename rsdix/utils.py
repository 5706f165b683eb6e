"""Small shared helpers: seeding, atomic writes, progress bars, hashing, tables."""
from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

import numpy as np
from tqdm.auto import tqdm


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch  # heavy: torch loads only where needed, so the config layer and `rsdix --help` stay light

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover
        pass


def progress(iterable: Iterable | None = None, **kwargs):
    """A tqdm progress bar that works in notebooks and terminals."""
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 1.0)
    if os.environ.get("RSDIX_NO_PROGRESS"):
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    A crash midway leaves the old file (or none), never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def torch_save_atomic(obj, path: str | os.PathLike) -> Path:
    import torch  # heavy: torch loads only where needed, so the config layer and `rsdix --help` stay light

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def stable_hash(obj, n: int = 12) -> str:
    """A short, stable hash of a JSON-able object (config dicts, file lists)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:n]


def file_hash(path: str | os.PathLike, n: int = 12, chunk: int = 1 << 20) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()[:n]


def pick_device(device: str | None = None) -> str:
    import torch  # heavy: torch loads only where needed, so the config layer and `rsdix --help` stay light

    if device:
        return device
    if torch.cuda.is_available():
        return "cuda"
    return "cpu"
