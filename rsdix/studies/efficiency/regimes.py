"""The study's two regimes. ``scratch``: every run starts from random image-tower weights, so RSDiX's
teacher is the EMA of an untrained tower. ``pretrained``: stage 1 trains a CLIP with InfoNCE on a
*source* pool of training images (:class:`~rsdix.studies.efficiency.design.PretrainConfig`: half of every
class's, or some classes') to its validation plateau; stage 2 fine-tunes it on the *target* pool (the
other training images) in every arm, so the teacher's similarities already mean something on the first
step. No evaluation image (validation, test, zero-shot) is in either pool.

    split = class_split(cfg, data_root)          # source / target pools and their image files
    ctx.regime = prepare_regime(ctx)             # stage 1 (resumable, one process), the teacher's score

Runs of the pretrained regime are named ``pt-<arm>_frac<f>_s<seed>`` (:func:`run_prefix`).
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from math import comb
from pathlib import Path

import pandas as pd

from rsdix.data.captions import read_captions_dropping_empty, select_split
from rsdix.data.registry import caption_file
from rsdix.errors import DataError
from rsdix.log import get_logger
from rsdix.studies.efficiency.design import EfficiencyConfig
from rsdix.studies.efficiency.endpoints import read_labels
from rsdix.utils import atomic_path

log = get_logger(__name__)

PRETRAIN_CURVE_CSV, PRETRAIN_SCORE_CSV = "pretrain_curve.csv", "pretrain_score.csv"
PRETRAIN_RUN = "pt-pretrain"


def run_prefix(cfg: EfficiencyConfig) -> str:
    """``pt-`` for the pretrained regime's runs (their rows share the runs table with the scratch ones)."""
    return "pt-" if cfg.regime == "pretrained" else ""


@dataclass
class ClassSplit:
    """Source and target classes of a caption dataset and their image file names."""
    source: list
    target: list
    files: dict = field(default_factory=dict)     # "source" / "target" -> set of image file names


def class_split(cfg: EfficiencyConfig, data_root=None) -> ClassSplit:
    """The source and target pools of ``cfg.pretrain``: by classes (the source classes' training images and
    the rest) or by images (a seeded ``source_share`` of every class's training images and the rest)."""
    pre = cfg.pretrain
    labels = read_labels(pre.dataset, pre.labels, data_root)
    classes = sorted(set(labels.values()))
    if pre.split == "images":
        path = caption_file(pre.dataset, data_root)
        train = [r.filename for r in select_split(read_captions_dropping_empty(path), "train", path)]
        missing = sorted(set(train) - set(labels))[:3]
        if missing:
            raise DataError(pre.labels, f"no class for training images {missing}")
        source = set()
        for c in classes:
            mine = sorted(f for f in train if labels[f] == c)
            random.Random(f"pool-{pre.split_seed}-{c}").shuffle(mine)
            source |= set(mine[:round(pre.source_share * len(mine))])
        return ClassSplit(classes, classes, {"source": source, "target": set(train) - source})
    unknown = sorted(set(pre.source_classes) - set(classes))
    if unknown:
        raise DataError(pre.labels, f"pretrain.source_classes: unknown classes {unknown}; known {classes}")
    source = sorted(pre.source_classes)
    target = [c for c in classes if c not in source]
    files = {"source": {f for f, c in labels.items() if c in source},
             "target": {f for f, c in labels.items() if c in target}}
    return ClassSplit(source, target, files)


def write_exclusions(split: ClassSplit, cfg: EfficiencyConfig, folder: Path, data_root=None) -> dict:
    """Exclusion lists (``data.exclude``) that keep one side: ``{"source": <list leaving only source
    images>, "target": <list leaving only target images>}``, absolute image paths."""
    image_dir = caption_file(cfg.pretrain.dataset, data_root).parent / "images"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for keep, drop in (("source", "target"), ("target", "source")):
        path = folder / f"only_{keep}_{cfg.pretrain.split}.csv"
        frame = pd.DataFrame({"file": sorted(str((image_dir / f).resolve()) for f in split.files[drop])})
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)
        out[keep] = str(path)
    return out


@dataclass
class RegimeState:
    """What the runs of a regime add to their training config (``train`` overrides: the pretrained
    weights, the target pool) and to their check (``keep``: classes -> image files)."""
    overrides: dict = field(default_factory=dict)
    keep: dict = field(default_factory=dict)
    split: ClassSplit | None = None
    source_exclude: list = field(default_factory=list)   # the exclusion list leaving only the source pool


def regime_state(cfg: EfficiencyConfig, run_dir: Path, data_root=None) -> RegimeState:
    """The scratch regime adds nothing; the pretrained regime fine-tunes stage 1's weights (or the base
    config's ``pretrained`` ones when stage 1 is off) on the target pool."""
    if cfg.regime != "pretrained" or not cfg.pretrain.enabled:
        return RegimeState()
    split = class_split(cfg, data_root)
    lists = write_exclusions(split, cfg, run_dir / "data", data_root)
    weights = pretrained_weights(run_dir)
    return RegimeState(overrides={"pretrained": str(weights), "data": {"exclude": [lists["target"]]}},
                       keep={"source": split.files["source"], "target": split.files["target"]}, split=split,
                       source_exclude=[lists["source"]])


def pretrained_weights(run_dir: Path) -> Path:
    return Path(run_dir) / "models" / f"{PRETRAIN_RUN}_s0" / "open_clip_model.safetensors"


def pretrain_overrides(cfg: EfficiencyConfig, state: RegimeState) -> dict:
    """Stage 1's training overrides: InfoNCE on the source pool, its own lr, length and seed, no
    pretrained weights."""
    over = {k: v for k, v in cfg.train.items()}
    over["loss"] = {**over.get("loss", {}), "method": "infonce"}
    over["data"] = {**over.get("data", {}), "exclude": list(state.source_exclude), "fraction": 1.0,
                    "cache_images": False}
    over["loop"] = {**over.get("loop", {}), "seed": cfg.pretrain.seed, "steps": cfg.pretrain.steps,
                    "lr": cfg.pretrain.lr, "ckpt_every": 0, "save_at_end": False}
    over["epochs"] = None
    return over


def chance_mR(n_images: int, captions_per_image: list[int], ks=(1, 5, 10)) -> float:
    """The expected mR (percent) of random scores: text->image R@k = k / n_images; image->text R@k = 1 -
    C(T - c, k) / C(T, k) for an image with c of the T captions."""
    total = sum(captions_per_image)
    t2i = [100.0 * min(k, n_images) / n_images for k in ks]
    i2t = [100.0 * sum(1 - comb(total - c, k) / comb(total, k) for c in captions_per_image) / len(captions_per_image)
           for k in ks]
    return float(sum(t2i + i2t) / (2 * len(ks)))


def wait_for(path: Path, what: str, poll_s: float = 30.0, timeout_s: float = 6 * 3600) -> None:
    """Wait until ``path`` exists (another worker makes it)."""
    start = time.time()
    while not Path(path).exists():
        if time.time() - start > timeout_s:
            raise DataError(path, f"waited {timeout_s / 3600:.0f} h for {what} from another worker")
        log.info(f"waiting for {what} ({path}) from another worker")
        time.sleep(poll_s)
