"""RSDiX-CLIPCap: captioning with a (RSDiX-)CLIP image encoder, a mapping network and GPT-2.

    cfg = CaptionerConfig(prefix_len=10, mapper="mlp", decoder="scratch", tokenizer="words")
    captioner = build_captioner(cfg, embed_dim=bundle.embed_dim, train_captions=texts)
    out = captioner(embeds, input_ids, attention_mask)          # .loss: caption tokens only
    captions = generate_captions(captioner, test_embeds, method="beam", beam_size=5)

The CLIP image embedding (L2-normalised) goes through a mapping network -- an MLP as in
ClipCap, or ClipCap's transformer mapper -- that returns ``prefix_len`` token embeddings
(10 in ClipCap, 40 in RSDiX). The decoder reads ``[prefix, caption tokens, eos]`` and is
trained with cross-entropy on the caption tokens and the end token only (prefix and padding
are masked out). Decoding (greedy, beam search, nucleus sampling) is Hugging Face
``generate`` fed with the prefix as ``inputs_embeds``.

The decoder is a Hugging Face GPT-2 (``gpt2`` .. ``gpt2-xl``, needs the model hub) or, offline,
``decoder="scratch"``: a small ``GPT2LMHeadModel`` built from a ``GPT2Config`` and trained
from scratch, with a word-level (or BPE) tokenizer trained on the training captions with
``tokenizers``. The code path is the same; only the configuration differs.

The image encoder is frozen by default; then image embeddings are computed once and cached
(:func:`image_embeddings`, over :mod:`rsdix.features`), and training only runs the mapper and
decoder. With
``freeze_encoder=False`` the CLIP vision tower is part of :class:`ClipCap` (``encoder``) and
is trained with its own learning rate. Training is :func:`rsdix.training.loop.fit` (the loop every rsdix
model shares: checkpoints, exact resume, NaN guard, progress bar) with :class:`CaptionObjective`;
:func:`train_captioner` wires it up, :func:`caption_images` decodes a test split.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from rsdix import config
from rsdix.errors import ConfigError, DataError, OfflineError
from rsdix.training.loop import LoopConfig

MAPPERS = ("mlp", "transformer")
SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>"}


@dataclass
class CaptionerConfig:
    """Architecture of a CLIPCap captioner (mapping network + decoder + tokenizer)."""
    prefix_len: int = 10            # k prefix token embeddings (ClipCap 10, RSDiX 40)
    mapper: str = "mlp"             # "mlp" (ClipCap MLP) | "transformer" (ClipCap transformer mapper)
    mapper_layers: int = 8          # transformer mapper depth
    mapper_heads: int = 8
    mapper_clip_len: int = 10       # transformer mapper: tokens the CLIP embedding is expanded to
    decoder: str = "scratch"        # "scratch" (GPT2Config below) | "gpt2" .. "gpt2-xl" | local HF folder
    decoder_layers: int = 4         # scratch decoder only
    decoder_width: int = 256
    decoder_heads: int = 4
    decoder_dropout: float = 0.1
    max_positions: int = 128        # scratch decoder context (prefix + caption)
    tokenizer: str = "words"        # "words" | "bpe" (trained on training captions) | "minilm" | HF name/folder
    tokenizer_vocab: int = 4000     # "bpe" only
    max_caption_tokens: int = 40    # longer captions are truncated (counted and warned)
    freeze_decoder: bool = False    # ClipCap's "train the mapper only" variant
    normalize_embedding: bool = True  # L2-normalise the CLIP embedding before the mapper

    def __post_init__(self):
        if self.mapper not in MAPPERS:
            raise ConfigError(f"mapper must be one of {MAPPERS}, got {self.mapper!r}")
        if self.prefix_len < 1:
            raise ConfigError(f"prefix_len must be >= 1, got {self.prefix_len}")


# ----------------------------------------------------------------------------------------------
# tokenizers
# ----------------------------------------------------------------------------------------------
def train_caption_tokenizer(captions: Sequence[str], kind: str = "words", vocab_size: int = 4000):
    """A tokenizer trained on ``captions`` with ``tokenizers`` (lower-cased, punctuation split).

    ``kind="words"``: one token per word seen in training (others map to ``<unk>``);
    ``kind="bpe"``: byte-pair encoding with at most ``vocab_size`` tokens. Returned as a
    ``transformers`` fast tokenizer with ``<pad> <bos> <eos> <unk>`` special tokens.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    captions = [c for c in captions]
    if not captions:
        raise DataError("training captions", "no captions to train a tokenizer on")
    specials = list(SPECIAL_TOKENS.values())
    if kind == "words":
        tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
        trainer = trainers.WordLevelTrainer(special_tokens=specials, min_frequency=1)
    elif kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token="<unk>", end_of_word_suffix="</w>"))
        trainer = trainers.BpeTrainer(special_tokens=specials, vocab_size=vocab_size,
                                      end_of_word_suffix="</w>")
        tok.decoder = decoders.BPEDecoder(suffix="</w>")
    else:
        raise ConfigError(f"tokenizer kind must be 'words' or 'bpe', got {kind!r}")
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(captions, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)


