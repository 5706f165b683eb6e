"""Training a captioner: the generic loop of :mod:`rsdix.training.loop` with a caption objective,
the captioner folder (save / load), and captioning a test split.

The image encoder is frozen by default; then image embeddings are computed once and cached
(:func:`rsdix.captioning.caption_data.image_embeddings`), and training only runs the mapper and decoder.
With ``freeze_encoder=False`` the CLIP vision tower is part of :class:`ClipCap` (``encoder``) and
is trained with its own learning rate. Training is :func:`rsdix.training.loop.fit` (the loop every
rsdix model shares: checkpoints, exact resume, NaN guard, progress bar) with
:class:`CaptionObjective`; :func:`train_captioner` wires it up, :func:`caption_images` decodes a
test split.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal, Sequence

import torch.nn as nn
from safetensors.torch import load_file, save_file

from rsdix.captioning.caption_data import CaptionCollate, CaptionTrainSet, image_embeddings
from rsdix.captioning.decoding import DecodeConfig, generate_captions
from rsdix.captioning.model import CaptionerConfig, ClipCap, build_captioner, check_embed_dim
from rsdix.captioning.tokenizers import ensure_specials, load_tokenizer
from rsdix.config import from_dict, option
from rsdix.data.captions import CaptionDataset
from rsdix.data.transforms import bundle_train_transform
from rsdix.errors import ConfigError, DataError
from rsdix.models import save_model
from rsdix.models.features import model_device
from rsdix.training.checkpoints import retire_stale_run
from rsdix.training.loop import LoopConfig, fit
from rsdix.utils import atomic_path, atomic_write_text, seed_everything


def _loop_config() -> LoopConfig:
    return LoopConfig(lr=2e-3, warmup_steps=50, weight_decay=0.01, log_every=20, ckpt_every=0)


@dataclass
class CaptionTrainConfig:
    """How a captioner is trained; ``loop`` is :class:`rsdix.training.loop.LoopConfig` (its ``steps``
    is set from ``epochs`` when ``epochs > 0``)."""
    model: CaptionerConfig = field(default_factory=CaptionerConfig)
    loop: LoopConfig = field(default_factory=_loop_config)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    epochs: float = option(10.0, min=0)  # passes over the training items; 0: use loop.steps
    warmup_fraction: float | None = option(None, min=0, max=0.5)  # warmup = this share of the run's steps
                                                                 # (None: loop.warmup_steps as given)
    freeze_encoder: bool = True     # True: cached embeddings, only mapper + decoder train
    encoder_lr_mult: float = option(0.1, min=0)  # trained encoder: its lr = loop.lr * encoder_lr_mult
    augment: Literal["none", "rs", "openclip"] = "none"  # trained encoder's augmentation (rsdix.data.transforms)
    all_captions: bool = True       # every (image, caption) pair per epoch, else one random caption per image
    warm_start: bool = False        # trained encoder: start mapper + decoder from the frozen run's captioner
    embed_batch_size: int = option(64, min=1)


def schedule(cfg: CaptionTrainConfig, n_items: int) -> LoopConfig:
    """The loop config of a run over ``n_items`` training items: ``steps`` from ``epochs`` (when
    > 0) and the warmup from ``warmup_fraction`` (when set). A warmup as long as the run (the peak
    learning rate never reached, the cosine decay never started) is warned about, naming the key."""
    loop = cfg.loop
    if cfg.epochs > 0:
        loop = dataclasses.replace(loop, steps=max(1, math.ceil(cfg.epochs * n_items / loop.batch_size)))
    if cfg.warmup_fraction is not None:
        loop = dataclasses.replace(loop, warmup_steps=math.ceil(cfg.warmup_fraction * loop.steps))
    if loop.warmup_steps >= loop.steps:
        warnings.warn(f"captioning train.loop.warmup_steps: {loop.warmup_steps} warmup steps for a run of "
                      f"{loop.steps} steps: the peak learning rate is never reached and the cosine decay never "
                      f"starts; set train.warmup_fraction (e.g. 0.05) or fewer warmup steps")
    return loop


class CaptionObjective(nn.Module):
    """Cross-entropy on caption tokens (see :func:`rsdix.captioning.model.caption_loss`), for
    :func:`rsdix.training.loop.fit`."""
    needs_teacher = False

    def forward(self, batch, student, teacher=None):
        out = student(embeds=batch.get("embeds"), images=batch.get("images"), input_ids=batch["input_ids"],
                      attention_mask=batch["attention_mask"])
        return {"loss": out.loss}


@dataclass
class TrainedCaptioner:
    captioner: ClipCap
    bundle: object                  # the encoder's ModelBundle (its vision tower trained when unfrozen)
    history: list
    seconds: float
    run_dir: Path
    embed_seconds: float = 0.0


# ----------------------------------------------------------------------------------------------
# the captioner folder
# ----------------------------------------------------------------------------------------------
def save_captioner(captioner: ClipCap, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """A folder: ``captioner.json`` (config, embed_dim, decoder config), ``tokenizer/``, and
    ``captioner.safetensors`` (mapper + decoder weights; the encoder is saved separately)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in captioner.state_dict().items()
             if not k.startswith("encoder.")}
    # GPT-2 ties lm_head to the token embeddings; safetensors refuses shared tensors
    state = {k: (v.clone() if k == "decoder.lm_head.weight" else v) for k, v in state.items()}
    with atomic_path(path / "captioner.safetensors") as tmp:
        save_file(state, str(tmp))
    captioner.tokenizer.save_pretrained(str(path / "tokenizer"))
    meta = {"config": asdict(captioner.config), "embed_dim": captioner.embed_dim,
            "decoder_config": captioner.decoder.config.to_dict(), "extra": extra or {}}
    atomic_write_text(path / "captioner.json", json.dumps(meta, indent=2, default=str))
    return path


