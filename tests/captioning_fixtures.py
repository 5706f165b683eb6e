"""Shared pieces of the captioning tests: a tiny scratch captioner, its batches, a fake encoder
bundle and a tiny training config."""
from __future__ import annotations

import dataclasses

import torch

from rsdix.captioning.model import CaptionerConfig, build_captioner
from rsdix.captioning.tokenizers import pad_tokens, tokenize_captions
from rsdix.captioning.training import CaptionTrainConfig
from rsdix.data.captions import CaptionRecord
from rsdix.training.loop import LoopConfig

CAPTIONS = ["there is a piece of farmland .", "many buildings and some green trees .", "a straight runway ."]
TINY = CaptionerConfig(prefix_len=3, decoder_layers=1, decoder_width=32, decoder_heads=2, decoder_dropout=0.0,
                       max_positions=48)


def tiny_captioner(embed_dim=8, seed=0, **changes):
    torch.manual_seed(seed)
    return build_captioner(dataclasses.replace(TINY, **changes), embed_dim, train_captions=CAPTIONS)


def batch_for(captioner, captions, embeds):
    ids, mask = pad_tokens(tokenize_captions(captions, captioner.tokenizer), captioner.tokenizer.pad_token_id)
    return {"embeds": embeds, "input_ids": ids, "attention_mask": mask}


class FakeBundle:
    """The parts of a ModelBundle train_captioner uses with a frozen encoder and cached embeddings."""
    name = "fake"
    pretrained = None
    embed_dim = 8

    def __init__(self, weights="w0"):
        self.weights = weights

    def fingerprint(self):
        return self.weights


def train_cfg(steps=6):
    return CaptionTrainConfig(model=TINY, epochs=0, loop=LoopConfig(steps=steps, batch_size=4, lr=5e-3,
                                                                      warmup_steps=1, log_every=1, ckpt_every=2,
                                                                      cpu=True))


def records():
    return [CaptionRecord(f"{i}.jpg", "train", [CAPTIONS[i % 3], CAPTIONS[(i + 1) % 3]]) for i in range(6)]
