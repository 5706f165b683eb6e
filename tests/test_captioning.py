"""CLIPCap captioning: masked loss (hand-checked), decoding, save/resume, bad input."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from rsdix.captioning.pipeline import (CaptionCollate, CaptionerConfig, CaptionTrainConfig, CaptionTrainSet,
                              ClipCap, DecodeConfig, build_captioner, caption_loss, check_embed_dim,
                              generate_captions, generate_tokens, load_captioner, load_experiment,
                              pad_tokens, save_captioner, tokenize_captions, train_captioner)
from rsdix.data.captions import CaptionRecord
from rsdix.errors import ConfigError, DataError, OfflineError
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


# ---------------------------------------------------------------------------------------- loss
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


# ---------------------------------------------------------------------------------------- decoding
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


# ---------------------------------------------------------------------------------------- save / resume
def test_save_load_roundtrip(tmp_path):
    cap = tiny_captioner(mapper="transformer", mapper_layers=1, mapper_heads=2).eval()
    batch = batch_for(cap, CAPTIONS, torch.randn(3, 8))
    save_captioner(cap, tmp_path / "cap")
    back = load_captioner(tmp_path / "cap")
    assert torch.allclose(cap(**batch).logits, back(**batch).logits, atol=1e-6)
    assert back.tokenizer.get_vocab() == cap.tokenizer.get_vocab()


class _FakeBundle:
    """The parts of a ModelBundle train_captioner uses with a frozen encoder and cached embeddings."""
    name = "fake"
    pretrained = None
    embed_dim = 8

    def __init__(self, weights="w0"):
        self.weights = weights

    def fingerprint(self):
        return self.weights


def _train_cfg(steps=6):
    return CaptionTrainConfig(model=TINY, epochs=0, loop=LoopConfig(steps=steps, batch_size=4, lr=5e-3,
                                                                      warmup_steps=1, log_every=1, ckpt_every=2,
                                                                      cpu=True))


def _records():
    return [CaptionRecord(f"{i}.jpg", "train", [CAPTIONS[i % 3], CAPTIONS[(i + 1) % 3]]) for i in range(6)]


def test_a_changed_encoder_retrains_the_captioner(tmp_path, monkeypatch):
    embeds = torch.randn(6, 8)
    monkeypatch.setattr("rsdix.captioning.pipeline.image_embeddings", lambda *a, **k: embeds)
    first = train_captioner(_FakeBundle("w0"), _records(), tmp_path, _train_cfg(), tmp_path / "run", seed=3)
    same = train_captioner(_FakeBundle("w0"), _records(), tmp_path, _train_cfg(), tmp_path / "run", seed=3)
    assert not (tmp_path / "run.previous").exists()            # same encoder: the finished run is reused
    assert [r["loss"] for r in same.history] == [r["loss"] for r in first.history]
    monkeypatch.setattr("rsdix.captioning.pipeline.image_embeddings", lambda *a, **k: embeds + 1)
    train_captioner(_FakeBundle("w1"), _records(), tmp_path, _train_cfg(), tmp_path / "run", seed=3)
    assert (tmp_path / "run.previous" / "checkpoint.pt").exists()   # retrained: old run kept aside
    assert (tmp_path / "run" / "captioner").exists()


def test_resume_equals_uninterrupted(tmp_path, monkeypatch):
    embeds = torch.randn(6, 8)
    monkeypatch.setattr("rsdix.captioning.pipeline.image_embeddings", lambda *a, **k: embeds)
    full = train_captioner(_FakeBundle(), _records(), tmp_path, _train_cfg(), tmp_path / "full", seed=3)

    class Stop(Exception):
        pass

    def crash(step, logs):
        if step == 5:
            raise Stop

    with pytest.raises(Stop):
        train_captioner(_FakeBundle(), _records(), tmp_path, _train_cfg(), tmp_path / "cut", seed=3,
                        callbacks=[crash])
    assert (tmp_path / "cut" / "checkpoint.pt").exists() and not (tmp_path / "cut" / "captioner").exists()
    resumed = train_captioner(_FakeBundle(), _records(), tmp_path, _train_cfg(), tmp_path / "cut", seed=3)
    a, b = full.captioner.state_dict(), resumed.captioner.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [r["loss"] for r in full.history] == pytest.approx([r["loss"] for r in resumed.history])


# ---------------------------------------------------------------------------------------- bad input
def test_empty_caption_in_training_data_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr("rsdix.captioning.pipeline.image_embeddings", lambda *a, **k: torch.randn(2, 8))
    records = [CaptionRecord("1.jpg", "train", ["a road ."]), CaptionRecord("27.jpg", "train", ["ok", "  "])]
    with pytest.raises(DataError, match=r"27\.jpg.*sentences\[1\].*empty caption"):
        train_captioner(_FakeBundle(), records, tmp_path, _train_cfg(), tmp_path / "run", source="caps.json")
    cap = tiny_captioner()
    with pytest.raises(DataError, match=r"caps\.json \(27\.jpg\) sentences\[1\].*empty caption"):
        CaptionTrainSet(records, cap.tokenizer, source="caps.json")


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
    with pytest.raises(ConfigError, match="decoding method"):
        generate_tokens(tiny_captioner(), torch.randn(1, 8), method="topk")


def test_profile_configs_load():
    for profile in ("smoke", "cpu", "paper"):
        exp = load_experiment(profile)
        assert exp.train_config(frozen=False).freeze_encoder is False
        assert exp.train_config(frozen=True).freeze_encoder is True
    assert load_experiment("paper").train.model.prefix_len == 40


# ---------------------------------------------------------------------------------------- real data
@pytest.mark.data
def test_ucm_training_captions_tokenize_with_words_tokenizer(ucm_root):
    from rsdix.captioning.pipeline import load_tokenizer
    from rsdix.data.captions import read_karpathy, select_split

    records = select_split(read_karpathy(ucm_root / "dataset_ucm.json"), "train")
    tok = load_tokenizer("words", [c for r in records for c in r.captions])
    ds = CaptionTrainSet(records, tok)
    assert len(ds) == sum(len(r.captions) for r in records)
    unk = tok.unk_token_id
    assert all(unk not in t for toks in ds.tokens for t in toks)  # every training word is in the vocabulary
    batch = CaptionCollate(tok.pad_token_id, torch.zeros(len(records), 4))([ds[0], ds[1]])
    assert batch["embeds"].shape == (2, 4) and batch["input_ids"].shape[0] == 2


def test_wordless_generated_captions_are_counted_and_scored_as_nothing():
    from rsdix.captioning.pipeline import NO_WORDS, for_scoring

    out, n = for_scoring(["a road .", ". .", "", "many trees"])
    assert out == ["a road .", NO_WORDS, NO_WORDS, "many trees"] and n == 2


def test_plan_runs_prefers_notebook03_models_and_says_when_it_falls_back(tmp_path, tiny_bundle):
    from rsdix.captioning.pipeline import CaptioningExperiment, plan_runs
    from rsdix.models import save_model

    exp = CaptioningExperiment(encoders=["infonce_s0", "rsdix_s0"], unfrozen=["rsdix_s0"], fallback_encoder="rsdix-tiny")
    runs, msg = plan_runs(exp, tmp_path)
    assert [r.name for r in runs] == ["clipcap-rsdix-tiny-frozen", "clipcap-rsdix-tiny-unfrozen"]
    assert all(r.fallback for r in runs) and "no notebook-03 encoder" in msg and "rsdix-tiny" in msg
    save_model(tiny_bundle, tmp_path / "rsdix_s0")
    runs, msg = plan_runs(exp, tmp_path)
    assert [(r.name, r.frozen, r.fallback) for r in runs] == [("clipcap-rsdix_s0-frozen", True, False),
                                                               ("clipcap-rsdix_s0-unfrozen", False, False)]
    assert "missing (skipped): ['infonce_s0']" in msg


@pytest.mark.parametrize("kind", ["words", "bpe"])
def test_trained_tokenizers_round_trip_captions(kind):
    from rsdix.captioning.pipeline import load_tokenizer

    tok = load_tokenizer(kind, CAPTIONS * 3, vocab_size=60)
    ids = tokenize_captions(CAPTIONS, tok)
    assert all(row[-1] == tok.eos_token_id for row in ids)
    assert [tok.decode(row[:-1], skip_special_tokens=True) for row in ids] == CAPTIONS
    with pytest.raises(ConfigError, match="train_captions"):
        load_tokenizer(kind)


@pytest.mark.data
def test_image_embeddings_are_normalised_and_cached(ucm_root, tiny_bundle, tmp_path):
    from rsdix.captioning.pipeline import image_embeddings
    from rsdix.data.captions import read_karpathy

    records = read_karpathy(ucm_root / "dataset_ucm.json")[:4]
    first = image_embeddings(tiny_bundle, records, ucm_root / "images", cache=tmp_path)
    assert first.shape == (4, tiny_bundle.embed_dim)
    assert torch.allclose(first.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    again = image_embeddings(tiny_bundle, records, ucm_root / "images", cache=tmp_path)
    assert torch.equal(first, again)
