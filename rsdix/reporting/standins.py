"""Random-weight stand-ins for the paper profile's downloads, in the exact formats and places the
model hub serves them, so a dry run (:mod:`rsdix.reporting.dry_run`) executes the real load paths
offline:

* OpenAI CLIP for open_clip's ``openai`` tag: open_clip 3.x fetches it from the Hugging Face hub
  (``hf_hub`` of its pretrained config, e.g. ``timm/vit_base_patch32_clip_224.openai``, file
  ``open_clip_model.safetensors``); written as a hub cache entry
  ``<hub>/models--timm--vit_base_patch32_clip_224.openai/{blobs,snapshots/<rev>,refs/main}``, so
  ``create_model_and_transforms("ViT-B-32", pretrained="openai")`` with ``HF_HUB_CACHE=<hub>`` and
  ``HF_HUB_OFFLINE=1`` loads it (QuickGELU included, through :func:`rsdix.models.load_model`);
* RemoteCLIP's released checkpoint: a plain open_clip state dict ``RemoteCLIP-ViT-B-32.pt`` in
  ``<root>/checkpoints/`` (configs name it ``checkpoints/RemoteCLIP-ViT-B-32.pt``, resolved against
  :func:`rsdix.paths.weights_root`);
* GPT-2 (hub name ``gpt2``): ``GPT2LMHeadModel`` from gpt2's own config (12 layers, 768 wide,
  50257 tokens, random weights) and a GPT-2-format byte-level BPE tokenizer (``vocab.json`` +
  ``merges.txt``, ``<|endoftext|>``) trained with ``tokenizers`` on the given captions, as the hub
  entry ``models--gpt2``, where ``from_pretrained("gpt2")`` finds it offline.

The RS-M-CLIP tower (``xlm-roberta-base-ViT-B-32``, ``laion5b_s13b_b90k``) has no stand-in: no
notebook trains ``train/paper_rsmclip.yaml`` (it needs translated captions, docs/paper.md).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import open_clip
import torch
from safetensors.torch import save_file

from rsdix.log import quiet_messages, starts_with
from rsdix.utils import atomic_path, file_sha256

OPENCLIP_WEIGHTS = "open_clip_model.safetensors"   # what open_clip asks the hub for first
GPT2_REPO = "gpt2"
GPT2_FILES = ("config.json", "generation_config.json", "model.safetensors", "vocab.json", "merges.txt",
              "tokenizer_config.json")
END = "<|endoftext|>"


def revision(name: str) -> str:
    """A fixed 40-hex 'commit' for a stand-in repo (the hub cache keys snapshots by commit)."""
    return hashlib.sha1(f"rsdix-standin:{name}".encode()).hexdigest()


def repo_folder(hub: str | os.PathLike, repo_id: str) -> Path:
    """``<hub>/models--org--name``: the hub cache folder of ``repo_id``."""
    return Path(hub) / ("models--" + repo_id.replace("/", "--"))


def add_to_hub_cache(hub: str | os.PathLike, repo_id: str, files: dict[str, Path]) -> Path:
    """Put ``{filename: local file}`` into the hub cache as huggingface_hub lays it out: content in
    ``blobs/<sha256>``, ``snapshots/<rev>/<filename>`` a relative link to it, ``refs/main`` = rev."""
    folder, rev = repo_folder(hub, repo_id), revision(repo_id)
    snapshot = folder / "snapshots" / rev
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for filename, src in files.items():
        digest = file_sha256(src)
        blob = folder / "blobs" / digest
        if not blob.exists():
            shutil.copyfile(src, blob)
        link = snapshot / filename
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(rev)
    return snapshot




def openai_hub_entry(arch: str) -> tuple[str, str]:
    """``(repo_id, filename)`` open_clip downloads for ``arch`` with the ``openai`` tag."""
    cfg = open_clip.get_pretrained_cfg(arch, "openai")
    if not cfg or not cfg.get("hf_hub"):
        raise ValueError(f"open_clip has no hub entry for {arch} / openai")
    repo_id, _ = os.path.split(cfg["hf_hub"].rstrip("/") + "/")
    return repo_id.rstrip("/"), OPENCLIP_WEIGHTS


def random_clip_state(arch: str, seed: int = 0) -> dict:
    """A random-weight open_clip ``arch`` (QuickGELU, as OpenAI's CLIP) as a plain state dict."""
    torch.manual_seed(seed)
    # random weights are the point of a stand-in: no "No pretrained weights loaded" warning
    with quiet_messages({"": starts_with(f"No pretrained weights loaded for model '{arch}'")}):
        model = open_clip.create_model(arch, force_quick_gelu=True)
    return {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}


def write_openai_clip(hub: str | os.PathLike, arch: str = "ViT-B-32", seed: int = 0,
                      state: dict | None = None) -> Path:
    """The ``openai`` weights of ``arch`` as a hub cache entry (random weights unless ``state``)."""
    repo_id, filename = openai_hub_entry(arch)
    snapshot = repo_folder(hub, repo_id) / "snapshots" / revision(repo_id)
    if (snapshot / filename).exists():
        return snapshot / filename
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / filename
        save_file(state if state is not None else random_clip_state(arch, seed), str(path))
        add_to_hub_cache(hub, repo_id, {filename: path})
    return snapshot / filename


def write_remoteclip(root: str | os.PathLike, arch: str = "ViT-B-32", seed: int = 1,
                     state: dict | None = None) -> Path:
    """``<root>/checkpoints/RemoteCLIP-<arch>.pt``: a plain state dict, as RemoteCLIP released it."""
    path = Path(root) / "checkpoints" / f"RemoteCLIP-{arch}.pt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(state if state is not None else random_clip_state(arch, seed), tmp)
    return path


def train_gpt2_tokenizer(captions: Iterable[str], folder: str | os.PathLike, vocab_size: int = 50257) -> Path:
    """A GPT-2-format byte-level BPE (``vocab.json`` + ``merges.txt``, ``<|endoftext|>`` its one
    special token) trained on ``captions``; at most ``vocab_size`` tokens."""
    from tokenizers import ByteLevelBPETokenizer  # heavy: only when stand-ins are made

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = ByteLevelBPETokenizer(add_prefix_space=False)
    tok.train_from_iterator(list(captions), vocab_size=vocab_size, min_frequency=2, special_tokens=[END],
                            show_progress=False)
    tok.save_model(str(folder))
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 1024}))
    return folder


