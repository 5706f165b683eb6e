"""Training a captioner: save/load round trip, a changed encoder retrains, exact resume, bad data."""
from __future__ import annotations

import math

import pytest
import torch

from captioning_fixtures import CAPTIONS, FakeBundle, batch_for, records, tiny_captioner, train_cfg
from malicious import Touch
from rsdix.captioning.caption_data import CaptionTrainSet
from rsdix import config
from rsdix.captioning.training import (CaptionTrainConfig, load_captioner, save_captioner, schedule,
                                     train_captioner)
from rsdix.data.captions import CaptionRecord
from rsdix.errors import DataError
from rsdix.training.loop import LoopConfig


def test_save_load_roundtrip(tmp_path):
    cap = tiny_captioner(mapper="transformer", mapper_layers=1, mapper_heads=2).eval()
    batch = batch_for(cap, CAPTIONS, torch.randn(3, 8))
    save_captioner(cap, tmp_path / "cap")
    back = load_captioner(tmp_path / "cap")
    assert torch.allclose(cap(**batch).logits, back(**batch).logits, atol=1e-6)
    assert back.tokenizer.get_vocab() == cap.tokenizer.get_vocab()


def test_a_changed_encoder_retrains_the_captioner(tmp_path, monkeypatch):
    embeds = torch.randn(6, 8)
    monkeypatch.setattr("rsdix.captioning.training.image_embeddings", lambda *a, **k: embeds)
    first = train_captioner(FakeBundle("w0"), records(), tmp_path, train_cfg(), tmp_path / "run", seed=3)
    same = train_captioner(FakeBundle("w0"), records(), tmp_path, train_cfg(), tmp_path / "run", seed=3)
    assert not (tmp_path / "run.previous").exists()            # same encoder: the finished run is reused
    assert [r["loss"] for r in same.history] == [r["loss"] for r in first.history]
    monkeypatch.setattr("rsdix.captioning.training.image_embeddings", lambda *a, **k: embeds + 1)
    train_captioner(FakeBundle("w1"), records(), tmp_path, train_cfg(), tmp_path / "run", seed=3)
    assert (tmp_path / "run.previous" / "checkpoint.pt").exists()   # retrained: old run kept aside
    assert (tmp_path / "run" / "captioner").exists()


def test_resume_equals_uninterrupted(tmp_path, monkeypatch):
    embeds = torch.randn(6, 8)
    monkeypatch.setattr("rsdix.captioning.training.image_embeddings", lambda *a, **k: embeds)
    full = train_captioner(FakeBundle(), records(), tmp_path, train_cfg(), tmp_path / "full", seed=3)

    class Stop(Exception):
        pass

    def crash(step, logs):
        if step == 5:
            raise Stop

    with pytest.raises(Stop):
        train_captioner(FakeBundle(), records(), tmp_path, train_cfg(), tmp_path / "cut", seed=3,
                        callbacks=[crash])
    assert (tmp_path / "cut" / "checkpoint.pt").exists() and not (tmp_path / "cut" / "captioner").exists()
    resumed = train_captioner(FakeBundle(), records(), tmp_path, train_cfg(), tmp_path / "cut", seed=3)
    a, b = full.captioner.state_dict(), resumed.captioner.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [r["loss"] for r in full.history] == pytest.approx([r["loss"] for r in resumed.history])


def test_empty_caption_in_training_data_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr("rsdix.captioning.training.image_embeddings", lambda *a, **k: torch.randn(2, 8))
    bad = [CaptionRecord("1.jpg", "train", ["a road ."]), CaptionRecord("27.jpg", "train", ["ok", "  "])]
    with pytest.raises(DataError, match=r"27\.jpg.*sentences\[1\].*empty caption"):
        train_captioner(FakeBundle(), bad, tmp_path, train_cfg(), tmp_path / "run", source="caps.json")
    cap = tiny_captioner()
    with pytest.raises(DataError, match=r"caps\.json \(27\.jpg\) sentences\[1\].*empty caption"):
        CaptionTrainSet(bad, cap.tokenizer, source="caps.json")


def test_the_paper_schedule_reaches_its_peak_learning_rate_on_rs_sized_data():
    """ClipCap's 5000 warmup steps never ended on UCM-Captions (2100 steps in all): the paper
    config's warmup is now a share of each run's steps."""
    cfg = config.load("captioning", "paper").train
    ucm_items = 1680 * 5                       # UCM-Captions train: 1680 images x 5 captions
    loop = schedule(cfg, ucm_items)
    assert loop.steps == 2100 and loop.warmup_steps == math.ceil(0.035 * 2100) < loop.steps
    s2lcd = schedule(cfg, 6132)                # ~1533 steps
    assert s2lcd.warmup_steps < s2lcd.steps


def test_a_warmup_as_long_as_the_run_is_warned_about_naming_the_key():
    cfg = CaptionTrainConfig(epochs=1, loop=LoopConfig(batch_size=10, warmup_steps=50))
    with pytest.warns(UserWarning, match=r"train\.loop\.warmup_steps: 50 warmup steps for a run of 10 steps"):
        assert schedule(cfg, 100).steps == 10
    cfg = CaptionTrainConfig(epochs=1, warmup_fraction=0.1, loop=LoopConfig(batch_size=10, warmup_steps=50))
    assert schedule(cfg, 100).warmup_steps == 1



def test_captioner_weights_that_are_a_pickle_or_torn_are_one_line_naming_the_file(tmp_path):
    save_captioner(tiny_captioner(), tmp_path / "cap")
    weights = tmp_path / "cap" / "captioner.safetensors"
    whole = weights.read_bytes()
    for name, content in (("pickle", None), ("torn", whole[: len(whole) // 2])):
        if content is None:
            torch.save({"w": Touch(tmp_path / "marker")}, weights)
        else:
            weights.write_bytes(content)
        with pytest.raises(DataError, match="captioner.safetensors: not a readable safetensors file") as err:
            load_captioner(tmp_path / "cap")
        assert "\n" not in str(err.value) and "SafetensorError" in str(err.value), name
    assert not (tmp_path / "marker").exists()
