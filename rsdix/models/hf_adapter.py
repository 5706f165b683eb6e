"""A Hugging Face transformers CLIP or SigLIP folder (``save_pretrained``; Git-RSCLIP ships in
SigLIP format) behind open_clip's interface: ``encode_image(x, normalize=)``,
``encode_text(tokens, normalize=)``, a tokenizer ``tok(list_of_str) -> LongTensor`` and the
image transforms of the folder's ``preprocessor_config.json``.

    model, tokenizer, preprocess, info = load_hf_folder("/ckpt/Git-RSCLIP")
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from open_clip import image_transform
from transformers import AutoModel, AutoTokenizer

from rsdix.data.files import read_json
from rsdix.errors import DataError
from rsdix.log import get_logger

log = get_logger(__name__)

HF_TYPES = ("clip", "siglip")


def is_hf_folder(path: str | os.PathLike) -> bool:
    """A folder with a transformers ``config.json`` of a CLIP or SigLIP model."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text()).get("model_type") in HF_TYPES
    except (OSError, ValueError):
        return False


def _features(out) -> torch.Tensor:
    """transformers 4 returns a tensor, 5 a model output whose pooler_output is the projection."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class HFCLIPAdapter(torch.nn.Module):
    """A transformers ``CLIPModel`` / ``SiglipModel`` with open_clip's encode methods."""

    def __init__(self, hf_model: torch.nn.Module):
        super().__init__()
        self.hf = hf_model
        self.logit_scale = getattr(hf_model, "logit_scale", torch.nn.Parameter(torch.tensor(0.0)))

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        f = _features(self.hf.get_image_features(pixel_values=images))
        return F.normalize(f, dim=-1) if normalize else f

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        f = _features(self.hf.get_text_features(input_ids=tokens))
        return F.normalize(f, dim=-1) if normalize else f

    def forward(self, images, tokens):
        return self.encode_image(images, normalize=True), self.encode_text(tokens, normalize=True), \
            self.logit_scale.exp()


class HFTokenizer:
    """Pads to the model's context length (SigLIP was trained with ``padding="max_length"``)."""

    def __init__(self, tokenizer, context_length: int):
        self.tokenizer = tokenizer
        self.context_length = context_length

    def __call__(self, texts, context_length: int | None = None) -> torch.Tensor:
        texts = [texts] if isinstance(texts, str) else list(texts)
        return self.tokenizer(texts, padding="max_length", truncation=True, return_tensors="pt",
                              max_length=context_length or self.context_length).input_ids


def load_hf_folder(path: str | os.PathLike, device: str | torch.device = "cpu"):
    """``(model, tokenizer, preprocess_val, info)``; ``info`` holds image_size, mean, std, embed_dim."""
    path = Path(path)
    try:
        hf = AutoModel.from_pretrained(str(path)).eval().to(device)
        tok = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError, RuntimeError) as exc:
        raise DataError(path, f"not a loadable transformers CLIP/SigLIP folder: {str(exc).splitlines()[0][:300]}") \
            from exc
    cfg = hf.config
    pre_file = path / "preprocessor_config.json"
    pre = read_json(pre_file, "image preprocessing config") if pre_file.is_file() else None
    if pre is not None and not isinstance(pre, dict):
        raise DataError(pre_file, f"expected a JSON object, got {type(pre).__name__}")
    if pre is None:
        pre = {}
        log.warning(f"{pre_file}: missing; the image mean and std default to CLIP's (a SigLIP model expects "
                    f"0.5: copy the file from the model's source)")
    size = cfg.vision_config.image_size
    mean = tuple(pre.get("image_mean", (0.48145466, 0.4578275, 0.40821073)))
    std = tuple(pre.get("image_std", (0.26862954, 0.26130258, 0.27577711)))
    context = int(getattr(cfg.text_config, "max_position_embeddings", 77))
    embed_dim = int(getattr(cfg, "projection_dim", 0) or cfg.text_config.hidden_size)
    info = {"image_size": size, "mean": mean, "std": std, "embed_dim": embed_dim, "model_type": cfg.model_type,
            "context_length": context}
    return HFCLIPAdapter(hf), HFTokenizer(tok, context), image_transform(size, False, mean=mean, std=std), info
