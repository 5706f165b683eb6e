"""CLIP training, the one setup every CLIP run goes through: the training config, what a run needs
(:func:`build_setup`: model bundle, dataset, objective, collate, callbacks), the run around
:func:`rsdix.training.loop.fit` (:func:`train_clip`) and a named run saved as a model folder
(:func:`train_and_save`)::

    cfg = load_clip_config("cpu", method="rsdix")          # rsdix/configs/train/cpu.yaml
    result = train_clip(cfg, run_dir=dirs.run / "train" / "rsdix_s0")
    result = train_and_save(cfg, run_name("rsdix", 0), dirs)  # the same, resumable, saved to dirs.models

``rsdix train``, notebook 03's method comparison (:mod:`rsdix.studies.methods`) and the
data-efficiency study (:mod:`rsdix.studies.efficiency`) all train through these. The objectives are
in :mod:`rsdix.training.clip_objectives`, the data in :mod:`rsdix.training.clip_data`, batches in
:mod:`rsdix.training.collate`, DINO's term in :mod:`rsdix.training.dino`.
"""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rsdix import config
from rsdix.config import option, to_dict
from rsdix.data.transforms import bundle_mean_std
from rsdix.errors import ConfigError
from rsdix.models import ModelBundle, load_model, lock_text_trunk, save_model
from rsdix.paths import RunDirs
from rsdix.training.checkpoints import retire_stale_run
from rsdix.training.clip_data import ClipDataConfig, build_train_dataset
from rsdix.training.collate import ClipCollate, DeviceNormalize, LanguageCollate, ViewsCollate
from rsdix.training.clip_objectives import ClipLossConfig, ClipObjective, SBertSimilarity, loop_recipe
from rsdix.training.dino import ClipWithDino, DINOConfig, DinoTerm
from rsdix.training.loop import FitResult, LoopConfig, fit
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

    def validate(self):
        check_accumulation(self)


def check_accumulation(cfg: ClipTrainConfig) -> None:
    """Refuse ``loop.grad_accum > 1``: every CLIP objective here is a loss over the batch (InfoNCE's
    and SigLIP's negatives, the OT targets of the distillation), and accumulated micro-batches would
    each see only their own slice of it, a different and weaker loss than the configured batch's
    (GradCache-style feature caching is not implemented). Use more processes, a smaller model or
    ``loop.grad_checkpointing`` instead."""
    if cfg.loop.grad_accum > 1:
        raise ConfigError(f"loop.grad_accum: {cfg.loop.grad_accum} is refused for CLIP training: the "
                          f"{cfg.loss.method} loss is computed over the batch, and each accumulated "
                          f"micro-batch would see only its {cfg.loop.batch_size} images, not the "
                          f"{cfg.loop.batch_size * cfg.loop.grad_accum} of the step; use more processes "
                          f"or loop.grad_checkpointing (docs/training.md)")


def with_epochs(cfg: ClipTrainConfig, n_images: int) -> ClipTrainConfig:
    """``cfg`` with ``loop.steps`` derived from ``epochs`` over ``n_images`` training images
    (one caption drawn per image per step; unchanged when ``epochs`` is None)."""
    if cfg.epochs is None:
        return cfg
    steps = max(1, math.ceil(cfg.epochs * n_images / cfg.loop.batch_size))
    return dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, steps=steps))


def with_recipe(cfg: ClipTrainConfig) -> ClipTrainConfig:
    """``cfg`` with the loop's recipe switches it leaves unset (``ema_schedule``, ``ema_buffers``,
    ``decay_all``) taken from ``loss.recipe`` (:func:`rsdix.training.clip_objectives.loop_recipe`)."""
    fill = {k: v for k, v in loop_recipe(cfg.loss).items() if getattr(cfg.loop, k) is None}
    return dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, **fill)) if fill else cfg


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


@dataclass
class ClipSetup:
    """What one CLIP run trains: the config (``loop.steps`` derived from ``epochs`` over this
    dataset), the model bundle, the training dataset, the objective, the collate and the
    objective's step callbacks (DINO's teacher update)."""
    config: ClipTrainConfig
    bundle: ModelBundle
    dataset: object
    objective: object
    collate: Callable
    callbacks: list = field(default_factory=list)
    on_device: Callable | None = None   # the batch step on the training device (DeviceNormalize)


