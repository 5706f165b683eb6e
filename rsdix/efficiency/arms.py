"""One arm of the study: its training config and its run, and the pairing of arms by seed.

Seed ``s`` gives every arm the same initial weights (:func:`rsdix.training.clip.build_model` seeds
before building), the same image subset (:func:`rsdix.training.clip_data.subset_records` draws it
from the seed alone) and the same data order (:class:`rsdix.training.data_order.BatchPlan` and
:class:`~rsdix.training.data_order.SeededView` draw batches, augmentation and caption choice from
the seed alone); :func:`pairing_fingerprint` shows it and ``tests/test_efficiency_pairing.py`` checks it.
The arms differ only in the objective (and the DINO arm in its extra views and its length).
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from rsdix.config import to_dict
from rsdix.efficiency.config import ARM_METHODS, EfficiencyConfig
from rsdix.efficiency.shared import SharedCaches
from rsdix.errors import DataError
from rsdix.training.clip import ClipTrainConfig, build_model, load_clip_config
from rsdix.training.clip_data import ClipCollate, build_train_dataset
from rsdix.training.clip_objectives import ClipObjective
from rsdix.training.data_order import BatchPlan, SeededView
from rsdix.training.dino import ClipWithDino, DinoTerm, ViewsCollate
from rsdix.training.loop import fit


def run_name(arm: str, fraction: float, seed: int) -> str:
    """``rsdix_frac0.1_s3`` (the palette reads the arm from it)."""
    return f"{arm}_frac{fraction:g}_s{seed}"


def arm_config(cfg: EfficiencyConfig, arm: str, fraction: float, seed: int, data_root=None,
               steps: int | None = None) -> ClipTrainConfig:
    """The training config of ``arm`` at data share ``fraction`` and seed ``seed``: the study's base
    config and overrides, the arm's method (and DINO section), the share's length (or ``steps``)."""
    method, dino = ARM_METHODS[arm]
    overrides = {**cfg.train}
    overrides["loss"] = {**overrides.get("loss", {}), "method": method}
    overrides["data"] = {**overrides.get("data", {}), "fraction": float(fraction), "cache_images": False,
                         **({"data_root": str(data_root)} if data_root else {})}
    overrides["loop"] = {**overrides.get("loop", {}), "seed": int(seed), "ckpt_every": 0,
                         "steps": int(steps or cfg.steps_for(fraction))}
    if dino:
        overrides["dino"] = {**cfg.dino, "enabled": True}
    overrides["epochs"] = None
    return load_clip_config(cfg.train_profile, **overrides)


def build_arm(cfg: ClipTrainConfig, shared: SharedCaches):
    """Model bundle (seeded), training dataset (shared image cache), objective, collate and the
    objective's step callbacks of a training config, as :func:`rsdix.training.clip.train_clip`
    builds them, with the process's shared caches."""
    bundle = build_model(cfg)
    shared.install(bundle)
    dataset = build_train_dataset(cfg, bundle)
    shared.cache_images(dataset, int(round(bundle.image_size * 1.15)))
    sbert = shared.sbert if cfg.loss.method == "rsdix-sbert" else None
    objective = ClipObjective(cfg.loss, sbert=sbert)
    collate, callbacks = ClipCollate(bundle.tokenizer), []
    if cfg.dino.enabled:
        dino = DinoTerm(bundle.model, bundle.embed_dim, cfg.dino, cfg.loop.steps)
        objective = ClipWithDino(objective, dino, cfg.dino.weight)
        collate, callbacks = ViewsCollate(bundle.tokenizer), [dino.after_step]
    return bundle, dataset, objective, collate, callbacks


