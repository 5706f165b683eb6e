"""What a loaded model is: :class:`ModelBundle` (the model with its tokenizer, image transforms and
where it came from), the weights' checksums that key the feature caches, and quiet loading (no
warning that says nothing about this model)."""
from __future__ import annotations

import hashlib
import re
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from transformers.utils import logging as hf_logging

from rsdix.log import quiet_messages, starts_with
from rsdix.models.presets import MINILM_PACKAGE, preset_configs


@dataclass
class ModelBundle:
    """A model with its tokenizer and image transforms, and where it came from."""
    model: torch.nn.Module
    tokenizer: Callable
    preprocess_train: Callable
    preprocess_val: Callable
    name: str
    pretrained: str | None = None
    model_config: dict = field(default_factory=dict)
    preprocess_config: dict = field(default_factory=dict)

    @property
    def image_size(self) -> int:
        size = self.model_config.get("vision_cfg", {}).get("image_size", 224)
        return size if isinstance(size, int) else size[0]

    @property
    def backbone(self) -> str:
        """The architecture as the papers write it (:func:`backbone_label`): ``ViT-B/32``."""
        return backbone_label(self.name)

    @property
    def embed_dim(self) -> int:
        return int(self.model_config.get("embed_dim", 512))

    def fingerprint(self) -> str:
        """The weights' checksum (:func:`model_fingerprint`), computed again only after a weight changed."""
        return versioned_fingerprint(self.model)


def backbone_label(name: str) -> str:
    """An open_clip architecture as the papers write it: ``ViT-B-32`` / ``ViT-B-32-quickgelu`` ->
    ``ViT-B/32``; other names as they are (``RN50``, ``rsdix-cnn``)."""
    m = re.match(r"^(ViT-[A-Za-z]+)-(\d+)", str(name))
    return f"{m.group(1)}/{m.group(2)}" if m else str(name)


def minilm_pooler_report(text: str) -> bool:
    """transformers' LOAD REPORT of MiniLM's BertModel whose only complaint is the pooler the
    sentence-transformers checkpoint carries and open_clip's mean pooling never uses."""
    if "LOAD REPORT" not in text or MINILM_PACKAGE not in text:
        return False
    rows = [line for line in text.splitlines() if "|" in line and any(
        status in line for status in ("UNEXPECTED", "MISSING", "MISMATCH", "CONVERSION"))]
    return bool(rows) and all(line.strip().startswith("pooler.") and "UNEXPECTED" in line for line in rows)


@contextmanager
def quiet_loading(name: str) -> Iterator[None]:
    """While a model is built here: no open_clip "No pretrained weights loaded" / "initialized
    partially" warning for an rsdix preset (random init is what a preset is), no LOAD REPORT of
    MiniLM's unused pooler and no "Loading weights" bar for its 100 tensors. Every other
    message (another model's report, a real mismatch) still shows."""
    rules = {"transformers.modeling_utils": minilm_pooler_report}
    if name in preset_configs():
        rules[""] = starts_with(f"No pretrained weights loaded for model '{name}'",
                                f"Model {name} initialized partially")
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with quiet_messages(rules):
            yield
    finally:
        if bar:
            hf_logging.enable_progress_bar()


def model_fingerprint(model: torch.nn.Module) -> str:
    """A checksum of all parameters and buffers (identifies weights for feature caches)."""
    h = hashlib.sha1()
    for key, tensor in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).numpy().tobytes() if tensor.dtype != torch.bfloat16
                 else tensor.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def versioned_fingerprint(model: torch.nn.Module) -> str:
    """:func:`model_fingerprint`, remembered per model object until one of its parameters or
    buffers changes in place (an optimizer step, ``load_state_dict``: torch's version counters).
    Hashing ViT-B/32 costs about 2 s; notebook 04 asks for its encoders' checksums once per run."""
    version = sum(t._version for t in model.state_dict().values())
    cached = _FINGERPRINTS.get(model)
    if cached is None or cached[0] != version:
        cached = _FINGERPRINTS[model] = (version, model_fingerprint(model))
    return cached[1]


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
