"""The CLIPCap captioner: a mapping network from a CLIP image embedding to a prefix of token
embeddings, and a GPT-2 decoder that continues the prefix with the caption.

    cfg = CaptionerConfig(prefix_len=10, mapper="mlp", decoder="scratch", tokenizer="words")
    captioner = build_captioner(cfg, embed_dim=bundle.embed_dim, train_captions=texts)
    out = captioner(embeds, input_ids, attention_mask)          # .loss: caption tokens only

The CLIP image embedding (L2-normalised) goes through a mapping network -- an MLP as in
ClipCap, or ClipCap's transformer mapper -- that returns ``prefix_len`` token embeddings
(10 in ClipCap, 40 in RSDiX). The decoder reads ``[prefix, caption tokens, eos]`` and is
trained with cross-entropy on the caption tokens and the end token only (prefix and padding
are masked out).

The decoder is a Hugging Face GPT-2 (``gpt2`` .. ``gpt2-xl``, needs the model hub) or, offline,
``decoder="scratch"``: a small ``GPT2LMHeadModel`` built from a ``GPT2Config`` and trained
from scratch, with a word-level (or BPE) tokenizer trained on the training captions
(:mod:`rsdix.captioning.tokenizers`). The code path is the same; only the configuration differs.
With a trained (unfrozen) image encoder, the CLIP vision tower is part of :class:`ClipCap`
(``encoder``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from rsdix.captioning.tokenizers import hub_kwargs, load_tokenizer
from rsdix.config import option
from rsdix.errors import ConfigError, DataError, OfflineError

MAPPERS = ("mlp", "transformer")


@dataclass
class CaptionerConfig:
    """Architecture of a CLIPCap captioner (mapping network + decoder + tokenizer)."""
    prefix_len: int = option(10, min=1)      # k prefix token embeddings (ClipCap 10, RSDiX 40)
    mapper: Literal["mlp", "transformer"] = "mlp"  # ClipCap's MLP | ClipCap's transformer mapper
    mapper_layers: int = option(8, min=1)    # transformer mapper depth
    mapper_heads: int = option(8, min=1)
    mapper_clip_len: int = option(10, min=1)  # transformer mapper: tokens the CLIP embedding is expanded to
    decoder: str = "scratch"        # "scratch" (GPT2Config below) | "gpt2" .. "gpt2-xl" | local HF folder
    decoder_layers: int = option(4, min=1)   # scratch decoder only
    decoder_width: int = option(256, min=1)
    decoder_heads: int = option(4, min=1)
    decoder_dropout: float = option(0.1, min=0, max=1)
    max_positions: int = option(128, min=1)  # scratch decoder context (prefix + caption)
    tokenizer: str = "words"        # "words" | "bpe" (trained on training captions) | "minilm" | HF name/folder
    tokenizer_vocab: int = option(4000, min=1)  # "bpe" only
    max_caption_tokens: int = option(40, min=1)  # longer captions are truncated (counted and warned)
    freeze_decoder: bool = False    # ClipCap's "train the mapper only" variant
    normalize_embedding: bool = True  # L2-normalise the CLIP embedding before the mapper

    def __post_init__(self):  # also when built in code, not loaded from YAML
        if self.mapper not in MAPPERS:
            raise ConfigError(f"mapper must be one of {MAPPERS}, got {self.mapper!r}")
        if self.prefix_len < 1:
            raise ConfigError(f"prefix_len must be >= 1, got {self.prefix_len}")


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
    from transformers import GPT2Config, GPT2LMHeadModel  # heavy: GPT-2 loads when a decoder is built

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
        model = GPT2LMHeadModel.from_pretrained(name, **({} if os.path.isdir(name) else hub_kwargs()))
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
