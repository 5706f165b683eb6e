"""Decoding a captioner: beam 1 = greedy, seeded nucleus sampling, stopping at the end token."""
from __future__ import annotations

import pytest
import torch

from captioning_fixtures import batch_for, tiny_captioner
from rsdix.captioning.decoding import DecodeConfig, decode_config, generate_captions, generate_tokens
from rsdix.captioning.tokenizers import tokenize_captions
from rsdix.errors import ConfigError


@pytest.mark.parametrize("mapper", ["mlp", "transformer"])
def test_beam_one_equals_greedy(mapper):
    cap = tiny_captioner(mapper=mapper, mapper_layers=1, mapper_heads=2)
    embeds = torch.randn(4, 8)
    greedy = generate_tokens(cap, embeds, method="greedy", max_len=12)
    beam1 = generate_tokens(cap, embeds, method="beam", beam_size=1, max_len=12)
    assert greedy == beam1
    assert all(len(t) <= 12 for t in greedy)


def test_nucleus_is_seeded_and_batched():
    cap = tiny_captioner()
    embeds = torch.randn(5, 8)
    a = generate_captions(cap, embeds, method="nucleus", batch_size=2, max_len=8, show_progress=False)
    b = generate_captions(cap, embeds, method="nucleus", batch_size=2, max_len=8, show_progress=False)
    assert a == b and len(a) == 5


def _overfit(cap, embeds, captions, steps=60):
    batch = batch_for(cap, captions, embeds)
    opt = torch.optim.Adam(cap.parameters(), lr=1e-2)
    cap.train()
    for _ in range(steps):
        loss = cap(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def test_decoding_stops_at_end_token():
    cap = tiny_captioner(embed_dim=4)
    embeds = torch.eye(4)[:2]
    captions = ["a straight runway .", "many buildings and some green trees ."]
    assert _overfit(cap, embeds, captions) < 0.05
    for method in ("greedy", "beam"):
        tokens = generate_tokens(cap, embeds, method=method, max_len=25)
        eos = cap.tokenizer.eos_token_id
        assert all(eos not in t for t in tokens)
        assert [len(t) for t in tokens] == [len(x) - 1 for x in tokenize_captions(captions, cap.tokenizer)]
        assert generate_captions(cap, embeds, method=method, max_len=25, show_progress=False) == captions


def test_bad_decoding_method():
    with pytest.raises(ConfigError, match="decoding method"):
        generate_tokens(tiny_captioner(), torch.randn(1, 8), method="topk")


def test_decode_config_changes_one_field():
    base = DecodeConfig(beam_size=3, max_len=12)
    greedy = decode_config(base, method="greedy")
    assert greedy.method == "greedy" and greedy.beam_size == 3 and greedy.max_len == 12
    assert base.method == "beam"
