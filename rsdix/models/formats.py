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
from safetensors import SafetensorError, safe_open
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


HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def load_hf_bundle(path: Path, device) -> ModelBundle:
    if not any((path / name).is_file() for name in HF_WEIGHTS):
        raise DataError(path / "model.safetensors", f"missing: this transformers folder has config.json but no "
                                                    f"weights file ({' or '.join(HF_WEIGHTS[::2])})")
    if (path / "model.safetensors").is_file():
        check_safetensors(path / "model.safetensors")
    model, tokenizer, preprocess, info = load_hf_folder(path, device)
    config = {"embed_dim": info["embed_dim"], "vision_cfg": {"image_size": info["image_size"]},
              "text_cfg": {"context_length": info["context_length"]}, "hf_model_type": info["model_type"]}
    return ModelBundle(model, tokenizer, preprocess, preprocess, name=path.name, pretrained=str(path),
                       model_config=config, preprocess_config={"mean": info["mean"], "std": info["std"]})


def model_folder_problem(path: Path) -> DataError:
    """Why a folder that is neither an open_clip nor a transformers CLIP/SigLIP folder cannot be
    loaded, naming the missing or wrong file."""
    config = path / "config.json"
    if config.is_file():
        meta = read_json(config, "transformers config")   # malformed JSON: a DataError naming it
        kind = meta.get("model_type") if isinstance(meta, dict) else None
        return DataError(config, f"model_type {kind!r} is not a CLIP or SigLIP model (supported: clip, siglip)")
    if any((path / name).is_file() for name in HF_WEIGHTS + ("tokenizer.json", "tokenizer_config.json")):
        return DataError(config, "missing: a transformers folder needs config.json beside its weights "
                                 "(save_pretrained writes both; copy it from the model's source)")
    if any(path.glob("open_clip_*.safetensors")) or any(path.glob("open_clip_*.bin")):
        return DataError(path / "open_clip_config.json", "missing: an open_clip model folder needs it beside "
                                                         "its weights (save_model writes both)")
    if (path / "checkpoint.pt").is_file():
        return DataError(path, "a training run folder, not a model folder: load its weights with the "
                               "architecture's name, e.g. rsdix-tiny@<folder>/checkpoint.pt, or use the model "
                               "folder saved beside it")
    return DataError(path, "not a model folder: neither open_clip_config.json (rsdix / open_clip) nor "
                           "config.json (transformers CLIP / SigLIP) in it")


def is_torchscript(path: Path) -> bool:
    """A torch.jit archive (OpenAI's clip ``.pt``): a zip holding ``constants.pkl`` or ``code/``."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.split("/", 1)[-1] == "constants.pkl" or "/code/" in n for n in z.namelist())


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint file: ``.safetensors``, a TorchScript archive (OpenAI), or a torch
    pickle read with ``weights_only=True`` (plain state dict, a checkpoint with a ``state_dict`` /
    ``model`` key, or rsdix's own training checkpoint ``checkpoint.pt``, whose ``trainee`` holds the
    model under ``model.`` beside the objective's own parameters, which are left out; ``module.``
    prefixes of DDP are removed). A file that is not one of these raises one DataError naming it."""
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
    if isinstance(state, dict) and isinstance(state.get("trainee"), dict):   # rsdix's training checkpoint
        state = {k[len("model."):]: v for k, v in state["trainee"].items() if k.startswith("model.")}
        if not state:
            raise DataError(path, "training checkpoint whose 'trainee' holds no 'model.' weights")
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(path, "no state dict of tensors found (expected weights, or a 'state_dict' key)")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def check_safetensors(path: Path) -> None:
    """DataError naming ``path`` when it is not a whole safetensors file (another format, or cut
    short: its header promises more bytes than the file holds); reads the header only."""
    try:
        with safe_open(str(path), framework="pt"):
            pass
    except (SafetensorError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise DataError(path, f"not a readable safetensors file: cut short (an interrupted copy or download) or "
                              f"another format ({exc.__class__.__name__}: {reason[:160]})") from exc


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
    check_safetensors(weights)
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