def train_arm(cfg: ClipTrainConfig, shared: SharedCaches, callbacks=(), desc: str = "train", watch=None):
    """Train one arm (no checkpoints: a study run is short; an interrupted one is trained again).
    ``watch(bundle, step, logs)``, if given, runs after every step with the bundle being trained.
    Returns ``(fit result, bundle with the trained model)``."""
    bundle, dataset, objective, collate, own = build_arm(cfg, shared)
    if watch is not None:
        callbacks = [*callbacks, lambda step, logs: watch(bundle, step, logs)]
    res = fit(bundle.model, objective, dataset, cfg.loop, collate_fn=collate, callbacks=[*own, *callbacks],
              desc=desc, config_snapshot=to_dict(cfg))
    bundle.model = res.model
    return res, bundle


def timed_steps(cfg: ClipTrainConfig, shared: SharedCaches, steps: int) -> float:
    """Seconds per optimizer step of ``cfg`` over ``steps`` steps, the first two (warm-up of caches
    and allocators) left out: sizes the DINO arm to another arm's wall-clock time."""
    probe = dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, steps=steps + 2))
    marks = []
    train_arm(probe, shared, callbacks=[lambda step, logs: marks.append(time.perf_counter())], desc="time a step")
    return (marks[-1] - marks[1]) / max(1, len(marks) - 2)


def equal_time_steps(seconds: float, seconds_per_step: float, floor: int = 1) -> int:
    """Steps that fit ``seconds`` at ``seconds_per_step`` (at least ``floor``)."""
    return max(floor, int(math.floor(seconds / seconds_per_step)))


def trainable_state(model: torch.nn.Module) -> dict:
    """The weights a study run changes (the image tower, projections, temperatures), in bf16:
    a locked text trunk is the same pretrained MiniLM in every run and is left out."""
    trunk = {id(p) for p in getattr(getattr(model, "text", None), "transformer", torch.nn.Module()).parameters()}
    return {k: v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict(keep_vars=True).items()
            if id(v) not in trunk}


def save_weights(model: torch.nn.Module, path: str | Path, meta: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(model), str(path), metadata={k: str(v) for k, v in meta.items()})
    return path


def load_weights(model: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Put the weights :func:`save_weights` wrote into ``model`` (built from the run's config: its
    locked text trunk is the pretrained one); any other missing or unknown key is an error."""
    state = load_file(str(path))
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    missing = sorted(set(trainable_state(model)) - set(state))
    if unknown or missing:
        raise DataError(path, f"weights do not fit this model: unknown {unknown[:3]}, missing {missing[:3]}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=False)
    return model


def _digest(tensors) -> str:
    h = hashlib.sha1()
    for t in tensors:
        h.update(t.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def pairing_fingerprint(cfg: ClipTrainConfig, shared: SharedCaches | None = None, batches: int = 3) -> dict:
    """What pairing promises, as digests: the initial weights of the model, the image subset (file
    names), the first ``batches`` batches' indices, and the images and captions of the first batch
    (augmentation and caption draw included). Arms with the same seed give equal digests."""
    shared = shared or SharedCaches()
    bundle, dataset, _, collate, _ = build_arm(cfg, shared)
    plan = BatchPlan(len(dataset), cfg.loop.batch_size, seed=cfg.loop.seed, start=0, stop=batches)
    order = [pair for batch in plan for pair in batch]
    view = SeededView(dataset, cfg.loop.seed)
    first = [view[key] for key in order[:cfg.loop.batch_size]]
    images = torch.stack([x[0] for x in first]) if torch.is_tensor(first[0][0]) else None  # DINO: views
    parts = []
    for p in getattr(dataset, "datasets", [dataset]):
        parts += [r.filename for r in p.records]
    return {"weights": _digest(bundle.model.state_dict().values()),
            "subset": hashlib.sha1("|".join(parts).encode()).hexdigest()[:16],
            "order": hashlib.sha1(repr(order).encode()).hexdigest()[:16],
            "images": _digest([images]) if images is not None else None,
            "captions": hashlib.sha1("|".join(x[1] for x in first).encode()).hexdigest()[:16]}
