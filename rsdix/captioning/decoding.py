"""Decoding a captioner: greedy, beam search or nucleus sampling (Hugging Face ``generate`` fed
with the prefix as ``inputs_embeds``), in batches, seeded.

    captions = generate_captions(captioner, test_embeds, method="beam", beam_size=5)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch

from rsdix.captioning.model import ClipCap
from rsdix.config import option
from rsdix.errors import ConfigError
from rsdix.utils import progress, tf32_matmul

DECODING_METHODS = ("greedy", "beam", "nucleus")


@dataclass
class DecodeConfig:
    """How test captions are decoded (see :func:`generate_tokens`)."""
    method: Literal["greedy", "beam", "nucleus"] = "beam"
    beam_size: int = option(5, min=1)
    top_p: float = option(0.9, min=0, max=1, min_exclusive=True)
    temperature: float = option(1.0, min=0, min_exclusive=True)
    max_len: int = option(30, min=1)
    batch_size: int = option(64, min=1)


@torch.no_grad()
@tf32_matmul()   # TF32 matmuls on CUDA (rsdix.utils.tf32_matmul)
def generate_tokens(captioner: ClipCap, embeds: torch.Tensor, method: str = "beam", beam_size: int = 5,
                    top_p: float = 0.9, temperature: float = 1.0, max_len: int = 30,
                    seed: int | None = 0) -> list[list[int]]:
    """Token ids (without the end token) for a batch of image embeddings.

    ``method``: ``greedy``; ``beam`` (``beam_size`` beams, scores length-normalised: sum of
    log-probabilities / length); ``nucleus`` (top-p sampling at ``temperature``, seeded).
    Generation stops at the end token or after ``max_len`` tokens; the end token is not allowed
    first (a caption has at least one token).
    """
    from transformers import GenerationConfig  # heavy: loads when decoding
    from transformers.utils import logging as hf_logging  # heavy: loads when decoding

    if method not in DECODING_METHODS:
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
    captions = []
    starts = range(0, len(embeds), batch_size)
    for i, start in enumerate(progress(starts, desc=f"captions ({method})", disable=not show_progress)):
        tokens = generate_tokens(captioner, embeds[start:start + batch_size], method, beam_size, top_p,
                                 temperature, max_len, None if seed is None else seed + i)
        captions.extend(decode_tokens(captioner.tokenizer, tokens))
    return captions


def decode_config(decode: DecodeConfig, **changes) -> DecodeConfig:
    """``decode`` with some fields changed (e.g. another ``method`` for the same captioner)."""
    return DecodeConfig(**{**decode.__dict__, **changes})
