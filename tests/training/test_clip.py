"""rsdix.training.clip: profiles and overrides, train_clip end to end, the locked text trunk, bf16."""
import math

import pytest
import torch

from training_fixtures import CAPTIONS, SyntheticCaptions, tiny_clip
from rsdix import config
from rsdix.config import ConfigError
from rsdix.data.registry import get_info
from rsdix.models import load_model, lock_text_trunk, save_model
from rsdix.training.clip import load_clip_config, train_clip, with_epochs





def test_profiles_load_and_overrides():
    for profile in ("smoke", "cpu", "paper"):
        cfg = load_clip_config(profile)
        assert cfg.loss.method == "rsdix"
    paper = load_clip_config("paper")
    assert paper.model == "ViT-B-32" and paper.pretrained == "openai" and paper.loop.batch_size == 512
    assert paper.loop.lr == 5e-4 and set(paper.data.datasets) == {"rsicd", "ucm_captions", "rsitmd"}
    cfg = load_clip_config("cpu", method="infonce", steps=7, loop__lr=1e-2, data__fraction=0.3)
    assert (cfg.loss.method, cfg.loop.steps, cfg.loop.lr, cfg.data.fraction) == ("infonce", 7, 1e-2, 0.3)
    with pytest.raises(ConfigError, match="method"):
        load_clip_config("cpu", method="nope")
    with pytest.raises(ConfigError, match="unknown key"):
        load_clip_config("cpu", loop__stepz=3)


def test_train_clip_runs_and_saves(tmp_path):
    bundle = tiny_clip()

    cfg = load_clip_config("smoke", steps=3, batch_size=8, ckpt_every=0)
    res = train_clip(cfg, run_dir=tmp_path / "run", bundle=bundle, dataset=SyntheticCaptions())
    assert res.step == 3 and len(res.history) == 3 and (tmp_path / "run" / "checkpoint.pt").exists()
    assert {"hard", "distill", "distill_tau", "lr", "img_per_s"} <= set(res.history[-1])
    save_model(res.bundle, tmp_path / "model")
    assert load_model(str(tmp_path / "model")).fingerprint() == res.bundle.fingerprint()


def test_locked_text_trunk_cache_equals_uncached_forward():
    bundle = load_model("rsdix-cnn")
    tokens = bundle.tokenizer(CAPTIONS[:4] + CAPTIONS[:2])
    with torch.no_grad():
        ref = bundle.model.encode_text(tokens)
    frozen = lock_text_trunk(bundle.model)
    assert frozen > 0 and not any(p.requires_grad for p in bundle.model.text.transformer.parameters())
    assert bundle.model.text.proj.weight.requires_grad
    out = bundle.model.encode_text(tokens)
    assert len(bundle.model.text._pooled_cache[None]) == 4  # fp32 (no autocast): 4 distinct sequences
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    out.sum().backward()
    assert bundle.model.text.proj.weight.grad is not None


def test_locked_text_trunk_cache_keeps_bf16_features_apart_from_fp32():
    """Training fills the cache under bf16 autocast; a check after it (fp32) must see fp32 features."""
    bundle = load_model("rsdix-cnn")
    tokens = bundle.tokenizer(CAPTIONS[:4])
    with torch.no_grad():
        ref = bundle.model.encode_text(tokens)
        lock_text_trunk(bundle.model)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = bundle.model.encode_text(tokens).float()
        out = bundle.model.encode_text(tokens)
    cache = bundle.model.text._pooled_cache
    assert set(cache) == {torch.bfloat16, None} and all(len(c) == 4 for c in cache.values())  # 4 x (bf16, fp32)
    assert (low - ref).abs().max() > 1e-4  # bf16 really differs ...
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)  # ... and does not leak into fp32


@pytest.mark.parametrize("method", ["rsdix", "rsdix-siglip"])
def test_bf16_mixed_precision_training_stays_finite(tmp_path, method):
    bundle = tiny_clip()

    cfg = load_clip_config("smoke", method=method, steps=2, batch_size=8, ckpt_every=0, precision="bf16",
                           loss__sinkhorn_eps=0.05)
    res = train_clip(cfg, bundle=bundle, dataset=SyntheticCaptions())
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["distill"]) for r in res.history)


def test_the_paper_steps_follow_from_its_epochs_over_the_images_present():
    """paper.yaml said "20 epochs of ~16.7k images (~650 steps)"; the train splits hold 14,705
    images: the steps are now derived from the epochs."""
    cfg = config.load("train", "paper")
    n_images = sum(get_info(name).splits["train"] for name in cfg.data.datasets)
    assert n_images == 14705 and cfg.epochs == 20
    assert with_epochs(cfg, n_images).loop.steps == math.ceil(20 * 14705 / 512) == 575
    assert with_epochs(config.load("train", "smoke"), 10_000).loop.steps == 4   # no epochs: loop.steps


@pytest.mark.data
def test_train_clip_runs_the_derived_number_of_steps(ucm_root, tmp_path):
    cfg = config.load("train", "smoke", epochs=0.5, data={"data_root": str(ucm_root.parent), "cache_images": False},
                      loop={"batch_size": 16, "ckpt_every": 0})
    result = train_clip(cfg, run_dir=tmp_path / "run")
    n_images = round(1680 * cfg.data.fraction)
    assert result.step == math.ceil(0.5 * n_images / 16) == result.config.loop.steps


def test_gradient_accumulation_is_refused_for_batch_losses(tmp_path):
    """issue #28: with loop.grad_accum > 1 each micro-batch's InfoNCE / SigLIP / OT loss saw only its
    own slice of the step's images, silently a different loss; one ConfigError line instead."""
    with pytest.raises(ConfigError, match=r"loop.grad_accum: 4 is refused for CLIP training: the rsdix loss"):
        load_clip_config("smoke", loop__grad_accum=4)
    cfg = load_clip_config("smoke")
    cfg.loop.grad_accum = 2          # built in code, not through a config file: refused all the same
    with pytest.raises(ConfigError, match="loop.grad_accum: 2"):
        train_clip(cfg, bundle=tiny_clip(), dataset=SyntheticCaptions())
