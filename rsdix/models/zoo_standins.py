"""Random-weight stand-ins of zoo checkpoints, written in each entry's exact file format and place
(``<root>/checkpoints/<local>``), so every zoo loading path runs offline and in CI (the paper dry
run does the same for its downloads, :mod:`rsdix.reporting.standins`).

    write_standin("RemoteCLIP-ViT-B-32", root)             # random weights, RemoteCLIP's plain state dict
    write_standin("GeoRSCLIP-ViT-H-14", root, cheap=True)   # every key at its shape, a 200 KB file
    load_zoo_model("RemoteCLIP-ViT-B-32", root=root)        # the real loading path

``cheap`` writes each tensor as a zero-stride view of one value (``torch.save`` keeps the view, so
the file holds one number per tensor): the key and shape mapping of ViT-L/14 and ViT-H/14 entries
is checked in a second (:func:`rsdix.models.zoo.check_zoo_file`), without the gigabytes.
Transformers (SigLIP) entries get a reduced SigLIP at the entry's resolution and normalisation,
with a word-level tokenizer: the folder format and preprocessing are the entry's, the model
size is not (its exact configuration comes from the hub).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import open_clip
import torch
from safetensors.torch import save_file

from rsdix.errors import DataError
from rsdix.log import quiet_messages, starts_with
from rsdix.models.export import open_clip_to_hf
from rsdix.models.zoo import LIGHTNING_PREFIX, ZooEntry, get_entry, local_path
from rsdix.utils import atomic_path

LONGCLIP_CONTEXT = 248
STANDIN_WORDS = ("a", "an", "the", "of", "satellite", "photo", "image", "remote", "sensing", "aerial", "view",
                 "beach", "forest", "river", "airport", "residential", "many", "buildings")


def random_state(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of a randomly initialised open_clip ``arch`` (seeded)."""
    torch.manual_seed(seed)
    with quiet_messages({"": starts_with(f"No pretrained weights loaded for model '{arch}'")}):
        model = open_clip.create_model(arch)
    return {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}


def shape_state(arch: str) -> dict[str, torch.Tensor]:
    """Every key of ``arch`` at its shape and dtype as a zero-stride view of one zero (built on the
    ``meta`` device: no memory, about a second even for ViT-H/14)."""
    with quiet_messages({"": starts_with(f"No pretrained weights loaded for model '{arch}'")}), torch.device("meta"):
        model = open_clip.create_model(arch, device="meta")
    return {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in model.state_dict().items()}


def _save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def write_standin(name: str, root: str | os.PathLike, seed: int = 0, cheap: bool = False,
                  arch: str | None = None) -> Path:
    """Write zoo entry ``name``'s stand-in where :func:`rsdix.models.zoo.local_path` expects it
    under ``root``; returns the path. ``arch`` overrides the entry's open_clip architecture (the
    open_clip hub format with a tower that needs the hub to build, RS-M-CLIP's XLM-RoBERTa)."""
    entry = get_entry(name)
    path = local_path(entry, root)
    if entry.format == "transformers":
        return write_siglip_folder(entry, path, seed)
    arch = arch or entry.arch
    if cheap and entry.format in ("safetensors", "open_clip_hub", "lightning_hf_clip"):
        raise DataError(name, f"format {entry.format} needs real tensors: write it without cheap")
    state = shape_state(arch) if cheap else random_state(arch, seed)
    if entry.format == "state_dict":
        _save(state, path)
    elif entry.format == "training_checkpoint":   # open_clip's training checkpoint, saved under DDP
        _save({"epoch": 20, "name": Path(entry.local).stem, "state_dict": {f"module.{k}": v for k, v in state.items()},
               "optimizer": {"state": {}, "param_groups": [{"lr": 0.0, "params": []}]}}, path)
    elif entry.format == "safetensors":
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            save_file(state, str(tmp))
    elif entry.format == "lightning_hf_clip":      # RSDiXClip: student and EMA teacher CLIPModels
        hf = open_clip_to_hf(state)
        _save({"epoch": 0, "global_step": 0, "pytorch-lightning_version": "2.2.0",
               "state_dict": {**{f"{LIGHTNING_PREFIX}{k}": v for k, v in hf.items()},
                              **{f"_teacher.{k}": v for k, v in hf.items()}},
               "hyper_parameters": {"model": "openai/clip-vit-base-patch32"}}, path)
    elif entry.format == "longclip":               # FarSLIP stage 2: 248 text positions + a residual copy
        width = state["positional_embedding"].shape[1]
        state["positional_embedding"] = torch.zeros(LONGCLIP_CONTEXT, width)
        state["positional_embedding_res"] = torch.zeros(LONGCLIP_CONTEXT, width)
        _save(state, path)
    elif entry.format == "open_clip_hub":
        write_open_clip_folder(entry, path, arch, state)
    return path


def write_open_clip_folder(entry: ZooEntry, folder: Path, arch: str, state: dict) -> Path:
    """open_clip's hub layout: ``open_clip_config.json`` + ``open_clip_model.safetensors``."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": open_clip.get_model_config(arch),
              "preprocess_cfg": {"mean": list(entry.mean), "std": list(entry.std), "size": entry.image_size,
                                 "interpolation": "bicubic", "resize_mode": "shortest"}}
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return folder


def write_siglip_folder(entry: ZooEntry, folder: Path, seed: int = 0) -> Path:
    """A reduced SigLIP transformers folder at the entry's resolution and normalisation, with a
    word-level tokenizer (pad id 0) and a SigLIP-style preprocessor (squash resize, no crop)."""
    from tokenizers import Tokenizer, models, pre_tokenizers  # heavy: only when a stand-in is written
    from transformers import PreTrainedTokenizerFast, SiglipConfig, SiglipModel  # heavy: as above

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", *STANDIN_WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>").save_pretrained(str(folder))
    text = {"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 2, "max_position_embeddings": 64, "pad_token_id": 0, "bos_token_id": 1,
            "eos_token_id": 1}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": entry.image_size, "patch_size": 16}
    SiglipModel(SiglipConfig(text_config=text, vision_config=vision)).eval().save_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "SiglipImageProcessor", "do_resize": True, "resample": 3,
        "size": {"height": entry.image_size, "width": entry.image_size},
        "image_mean": list(entry.mean), "image_std": list(entry.std)}))
    return folder
