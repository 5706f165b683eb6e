"""Frozen image and text features, encoded once and cached.

    cache = FeatureCache(dirs.run / "features")
    img = encode_images(bundle, dataset, cache, dataset_name="WHU-RS19", split="all")
    txt = encode_texts(bundle, ["a photo of a beach"], cache)

Features are L2-normalised float32 tensors. The cache key is
``(model fingerprint, dataset name, split, file list, transform)`` for images and
``(model fingerprint, texts)`` for texts, so every image is encoded once per model across all
tasks of a run (and across runs: entries live on disk). ``cache.stats`` counts hits, misses
and the number of images/texts actually pushed through the model. The file list holds each
image's name, size and modification time (:func:`image_files`), so an image overwritten under
the same name is encoded again.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from rsdix.errors import DataError, require_finite
from rsdix.utils import progress, stable_hash, tf32_matmul, torch_save_atomic


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    images_encoded: int = 0
    texts_encoded: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


@dataclass
class FeatureCache:
    """Feature tensors keyed by a hash, in memory and (when ``folder`` is set) on disk."""
    folder: str | os.PathLike | None = None
    stats: CacheStats = field(default_factory=CacheStats)

    def __post_init__(self):
        self._memory: dict[str, torch.Tensor] = {}
        # model object -> (parameter version, fingerprint); weak keys, so a freed model's entry
        # goes with it and a new model that reuses its memory address starts afresh
        if self.folder is not None:
            self.folder = Path(self.folder)
            self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path | None:
        return None if self.folder is None else Path(self.folder) / f"{key}.pt"

    def get(self, key: str) -> torch.Tensor | None:
        if key in self._memory:
            self.stats.hits += 1
            return self._memory[key]
        path = self._path(key)
        if path is not None and path.exists():
            try:
                entry = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - a torn or foreign file: re-encode, say so
                raise DataError(path, f"unreadable feature-cache entry ({exc.__class__.__name__}); "
                                      f"delete it to re-encode") from exc
            self._memory[key] = entry["features"]
            self.stats.hits += 1
            return entry["features"]
        self.stats.misses += 1
        return None

    def put(self, key: str, features: torch.Tensor, meta: dict | None = None) -> None:
        self._memory[key] = features
        path = self._path(key)
        if path is not None:
            torch_save_atomic({"features": features, "meta": meta or {}}, path)

    def fingerprint(self, bundle) -> str:
        """The bundle's weight checksum (recomputed only after its weights changed)."""
        return bundle.fingerprint()


def _transform_id(transform) -> str:
    return " ".join(repr(transform).split())


def image_key(fingerprint: str, dataset_name: str, split: str, filenames: Sequence[str], transform) -> str:
    return "img-" + stable_hash({"model": fingerprint, "dataset": dataset_name, "split": split,
                                 "files": stable_hash(list(map(str, filenames)), n=20),
                                 "transform": _transform_id(transform)}, n=20)


def image_files(dataset) -> list[str]:
    """What the image key holds of each image of ``dataset``: its name, byte size and modification
    time in ns (``name|size|mtime``), so an overwritten image gets a new key; a name that is no file
    here (an in-memory set) stays a bare name. The files come from ``dataset.image_paths()`` where it
    has one (caption sets: the images under their folder), else from the names themselves."""
    names = dataset.filenames() if hasattr(dataset, "filenames") else [str(i) for i in range(len(dataset))]
    paths = dataset.image_paths() if hasattr(dataset, "image_paths") else names
    out = []
    for name, path in zip(names, paths):
        try:
            stat = os.stat(path)
            out.append(f"{name}|{stat.st_size}|{stat.st_mtime_ns}")
        except (OSError, ValueError, TypeError):
            out.append(str(name))
    return out


def text_key(fingerprint: str, texts: Sequence[str]) -> str:
    return "txt-" + stable_hash({"model": fingerprint, "texts": stable_hash(list(texts), n=20)}, n=20)


class _ImagesOnly(torch.utils.data.Dataset):
    """Wrap a dataset with ``load(i)`` (classification or caption) to yield transformed images."""

    def __init__(self, dataset, transform: Callable):
        self.dataset, self.transform = dataset, transform

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        item = self.dataset.load(index) if hasattr(self.dataset, "load") else self.dataset[index]
        if isinstance(item, tuple):
            item = item[0]
        return self.transform(item) if self.transform is not None else item


def model_device(model) -> torch.device:
    """The device of a model's (first) parameter: where its inputs must go."""
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover
        return torch.device("cpu")


