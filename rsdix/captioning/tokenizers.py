"""Caption tokenizers: trained on the training captions (word level or BPE) or loaded by name,
and caption token ids (truncated, end token appended) padded into batches."""
from __future__ import annotations

import os
import warnings
from typing import Sequence

import torch

from rsdix.errors import ConfigError, DataError, OfflineError
from rsdix.models import minilm_path
from rsdix.utils import hub_reachable

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>"}


def train_caption_tokenizer(captions: Sequence[str], kind: str = "words", vocab_size: int = 4000):
    """A tokenizer trained on ``captions`` with ``tokenizers`` (lower-cased, punctuation split).

    ``kind="words"``: one token per word seen in training (others map to ``<unk>``);
    ``kind="bpe"``: byte-pair encoding with at most ``vocab_size`` tokens. Returned as a
    ``transformers`` fast tokenizer with ``<pad> <bos> <eos> <unk>`` special tokens.
    """
    from tokenizers import (Tokenizer, decoders, models, normalizers,  # heavy: loads when a tokenizer is trained
                            pre_tokenizers, trainers)
    from transformers import PreTrainedTokenizerFast  # heavy: loads when a tokenizer is built

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


def hub_kwargs() -> dict:
    """``local_files_only`` when the hub cannot be reached (fail in seconds, not after retries)."""
    offline = bool(os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE"))
    return {"local_files_only": offline or not hub_reachable()}


def load_tokenizer(name: str, train_captions: Sequence[str] | None = None, vocab_size: int = 4000):
    """A tokenizer by name: ``words``/``bpe`` (trained on ``train_captions``), ``minilm`` (the
    offline all-MiniLM-L6-v2 WordPiece), a local tokenizer folder, or a HF hub name (``gpt2``)."""
    from transformers import AutoTokenizer  # heavy: loads when a tokenizer is built

    if name in ("words", "bpe"):
        if train_captions is None:
            raise ConfigError(f"tokenizer {name!r} is trained on the training captions: pass train_captions")
        return train_caption_tokenizer(train_captions, name, vocab_size)
    if name == "minilm":
        tok = AutoTokenizer.from_pretrained(str(minilm_path()))
        return ensure_specials(tok)
    if os.path.isdir(name):
        return ensure_specials(AutoTokenizer.from_pretrained(name))
    try:
        tok = AutoTokenizer.from_pretrained(name, **hub_kwargs())
    except OSError as exc:
        raise OfflineError(f"could not load tokenizer {name!r} from the Hugging Face hub (no internet here); "
                           f"download it elsewhere (AutoTokenizer.from_pretrained({name!r}).save_pretrained(DIR)) "
                           f"and pass tokenizer=DIR, or use tokenizer='words' offline") from None
    return ensure_specials(tok)


def ensure_specials(tok):
    """End and padding tokens on any tokenizer: GPT-2 has only ``<|endoftext|>`` (bos = eos, no
    pad); BERT has [CLS]/[SEP]/[PAD]."""
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
