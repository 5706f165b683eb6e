"""Experiment tracking: a run's logged rows to TensorBoard and/or Weights & Biases.

``loop.report_to: [tensorboard, wandb]`` (none by default) in any training config; :func:`fit`
(CLIP, DINO, the captioner, the studies' runs: every loop goes through it) opens the trackers on
the main process and sends each logged row (the loss terms, lr, images/s, EMA decay; the same
numbers as ``train_log.csv``) at its step. accelerate's tracker classes do the writing. Without a
W&B key (``WANDB_API_KEY`` unset and no ``WANDB_MODE``) W&B runs offline: ``wandb sync`` uploads
later. Look at the curves with ``tensorboard --logdir <run folder>/tracking`` (docs/training.md).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from accelerate.tracking import TensorBoardTracker, WandBTracker

from rsdix.errors import ConfigError

TRACKERS = ("tensorboard", "wandb")


def check_trackers(names) -> list[str]:
    """``names`` as a list, each one of :data:`TRACKERS` (a ConfigError naming the unknown one)."""
    names = [names] if isinstance(names, str) else list(names or [])
    for name in names:
        if name not in TRACKERS:
            raise ConfigError(f"report_to: {name!r} is not a tracker; expected any of {list(TRACKERS)}")
    return names


class Trackers:
    """The trackers of one run (none: every call does nothing)."""

    def __init__(self, names, run_name: str, logging_dir: str | os.PathLike, config: dict | None = None):
        self.trackers = []
        for name in check_trackers(names):
            try:
                if name == "tensorboard":
                    tracker = TensorBoardTracker(run_name, Path(logging_dir))
                else:
                    if not os.environ.get("WANDB_API_KEY") and "WANDB_MODE" not in os.environ:
                        os.environ["WANDB_MODE"] = "offline"   # no key: a local run, `wandb sync` later
                    os.environ.setdefault("WANDB_DIR", str(logging_dir))
                    Path(logging_dir).mkdir(parents=True, exist_ok=True)
                    tracker = WandBTracker(run_name)
            except ImportError as exc:   # accelerate checks the library when a tracker starts
                raise ConfigError(f"loop.report_to: {name} is not installed ({exc}); "
                                  f"pip install 'rsdix[tracking]' or remove it from report_to") from None
            if hasattr(tracker, "start"):   # accelerate >= 1.2 starts a tracker on the main process only
                tracker.start()
            if config:
                tracker.store_init_configuration(_flat(config))
            self.trackers.append(tracker)

    def log(self, row: dict, step: int) -> None:
        values = {k: float(v) for k, v in row.items()
                  if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        for tracker in self.trackers:
            tracker.log(values, step=step)

    def finish(self) -> None:
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []


def _flat(config: dict, prefix: str = "") -> dict:
    """Nested config -> ``{"loop.lr": 5e-4, ...}`` of scalars (what both trackers accept)."""
    out = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out[key] = v
        else:
            out[key] = str(v)
    return out