@torch.no_grad()
@tf32_matmul()   # TF32 matmuls on CUDA (rsdix.utils.tf32_matmul)
def encode_images(bundle, dataset, cache: FeatureCache | None = None, dataset_name: str | None = None,
                  split: str = "all", batch_size: int = 64, num_workers: int = 0,
                  transform: Callable | None = None, desc: str | None = None) -> torch.Tensor:
    """L2-normalised image features ``(len(dataset), dim)`` of ``bundle`` for ``dataset``.

    ``dataset`` needs ``load(i)`` returning a PIL image (both rsdix dataset classes have it,
    with their own transform unset) and ``filenames()``; ``transform`` defaults to the bundle's
    ``preprocess_val``.
    """
    cache = cache if cache is not None else FeatureCache()
    own = getattr(dataset, "transform", None)
    if own is not None:  # the dataset already transforms its images: use (and key on) that
        transform, apply = own, None
    else:
        transform = apply = transform or bundle.preprocess_val
    if len(dataset) == 0:
        raise DataError(dataset_name or getattr(dataset, "source", "dataset"), "no images to encode")
    name = dataset_name or str(getattr(dataset, "source", "dataset"))
    filenames = image_files(dataset)
    key = image_key(cache.fingerprint(bundle), name, split, filenames, transform)
    hit = cache.get(key)
    if hit is not None:
        return hit
    model = bundle.model
    modes = _eval_mode(model)
    device = model_device(model)
    loader = torch.utils.data.DataLoader(_ImagesOnly(dataset, apply), batch_size=batch_size,
                                         num_workers=num_workers, shuffle=False)
    chunks = []
    try:
        for images in progress(loader, desc=desc or f"encode {name}/{split}", unit="batch"):
            feats = model.encode_image(images.to(device))
            chunks.append(torch.nn.functional.normalize(feats.float(), dim=-1).cpu())
            cache.stats.images_encoded += len(images)
    finally:
        _restore_mode(modes)
    features = torch.cat(chunks)
    _check_finite(features, f"{bundle.name} on {name}")
    cache.put(key, features, {"kind": "image", "dataset": name, "split": split, "n": len(features),
                              "model": bundle.name})
    return features


@torch.no_grad()
@tf32_matmul()   # TF32 matmuls on CUDA (rsdix.utils.tf32_matmul)
def encode_images_many(bundles: dict, dataset, cache: FeatureCache, dataset_name: str | None = None,
                       split: str = "all", batch_size: int = 64, num_workers: int = 0,
                       desc: str | None = None) -> dict[str, torch.Tensor]:
    """:func:`encode_images` for several models at once: each image is decoded and transformed
    once per distinct transform and fed to every model that uses it (decoding and resizing large
    images are paid once). ``bundles`` maps a label to a bundle; returns label -> features, all
    cached."""
    name = dataset_name or str(getattr(dataset, "source", "dataset"))
    if len(dataset) == 0:
        raise DataError(name, "no images to encode")
    if getattr(dataset, "transform", None) is not None:
        raise DataError(name, "encode_images_many needs a dataset without its own transform")
    filenames = image_files(dataset)
    out, todo = {}, {}
    for label, bundle in bundles.items():
        key = image_key(cache.fingerprint(bundle), name, split, filenames, bundle.preprocess_val)
        hit = cache.get(key)
        if hit is not None:
            out[label] = hit
        else:
            todo.setdefault(_transform_id(bundle.preprocess_val), []).append((label, bundle, key))
    for group in todo.values():
        transform = group[0][1].preprocess_val
        loader = torch.utils.data.DataLoader(_ImagesOnly(dataset, transform), batch_size=batch_size,
                                             num_workers=num_workers, shuffle=False)
        chunks: dict[str, list] = {label: [] for label, _, _ in group}
        states = {label: _eval_mode(bundle.model) for label, bundle, _ in group}
        try:
            for images in progress(loader, desc=desc or f"encode {name}/{split} for {len(group)} model(s)",
                                   unit="batch"):
                for label, bundle, _ in group:
                    feats = bundle.model.encode_image(images.to(model_device(bundle.model)))
                    chunks[label].append(torch.nn.functional.normalize(feats.float(), dim=-1).cpu())
                    cache.stats.images_encoded += len(images)
        finally:
            for label, _, _ in group:
                _restore_mode(states[label])
        for label, bundle, key in group:
            features = torch.cat(chunks[label])
            _check_finite(features, f"{bundle.name} on {name} ({label})")
            cache.put(key, features, {"kind": "image", "dataset": name, "split": split, "n": len(features),
                                      "model": bundle.name})
            out[label] = features
    return out


