"""RSDiX-CLIP training: the CLIP objectives and the config/data glue around :func:`rsdix.training.loop.fit`.

Methods (``ClipLossConfig.method``):

* ``infonce``       - CLIP's symmetric InfoNCE (the baseline).
* ``rsdix``         - RSDiX-CLIP / OTTER: ``alpha * InfoNCE + (1 - alpha) * KL(P || softmax(tau L))``
  with OT soft targets ``P`` from an EMA teacher (image-image, text-text and cross-modal
  similarities, log-domain Sinkhorn).
* ``rsdix-sbert``   - the same, with the text-text similarities taken from a frozen
  Sentence-BERT model (all-MiniLM-L6-v2), used directly (no projection).
* ``siglip``        - SigLIP's sigmoid loss (learnable temperature and bias).
* ``rsdix-siglip``  - SigLIP + distillation with OT probabilities as soft binary targets.

Under DDP the loss uses the global batch: student features are gathered with their gradient
(:mod:`rsdix.training.distributed`), teacher features and OT targets without.

    cfg = load_clip_config("cpu", method="rsdix")          # rsdix/configs/train/cpu.yaml
    result = train_clip(cfg, run_dir=dirs.run / "rsdix_s0")
    save_model(result.bundle, dirs.models / "rsdix_s0")

Command line (``accelerate launch`` for several GPUs)::

    accelerate launch -m rsdix.training.loop --config rsdix/configs/train/paper.yaml --run-dir runs/rsdix
    python -m rsdix.training.loop --config cpu --resume loss.method=infonce loop.steps=200
"""
from __future__ import annotations

import argparse
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from rsdix.training import losses
from rsdix import config
from rsdix.config import option, to_dict
from rsdix.training.dino import DINOConfig
from rsdix.training.distributed import gather_nograd, gather_with_grad
from rsdix.errors import ConfigError
from rsdix.training.loop import FitResult, LoopConfig, fit

METHODS = ("infonce", "rsdix", "rsdix-sbert", "siglip", "rsdix-siglip")


@dataclass
class ClipLossConfig:
    method: str = option("rsdix", choices=METHODS)
    alpha: float = 0.5                  # weight of the hard (contrastive) loss
    sinkhorn_eps: float = 0.1           # entropic regularisation (OTTER used 0.15)
    sinkhorn_iters: int = 5
    remove_diag: bool = False
    ii_coeff: float = 1.0
    tt_coeff: float = 1.0
    distill_log_scale: float = 3.9      # init of log tau (tau = exp, clamped)
    distill_scale_min: float = 1.0
    distill_scale_max: float = 100.0
    siglip_log_scale: float = 2.302585  # log 10
    siglip_bias: float = -10.0
    max_logit_scale: float = 100.0      # CLIP's logit scale is clamped to this


@dataclass
class ClipDataConfig:
    datasets: list = field(default_factory=lambda: ["ucm_captions"])  # registry names or caption files
    split: str = "train"
    fraction: float = 1.0               # share of the training images used (data-efficiency study)
    augment: str = "rs"                 # rs | openclip | none
    crop_scale: tuple = (0.5, 1.0)
    zoom_out: float = 1.0               # largest zoom-out (reflection padding) factor; 1 = off
    color_jitter: float = 0.0           # brightness/contrast strength (saturation half of it); 0 = off
    cache_images: bool = False          # keep decoded images (resized to ~1.15x model size) in memory
    data_root: str | None = None
    languages: list | None = None       # multilingual: sample one of these languages per step (None: any caption)
    language_per: str = "batch"         # batch (one language per step) | item


