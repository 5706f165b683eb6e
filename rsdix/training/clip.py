"""RSDiX-CLIP training: the training config and its entry point around :func:`rsdix.training.loop.fit`.

    cfg = load_clip_config("cpu", method="rsdix")          # rsdix/configs/train/cpu.yaml
    result = train_clip(cfg, run_dir=dirs.run / "rsdix_s0")
    save_model(result.bundle, dirs.models / "rsdix_s0")

The objectives are in :mod:`rsdix.training.clip_objectives`, the data in
:mod:`rsdix.training.clip_data`, DINO's term in :mod:`rsdix.training.dino`; the command line
is ``rsdix train`` (:mod:`rsdix.cli`).
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field

from rsdix import config
from rsdix.config import option, to_dict
from rsdix.models import load_model, lock_text_trunk
from rsdix.training.clip_data import ClipCollate, ClipDataConfig, build_train_dataset
from rsdix.training.clip_objectives import ClipLossConfig, ClipObjective
from rsdix.training.dino import ClipWithDino, DINOConfig, DinoTerm, ViewsCollate
from rsdix.training.loop import FitResult, LoopConfig, fit
from rsdix.training.multilingual import LanguageCollate
from rsdix.utils import seed_everything


@dataclass
class ClipTrainConfig:
    model: str = "rsdix-small"
    pretrained: str | None = None
    lock_text: bool = False             # freeze the text trunk (projection trains), cache its output
    loss: ClipLossConfig = field(default_factory=ClipLossConfig)
    data: ClipDataConfig = field(default_factory=ClipDataConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    dino: DINOConfig = field(default_factory=DINOConfig)   # RS-M-CLIP: + weight * DINO (enabled: true)
    epochs: float | None = option(None, min=0, min_exclusive=True)  # passes over the training images;
                                                                    # sets loop.steps (None: loop.steps)


def with_epochs(cfg: ClipTrainConfig, n_images: int) -> ClipTrainConfig:
    """``cfg`` with ``loop.steps`` derived from ``epochs`` over ``n_images`` training images
    (one caption drawn per image per step; unchanged when ``epochs`` is None)."""
    if cfg.epochs is None:
        return cfg
    steps = max(1, math.ceil(cfg.epochs * n_images / cfg.loop.batch_size))
    return dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, steps=steps))


def load_clip_config(source: str | os.PathLike | dict = "cpu", **overrides) -> ClipTrainConfig:
    """Load a training config: a profile name (``smoke``/``cpu``/``paper``), a YAML path or a dict.

    ``overrides`` use nested dicts or ``section__key`` names: ``method="infonce"`` is a shortcut
    for ``loss={"method": "infonce"}``; ``steps=100`` for ``loop={"steps": 100}``.
    """
    nested: dict = {}
    sections = {"loss": ClipLossConfig, "data": ClipDataConfig, "loop": LoopConfig}
    for key, value in overrides.items():
        if "__" in key:
            sec, sub = key.split("__", 1)
            nested.setdefault(sec, {})[sub] = value
            continue
        owner = next((s for s, cls in sections.items() if key in cls.__dataclass_fields__), None)
        if key in ClipTrainConfig.__dataclass_fields__ or owner is None:
            nested[key] = value
        else:
            nested.setdefault(owner, {})[key] = value
    return config.load("train", source, **nested)


@dataclass
class ClipTrainResult(FitResult):
    bundle: object = None
    config: ClipTrainConfig | None = None


def build_model(cfg: ClipTrainConfig, seed: int | None = None):
    """The model bundle of ``cfg`` (seeded: the same seed gives the same initial weights), its text
    trunk locked and cached with ``lock_text``."""
    seed_everything(cfg.loop.seed if seed is None else seed)  # same seed -> same initial weights
    bundle = load_model(cfg.model, pretrained=cfg.pretrained)
    if cfg.lock_text:
        lock_text_trunk(bundle.model, cache=True)
    return bundle


def train_clip(cfg: ClipTrainConfig, run_dir: str | os.PathLike | None = None, resume: bool | str = False,
               callbacks=(), bundle=None, dataset=None, desc: str | None = None,
               grad_callbacks=()) -> ClipTrainResult:
    """Build model, data and objective from ``cfg`` and run :func:`rsdix.training.loop.fit`."""
    bundle = bundle or build_model(cfg)
    dataset = dataset if dataset is not None else build_train_dataset(cfg, bundle)
    cfg = with_epochs(cfg, len(dataset))
    objective = ClipObjective(cfg.loss)
    collate = ClipCollate(bundle.tokenizer)
    if cfg.data.languages:
        collate = LanguageCollate(bundle.tokenizer, cfg.data.languages, seed=cfg.loop.seed, per=cfg.data.language_per)
    if cfg.dino.enabled:  # CLIP (+ RSDiX distillation, if the method has it) + lambda * DINO, one loop
        dino = DinoTerm(bundle.model, bundle.embed_dim, cfg.dino, cfg.loop.steps)
        objective = ClipWithDino(objective, dino, cfg.dino.weight)
        collate = collate if cfg.data.languages else ViewsCollate(bundle.tokenizer)
        callbacks = [dino.after_step, *callbacks]
    res = fit(bundle.model, objective, dataset, cfg.loop, collate_fn=collate,
              run_dir=run_dir, resume=resume, callbacks=callbacks, desc=desc or cfg.loss.method + ("+dino" if cfg.dino.enabled else ""),
              config_snapshot=to_dict(cfg), grad_callbacks=grad_callbacks)
    bundle.model = res.model
    return ClipTrainResult(**res.__dict__, bundle=bundle, config=cfg)
