"""Checkpoint formats: reading weights from any file a user has (open_clip state dicts, RemoteCLIP /
GeoRSCLIP / SkyCLIP ``.pt``, training checkpoints, ``.safetensors``, OpenAI's TorchScript), model
folders written by :func:`save_model` (open_clip's ``local-dir`` layout) and transformers CLIP /
SigLIP folders (:mod:`rsdix.models.hf_adapter`), each checked against its architecture."""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import open_clip
import torch
from safetensors.torch import load_file, save_file

from rsdix.data.files import read_json
from rsdix.errors import DataError
from rsdix.models.bundle import ModelBundle
from rsdix.models.hf_adapter import load_hf_folder
from rsdix.models.presets import PRESET_PREPROCESS, minilm_path, register_model_config
from rsdix.utils import atomic_path, atomic_write_text


def is_local_dir(path: str) -> bool:
    """A folder in open_clip's ``local-dir`` layout (``open_clip_config.json`` + weights)."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "open_clip_config.json"))


def load_hf_bundle(path: Path, device) -> ModelBundle:
    model, tokenizer, preprocess, info = load_hf_folder(path, device)
    config = {"embed_dim": info["embed_dim"], "vision_cfg": {"image_size": info["image_size"]},
              "text_cfg": {"context_length": info["context_length"]}, "hf_model_type": info["model_type"]}
    return ModelBundle(model, tokenizer, preprocess, preprocess, name=path.name, pretrained=str(path),
                       model_config=config, preprocess_config={"mean": info["mean"], "std": info["std"]})


def is_torchscript(path: Path) -> bool:
    """A torch.jit archive (OpenAI's clip ``.pt``): a zip holding ``constants.pkl`` or ``code/``."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.split("/", 1)[-1] == "constants.pkl" or "/code/" in n for n in z.namelist())


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint file: ``.safetensors``, a TorchScript archive (OpenAI), or a torch
    pickle read with ``weights_only=True`` (plain state dict, or a training checkpoint with a
    ``state_dict`` / ``model`` key; ``module.`` prefixes of DDP are removed). A file that is not
    one of these raises one DataError naming it."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        elif is_torchscript(path):
            state = torch.jit.load(str(path), map_location="cpu").state_dict()
            for key in ("input_resolution", "context_length", "vocab_size"):  # OpenAI's scalars, as open_clip drops them
                state.pop(key, None)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load/jit/safetensors raise many types on a bad file
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
        raise DataError(path, f"not a readable checkpoint (truncated, corrupt, or a pickle that is not "
                              f"plain weights): {exc.__class__.__name__}: {first}") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(path, "no state dict of tensors found (expected weights, or a 'state_dict' key)")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def match_problem(model: torch.nn.Module, state: dict) -> str | None:
    own = model.state_dict()
    ignored = {k for k in own if k.endswith("position_ids")}
    missing = sorted(set(own) - set(state) - ignored)
    buffers = {k for k, _ in model.named_buffers()}  # non-persistent ones (attn_mask) sit in TorchScript files
    unexpected = sorted(set(state) - set(own) - buffers - {k for k in state if k.endswith("position_ids")})
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in sorted(set(own) & set(state))
              if state[k].shape != own[k].shape]
    parts = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatch", shapes)):
        if items:
            parts.append(f"{label} ({len(items)}): {', '.join(items[:3])}{', ...' if len(items) > 3 else ''}")
    return "; ".join(parts) or None


def load_checkpoint_file(name: str, path: Path, model_config, device, precision, kwargs) -> ModelBundle:
    state = read_state_dict(path)
    model, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(
        name, pretrained=None, device=device, precision=precision, **kwargs)
    try:  # another image / context size of the same architecture: interpolate like open_clip
        open_clip.model.resize_pos_embed(state, model)
        open_clip.model.resize_text_pos_embed(state, model)
    except (AssertionError, RuntimeError, ValueError):
        pass  # another architecture: reported below as a shape mismatch
    problem = match_problem(model, state)
    if problem:
        raise DataError(path, f"checkpoint does not match architecture {name!r}: {problem}")
    model.load_state_dict({k: v for k, v in state.items() if k in model.state_dict()}, strict=False)
    return ModelBundle(model, open_clip.get_tokenizer(name), preprocess_train, preprocess_val, name=name,
                       pretrained=str(path), model_config=model_config or open_clip.get_model_config(name) or {},
                       preprocess_config=dict(getattr(model.visual, "preprocess_cfg", {}) or {}))


def load_local_dir(path: Path, device, precision) -> ModelBundle:
    config_file = path / "open_clip_config.json"
    meta = read_json(config_file, "model config")
    if not isinstance(meta, dict) or not isinstance(meta.get("model_cfg"), dict):
        raise DataError(config_file, "no 'model_cfg' object: not a model folder written by save_model/open_clip")
    model_config = meta["model_cfg"]
    # a MiniLM text tower saved on another machine: point it at this machine's copy
    text = model_config.get("text_cfg", {})
    if text.get("hf_model_name") and not os.path.isdir(str(text["hf_model_name"])) and \
            "minilm" in str(text["hf_model_name"]).lower():
        text["hf_model_name"] = text["hf_tokenizer_name"] = str(minilm_path())
    name = meta.get("rsdix", {}).get("name", path.name)
    register_model_config(name, model_config)
    pre = meta.get("preprocess_cfg", {})
    weights = path / "open_clip_model.safetensors"
    if not weights.exists():
        raise DataError(path, "model folder has no open_clip_model.safetensors")
    try:
        model, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(
            name, pretrained=str(weights), device=device, precision=precision,
            image_mean=pre.get("mean"), image_std=pre.get("std"), weights_only=True)
    except RuntimeError as exc:
        raise DataError(weights, f"checkpoint does not match its config: {str(exc)[:300]}") from exc
    tokenizer = open_clip.get_tokenizer(name)
    return ModelBundle(model, tokenizer, preprocess_train, preprocess_val, name=name, pretrained=str(path),
                       model_config=model_config, preprocess_config=pre)


def save_model(bundle: ModelBundle, path: str | os.PathLike, model: torch.nn.Module | None = None,
               extra: dict | None = None, dtype: torch.dtype | None = None) -> Path:
    """Save as an open_clip ``local-dir`` folder (config JSON + safetensors), atomically per file;
    ``dtype`` (e.g. ``torch.bfloat16``) casts the floating-point weights (half the size; they load
    back into the model's own precision)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model = model if model is not None else bundle.model
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().contiguous().cpu()
             for k, v in model.state_dict().items()}
    with atomic_path(path / "open_clip_model.safetensors") as tmp:
        save_file(state, str(tmp))
    pre = {"mean": list(bundle.preprocess_config.get("mean", PRESET_PREPROCESS["mean"])),
           "std": list(bundle.preprocess_config.get("std", PRESET_PREPROCESS["std"])),
           "size": bundle.image_size}
    meta = {"model_cfg": bundle.model_config, "preprocess_cfg": pre,
            "rsdix": {"name": bundle.name, "base_pretrained": bundle.pretrained, **(extra or {})}}
    atomic_write_text(path / "open_clip_config.json", json.dumps(meta, indent=2, default=str))
    return path
