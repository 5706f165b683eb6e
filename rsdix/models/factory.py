"""The model factory: :func:`load_model` builds any CLIP the project meets, by open_clip name and
tag, rsdix preset, checkpoint file, saved model folder or transformers folder.

    bundle = load_model("ViT-B-32", pretrained="openai")          # paper profile (downloads)
    bundle = load_model("ViT-B-32", pretrained="RemoteCLIP-ViT-B-32.pt")  # a local checkpoint
    bundle = load_model("rsdix-tiny")                               # tests: random init, seconds
    bundle = load_model("rsdix-cnn")                                # CPU profile: ResNet-18 + MiniLM
    bundle = load_model("zoo:RemoteCLIP-ViT-B-32")                  # a zoo checkpoint, as the zoo says
    bundle.model.encode_image(x); bundle.tokenizer(["a caption"]); bundle.preprocess_val(img)

Fine-tuned models are saved with :func:`rsdix.models.formats.save_model` as an open_clip
``local-dir`` folder (``open_clip_config.json`` + ``open_clip_model.safetensors``), loadable back
with ``load_model(path)`` or plain ``open_clip.create_model_and_transforms("local-dir:" + path)``.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import huggingface_hub.constants as hf_constants
import open_clip
import torch

from rsdix.errors import DataError, OfflineError
from rsdix.models.bundle import ModelBundle, quiet_loading
from rsdix.models.formats import (is_local_dir, load_checkpoint_file, load_hf_bundle, load_local_dir,
                                  model_folder_problem)
from rsdix.models.hf_adapter import is_hf_folder
from rsdix.models.presets import PRESET_PREPROCESS, preset_configs, register_model_config, resolve_placeholders
from rsdix.models.zoo import load_zoo_model
from rsdix.utils import hub_reachable


def load_model(name: str, pretrained: str | None = None, device: str | torch.device = "cpu",
               precision: str = "fp32", cache_dir: str | None = None, **kwargs: Any) -> ModelBundle:
    """Create an open_clip model by name, preset, local folder, or hf-hub name.

    ``pretrained`` is an open_clip tag (``openai``, ``laion2b_s34b_b79k`` ...; needs the
    internet), or a local checkpoint file (:func:`read_state_dict`: plain open_clip state dict,
    RemoteCLIP / GeoRSCLIP / SkyCLIP ``.pt``, a training checkpoint, ``.safetensors``, OpenAI's
    TorchScript ``.pt``), loaded with ``weights_only=True`` and checked key by key against
    ``name``. ``name`` may also be a folder saved by :func:`save_model` or a transformers CLIP /
    SigLIP folder (:mod:`rsdix.models.hf_adapter`).
    """
    with quiet_loading(str(name)):
        return _load_model(name, pretrained, device, precision, cache_dir, **kwargs)


def _load_model(name: str, pretrained: str | None, device, precision: str, cache_dir: str | None,
                **kwargs: Any) -> ModelBundle:
    if str(name).startswith("zoo:"):   # a checkpoint of the model zoo (rsdix/models/zoo.yaml)
        return load_zoo_model(str(name)[len("zoo:"):], device=device, precision=precision)
    if is_local_dir(str(name)):
        return load_local_dir(Path(name), device, precision)
    if os.path.isdir(str(name)) and is_hf_folder(name):
        return load_hf_bundle(Path(name), device)
    if os.path.isdir(str(name)):
        raise model_folder_problem(Path(name))
    if os.path.isfile(str(name)):
        raise DataError(name, "a file, not a model name or folder: give it as the weights of an architecture, "
                              "NAME@FILE (e.g. ViT-B-32@/ckpt/RemoteCLIP-ViT-B-32.pt)")
    presets = preset_configs()
    model_config = None
    if name in presets:
        model_config = resolve_placeholders(presets[name])
        register_model_config(name, model_config)
        kwargs.setdefault("image_mean", PRESET_PREPROCESS["mean"])
        kwargs.setdefault("image_std", PRESET_PREPROCESS["std"])
    elif not name.startswith(("hf-hub:", "local-dir:")) and open_clip.get_model_config(name) is None:
        if "/" in name or os.sep in name:
            raise DataError(name, "model folder not found (a path; open_clip and preset names hold no '/')")
        raise DataError(name, f"unknown model name; open_clip models: {', '.join(open_clip.list_models()[:8])}"
                              f", ... ; rsdix presets: {', '.join(presets)}")
    if pretrained is not None and not os.path.isfile(str(pretrained)):
        known = [t for m, t in open_clip.list_pretrained() if m == name]
        if pretrained not in known and ("/" in str(pretrained) or str(pretrained).endswith((".pt", ".pth", ".bin", ".safetensors"))):
            raise DataError(pretrained, "checkpoint file not found")
    if pretrained is not None and os.path.isfile(str(pretrained)):
        return load_checkpoint_file(name, Path(pretrained), model_config, device, precision, kwargs)
    needs_hub = name.startswith("hf-hub:") or (pretrained is not None and not os.path.isfile(str(pretrained)))
    if uses_openai_weights(name, pretrained):  # OpenAI trained with QuickGELU; open_clip 3.x builds nn.GELU
        kwargs.setdefault("force_quick_gelu", True)
    try:
        with _offline_unless_reachable(needs_hub):
            model, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(
                name, pretrained=pretrained, device=device, precision=precision, cache_dir=cache_dir,
                weights_only=True, **kwargs)
    except (RuntimeError, AssertionError) as exc:  # open_clip asserts on resized position embeddings
        msg = str(exc)
        if isinstance(exc, AssertionError) or "size mismatch" in msg or "Missing key" in msg \
                or "Unexpected key" in msg:
            first = msg.split("\n\t")[1] if "\n\t" in msg else msg[:300]
            raise DataError(pretrained, f"checkpoint does not match architecture {name!r}: {first}") from exc
        if name.startswith("hf-hub:") or "download" in msg.lower() or "HF Hub" in msg:
            raise OfflineError(
                f"could not download weights for {name!r} (pretrained={pretrained!r}): no internet or model hub "
                f"here; download them on a machine with internet and give their path: `{name}@/path/to/checkpoint.pt` "
                f"on the command line (rsdix evaluate, --model), pretrained='/path/to/checkpoint.pt' in Python "
                f"(or set HF_HUB_CACHE to a folder that holds them)") from exc
        raise
    except OSError as exc:  # huggingface_hub errors when offline
        raise OfflineError(f"could not fetch {name!r} (pretrained={pretrained!r}) from the model hub: {exc.__class__.__name__}; "
                           f"give a local checkpoint instead: `{name}@/path/to/checkpoint.pt` on the command line, "
                           f"pretrained='/path/to/checkpoint.pt' in Python") from exc
    tokenizer = open_clip.get_tokenizer(name)
    if model_config is None:
        model_config = open_clip.get_model_config(name) or {}
    if kwargs.get("force_quick_gelu"):  # recorded, so a saved folder loads back with the same activation
        model_config = {**model_config, "quick_gelu": True}
    return ModelBundle(model, tokenizer, preprocess_train, preprocess_val, name=name, pretrained=pretrained,
                       model_config=model_config,
                       preprocess_config=dict(getattr(model.visual, "preprocess_cfg", {}) or {}))


def uses_openai_weights(name: str, pretrained: str | None) -> bool:
    """OpenAI's CLIP weights (``pretrained="openai"``) on a model name without ``-quickgelu``:
    they were trained with QuickGELU, and open_clip 3.x only warns when the model uses ``nn.GELU``."""
    return str(pretrained).lower() == "openai" and not str(name).endswith("-quickgelu")


@contextmanager
def _offline_unless_reachable(needs_hub: bool):
    """When the hub is unreachable, let huggingface_hub use its local cache only (no retries)."""
    if not needs_hub or os.environ.get("HF_HUB_OFFLINE") or hub_reachable():
        yield
        return
    old = hf_constants.HF_HUB_OFFLINE
    hf_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hf_constants.HF_HUB_OFFLINE = old