def gpt2_snapshot(hub: str | os.PathLike) -> Path:
    return repo_folder(hub, GPT2_REPO) / "snapshots" / revision(GPT2_REPO)


def write_gpt2(hub: str | os.PathLike, captions: Sequence[str], seed: int = 0, **config) -> Path:
    """GPT-2 (``GPT2LMHeadModel`` from gpt2's config, random weights; ``config`` overrides, e.g. in
    tests ``n_layer=1``) with a tokenizer trained on ``captions``, as the hub entry ``gpt2``."""
    from transformers import GPT2Config, GPT2LMHeadModel  # heavy: only when stand-ins are made

    snapshot = gpt2_snapshot(hub)
    if all((snapshot / f).exists() for f in GPT2_FILES):
        return snapshot
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # GPT2Config() is gpt2's: n_layer 12, n_head 12, n_embd 768, n_positions 1024, vocab 50257
        cfg = GPT2Config(**config)
        GPT2LMHeadModel(cfg).save_pretrained(tmp, safe_serialization=True)
        train_gpt2_tokenizer(captions, tmp, vocab_size=cfg.vocab_size)
        add_to_hub_cache(hub, GPT2_REPO, {f: tmp / f for f in GPT2_FILES})
    return snapshot


def hub_environment(hub: str | os.PathLike) -> dict:
    """The environment that makes open_clip and transformers read ``hub`` offline."""
    hub = str(Path(hub).resolve())
    return {"HF_HOME": str(Path(hub).parent), "HF_HUB_CACHE": hub, "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def make_weights(root: str | os.PathLike, captions: Sequence[str], archs: Sequence[str] = ("ViT-B-32",),
                 remoteclip: str = "ViT-B-32", gpt2: bool = True) -> dict:
    """Every weights stand-in of the paper profile under ``root`` (``hf/hub`` and ``checkpoints``);
    returns ``{what: path}``."""
    root = Path(root)
    hub = root / "hf" / "hub"
    out = {f"{arch}@openai": write_openai_clip(hub, arch) for arch in archs}
    if remoteclip:
        out[f"RemoteCLIP-{remoteclip}"] = write_remoteclip(root, remoteclip)
    if gpt2:
        out["gpt2"] = write_gpt2(hub, captions)
    return out