def _hub_kwargs() -> dict:
    """``local_files_only`` when the hub cannot be reached (fail in seconds, not after retries)."""
    from rsdix.models import hub_reachable

    offline = bool(os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE"))
    return {"local_files_only": offline or not hub_reachable()}


def load_tokenizer(name: str, train_captions: Sequence[str] | None = None, vocab_size: int = 4000):
    """A tokenizer by name: ``words``/``bpe`` (trained on ``train_captions``), ``minilm`` (the
    offline all-MiniLM-L6-v2 WordPiece), a local tokenizer folder, or a HF hub name (``gpt2``)."""
    from transformers import AutoTokenizer

    if name in ("words", "bpe"):
        if train_captions is None:
            raise ConfigError(f"tokenizer {name!r} is trained on the training captions: pass train_captions")
        return train_caption_tokenizer(train_captions, name, vocab_size)
    if name == "minilm":
        from rsdix.models import minilm_path

        tok = AutoTokenizer.from_pretrained(str(minilm_path()))
        return _ensure_specials(tok)
    if os.path.isdir(name):
        return _ensure_specials(AutoTokenizer.from_pretrained(name))
    try:
        tok = AutoTokenizer.from_pretrained(name, **_hub_kwargs())
    except OSError as exc:
        raise OfflineError(f"could not load tokenizer {name!r} from the Hugging Face hub (no internet here); "
                           f"download it elsewhere (AutoTokenizer.from_pretrained({name!r}).save_pretrained(DIR)) "
                           f"and pass tokenizer=DIR, or use tokenizer='words' offline") from None
    return _ensure_specials(tok)


def _ensure_specials(tok):
    """GPT-2 has only ``<|endoftext|>`` (bos = eos, no pad); BERT has [CLS]/[SEP]/[PAD]."""
    if tok.eos_token is None:
        tok.eos_token = tok.sep_token or tok.pad_token
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.eos_token is None:
        raise ConfigError(f"tokenizer {tok.name_or_path!r} has no end-of-sequence token")
    return tok


def tokenize_captions(captions: Sequence[str], tokenizer, max_tokens: int = 40,
                      where: Sequence[str] | str = "captions") -> list[list[int]]:
    """Token ids of each caption followed by the end token, truncated to ``max_tokens``.

    An empty caption (or one with no tokens) is a :class:`DataError` naming where it came from
    (``where`` is one label per caption, or one label for all).
    """
    labels = [where] * len(captions) if isinstance(where, str) else list(where)
    ids, truncated = [], 0
    for i, (caption, label) in enumerate(zip(captions, labels)):
        if caption is None or not str(caption).strip():
            raise DataError(label, f"empty caption (caption {i}): captions must have at least one word")
        tokens = tokenizer(str(caption).strip(), add_special_tokens=False)["input_ids"]
        if not tokens:
            raise DataError(label, f"caption {caption!r} has no tokens")
        if len(tokens) > max_tokens - 1:
            tokens, truncated = tokens[:max_tokens - 1], truncated + 1
        ids.append(tokens + [tokenizer.eos_token_id])
    if truncated:
        warnings.warn(f"{truncated} of {len(captions)} captions truncated to {max_tokens} tokens")
    return ids


def pad_tokens(token_lists: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to a batch: ``(input_ids, attention_mask)``."""
    longest = max(len(t) for t in token_lists)
    ids = torch.full((len(token_lists), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_lists), longest), dtype=torch.long)
    for i, tokens in enumerate(token_lists):
        ids[i, :len(tokens)] = torch.as_tensor(tokens, dtype=torch.long)
        mask[i, :len(tokens)] = 1
    return ids, mask


# ----------------------------------------------------------------------------------------------
# mapping networks
# ----------------------------------------------------------------------------------------------
class MLPMapper(nn.Module):
    """ClipCap's MLP: ``embed_dim -> (k * width) / 2 -> tanh -> k * width``."""

    def __init__(self, embed_dim: int, width: int, prefix_len: int):
        super().__init__()
        self.prefix_len, self.width = prefix_len, width
        hidden = (width * prefix_len) // 2
        self.net = nn.Sequential(nn.Linear(embed_dim, hidden), nn.Tanh(), nn.Linear(hidden, width * prefix_len))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(x.shape[0], self.prefix_len, self.width)


class TransformerMapper(nn.Module):
    """ClipCap's transformer mapper: the embedding is expanded to ``clip_len`` tokens by a linear
    layer, concatenated with ``prefix_len`` learned constants, mixed by a transformer encoder;
    the outputs at the constants' positions are the prefix."""

    def __init__(self, embed_dim: int, width: int, prefix_len: int, clip_len: int = 10,
                 layers: int = 8, heads: int = 8):
        super().__init__()
        if width % heads:
            raise ConfigError(f"transformer mapper: decoder width {width} is not divisible by {heads} heads")
        self.prefix_len, self.clip_len, self.width = prefix_len, clip_len, width
        self.linear = nn.Linear(embed_dim, clip_len * width)
        self.prefix_const = nn.Parameter(torch.randn(prefix_len, width))
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        clip = self.linear(x).view(x.shape[0], self.clip_len, self.width)
        const = self.prefix_const.unsqueeze(0).expand(x.shape[0], -1, -1)
        out = self.transformer(torch.cat([clip, const], dim=1))
        return out[:, self.clip_len:]


# ----------------------------------------------------------------------------------------------
# the captioner
# ----------------------------------------------------------------------------------------------
def caption_loss(logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 prefix_len: int) -> torch.Tensor:
    """Mean cross-entropy over caption tokens only.

    ``logits``: ``[B, prefix_len + T, V]`` over the sequence ``[prefix, tokens]``; token ``t``
    is predicted at position ``prefix_len - 1 + t``. Prefix positions and padding
    (``attention_mask == 0``) contribute nothing.
    """
    steps = input_ids.shape[1]
    pred = logits[:, prefix_len - 1: prefix_len - 1 + steps]
    targets = input_ids.masked_fill(attention_mask == 0, -100)
    return F.cross_entropy(pred.reshape(-1, pred.shape[-1]).float(), targets.reshape(-1), ignore_index=-100)


@dataclass
class CaptionOutput:
    loss: torch.Tensor | None
    logits: torch.Tensor


class ClipCap(nn.Module):
    """Mapping network + GPT-2 decoder (+ the CLIP vision tower when it is trained too)."""

    def __init__(self, config: CaptionerConfig, embed_dim: int, decoder: nn.Module, tokenizer,
                 encoder: nn.Module | None = None):
        super().__init__()
        self.config = config
        self.embed_dim = int(embed_dim)
        self.decoder = decoder
        self.tokenizer = tokenizer
        self.encoder = encoder  # the CLIP vision tower (image -> embedding), only when unfrozen
        width = decoder.config.n_embd
        if config.mapper == "mlp":
            self.mapper = MLPMapper(self.embed_dim, width, config.prefix_len)
        else:
            self.mapper = TransformerMapper(self.embed_dim, width, config.prefix_len, config.mapper_clip_len,
                                            config.mapper_layers, config.mapper_heads)
        if config.freeze_decoder:
            self.decoder.requires_grad_(False)

    @property
    def width(self) -> int:
        return self.decoder.config.n_embd

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        if self.encoder is None:
            raise ConfigError("this captioner has no image encoder (frozen-encoder mode): pass embeddings")
        return self.encoder(images)

    def prefix(self, embeds: torch.Tensor) -> torch.Tensor:
        """``[B, embed_dim]`` CLIP embeddings -> ``[B, prefix_len, width]`` prefix embeddings."""
        if embeds.dim() != 2 or embeds.shape[1] != self.embed_dim:
            raise DataError("image embeddings", f"shape {tuple(embeds.shape)} does not match the mapping "
                                                f"network's input width {self.embed_dim} (the image encoder's "
                                                f"embedding width it was built for)")
        if self.config.normalize_embedding:
            embeds = F.normalize(embeds.float(), dim=-1)
        return self.mapper(embeds.float())

    def forward(self, embeds: torch.Tensor | None = None, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, images: torch.Tensor | None = None) -> CaptionOutput:
        if embeds is None:
            embeds = self.embed_images(images)
        prefix = self.prefix(embeds)
        tok_emb = self.decoder.get_input_embeddings()(input_ids)
        inputs = torch.cat([prefix.to(tok_emb.dtype), tok_emb], dim=1)
        full_mask = torch.cat([torch.ones(prefix.shape[:2], dtype=attention_mask.dtype, device=attention_mask.device),
                               attention_mask], dim=1)
        logits = self.decoder(inputs_embeds=inputs, attention_mask=full_mask).logits
        return CaptionOutput(caption_loss(logits, input_ids, attention_mask, self.config.prefix_len), logits)


def build_decoder(config: CaptionerConfig, tokenizer) -> nn.Module:
    """``GPT2LMHeadModel``: from scratch (``decoder="scratch"``) or pretrained by name/folder."""
    from transformers import GPT2Config, GPT2LMHeadModel

    if config.decoder == "scratch":
        cfg = GPT2Config(vocab_size=len(tokenizer), n_positions=config.max_positions, n_embd=config.decoder_width,
                         n_layer=config.decoder_layers, n_head=config.decoder_heads,
                         resid_pdrop=config.decoder_dropout, embd_pdrop=config.decoder_dropout,
                         attn_pdrop=config.decoder_dropout, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        if config.prefix_len + config.max_caption_tokens > config.max_positions:
            raise ConfigError(f"prefix_len {config.prefix_len} + max_caption_tokens {config.max_caption_tokens} "
                              f"exceeds the decoder context max_positions {config.max_positions}")
        return GPT2LMHeadModel(cfg)
    name = config.decoder
    try:
        model = GPT2LMHeadModel.from_pretrained(name, **({} if os.path.isdir(name) else _hub_kwargs()))
    except OSError:
        raise OfflineError(f"could not load decoder {name!r} from the Hugging Face hub (no internet here); "
                           f"download it elsewhere (GPT2LMHeadModel.from_pretrained({name!r}).save_pretrained(DIR), "
                           f"same for its tokenizer) and pass decoder=DIR tokenizer=DIR, or use decoder='scratch' "
                           f"offline") from None
    if model.config.vocab_size < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    return model


def build_captioner(config: CaptionerConfig, embed_dim: int, train_captions: Sequence[str] | None = None,
                    tokenizer=None, encoder: nn.Module | None = None) -> ClipCap:
    """A fresh captioner for image embeddings of width ``embed_dim``."""
    if tokenizer is None:
        tokenizer = load_tokenizer(config.tokenizer, train_captions, config.tokenizer_vocab)
    decoder = build_decoder(config, tokenizer)
    return ClipCap(config, embed_dim, decoder, tokenizer, encoder=encoder)


def check_embed_dim(config_or_captioner, encoder_embed_dim: int, encoder_name: str = "image encoder") -> None:
    """Raise a clear error when a captioner's input width differs from the encoder's embedding width."""
    want = config_or_captioner.embed_dim if isinstance(config_or_captioner, ClipCap) else int(config_or_captioner)
    if want != int(encoder_embed_dim):
        raise ConfigError(f"prefix mapping network expects {want}-d image embeddings but {encoder_name} "
                          f"produces {encoder_embed_dim}-d embeddings; build the captioner with "
                          f"embed_dim={encoder_embed_dim}")


# ----------------------------------------------------------------------------------------------
# decoding
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def generate_tokens(captioner: ClipCap, embeds: torch.Tensor, method: str = "beam", beam_size: int = 5,
                    top_p: float = 0.9, temperature: float = 1.0, max_len: int = 30,
                    seed: int | None = 0) -> list[list[int]]:
    """Token ids (without the end token) for a batch of image embeddings.

    ``method``: ``greedy``; ``beam`` (``beam_size`` beams, scores length-normalised: sum of
    log-probabilities / length); ``nucleus`` (top-p sampling at ``temperature``, seeded).
    Generation stops at the end token or after ``max_len`` tokens; the end token is not allowed
    first (a caption has at least one token).
    """
    from transformers import GenerationConfig
    from transformers.utils import logging as hf_logging

    if method not in ("greedy", "beam", "nucleus"):
        raise ConfigError(f"decoding method must be 'greedy', 'beam' or 'nucleus', got {method!r}")
    tok = captioner.tokenizer
    was_training = captioner.training
    captioner.eval()
    device = next(captioner.parameters()).device
    prefix = captioner.prefix(embeds.to(device))
    gen = dict(max_new_tokens=max_len, min_new_tokens=1, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
               bos_token_id=tok.bos_token_id)
    if method == "greedy":
        gen.update(do_sample=False, num_beams=1)
    elif method == "beam":
        gen.update(do_sample=False, num_beams=beam_size, length_penalty=1.0, early_stopping=True)
    else:
        gen.update(do_sample=True, top_p=top_p, top_k=0, temperature=temperature, num_beams=1)
    mask = torch.ones(prefix.shape[:2], dtype=torch.long, device=device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if seed is not None:
            torch.manual_seed(seed)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # a padding advice that does not apply to a prefix of embeddings
        try:
            out = captioner.decoder.generate(inputs_embeds=prefix, attention_mask=mask,
                                             generation_config=GenerationConfig(**gen))
        finally:
            hf_logging.set_verbosity(verbosity)
    captioner.train(was_training)
    result = []
    for row in out.tolist():
        if tok.eos_token_id in row:
            row = row[:row.index(tok.eos_token_id)]
        result.append(row)
    return result


def decode_tokens(tokenizer, token_lists: Sequence[Sequence[int]]) -> list[str]:
    return [tokenizer.decode(t, skip_special_tokens=True).strip() for t in token_lists]


def generate_captions(captioner: ClipCap, embeds: torch.Tensor, method: str = "beam", beam_size: int = 5,
                      top_p: float = 0.9, temperature: float = 1.0, max_len: int = 30, batch_size: int = 64,
                      seed: int | None = 0, show_progress: bool = True) -> list[str]:
    """Captions for ``[N, embed_dim]`` image embeddings, in batches (see :func:`generate_tokens`)."""
    from rsdix.utils import progress

    captions = []
    starts = range(0, len(embeds), batch_size)
    for i, start in enumerate(progress(starts, desc=f"captions ({method})", disable=not show_progress)):
        tokens = generate_tokens(captioner, embeds[start:start + batch_size], method, beam_size, top_p,
                                 temperature, max_len, None if seed is None else seed + i)
        captions.extend(decode_tokens(captioner.tokenizer, tokens))
    return captions


# ----------------------------------------------------------------------------------------------
# image embeddings (frozen encoder: computed once, cached)
# ----------------------------------------------------------------------------------------------
def image_embeddings(bundle, records, image_dir: str | os.PathLike, batch_size: int = 64,
                     cache: str | os.PathLike | None = None, num_workers: int = 0,
                     desc: str = "image embeddings") -> torch.Tensor:
    """L2-normalised CLIP image embeddings of ``records`` (``CaptionRecord`` list), in order,
    through :func:`rsdix.features.encode_images` (on the bundle model's device).

    With ``cache`` (a folder), the features are stored by :class:`rsdix.features.FeatureCache`
    under a key made of the model's weight fingerprint, the image folder, the file list and the
    transform, and read back on the next call (a trained encoder gets a new fingerprint).
    """
    from rsdix.data.captions import CaptionDataset
    from rsdix.features import FeatureCache, encode_images

    dataset = CaptionDataset(list(records), image_dir, transform=None, mode="eval", source=str(image_dir))
    return encode_images(bundle, dataset, FeatureCache(cache) if cache is not None else None,
                         dataset_name=str(Path(image_dir).resolve()), split="captioning", batch_size=batch_size,
                         num_workers=num_workers, desc=desc)


# ----------------------------------------------------------------------------------------------
# training data
# ----------------------------------------------------------------------------------------------
class CaptionTrainSet(torch.utils.data.Dataset):
    """Training items ``(image, caption tokens)`` for :func:`rsdix.training.loop.fit`.

    ``image`` is the record's index (frozen encoder: a row of the cached embeddings, looked up
    by :class:`CaptionCollate`) or, with ``load_image(index) -> tensor``, the transformed image
    (trained encoder). ``all_captions=True``: one item per (image, caption) pair; ``False``: one
    item per image with one of its captions drawn at random (seeded per sample by ``fit``).
    Every caption is tokenized up front, so an empty one fails here, naming its file and image.
    """

    def __init__(self, records, tokenizer, max_tokens: int = 40, source: str = "captions",
                 load_image: Callable | None = None, all_captions: bool = True):
        import random

        self._random = random
        self.records = list(records)
        self.load_image, self.all_captions = load_image, all_captions
        captions, where, self.owner = [], [], []
        for i, rec in enumerate(self.records):
            if not rec.captions:
                raise DataError(f"{source} ({rec.filename})", "image has no captions")
            for j, caption in enumerate(rec.captions):
                captions.append(caption)
                where.append(f"{source} ({rec.filename}) sentences[{j}]")
                self.owner.append(i)
        tokens = tokenize_captions(captions, tokenizer, max_tokens, where)
        self.tokens: list[list[list[int]]] = [[] for _ in self.records]
        for i, t in zip(self.owner, tokens):
            self.tokens[i].append(t)
        self.pairs = [(i, j) for i, toks in enumerate(self.tokens) for j in range(len(toks))]

    def __len__(self) -> int:
        return len(self.pairs) if self.all_captions else len(self.records)

    def __getitem__(self, index: int):
        if self.all_captions:
            i, j = self.pairs[index]
        else:
            i = index
            j = self._random.randrange(len(self.tokens[i]))
        image = self.load_image(i) if self.load_image is not None else i
        return image, self.tokens[i][j]


class CaptionCollate:
    """``[(image or index, tokens)]`` -> ``{"embeds" | "images", "input_ids", "attention_mask"}``."""

    def __init__(self, pad_id: int, embeds: torch.Tensor | None = None):
        self.pad_id, self.embeds = pad_id, embeds

    def __call__(self, items):
        ids, mask = pad_tokens([it[1] for it in items], self.pad_id)
        out = {"input_ids": ids, "attention_mask": mask}
        if torch.is_tensor(items[0][0]):
            out["images"] = torch.stack([it[0] for it in items])
        else:
            if self.embeds is None:
                raise ConfigError("CaptionCollate needs the cached embeddings for index items")
            out["embeds"] = self.embeds[torch.tensor([it[0] for it in items], dtype=torch.long)]
        return out


# ----------------------------------------------------------------------------------------------
# saving and loading
# ----------------------------------------------------------------------------------------------
def save_captioner(captioner: ClipCap, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """A folder: ``captioner.json`` (config, embed_dim, decoder config), ``tokenizer/``, and
    ``captioner.safetensors`` (mapper + decoder weights; the encoder is saved separately)."""
    from safetensors.torch import save_file

    from rsdix.utils import atomic_path, atomic_write_text

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in captioner.state_dict().items()
             if not k.startswith("encoder.")}
    # GPT-2 ties lm_head to the token embeddings; safetensors refuses shared tensors
    state = {k: (v.clone() if k == "decoder.lm_head.weight" else v) for k, v in state.items()}
    with atomic_path(path / "captioner.safetensors") as tmp:
        save_file(state, str(tmp))
    captioner.tokenizer.save_pretrained(str(path / "tokenizer"))
    meta = {"config": asdict(captioner.config), "embed_dim": captioner.embed_dim,
            "decoder_config": captioner.decoder.config.to_dict(), "extra": extra or {}}
    atomic_write_text(path / "captioner.json", json.dumps(meta, indent=2, default=str))
    return path


def load_captioner(path: str | os.PathLike, device: str = "cpu") -> ClipCap:
    """Load a folder written by :func:`save_captioner` (offline: the decoder is rebuilt from its
    saved configuration, never downloaded)."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from rsdix.config import from_dict

    path = Path(path)
    meta_path = path / "captioner.json"
    if not meta_path.exists():
        raise DataError(path, "not a captioner folder: captioner.json missing")
    meta = json.loads(meta_path.read_text())
    config = from_dict(CaptionerConfig, meta["config"], str(meta_path))
    tokenizer = _ensure_specials(AutoTokenizer.from_pretrained(str(path / "tokenizer")))
    decoder = GPT2LMHeadModel(GPT2Config.from_dict(meta["decoder_config"]))
    captioner = ClipCap(config, meta["embed_dim"], decoder, tokenizer)
    weights = path / "captioner.safetensors"
    if not weights.exists():
        raise DataError(path, "captioner.safetensors missing")
    missing, unexpected = captioner.load_state_dict(load_file(str(weights)), strict=False)
    missing = [k for k in missing if k != "decoder.lm_head.weight"]
    if missing or unexpected:
        raise DataError(weights, f"weights do not match the saved config: missing {missing[:3]}, "
                                 f"unexpected {unexpected[:3]}")
    captioner.decoder.tie_weights()
    return captioner.to(device).eval()


# ----------------------------------------------------------------------------------------------
# training (the generic loop of rsdix.training.loop with a caption objective)
# ----------------------------------------------------------------------------------------------
def _loop_config() -> LoopConfig:
    return LoopConfig(lr=2e-3, warmup_steps=50, weight_decay=0.01, log_every=20, ckpt_every=0)


@dataclass
class DecodeConfig:
    method: str = "beam"            # greedy | beam | nucleus
    beam_size: int = 5
    top_p: float = 0.9
    temperature: float = 1.0
    max_len: int = 30
    batch_size: int = 64


@dataclass
class CaptionTrainConfig:
    """How a captioner is trained; ``loop`` is :class:`rsdix.training.loop.LoopConfig` (its ``steps``
    is set from ``epochs`` when ``epochs > 0``)."""
    model: CaptionerConfig = field(default_factory=CaptionerConfig)
    loop: LoopConfig = field(default_factory=_loop_config)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    epochs: float = 10.0            # passes over the training items; 0: use loop.steps
    freeze_encoder: bool = True     # True: cached embeddings, only mapper + decoder train
    encoder_lr_mult: float = 0.1    # trained encoder: its lr = loop.lr * encoder_lr_mult
    augment: str = "none"           # trained encoder: rs | openclip | none (rsdix.data.transforms)
    all_captions: bool = True       # every (image, caption) pair per epoch, else one random caption per image
    warm_start: bool = False        # trained encoder: start mapper + decoder from the frozen run's captioner
    embed_batch_size: int = 64


class CaptionObjective(nn.Module):
    """Cross-entropy on caption tokens (see :func:`caption_loss`), for :func:`rsdix.training.loop.fit`."""
    needs_teacher = False

    def forward(self, batch, student, teacher=None):
        out = student(embeds=batch.get("embeds"), images=batch.get("images"), input_ids=batch["input_ids"],
                      attention_mask=batch["attention_mask"])
        return {"loss": out.loss}


@dataclass
class TrainedCaptioner:
    captioner: ClipCap
    bundle: object                  # the encoder's ModelBundle (its vision tower trained when unfrozen)
    history: list
    seconds: float
    run_dir: Path
    embed_seconds: float = 0.0


def train_captioner(bundle, records, image_dir: str | os.PathLike, cfg: CaptionTrainConfig,
                    run_dir: str | os.PathLike, resume: bool = True, cache: str | os.PathLike | None = None,
                    seed: int = 0, source: str = "captions", device: str | None = None,
                    callbacks: Sequence[Callable] = (), init: ClipCap | None = None) -> TrainedCaptioner:
    """Train a CLIPCap captioner on ``records`` (train split) with the encoder of ``bundle``.

    Writes ``run_dir/checkpoint.pt`` + ``train_log.csv`` (the generic loop), ``run_dir/tokenizer``
    (fixed at the first run, reused on resume) and, at the end, ``run_dir/captioner`` (and
    ``run_dir/encoder`` when the encoder was trained). ``resume=True`` continues an interrupted
    run; a finished run is loaded back without training; a run made with another configuration or
    other encoder weights is moved to ``<run_dir>.previous`` and trained anew. ``init``: a trained captioner whose
    tokenizer, mapper and decoder weights this run starts from (e.g. the frozen-encoder run, before
    the encoder is unfrozen).
    """
    import dataclasses
    import math
    import time

    from rsdix.training.loop import fit
    from rsdix.utils import seed_everything

    run_dir = Path(run_dir)
    records = list(records)
    if not records:
        raise DataError(source, "no training images")
    snapshot = {"caption": asdict(cfg), "encoder": bundle.name, "encoder_weights": bundle.fingerprint(),
                "seed": seed}
    if resume:  # e.g. notebook 03 retrained the encoder: the old captioner is stale, train anew
        from rsdix.training.checkpoints import retire_stale_run

        retire_stale_run(run_dir, snapshot)
    for rec in records:  # before anything is trained on them
        for j, caption in enumerate(rec.captions):
            if caption is None or not str(caption).strip():
                raise DataError(f"{source} ({rec.filename}) sentences[{j}]", "empty caption in the training data")
    seed_everything(seed)
    tok_dir = run_dir / "tokenizer"
    if resume and tok_dir.exists():
        tokenizer = load_tokenizer(str(tok_dir))
    elif init is not None:
        tokenizer = init.tokenizer
        tokenizer.save_pretrained(str(tok_dir))
    else:
        tokenizer = load_tokenizer(cfg.model.tokenizer, [c for r in records for c in r.captions],
                                   cfg.model.tokenizer_vocab)
        tokenizer.save_pretrained(str(tok_dir))
    encoder = None if cfg.freeze_encoder else bundle.model.visual
    captioner = build_captioner(cfg.model, bundle.embed_dim, tokenizer=tokenizer, encoder=encoder)
    if init is not None:
        check_embed_dim(init, bundle.embed_dim, f"encoder {bundle.name!r}")
        missing, unexpected = captioner.load_state_dict(init.state_dict(), strict=False)
        if unexpected or any(not k.startswith("encoder.") for k in missing):
            raise ConfigError(f"init captioner does not match the configured architecture: missing "
                              f"{[k for k in missing if not k.startswith('encoder.')][:3]}, unexpected {unexpected[:3]}")

    t0 = time.perf_counter()
    embeds, load = None, None
    if cfg.freeze_encoder:
        embeds = image_embeddings(bundle, records, image_dir, cfg.embed_batch_size, cache=cache,
                                  desc="train image embeddings")
        check_embed_dim(captioner, embeds.shape[1], f"encoder {bundle.name!r}")
    else:
        from rsdix.data.captions import CaptionDataset
        from rsdix.data.transforms import bundle_train_transform

        images = CaptionDataset(records, image_dir, transform=bundle_train_transform(bundle, cfg.augment),
                                mode="eval", source=source)
        load = images.__getitem__
    embed_seconds = time.perf_counter() - t0

    dataset = CaptionTrainSet(records, tokenizer, cfg.model.max_caption_tokens, source, load, cfg.all_captions)
    loop = cfg.loop
    if cfg.epochs > 0:
        loop = dataclasses.replace(loop, steps=max(1, math.ceil(cfg.epochs * len(dataset) / loop.batch_size)))
    if not cfg.freeze_encoder:
        loop = dataclasses.replace(loop, lr_mult={"encoder.": cfg.encoder_lr_mult, **loop.lr_mult})
    loop = dataclasses.replace(loop, seed=seed)
    if device == "cpu":
        loop = dataclasses.replace(loop, cpu=True)
    result = fit(captioner, CaptionObjective(), dataset, loop, collate_fn=CaptionCollate(tokenizer.pad_token_id, embeds),
                 run_dir=run_dir, resume=resume, desc=f"captioner {run_dir.name}", callbacks=callbacks,
                 config_snapshot=snapshot)
    captioner = result.model.eval()  # stays on the training device, with the encoder it may hold
    seconds = result.seconds
    previous = run_dir / "captioner" / "captioner.json"
    if resume and previous.exists():  # a finished run reloaded: report the time it took to train
        seconds += float(json.loads(previous.read_text()).get("extra", {}).get("train_seconds", 0.0))
    save_captioner(captioner, run_dir / "captioner", extra={"encoder": str(bundle.pretrained or bundle.name),
                                                            "frozen_encoder": cfg.freeze_encoder, "seed": seed,
                                                            "train_seconds": seconds, "steps": result.step})
    if not cfg.freeze_encoder:
        from rsdix.models import save_model

        save_model(bundle, run_dir / "encoder", extra={"trained_with": "captioning"})
    return TrainedCaptioner(captioner, bundle, result.history, seconds, run_dir, embed_seconds)


def caption_images(trained: TrainedCaptioner, records, image_dir: str | os.PathLike, decode: DecodeConfig,
                   cache: str | os.PathLike | None = None, seed: int = 0) -> list[str]:
    """Generated captions for ``records`` (embeddings from the captioner's encoder, cached)."""
    embeds = image_embeddings(trained.bundle, records, image_dir, decode.batch_size, cache=cache,
                              desc="test image embeddings")
    return generate_captions(trained.captioner, embeds, decode.method, decode.beam_size, decode.top_p,
                             decode.temperature, decode.max_len, decode.batch_size, seed)


# ----------------------------------------------------------------------------------------------
# the notebook's experiment (one YAML per profile: rsdix/configs/captioning/<profile>.yaml)
# ----------------------------------------------------------------------------------------------
@dataclass
class CaptioningExperiment:
    """Which captioners notebook 04 trains and on what.

    ``encoders``: notebook-03 run names (folders under ``RunDirs(profile).models``) whose encoder
    is used frozen; ``unfrozen``: those also trained end to end; ``fallback_encoder``: a preset used
    (frozen and, when ``unfrozen`` is not empty, unfrozen) when none of the named runs exists.
    """
    datasets: list = field(default_factory=lambda: ["ucm_captions"])   # rsdix.data.registry names
    train_split: str = "train"
    test_split: str = "test"
    limit_train: int = 0            # >0: first N training images (smoke profile)
    limit_test: int = 0
    encoders: list = field(default_factory=lambda: ["infonce_s0", "rsdix_s0"])
    unfrozen: list = field(default_factory=lambda: ["rsdix_s0"])
    fallback_encoder: str = "rsdix-cnn"
    fallback_pretrained: str | None = None
    torch_threads: int = 0          # >0: torch.set_num_threads (small models on a shared CPU: 1 is fastest)
    metrics: list = field(default_factory=lambda: ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L",
                                                   "CIDEr", "SPICE", "SBERT-sim"])
    train: CaptionTrainConfig = field(default_factory=CaptionTrainConfig)
    unfrozen_train: dict = field(default_factory=lambda: {"freeze_encoder": False, "all_captions": False})

    def train_config(self, frozen: bool = True) -> CaptionTrainConfig:
        """The training config of a frozen-encoder run, or with ``unfrozen_train`` applied."""
        from rsdix.config import deep_update, from_dict

        base = asdict(self.train)
        if not frozen:
            base = deep_update(base, {"freeze_encoder": False, **self.unfrozen_train})
        return from_dict(CaptionTrainConfig, base, "captioning experiment")


def load_experiment(profile: str, **overrides) -> CaptioningExperiment:
    return config.load("captioning", profile, **overrides)


def encoder_runs(models_dir: str | os.PathLike, names: Sequence[str]) -> dict[str, Path]:
    """The named notebook-03 model folders that exist (open_clip local-dir folders)."""
    found = {}
    for name in names:
        path = Path(models_dir) / name
        if (path / "open_clip_config.json").exists():
            found[name] = path
    return found


@dataclass
class CaptionRun:
    """One captioner of the experiment: which encoder, frozen or trained."""
    encoder_run: str                # notebook-03 run name, or the preset's name
    encoder: str                    # model folder or preset name (for rsdix.models.load_model)
    pretrained: str | None = None
    frozen: bool = True
    fallback: bool = False          # a preset used because no notebook-03 model exists

    @property
    def name(self) -> str:
        return f"clipcap-{self.encoder_run}-{'frozen' if self.frozen else 'unfrozen'}"


def plan_runs(exp: CaptioningExperiment, models_dir: str | os.PathLike) -> tuple[list[CaptionRun], str]:
    """The captioners to train: notebook-03 encoders when they exist, else the fallback preset.

    Returns the runs and a one-line message saying which encoders were found or missing."""
    found = encoder_runs(models_dir, list(dict.fromkeys(list(exp.encoders) + list(exp.unfrozen))))
    runs = [CaptionRun(n, str(found[n])) for n in exp.encoders if n in found]
    runs += [CaptionRun(n, str(found[n]), frozen=False) for n in exp.unfrozen if n in found]
    missing = [n for n in dict.fromkeys(list(exp.encoders) + list(exp.unfrozen)) if n not in found]
    if runs:
        msg = f"notebook-03 encoders found in {models_dir}: {sorted(found)}"
        if missing:
            msg += f"; missing (skipped): {missing}"
        return runs, msg
    name = exp.fallback_encoder
    runs = [CaptionRun(name, name, exp.fallback_pretrained, True, True)]
    if exp.unfrozen:
        runs.append(CaptionRun(name, name, exp.fallback_pretrained, False, True))
    msg = (f"no notebook-03 encoder in {models_dir} (looked for {missing}): run notebook 03 first for the "
           f"real comparison; using the preset encoder {name!r} (pretrained={exp.fallback_pretrained}) instead")
    return runs, msg


NO_WORDS = "nowords"


def for_scoring(captions: Sequence[str]) -> tuple[list[str], int]:
    """Generated captions ready for :func:`rsdix.captioning.metrics.evaluate_captions`, which refuses a
    candidate without words: a degenerate output (only punctuation, e.g. ". .") becomes the
    placeholder ``nowords``, which matches no reference word (so it scores as an empty caption
    would), and is counted. Returns ``(captions, number replaced)``."""
    import re

    out = [c if re.search(r"[^\W_]", c) else NO_WORDS for c in captions]
    return out, sum(o is NO_WORDS for o in out)


def _limit(records: list, n: int) -> list:
    """``n`` records evenly spread over the list (datasets are often sorted by class)."""
    if not n or n <= 0 or n >= len(records):
        return records
    return [records[(i * len(records)) // n] for i in range(n)]


def run_captioning(run: CaptionRun, exp: CaptioningExperiment, dataset: str, root=None, run_root=None,
                   seed: int = 0, profile: str = "", device: str | None = None) -> dict:
    """Train (or resume / reload) one captioner on ``dataset``'s train split, caption the test split,
    score it with :func:`rsdix.captioning.metrics.evaluate_captions`.

    Returns ``{"run", "captions" (DataFrame: filename, generated, references), "evaluation",
    "results" (tidy rows), "times" (seconds: embed, train, decode, score)}``; the captions are
    also written to ``<run_root>/<dataset>/<run name>/test_captions.csv``.
    """
    import dataclasses
    import time

    import pandas as pd

    from rsdix.data.captions import find_image_dir, read_captions, select_split
    from rsdix.data.registry import caption_file, get_info
    from rsdix.captioning.metrics import evaluate_captions
    from rsdix.models import load_model
    from rsdix.paths import cache_dir
    from rsdix.utils import atomic_path, pick_device

    info = get_info(dataset)
    path = caption_file(dataset, root)
    records = read_captions(path)
    train = _limit(select_split(records, exp.train_split, path), exp.limit_train)
    test = _limit(select_split(records, exp.test_split, path), exp.limit_test)
    image_dir = find_image_dir(path)
    device = pick_device(device)
    bundle = load_model(run.encoder, pretrained=run.pretrained, device=device)
    out_dir = Path(run_root) / info.name / run.name
    cache = cache_dir() / "caption_embeddings"
    cfg = exp.train_config(run.frozen)
    init = None
    if not run.frozen and cfg.warm_start:
        frozen_dir = Path(run_root) / info.name / dataclasses.replace(run, frozen=True).name / "captioner"
        if not (frozen_dir / "captioner.json").exists():
            raise ConfigError(f"warm_start needs the frozen-encoder run of {run.encoder_run!r} first ({frozen_dir})")
        init = load_captioner(frozen_dir)
    trained = train_captioner(bundle, train, image_dir, cfg, out_dir, resume=True, cache=cache, seed=seed,
                              source=str(path), device=device, init=init)
    t0 = time.perf_counter()
    generated = caption_images(trained, test, image_dir, cfg.decode, cache=cache, seed=seed)
    t_decode = time.perf_counter() - t0
    ids = [r.filename for r in test]
    t0 = time.perf_counter()
    scored, n_degenerate = for_scoring(generated)
    if n_degenerate:
        warnings.warn(f"{run.name}: {n_degenerate} of {len(generated)} generated captions have no words; "
                      f"scored as {NO_WORDS!r} (matches nothing)")
    evaluation = evaluate_captions(dict(zip(ids, scored)), {r.filename: r.captions for r in test},
                                   metrics=exp.metrics, source=str(path))
    t_score = time.perf_counter() - t0
    captions = pd.DataFrame({"filename": ids, "generated": generated,
                             "references": [" | ".join(r.captions) for r in test]})
    with atomic_path(out_dir / "test_captions.csv") as tmp:
        captions.to_csv(tmp, index=False)
    note = f"{'frozen' if run.frozen else 'trained'} encoder {run.encoder_run}" + \
           (", started from the frozen run" if init is not None else "") + f"; decoder {cfg.model.decoder}; " \
           f"{cfg.decode.method} decoding" + ("; fallback preset encoder" if run.fallback else "") + \
           (f"; {n_degenerate} word-less captions scored as {NO_WORDS!r}" if n_degenerate else "")
    results = evaluation.to_results(model=run.name, dataset=info.title, seed=seed, profile=profile, note=note)
    times = {"model": run.name, "dataset": info.title, "embed_s": trained.embed_seconds,
             "train_s": trained.seconds, "decode_s": t_decode, "score_s": t_score,
             "train_images": len(train), "test_images": len(test), "wordless_captions": n_degenerate,
             "steps": int(json.loads((out_dir / "captioner" / "captioner.json").read_text())["extra"]["steps"]),
             "warm_started": init is not None}
    return {"run": run, "trained": trained, "captions": captions, "evaluation": evaluation, "results": results,
            "times": times, "records": test, "image_dir": image_dir}
