"""One arm of the study: its training config and setup (:func:`rsdix.training.clip.build_setup` with the
process's shared caches), and the pairing of arms by seed.

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

import torch

from rsdix.config import deep_update
from rsdix.studies.efficiency.design import EfficiencyConfig
from rsdix.studies.efficiency.shared import SharedCaches
from rsdix.training.clip import ClipSetup, ClipTrainConfig, build_model, build_setup, load_clip_config, train_clip
from rsdix.training.clip_data import build_train_dataset
from rsdix.training.data_order import BatchPlan, SeededView


def arm_config(cfg: EfficiencyConfig, arm: str, fraction: float, seed: int, data_root=None,
               steps: int | None = None, extra: dict | None = None) -> ClipTrainConfig:
    """The training config of ``arm`` at data share ``fraction`` and seed ``seed``: the study's base
    config and overrides, ``extra`` (the regime's: pretrained weights, the target pool; the arm's lr),
    the arm's method and loss overrides (and DINO section), the share's length (or ``steps``)."""
    spec = cfg.arm_spec(arm)
    method, dino = spec.method, spec.dino
    overrides = deep_update(cfg.train, extra or {})
    overrides["loss"] = {**overrides.get("loss", {}), **spec.loss, "method": method}
    overrides["data"] = {**overrides.get("data", {}), "fraction": float(fraction), "cache_images": False,
                         **({"data_root": str(data_root)} if data_root else {})}
    overrides["loop"] = {**overrides.get("loop", {}), "seed": int(seed), "ckpt_every": 0, "save_at_end": False,
                         "steps": int(steps or cfg.steps_for(fraction))}
    if dino:
        overrides["dino"] = {**cfg.dino, "enabled": True}
    overrides["epochs"] = None
    return load_clip_config(cfg.train_profile, **overrides)


def arm_setup(cfg: ClipTrainConfig, shared: SharedCaches) -> ClipSetup:
    """The :func:`rsdix.training.clip.build_setup` of a training config, with the process's shared
    caches: the locked text trunk's outputs, the decoded images and the S-BERT teacher."""
    bundle = build_model(cfg)
    shared.install(bundle)
    dataset = build_train_dataset(cfg, bundle)
    shared.cache_images(dataset, int(round(bundle.image_size * 1.15)))
    sbert = shared.sbert if cfg.loss.method == "rsdix-sbert" else None
    return build_setup(cfg, bundle=bundle, dataset=dataset, sbert=sbert)


def timed_steps(cfg: ClipTrainConfig, shared: SharedCaches, steps: int) -> float:
    """Seconds per optimizer step of ``cfg`` over ``steps`` steps, the first two (warm-up of caches
    and allocators) left out: sizes the DINO arm to another arm's wall-clock time."""
    probe = dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, steps=steps + 2))
    marks = []
    train_clip(probe, setup=arm_setup(probe, shared), callbacks=[lambda step, logs: marks.append(time.perf_counter())],
               desc="time a step")
    return (marks[-1] - marks[1]) / max(1, len(marks) - 2)


def equal_time_steps(seconds: float, seconds_per_step: float, floor: int = 1) -> int:
    """Steps that fit ``seconds`` at ``seconds_per_step`` (at least ``floor``)."""
    return max(floor, int(math.floor(seconds / seconds_per_step)))


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
    setup = arm_setup(cfg, shared)
    bundle, dataset = setup.bundle, setup.dataset
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