@torch.no_grad()
@tf32_matmul()   # TF32 matmuls on CUDA (rsdix.utils.tf32_matmul)
def encode_texts(bundle, texts: Sequence[str], cache: FeatureCache | None = None, batch_size: int = 256,
                 desc: str = "encode texts", normalize: bool = True) -> torch.Tensor:
    """L2-normalised text features ``(len(texts), dim)``; cached by model and exact texts.
    ``normalize=False``: the text tower's raw outputs (an ensemble that averages raw embeddings)."""
    texts = list(texts)
    if not texts:
        raise DataError("texts", "no texts to encode")
    cache = cache if cache is not None else FeatureCache()
    key = text_key(cache.fingerprint(bundle), texts) + ("" if normalize else "-raw")
    hit = cache.get(key)
    if hit is not None:
        return hit
    model = bundle.model
    modes = _eval_mode(model)
    device = model_device(model)
    pad_id = trimmable_pad_id(model)
    tokens_all = bundle.tokenizer(texts)
    order = torch.arange(len(texts))
    if pad_id is not None:   # batch texts of similar length, drop all-padding columns: same outputs, faster
        order = torch.argsort((tokens_all != pad_id).sum(dim=1), stable=True)
    features = torch.empty(0)
    starts = range(0, len(texts), batch_size)
    try:
        for start in progress(starts, desc=desc, unit="batch", disable=len(starts) < 4):
            idx = order[start:start + batch_size]
            tokens = tokens_all[idx]
            if pad_id is not None:
                used = (tokens != pad_id).any(dim=0).nonzero()
                tokens = tokens[:, :int(used.max()) + 1] if len(used) else tokens
            with context_cut(model, tokens.shape[1]):
                feats = model.encode_text(tokens.to(device)).float()
            feats = (torch.nn.functional.normalize(feats, dim=-1) if normalize else feats).cpu()
            if features.numel() == 0:
                features = torch.empty(len(texts), feats.shape[1])
            features[idx] = feats
            cache.stats.texts_encoded += len(tokens)
    finally:
        _restore_mode(modes)
    _check_finite(features, f"{bundle.name} on {desc}")
    cache.put(key, features, {"kind": "text", "n": len(features), "model": bundle.name})
    return features


def _eval_mode(model) -> dict:
    """Put every submodule in eval mode; return their previous modes for :func:`_restore_mode`
    (``model.train(flag)`` would not restore a mix, e.g. a Hugging Face tower kept in eval)."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    return modes


def _restore_mode(modes: dict) -> None:
    for module, training in modes.items():
        module.training = training


def trimmable_pad_id(model) -> int | None:
    """The padding id when trailing padding can be cut without changing the text features:
    Hugging Face towers mask padding; CLIP's own text transformer (open_clip's ``CLIP``: causal
    mask, pooled at the end-of-text token by ``argmax``/``eos``) never lets a token see the ones
    after it, so the positions after the last end-of-text token change nothing (the positional
    embedding and mask are cut to the kept length, :func:`context_cut`). None for any other tower."""
    text = getattr(model, "text", None)
    config = getattr(text, "config", None)
    if text is not None and type(text).__name__ == "HFTextEncoder" and getattr(config, "pad_token_id", None) is not None:
        return int(config.pad_token_id)
    if _causal_clip_text(model):
        return 0   # open_clip's tokenizer pads with 0
    return None


def _causal_clip_text(model) -> bool:
    mask = getattr(model, "attn_mask", None)
    pos = getattr(model, "positional_embedding", None)
    if not (isinstance(pos, torch.nn.Parameter) and isinstance(mask, torch.Tensor) and mask.dim() == 2
            and getattr(model, "text_pool_type", None) in ("argmax", "eos")):
        return False
    above = torch.ones(mask.shape, dtype=torch.bool, device=mask.device).triu(1)
    return bool(torch.isinf(mask)[above].all()) and not bool(torch.isinf(mask)[~above].any())   # causal


@contextmanager
def context_cut(model, length: int):
    """CLIP's own text transformer run on ``length`` positions: its positional embedding and causal
    mask cut to them for the block (restored after; :func:`trimmable_pad_id` says when that is exact)."""
    if not _causal_clip_text(model) or length >= model.positional_embedding.shape[0]:
        yield
        return
    pos, mask = model.positional_embedding, model.attn_mask
    model.positional_embedding = torch.nn.Parameter(pos[:length], requires_grad=False)
    model.attn_mask = mask[:length, :length]
    try:
        yield
    finally:
        model.positional_embedding, model.attn_mask = pos, mask


def _check_finite(features: torch.Tensor, where: str) -> None:
    """The model's outputs, once, before they are cached: NaN/inf feature rows are an error."""
    require_finite(features, where, "feature rows", hint=" (the model produced non-finite outputs)")
