"""Checkpoints of a training run: atomic save and load, the run folder's latest checkpoint, and the
rule for when a checkpoint may be resumed.

A checkpoint records the config snapshot it was trained under. Resuming under another config
would mix two runs: :func:`check_same_run` refuses it, :func:`retire_stale_run` moves such a
run aside so the caller trains anew. What a resume may change (:data:`RESUME_MAY_CHANGE`:
more steps, checkpoint and log intervals, workers, the data root, gradient checkpointing, compile,
where DINO's photometric augmentation runs) does not count.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from rsdix.errors import ConfigError, DataError
from rsdix.log import get_logger
from rsdix.utils import remove_stale_temps, stable_hash, torch_save_atomic

log = get_logger(__name__)

# also how the same run is executed (issue #28: gradient checkpointing after an out-of-memory error,
# torch.compile, where DINO's photometric augmentation runs); checkpoints written before these keys
# existed stay resumable
RESUME_MAY_CHANGE = ("steps", "ckpt_every", "log_every", "num_workers", "data_root", "grad_checkpointing",
                     "compile", "on_device")


def plain(value):
    """``value`` as JSON-able plain types (paths as strings, tuples as lists), so a checkpoint that
    holds it loads with ``weights_only=True``."""
    return json.loads(json.dumps(value, default=str))


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """``torch.save`` to a temporary file, then rename: a crash never leaves a half checkpoint (a
    full disk is a :class:`DataError` naming the folder; the previous checkpoint is kept)."""
    return torch_save_atomic(state, path)


# numpy RNG states of checkpoints written before the RNG states were stored as tensors: plain
# arrays, which torch's restricted unpickler may rebuild (no code runs)
_LEGACY_NUMPY = [np._core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def load_checkpoint(path: str | os.PathLike, map_location="cpu", mmap: bool = False) -> dict:
    """Load a checkpoint with ``weights_only=True`` (tensors and plain values only: a pickle that
    would run code is refused, naming the file); ``mmap=True`` maps the tensors instead of reading
    them (cheap when only the config or step is wanted)."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "checkpoint not found")
    if isinstance(map_location, (str, torch.device)) and torch.device(map_location).type == "cpu":
        map_location = "cpu"  # accelerate's multi-process CPU device is cpu:0, which torch.load cannot map to
    try:
        with torch.serialization.safe_globals(_LEGACY_NUMPY):
            state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        raise DataError(path, "refused: the checkpoint holds objects other than tensors and plain values "
                              "(loading it could run code); retrain, or load only a file you trust") from exc
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds on a damaged file
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise DataError(path, f"not a readable checkpoint, truncated or not a torch file "
                              f"({exc.__class__.__name__}: {first})") from exc
    if not isinstance(state, dict) or "step" not in state:
        raise DataError(path, f"not an rsdix training checkpoint (a {type(state).__name__} without a step)")
    return state


def prepare_run_dir(run_dir: str | os.PathLike, need_bytes: int = 0) -> Path:
    """Before training: create ``run_dir``, check it is writable and has ``need_bytes`` free
    (:class:`DataError` naming the folder otherwise), and remove temporary files killed writes
    left there."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=run_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DataError(run_dir, f"run folder is not writable ({exc.strerror or exc}); checkpoints could "
                                 f"not be saved") from exc
    free = shutil.disk_usage(run_dir).free
    if free < need_bytes:
        raise DataError(run_dir, f"disk full: {free / 2 ** 20:.0f} MB free, a checkpoint needs about "
                                 f"{need_bytes / 2 ** 20:.0f} MB")
    remove_stale_temps(run_dir)
    (run_dir / "train_log.csv.tmp").unlink(missing_ok=True)  # the log's temporary name before atomic_path
    return run_dir


class Checkpointer:
    """``<dir>/checkpoint.pt`` (latest, atomically replaced); ``keep=True`` also keeps
    ``step_<n>.pt`` copies."""

    def __init__(self, directory: str | os.PathLike, keep: bool = False):
        self.dir = Path(directory)
        self.keep = keep

    @property
    def latest(self) -> Path:
        return self.dir / "checkpoint.pt"

    def exists(self) -> bool:
        return self.latest.exists()

    def save(self, state: dict) -> Path:
        path = save_checkpoint(self.latest, state)
        if self.keep:
            save_checkpoint(self.dir / f"step_{state['step']}.pt", state)
        return path

    def load(self, map_location="cpu") -> dict:
        return load_checkpoint(self.latest, map_location)


def _strip_resumable(d: dict) -> dict:
    return {k: _strip_resumable(v) if isinstance(v, dict) else v for k, v in d.items() if k not in RESUME_MAY_CHANGE}


def config_diff(saved: dict, current: dict) -> list[str]:
    """Top-level sections in which two config snapshots differ, ignoring what a resume may change
    (empty when either has no config)."""
    if not saved or not current:
        return []
    a, b = _strip_resumable(saved), _strip_resumable(current)
    return sorted(k for k in set(a) | set(b) if stable_hash(a.get(k)) != stable_hash(b.get(k)))


def check_same_run(saved: dict, current: dict, path) -> None:
    """Resuming under a different configuration would silently mix two runs: refuse."""
    diff = config_diff(saved, current)
    if diff:
        raise ConfigError(f"{path}: checkpoint was written by a different configuration (differs in {diff}); "
                          f"use another run directory or delete it to start over")


def checkpoint_config_differs(path: str | os.PathLike, config_snapshot: dict) -> list[str]:
    """The top-level config sections in which the checkpoint at ``path`` differs from
    ``config_snapshot`` (empty: same run, resumable; also empty when either has no config)."""
    return config_diff(load_checkpoint(path, mmap=True).get("config") or {}, config_snapshot)


def retire_stale_run(run_dir: str | os.PathLike, config_snapshot: dict) -> list[str]:
    """If ``run_dir/checkpoint.pt`` was written under another configuration, move the whole run to
    ``<run_dir>.previous`` (replacing an older one) so the caller trains anew instead of failing
    to resume; returns the sections that changed (empty: nothing moved)."""
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoint.pt"
    changed = checkpoint_config_differs(ckpt, config_snapshot) if ckpt.exists() else []
    if changed:
        stale = run_dir.with_name(run_dir.name + ".previous")
        shutil.rmtree(stale, ignore_errors=True)
        run_dir.rename(stale)
        log.warning(f"{run_dir.name}: the config changed since {ckpt} (in {changed}); training anew, the old run "
                    f"moved to {stale}")
    return changed
