"""The study's paired design: seed s gives every arm the same initial weights, image subset and data
order (batches, augmentation, caption draw); another seed changes all three. Synthetic data, tiny model."""
import json

import pytest
import torch
from PIL import Image

from rsdix import config
from rsdix.models import load_model
from rsdix.paths import RunDirs
from rsdix.studies.efficiency.arms import arm_config, arm_setup, pairing_fingerprint
from rsdix.studies.efficiency.shared import SharedCaches
from rsdix.training.clip import train_and_save, train_clip

ARMS = ["infonce", "rsdix", "siglip", "rsdix-siglip", "rsdix-sbert"]


@pytest.fixture(scope="module")
def toy_captions(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    images = []
    for i in range(40):
        Image.new("RGB", (40, 40), ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)).save(root / f"{i}.jpg")
        images.append({"filename": f"{i}.jpg", "split": "train",
                       "sentences": [{"raw": f"scene {i} with {w}"} for w in ("trees", "roads", "roofs")]})
    path = root / "captions.json"
    path.write_text(json.dumps({"images": images}))
    return path


def study_cfg(captions):
    return config.load("efficiency", {
        "train_profile": "smoke",
        "train": {"model": "rsdix-tiny", "data": {"datasets": [str(captions)]},
                  "loop": {"batch_size": 8, "warmup_steps": 1}},
        "grid": {arm: [0.5] for arm in ARMS}, "seeds": [0, 1], "steps": {0.5: 2}})


def test_same_seed_same_weights_subset_and_order_in_every_arm(toy_captions):
    cfg, shared = study_cfg(toy_captions), SharedCaches()
    prints = {arm: pairing_fingerprint(arm_config(cfg, arm, 0.5, seed=0), shared) for arm in ARMS}
    first = prints["infonce"]
    assert first["images"] is not None
    for arm, fp in prints.items():
        assert fp == first, f"{arm} is not paired with infonce at seed 0"
    other = pairing_fingerprint(arm_config(cfg, "infonce", 0.5, seed=1), shared)
    for key in ("weights", "subset", "order", "images", "captions"):
        assert other[key] != first[key], f"seed 1 has the same {key} as seed 0"


def test_the_shared_caches_do_not_change_what_a_run_sees(toy_captions):
    cfg = study_cfg(toy_captions)
    train_cfg = arm_config(cfg, "rsdix", 0.5, seed=0)
    warm = SharedCaches()
    pairing_fingerprint(train_cfg, warm)                      # fills the image cache
    assert warm.images
    assert pairing_fingerprint(train_cfg, warm) == pairing_fingerprint(train_cfg, SharedCaches())


def test_arms_differ_only_in_their_objective(toy_captions):
    cfg = study_cfg(toy_captions)
    a, b = arm_config(cfg, "infonce", 0.5, seed=3), arm_config(cfg, "rsdix", 0.5, seed=3)
    assert a.loss.method == "infonce" and b.loss.method == "rsdix"
    assert config.to_dict(a.data) == config.to_dict(b.data) and config.to_dict(a.loop) == config.to_dict(b.loop)
    assert a.model == b.model == "rsdix-tiny" and a.loop.seed == 3 and a.data.fraction == 0.5
    assert len(arm_setup(a, SharedCaches()).dataset) == 20


def test_two_arms_with_one_seed_start_equal_and_train_apart(toy_captions, tmp_path):
    cfg, shared = study_cfg(toy_captions), SharedCaches()
    train_cfg = arm_config(cfg, "infonce", 0.5, seed=0)
    dirs = RunDirs("smoke", run_dir=tmp_path / "run")
    res_a = train_and_save(train_cfg, "infonce_frac0.5_s0", dirs, setup=arm_setup(train_cfg, shared),
                           weights_dtype=torch.bfloat16)                    # a model folder, as every run saves
    assert not (dirs.run / "train" / "infonce_frac0.5_s0" / "checkpoint.pt").exists()   # no checkpoint at the end
    fresh = load_model(str(dirs.models / "infonce_frac0.5_s0")).model              # and it loads back
    for k, v in fresh.state_dict().items():
        assert (v == res_a.model.state_dict()[k].to(torch.bfloat16).to(v.dtype)).all(), k
    rsdix_cfg = arm_config(cfg, "rsdix", 0.5, seed=0)
    res_b = train_clip(rsdix_cfg, setup=arm_setup(rsdix_cfg, shared))
    assert res_a.step == res_b.step == 2
    wa, wb = res_a.model.state_dict(), res_b.model.state_dict()
    assert any(not (wa[k] == wb[k]).all() for k in wa if wa[k].is_floating_point())