@dataclass
class ClipTrainConfig:
    model: str = "rsdix-small"
    pretrained: str | None = None
    lock_text: bool = False             # freeze the text trunk (projection trains), cache its output
    loss: ClipLossConfig = field(default_factory=ClipLossConfig)
    data: ClipDataConfig = field(default_factory=ClipDataConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    dino: DINOConfig = field(default_factory=DINOConfig)   # RS-M-CLIP: + weight * DINO (enabled: true)


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


# ---------------------------------------------------------------- objective

class SBertSimilarity:
    """Cosine similarities between captions from a frozen sentence-transformers model.

    Embeddings are cached per caption. Not an ``nn.Module`` attribute of the objective on
    purpose: it is never trained, checkpointed or synchronised.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        from rsdix.models import sbert_model  # one copy per process, shared with the caption metrics

        self.model = sbert_model(model_path, str(device))
        self.model.eval().requires_grad_(False)
        self.cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def embed(self, captions: Sequence[str], device) -> torch.Tensor:
        missing = sorted({c for c in captions if c not in self.cache})
        if missing:
            emb = self.model.encode(missing, convert_to_tensor=True, normalize_embeddings=True,
                                    batch_size=128, show_progress_bar=False).float().cpu()
            self.cache.update(zip(missing, emb))
        return torch.stack([self.cache[c] for c in captions]).to(device)


class ClipObjective(nn.Module):
    """The five CLIP objectives above; ``forward(batch, student, teacher)`` -> dict of losses.

    ``batch``: ``{"image": (B,3,H,W), "text": (B,L) token ids, "caption": [str]*B}``.
    Owns the distillation temperature and SigLIP's temperature/bias (trainable, no decay).
    """

    def __init__(self, cfg: ClipLossConfig, sbert: SBertSimilarity | None = None):
        super().__init__()
        if cfg.method not in METHODS:
            raise ConfigError(f"unknown method {cfg.method!r}; use one of {METHODS}")
        self.cfg = cfg
        self.distill = cfg.method.startswith("rsdix")
        self.sigmoid = cfg.method.endswith("siglip")
        self.needs_teacher = self.distill
        if self.distill and not self.sigmoid:
            self.distill_scale = losses.LearnableScale(cfg.distill_log_scale, cfg.distill_scale_min,
                                                       cfg.distill_scale_max)
        if self.sigmoid:
            self.siglip_scale = losses.LearnableScale(cfg.siglip_log_scale, None, cfg.max_logit_scale)
            self.siglip_bias = nn.Parameter(torch.tensor(float(cfg.siglip_bias)))
        if cfg.method == "rsdix-sbert" and sbert is None:
            sbert = SBertSimilarity()
        object.__setattr__(self, "sbert", sbert)

    def forward(self, batch: dict, student: nn.Module, teacher: nn.Module | None = None) -> dict:
        cfg = self.cfg
        img = student.encode_image(batch["image"], normalize=True).float()
        txt = student.encode_text(batch["text"], normalize=True).float()
        img, txt = gather_with_grad(img), gather_with_grad(txt)
        out = {}
        if self.sigmoid:
            scale, bias = self.siglip_scale(), self.siglip_bias
            hard = losses.siglip_loss(img, txt, scale, bias)
            out["siglip_scale"], out["siglip_bias"] = scale.detach(), bias.detach()
        else:
            scale = student.logit_scale.exp().clamp(max=cfg.max_logit_scale)
            hard = losses.infonce(img, txt, scale)
            out["logit_scale"] = scale.detach()
        out["hard"] = hard
        if not self.distill:
            out["loss"] = hard
            return out
        if teacher is None:
            raise ValueError(f"method {cfg.method!r} needs a teacher (fit() makes an EMA teacher)")
        with torch.no_grad():
            t_img = gather_nograd(teacher.encode_image(batch["image"], normalize=True).float())
            t_txt = gather_nograd(teacher.encode_text(batch["text"], normalize=True).float())
            s_tt = None
            if self.sbert is not None:
                e = gather_nograd(self.sbert.embed(batch["caption"], img.device))
                s_tt = e @ e.t()
            log_p_img, log_p_txt = losses.ot_targets(
                t_img, t_txt, s_tt, eps=cfg.sinkhorn_eps, iters=cfg.sinkhorn_iters,
                remove_diag=cfg.remove_diag, ii_coeff=cfg.ii_coeff, tt_coeff=cfg.tt_coeff)
        sims = img @ txt.t()
        if self.sigmoid:
            distill = losses.siglip_distill(scale * sims + bias, log_p_img.exp(), log_p_txt.exp())
        else:
            tau = self.distill_scale()
            distill = losses.distill_kl(tau * sims, log_p_img, log_p_txt)
            out["distill_tau"] = tau.detach()
        out["distill"] = distill
        out["loss"] = cfg.alpha * hard + (1 - cfg.alpha) * distill
        return out


# ---------------------------------------------------------------- data

class _Concat(torch.utils.data.ConcatDataset):
    def set_epoch(self, epoch: int) -> None:
        for d in self.datasets:
            d.set_epoch(epoch)


class _CachedImages:
    """Wraps ``CaptionDataset.load`` to decode each image once (resized to ``size``)."""

    def __init__(self, dataset, size: int):
        self.dataset, self.size, self.cache = dataset, size, {}
        transform, dataset.transform = dataset.transform, None
        self.transform = transform
        self._orig_load = dataset.load
        dataset.load = self.load

    def load(self, index: int):
        img = self.cache.get(index)
        if img is None:
            img = self._orig_load(index)  # transform is None: a PIL image
            img.thumbnail((self.size, self.size))
            self.cache[index] = img
        return self.transform(img) if self.transform is not None else img


def subset_records(records: list, fraction: float, seed: int) -> list:
    """A seeded random ``fraction`` of the records (at least one), in their original order."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"data.fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return list(records)
    k = max(1, round(fraction * len(records)))
    keep = sorted(random.Random(f"subset-{seed}").sample(range(len(records)), k))
    return [records[i] for i in keep]


def build_train_dataset(cfg: ClipTrainConfig, bundle, seed: int | None = None):
    """The training image-caption dataset: one random caption per image, RS augmentation."""
    from rsdix.data.captions import CaptionDataset, find_image_dir, read_captions, select_split
    from rsdix.data.registry import caption_file
    from rsdix.data.transforms import bundle_train_transform

    seed = cfg.loop.seed if seed is None else seed
    kwargs = ({"scale": tuple(cfg.data.crop_scale), "zoom_out": cfg.data.zoom_out,
               "color_jitter": cfg.data.color_jitter} if cfg.data.augment == "rs" else {})
    transform = bundle_train_transform(bundle, cfg.data.augment, **kwargs)
    if cfg.dino.enabled:  # multi-crop views; the CLIP image is a global crop or this transform's output
        from rsdix.training.dino import dino_views

        transform = dino_views(cfg.dino, bundle, transform if cfg.dino.clip_view == "base" else None)
    dataset_cls = CaptionDataset
    if cfg.data.languages:
        from rsdix.training.multilingual import MultilingualCaptionDataset as dataset_cls
    lang_kwargs = {"languages": list(cfg.data.languages)} if cfg.data.languages else {}
    parts = []
    for name in cfg.data.datasets:
        path = Path(name) if str(name).endswith((".json", ".csv", ".tsv")) else caption_file(name, cfg.data.data_root)
        if not path.is_absolute() and not path.exists() and cfg.data.data_root:
            path = Path(cfg.data.data_root) / path
        records = select_split(read_captions(path), cfg.data.split, path)
        records = subset_records(records, cfg.data.fraction, seed)
        ds = dataset_cls(records, find_image_dir(path), transform=transform, seed=seed, source=path,
                         **lang_kwargs)
        if cfg.data.cache_images:
            _CachedImages(ds, int(round(bundle.image_size * 1.15)))
        parts.append(ds)
    return parts[0] if len(parts) == 1 else _Concat(parts)


class ClipCollate:
    """``[(image, caption)] -> {"image", "text" (token ids), "caption"}``; picklable for workers."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, items):
        images, captions = zip(*items)
        return {"image": torch.stack(images), "text": self.tokenizer(list(captions)), "caption": list(captions)}


# ---------------------------------------------------------------- entry points

@dataclass
class ClipTrainResult(FitResult):
    bundle: object = None
    config: ClipTrainConfig | None = None


def build_model(cfg: ClipTrainConfig, seed: int | None = None):
    from rsdix.models import load_model, lock_text_trunk
    from rsdix.utils import seed_everything

    seed_everything(cfg.loop.seed if seed is None else seed)  # same seed -> same initial weights
    bundle = load_model(cfg.model, pretrained=cfg.pretrained)
    if cfg.lock_text:
        lock_text_trunk(bundle.model, cache=True)
    return bundle


def train_clip(cfg: ClipTrainConfig, run_dir: str | os.PathLike | None = None, resume: bool | str = False,
               callbacks=(), bundle=None, dataset=None, desc: str | None = None) -> ClipTrainResult:
    """Build model, data and objective from ``cfg`` and run :func:`rsdix.training.loop.fit`."""
    bundle = bundle or build_model(cfg)
    dataset = dataset if dataset is not None else build_train_dataset(cfg, bundle)
    objective = ClipObjective(cfg.loss)
    collate = ClipCollate(bundle.tokenizer)
    if cfg.data.languages:
        from rsdix.training.multilingual import LanguageCollate

        collate = LanguageCollate(bundle.tokenizer, cfg.data.languages, seed=cfg.loop.seed, per=cfg.data.language_per)
    if cfg.dino.enabled:  # CLIP (+ RSDiX distillation, if the method has it) + lambda * DINO, one loop
        from rsdix.training.dino import ClipWithDino, DinoTerm, ViewsCollate

        dino = DinoTerm(bundle.model, bundle.embed_dim, cfg.dino, cfg.loop.steps)
        objective = ClipWithDino(objective, dino, cfg.dino.weight)
        collate = collate if cfg.data.languages else ViewsCollate(bundle.tokenizer)
        callbacks = [dino.after_step, *callbacks]
    res = fit(bundle.model, objective, dataset, cfg.loop, collate_fn=collate,
              run_dir=run_dir, resume=resume, callbacks=callbacks, desc=desc or cfg.loss.method + ("+dino" if cfg.dino.enabled else ""),
              config_snapshot=to_dict(cfg))
    bundle.model = res.model
    return ClipTrainResult(**res.__dict__, bundle=bundle, config=cfg)


@dataclass
class StudyConfig:
    """What notebook 03 trains in a profile (``rsdix/configs/train/study_<profile>.yaml``)."""
    methods: list = field(default_factory=lambda: ["infonce", "rsdix", "rsdix-sbert", "rsdix-siglip"])
    steps: int | None = None                  # main runs; None: the profile's loop.steps
    fractions: list = field(default_factory=lambda: [0.1, 0.3, 1.0])
    fraction_methods: list = field(default_factory=lambda: ["infonce", "rsdix"])
    fraction_seeds: list = field(default_factory=lambda: [0, 1, 2])
    fraction_steps: int = 100
    save_fraction_models: bool = False        # the data-efficiency models are many; keep results only
    zero_shot_max: int | None = None          # subsample WHU-RS19 for the quick check (None: all)
    dino_steps: int | None = None             # the RS-M-CLIP DINO run: None = main steps, 0 = skip
    long_steps: int = 0                       # then train the best method (by UCM *val* mR) this long; 0 = skip
    check_teacher: bool = True                # also quick-check the EMA teacher of distillation runs


def load_study_config(profile: str = "cpu", **overrides) -> StudyConfig:
    return config.load("train_study", profile, **overrides)


def run_name(method: str, seed: int, fraction: float = 1.0) -> str:
    """``rsdix_s0``, ``infonce_frac0.1_s1`` (the convention later notebooks read)."""
    return f"{method}_s{seed}" if fraction == 1.0 else f"{method}_frac{fraction:g}_s{seed}"


def long_run_name(method: str, seed: int) -> str:
    """``rsdix-siglip-long_s0``: the best method trained for ``StudyConfig.long_steps``."""
    return f"{method}-long_s{seed}"


def train_run(cfg: ClipTrainConfig, name: str, dirs, check: "Callable[[object], dict] | None" = None, save: bool = True,
              resume: bool = True, val_check: "Callable[[object], dict] | None" = None, check_teacher: bool = False) -> dict:
    """Train one run into ``dirs.run/train/<name>`` (resuming a finished or interrupted run of the
    same configuration; a run whose configuration changed is moved to ``<name>.previous`` and
    trained anew), save the model to ``dirs.models/<name>`` with its ``train_log.csv``, and
    quick-check it: ``check`` (test retrieval + zero-shot), ``val_check`` (validation retrieval,
    as ``val_mR``, for choosing between runs) and, with ``check_teacher``, the EMA teacher's
    weights too (as ``ema_<key>``; runs without a teacher have none)."""
    import shutil

    from rsdix.models import save_model

    run_dir = Path(dirs.run) / "train" / name
    method = cfg.loss.method + ("+dino" if cfg.dino.enabled else "")
    if resume:  # a run made under another configuration is stale: train anew, keep it aside
        from rsdix.training.loop import retire_stale_run

        retire_stale_run(run_dir, to_dict(cfg))
    res = train_clip(cfg, run_dir=run_dir, resume=resume, desc=name)
    if save:
        folder = save_model(res.bundle, Path(dirs.models) / name,
                            extra={"method": method, "seed": cfg.loop.seed, "steps": res.step,
                                   "fraction": cfg.data.fraction, "datasets": list(cfg.data.datasets)})
        shutil.copyfile(run_dir / "train_log.csv", folder / "train_log.csv")
    out = {"run": name, "method": method, "seed": cfg.loop.seed, "fraction": cfg.data.fraction,
           "steps": res.step, "train_s": res.seconds, "history": res.history}
    if check is not None:
        out.update(check(res.bundle))
    if val_check is not None:
        out["val_mR"] = val_check(res.bundle)["mR"]
    if check_teacher and check is not None and res.teacher is not None:
        import dataclasses

        ema = dataclasses.replace(res.bundle, model=res.teacher.module)  # the averaged weights
        out.update({f"ema_{k}": v for k, v in check(ema).items()})
    return out


def result_rows(runs: Sequence[dict], profile: str, retrieval_title: str = "UCM",
                zero_shot_title: str = "WHU-RS19", zero_shot_split: str = "all") -> list:
    """Tidy :class:`rsdix.results.Result` rows from :func:`train_run` outputs. ``zero_shot_split``
    names the images the zero-shot check used (the check's ``zero_shot_split`` attribute, e.g. :class:`rsdix.evaluation.quick_check.QuickCheck`)."""
    from rsdix.results import Result

    rows = []
    for r in runs:
        extra = {"method": r["method"], "fraction": r["fraction"], "steps": r["steps"]}
        for key, value in r.items():
            model = r["run"]
            if key.startswith("ema_"):  # the EMA teacher's weights: a model of its own
                key, model = key[len("ema_"):], f"{r['run']}-ema"
            split = "val" if key == "val_mR" else "test"
            if key.startswith(("i2t_", "t2i_")) or key in ("mR", "val_mR"):
                rows.append(Result(model=model, dataset=retrieval_title, task="retrieval", metric="mR" if
                                   key == "val_mR" else key, value=value, seed=r["seed"], split=split,
                                   profile=profile, extra=extra))
            elif key == "zs_top1":
                rows.append(Result(model=model, dataset=zero_shot_title, task="zero-shot", metric="top1",
                                   value=value, seed=r["seed"], split=zero_shot_split, profile=profile,
                                   extra=extra))
    return rows


def _parse_value(text: str):
    import yaml

    return yaml.safe_load(text)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rsdix.training.loop",
                                     description="Train a CLIP model (InfoNCE / RSDiX / S-BERT / SigLIP)")
    parser.add_argument("--config", default="cpu", help="smoke | cpu | paper | path/to/config.yaml")
    parser.add_argument("--run-dir", default=None, help="checkpoints + train_log.csv (default runs/train/<method>)")
    parser.add_argument("--resume", action="store_true", help="continue from <run-dir>/checkpoint.pt")
    parser.add_argument("--save-model", default=None, help="also save the trained model (open_clip folder)")
    parser.add_argument("overrides", nargs="*", help="section.key=value, e.g. loss.method=infonce loop.steps=100")
    args = parser.parse_args(argv)
    overrides: dict = {}
    for item in args.overrides:
        if "=" not in item:
            raise SystemExit(f"override {item!r}: expected key=value")
        key, value = item.split("=", 1)
        overrides[key.replace(".", "__")] = _parse_value(value)
    cfg = load_clip_config(args.config, **overrides)
    from rsdix.paths import runs_dir

    run_dir = Path(args.run_dir) if args.run_dir else runs_dir() / "train" / cfg.loss.method
    result = train_clip(cfg, run_dir=run_dir, resume=args.resume)
    if args.save_model:
        from accelerate import PartialState

        if PartialState().is_main_process:
            from rsdix.models import save_model

            save_model(result.bundle, args.save_model, extra={"method": cfg.loss.method, "steps": result.step})
    last = result.history[-1] if result.history else {}
    print(f"done: {result.step} steps in {result.seconds:.0f}s, final loss {last.get('loss', math.nan):.4f}; "
          f"checkpoint {run_dir / 'checkpoint.pt'}")


if __name__ == "__main__":
    main()