def build_setup(cfg: ClipTrainConfig, bundle: ModelBundle | None = None, dataset=None,
                sbert: SBertSimilarity | None = None) -> ClipSetup:
    """Everything a run of ``cfg`` needs (the loop's recipe switches filled from ``loss.recipe``). ``bundle`` and ``dataset`` default to :func:`build_model` and
    :func:`rsdix.training.clip_data.build_train_dataset` of ``cfg``; a caller that shares caches
    across runs (the efficiency study) builds them itself and passes them, with the one ``sbert``
    similarity of the ``rsdix-sbert`` teacher."""
    bundle = bundle or build_model(cfg)
    dataset = dataset if dataset is not None else build_train_dataset(cfg, bundle)
    cfg = with_recipe(with_epochs(cfg, len(dataset)))
    check_accumulation(cfg)
    objective = ClipObjective(cfg.loss, sbert=sbert, embed_dim=bundle.embed_dim)
    collate = ClipCollate(bundle.tokenizer)
    if cfg.data.languages:
        collate = LanguageCollate(bundle.tokenizer, cfg.data.languages, seed=cfg.loop.seed, per=cfg.data.language_per)
    callbacks = []
    if cfg.dino.enabled:  # CLIP (+ RSDiX distillation, if the method has it) + lambda * DINO, one loop
        dino = DinoTerm(bundle.model, bundle.embed_dim, cfg.dino, cfg.loop.steps)
        objective = ClipWithDino(objective, dino, cfg.dino.weight)
        collate = collate if cfg.data.languages else ViewsCollate(bundle.tokenizer)
        callbacks = [dino.after_step]
    return ClipSetup(cfg, bundle, dataset, objective, collate, callbacks, DeviceNormalize(*bundle_mean_std(bundle)))


def method_label(cfg: ClipTrainConfig) -> str:
    """``rsdix``, ``infonce+dino``: the loss method, with ``+dino`` when DINO's term is on."""
    return cfg.loss.method + ("+dino" if cfg.dino.enabled else "")


def train_clip(cfg: ClipTrainConfig, run_dir: str | os.PathLike | None = None, resume: bool | str = False,
               callbacks=(), bundle=None, dataset=None, desc: str | None = None,
               grad_callbacks=(), setup: ClipSetup | None = None) -> ClipTrainResult:
    """Train ``cfg`` with :func:`rsdix.training.loop.fit`: the :func:`build_setup` of ``cfg`` (or the
    given ``setup``; ``bundle`` / ``dataset`` are passed to :func:`build_setup`)."""
    setup = setup or build_setup(cfg, bundle=bundle, dataset=dataset)
    cfg = setup.config
    res = fit(setup.bundle.model, setup.objective, setup.dataset, cfg.loop, collate_fn=setup.collate,
              run_dir=run_dir, resume=resume, callbacks=[*setup.callbacks, *callbacks], desc=desc or method_label(cfg),
              config_snapshot=to_dict(cfg), grad_callbacks=grad_callbacks, on_device=setup.on_device)
    setup.bundle.model = res.model
    return ClipTrainResult(**res.__dict__, bundle=setup.bundle, config=cfg)


def train_and_save(cfg: ClipTrainConfig, name: str, dirs: RunDirs, resume: bool = True, save: bool = True,
                   setup: ClipSetup | None = None, callbacks=(), desc: str | None = None,
                   weights_dtype=None) -> ClipTrainResult:
    """Train the run ``name`` into ``dirs.run/train/<name>`` (resuming a finished or interrupted run of
    the same configuration, where it left a checkpoint; a run whose configuration changed is moved to
    ``<name>.previous`` and trained anew) and save the model to ``dirs.models/<name>`` with its
    ``train_log.csv`` (``weights_dtype``: e.g. ``torch.bfloat16`` for the studies' many runs)."""
    run_dir = Path(dirs.run) / "train" / name
    if resume:  # a run made under another configuration is stale: train anew, keep it aside
        retire_stale_run(run_dir, to_dict(with_recipe(cfg)))   # the snapshot fit keeps has the recipe filled in
    res = train_clip(cfg, run_dir=run_dir, resume=resume, desc=desc or name, setup=setup, callbacks=callbacks)
    if save:
        cfg = res.config
        folder = save_model(res.bundle, Path(dirs.models) / name, dtype=weights_dtype,
                            extra={"method": method_label(cfg), "seed": cfg.loop.seed, "steps": res.step,
                                   "fraction": cfg.data.fraction, "datasets": list(cfg.data.datasets)})
        shutil.copyfile(run_dir / "train_log.csv", folder / "train_log.csv")
    return res
