"""The CLIPCap captioner: masked loss (hand-checked), gradients, widths, offline decoder, bad config."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from captioning_fixtures import CAPTIONS, TINY, batch_for, tiny_captioner
from rsdix.captioning.model import CaptionerConfig, build_captioner, caption_loss, check_embed_dim
from rsdix.captioning.tokenizers import tokenize_captions
from rsdix.errors import ConfigError, DataError, OfflineError


def test_caption_loss_hand_checked_masks_prefix_and_padding():
    # prefix of 2, two caption slots of which the second is padding; vocabulary of 3
    big = 50.0
    logits = torch.full((1, 4, 3), big)              # garbage everywhere it must not be read
    logits[0, 1] = torch.tensor([math.log(2.0), 0.0, 0.0])  # position 1 predicts token 0: p = 2/4
    ids = torch.tensor([[0, 2]])
    mask = torch.tensor([[1, 0]])
    loss = caption_loss(logits, ids, mask, prefix_len=2)
    assert loss.item() == pytest.approx(math.log(2.0), abs=1e-6)
    # unmasking the second token adds its (uniform, garbage) cross-entropy log(3) to the mean
    loss2 = caption_loss(logits, ids, torch.tensor([[1, 1]]), prefix_len=2)
    assert loss2.item() == pytest.approx((math.log(2.0) + math.log(3.0)) / 2, abs=1e-6)


def test_model_loss_ignores_padding_and_matches_hf_labels():
    cap = tiny_captioner().eval()
    embeds = torch.randn(2, 8)
    short, long_ = CAPTIONS[2], CAPTIONS[1]
    batch = batch_for(cap, [short, long_], embeds)
    assert batch["attention_mask"][0].sum() < batch["attention_mask"].shape[1]  # the short one is padded
    alone = batch_for(cap, [short], embeds[:1])
    logits_b = cap(**batch).logits
    logits_a = cap(**alone).logits
    n = alone["input_ids"].shape[1] + TINY.prefix_len
    assert torch.allclose(logits_b[0, :n], logits_a[0], atol=1e-5)  # padding after does not leak back
    # same number as Hugging Face's own shifted loss with prefix and padding labelled -100
    labels = torch.cat([torch.full((2, TINY.prefix_len), -100), batch["input_ids"].masked_fill(
        batch["attention_mask"] == 0, -100)], dim=1)
    hf = torch.nn.functional.cross_entropy(logits_b[:, :-1].reshape(-1, logits_b.shape[-1]),
                                           labels[:, 1:].reshape(-1), ignore_index=-100)
    assert cap(**batch).loss.item() == pytest.approx(hf.item(), rel=1e-5)


def test_gradients_reach_mapper_and_decoder_but_not_through_padding_ids():
    cap = tiny_captioner()
    batch = batch_for(cap, CAPTIONS, torch.randn(3, 8))
    cap(**batch).loss.backward()
    assert cap.mapper.net[0].weight.grad.abs().sum() > 0
    assert cap.decoder.transformer.h[0].attn.c_attn.weight.grad.abs().sum() > 0
    # the pad token is never a target: its output row gets no gradient from the softmax target term
    pad = cap.tokenizer.pad_token_id
    assert pad not in [t for row in tokenize_captions(CAPTIONS, cap.tokenizer) for t in row]


def test_prefix_width_mismatch_is_a_clear_error():
    cap = tiny_captioner(embed_dim=8)
    with pytest.raises(DataError, match=r"\(3, 16\).*input width 8"):
        cap(**batch_for(cap, CAPTIONS, torch.randn(3, 16)))
    with pytest.raises(ConfigError, match=r"expects 8-d image embeddings but encoder 'x' produces 16-d"):
        check_embed_dim(cap, 16, "encoder 'x'")


def test_gpt2_offline_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = CaptionerConfig(decoder="gpt2", tokenizer="gpt2")
    with pytest.raises(OfflineError) as info:
        build_captioner(cfg, 512)
    msg = str(info.value)
    assert "'gpt2'" in msg and "save_pretrained" in msg and "\n" not in msg


def test_bad_config_values():
    with pytest.raises(ConfigError, match="mapper"):
        CaptionerConfig(mapper="lstm")
    with pytest.raises(ConfigError, match="max_positions"):
        build_captioner(dataclasses.replace(TINY, max_positions=10), 8, train_captions=CAPTIONS)
