"""Small shared helpers: seeding, atomic writes, progress bars, hashing, tables."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import re
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

import numpy as np
from tqdm.auto import tqdm

from rsdix.errors import DataError


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
    """A tqdm progress bar that works in notebooks and terminals; ``RSDIX_NO_PROGRESS=1`` turns
    every bar off (``0``, ``false``, ``no`` or empty leave them on)."""
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 1.0)
    if progress_disabled():
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)


def progress_disabled() -> bool:
    return os.environ.get("RSDIX_NO_PROGRESS", "").strip().lower() not in ("", "0", "false", "no", "off")


STALE_TMP_SECONDS = 600  # a temporary file unchanged this long is left over from a killed write


def temp_tag() -> str:
    """``<host>-<pid>``: what names a temporary file or folder of this process, so
    :func:`remove_stale_temps` knows whose it is."""
    return f"{socket.gethostname().replace('.', '_')}-{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` left in ``folder`` when a write was killed
    (``.<name>.<host>-<pid>-<random>.tmp``; folders too, such as a killed shard write's
    ``.<name>.partial.<host>-<pid>-<random>.tmp``): those of a process of this host that no longer
    runs, and any unchanged for :data:`STALE_TMP_SECONDS`. Returns the paths removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    host, removed, now = socket.gethostname().replace(".", "_"), [], time.time()
    for tmp in folder.glob(".*.tmp"):
        try:
            owner = re.search(r"\.([^.]+)-(\d+)-[^.]*\.tmp$", tmp.name)
            dead = (owner is not None and owner.group(1) == host and int(owner.group(2)) != os.getpid()
                    and not _pid_alive(int(owner.group(2))))
            if dead or now - tmp.stat().st_mtime > STALE_TMP_SECONDS:
                if tmp.is_dir() and not tmp.is_symlink():
                    shutil.rmtree(tmp)
                else:
                    tmp.unlink()
                removed.append(tmp)
        except OSError:  # gone meanwhile, or not ours to delete
            continue
    return removed


def disk_full_error(folder: str | os.PathLike, name: str) -> DataError:
    folder = Path(folder)
    try:
        free = f"{shutil.disk_usage(folder).free / 2 ** 20:.0f} MB free"
    except OSError:
        free = "free space unknown"
    return DataError(folder, f"disk full while writing {name} ({free}); the previous file is kept: "
                             f"free some space and run again")


def current_umask() -> int:
    """The process's umask (read from /proc where it can be, so no other thread sees it change)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def with_umask_mode(path: str | os.PathLike, directory: bool = False) -> Path:
    """Give ``path`` the mode a plain ``open()`` / ``mkdir()`` would: 0666 (folders 0777) less
    the umask. ``tempfile.mkstemp`` makes 0600 files and ``mkdtemp`` 0700 folders, which would
    keep colleagues on a shared machine from reading tables, checkpoints and models."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())
    return Path(path)


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically,
    with the mode the user's umask gives a new file.

    A crash midway leaves the old file (or none), never a half-written one; a full disk is a
    :class:`DataError` naming the folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{temp_tag()}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with_umask_mode(tmp)   # the user's umask, as for any file they write (mkstemp: 0600)
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise disk_full_error(path.parent, path.name) from exc
        raise
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
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:  # torch's zip writer reports a failed write as "unexpected pos ..."
            if "unexpected pos" in str(exc) or "file write failed" in str(exc):
                raise disk_full_error(Path(path).parent, Path(path).name) from exc
            raise
    return Path(path)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks: the one file hash of the package
    (provenance, split manifests, zoo downloads, stand-in blobs)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stable_hash(obj, n: int = 12) -> str:
    """A short, stable hash of a JSON-able object (config dicts, file lists)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:n]


def pick_device(device: str | None = None) -> str:
    import torch  # heavy: torch loads only where needed, so the config layer and `rsdix --help` stay light

    if device:
        return device
    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


@contextmanager
def tf32_matmul(enabled: bool = True):
    """Inside the block, float32 matrix products and convolutions on CUDA use TF32 tensor cores
    (10-bit mantissa inputs, float32 accumulation: ~1e-3 relative error per product, several times
    faster); a no-op without CUDA. Evaluation (feature encoding, the quick check) and caption
    decoding run under it; training keeps its own precision (``loop.precision``). The previous
    settings are restored afterwards."""
    import torch  # heavy: torch loads only where needed, so the config layer and `rsdix --help` stay light

    if not torch.cuda.is_available():
        yield
        return
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """True if the model hub answers (a quick TCP probe, so offline runs fail in seconds)."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False