def load_captioner(path: str | os.PathLike, device: str = "cpu") -> ClipCap:
    """Load a folder written by :func:`save_captioner` (offline: the decoder is rebuilt from its
    saved configuration, never downloaded)."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel  # heavy: GPT-2 loads with a captioner

    path = Path(path)
    meta_path = path / "captioner.json"
    if not meta_path.exists():
        raise DataError(path, "not a captioner folder: captioner.json missing")
    meta = json.loads(meta_path.read_text())
    config = from_dict(CaptionerConfig, meta["config"], str(meta_path))
    tokenizer = ensure_specials(AutoTokenizer.from_pretrained(str(path / "tokenizer")))
    decoder = GPT2LMHeadModel(GPT2Config.from_dict(meta["decoder_config"]))
    captioner = ClipCap(config, meta["embed_dim"], decoder, tokenizer)
    weights = path / "captioner.safetensors"
    if not weights.exists():
        raise DataError(path, "captioner.safetensors missing")
    try:
        state = load_file(str(weights))  # safetensors: tensors only, no code runs
    except Exception as exc:  # noqa: BLE001 - SafetensorError and OSError on a torn or foreign file
        raise DataError(weights, f"not a readable safetensors file, truncated or foreign "
                                 f"({exc.__class__.__name__}: {(str(exc).splitlines() or [''])[0][:200]})") from exc
    missing, unexpected = captioner.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "decoder.lm_head.weight"]
    if missing or unexpected:
        raise DataError(weights, f"weights do not match the saved config: missing {missing[:3]}, "
                                 f"unexpected {unexpected[:3]}")
    captioner.decoder.tie_weights()
    return captioner.to(device).eval()


# ----------------------------------------------------------------------------------------------
# training and captioning
# ----------------------------------------------------------------------------------------------
def train_captioner(bundle, records, image_dir: str | os.PathLike, cfg: CaptionTrainConfig,
                    run_dir: str | os.PathLike, resume: bool = True, cache: str | os.PathLike | None = None,
                    seed: int = 0, source: str = "captions", device: str | None = None,
                    callbacks: Sequence[Callable] = (), init: ClipCap | None = None) -> TrainedCaptioner:
    """Train a CLIPCap captioner on ``records`` (train split) with the encoder of ``bundle``.

    Writes ``run_dir/checkpoint.pt`` + ``train_log.csv`` (the generic loop), ``run_dir/tokenizer``
    (fixed at the first run, reused on resume) and, at the end, ``run_dir/captioner`` (and
    ``run_dir/encoder`` when the encoder was trained). ``resume=True`` continues an interrupted
    run; a finished run is loaded back without training; a run made with another configuration or
    other encoder weights is moved to ``<run_dir>.previous`` and trained anew. ``init``: a trained captioner whose
    tokenizer, mapper and decoder weights this run starts from (e.g. the frozen-encoder run, before
    the encoder is unfrozen).
    """
    run_dir = Path(run_dir)
    records = list(records)
    if not records:
        raise DataError(source, "no training images")
    snapshot = {"caption": asdict(cfg), "encoder": bundle.name, "encoder_weights": bundle.fingerprint(),
                "seed": seed}
    if resume:  # e.g. notebook 03 retrained the encoder: the old captioner is stale, train anew
        retire_stale_run(run_dir, snapshot)
    for rec in records:  # before anything is trained on them
        for j, caption in enumerate(rec.captions):
            if caption is None or not str(caption).strip():
                raise DataError(f"{source} ({rec.filename}) sentences[{j}]", "empty caption in the training data")
    seed_everything(seed)
    tok_dir = run_dir / "tokenizer"
    if resume and tok_dir.exists():
        tokenizer = load_tokenizer(str(tok_dir))
    elif init is not None:
        tokenizer = init.tokenizer
        tokenizer.save_pretrained(str(tok_dir))
    else:
        tokenizer = load_tokenizer(cfg.model.tokenizer, [c for r in records for c in r.captions],
                                   cfg.model.tokenizer_vocab)
        tokenizer.save_pretrained(str(tok_dir))
    encoder = None if cfg.freeze_encoder else bundle.model.visual
    captioner = build_captioner(cfg.model, bundle.embed_dim, tokenizer=tokenizer, encoder=encoder)
    if init is not None:
        check_embed_dim(init, bundle.embed_dim, f"encoder {bundle.name!r}")
        missing, unexpected = captioner.load_state_dict(init.state_dict(), strict=False)
        if unexpected or any(not k.startswith("encoder.") for k in missing):
            raise ConfigError(f"init captioner does not match the configured architecture: missing "
                              f"{[k for k in missing if not k.startswith('encoder.')][:3]}, unexpected {unexpected[:3]}")

    t0 = time.perf_counter()
    embeds, load = None, None
    if cfg.freeze_encoder:
        embeds = image_embeddings(bundle, records, image_dir, cfg.embed_batch_size, cache=cache,
                                  desc="train image embeddings")
        check_embed_dim(captioner, embeds.shape[1], f"encoder {bundle.name!r}")
    else:
        images = CaptionDataset(records, image_dir, transform=bundle_train_transform(bundle, cfg.augment),
                                mode="eval", source=source)
        load = images.__getitem__
    embed_seconds = time.perf_counter() - t0

    dataset = CaptionTrainSet(records, tokenizer, cfg.model.max_caption_tokens, source, load, cfg.all_captions)
    loop = schedule(cfg, len(dataset))
    if not cfg.freeze_encoder:
        loop = dataclasses.replace(loop, lr_mult={"encoder.": cfg.encoder_lr_mult, **loop.lr_mult})
    loop = dataclasses.replace(loop, seed=seed)
    if device == "cpu":
        loop = dataclasses.replace(loop, cpu=True)
    result = fit(captioner, CaptionObjective(), dataset, loop, collate_fn=CaptionCollate(tokenizer.pad_token_id, embeds),
                 run_dir=run_dir, resume=resume, desc=f"captioner {run_dir.name}", callbacks=callbacks,
                 config_snapshot=snapshot)
    captioner = result.model.eval()  # stays on the training device, with the encoder it may hold
    if not cfg.freeze_encoder:   # fit moved the image tower with the captioner: the rest of the CLIP model follows
        bundle.model.to(model_device(captioner))
    seconds = result.seconds
    previous = run_dir / "captioner" / "captioner.json"
    if resume and previous.exists():  # a finished run reloaded: report the time it took to train
        seconds += float(json.loads(previous.read_text()).get("extra", {}).get("train_seconds", 0.0))
    save_captioner(captioner, run_dir / "captioner", extra={"encoder": str(bundle.pretrained or bundle.name),
                                                            "frozen_encoder": cfg.freeze_encoder, "seed": seed,
                                                            "train_seconds": seconds, "steps": result.step})
    if not cfg.freeze_encoder:
        save_model(bundle, run_dir / "encoder", extra={"trained_with": "captioning"})
    return TrainedCaptioner(captioner, bundle, result.history, seconds, run_dir, embed_seconds)


def caption_images(trained: TrainedCaptioner, records, image_dir: str | os.PathLike, decode: DecodeConfig,
                   cache: str | os.PathLike | None = None, seed: int = 0) -> list[str]:
    """Generated captions for ``records`` (embeddings from the captioner's encoder, cached)."""
    embeds = image_embeddings(trained.bundle, records, image_dir, decode.batch_size, cache=cache,
                              desc="test image embeddings")
    return generate_captions(trained.captioner, embeds, decode.method, decode.beam_size, decode.top_p,
                             decode.temperature, decode.max_len, decode.batch_size, seed)
