"""DINO local/global self-distillation: crops, head, loss, schedules, teacher."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import RandomResizedCrop

from rsdix.config import load_config
from rsdix.data.captions import CaptionRecord, write_karpathy
from rsdix.errors import ConfigError
from rsdix.models import load_model
from rsdix.training.clip import build_model, load_clip_config, train_clip
from rsdix.training.clip_data import build_train_dataset
from rsdix.training.clip_objectives import ClipLossConfig, ClipObjective
from rsdix.training.collate import LanguageCollate, MultiCropTransform, default_local_size
from rsdix.training.photometric import N_PARAMS
from rsdix.training.dino import (ClipWithDino, DINOConfig, DINOHead, DINOLoss, DINOObjective, DinoTerm, MultiCropConfig,
                                 cosine_schedule, ema_momentum, encode_crops, interpolate_pos_embed, teacher_temperature)


@pytest.fixture(autouse=True)
def one_thread():
    """Small ops on a shared 2-core machine: one intra-op thread is 10-40x faster than two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_multicrop_shapes_and_scales():
    torch.manual_seed(0)
    cfg = MultiCropConfig(n_global=2, n_local=5, global_scale=(0.4, 1.0), local_scale=(0.05, 0.4),
                          on_device=True)
    t = MultiCropTransform(cfg, size=64, mean=(0.5,) * 3, std=(0.25,) * 3, patch_size=8)
    assert t.local_size == 24 and default_local_size(224, 16) == 96 and default_local_size(32, 8) == 16
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    views = t(image)
    crops = views["crops"]
    assert len(crops) == 7 == t.n_crops and views["crop_params"].shape == (7, N_PARAMS)
    assert all(c.shape == (3, 64, 64) for c in crops[:2]) and all(c.shape == (3, 24, 24) for c in crops[2:])
    assert all(c.dtype == torch.uint8 for c in crops)   # cut in the worker, coloured on the device
    worker = MultiCropTransform(dataclasses.replace(cfg, on_device=False), 64, (0.5,) * 3, (0.25,) * 3, 8)(image)
    assert set(worker) == {"crops"} and all(c.dtype == torch.float32 for c in worker["crops"])
    # each crop covers the configured fraction of the image area: record the sampled crop boxes
    global_rrc = t.globals[0].transforms[0]
    local_rrc = t.local.transforms[0]
    assert isinstance(global_rrc, RandomResizedCrop) and global_rrc.scale == (0.4, 1.0)
    assert local_rrc.scale == (0.05, 0.4)
    for rrc, (lo, hi) in ((global_rrc, (0.4, 1.0)), (local_rrc, (0.05, 0.4))):
        for _ in range(200):
            i, j, h, w = rrc.get_params(image, rrc.scale, rrc.ratio)
            frac = h * w / (200 * 200)
            assert lo - 0.02 <= frac <= hi + 0.02  # integer rounding of h and w
    # a sized config overrides the defaults
    t2 = MultiCropTransform(MultiCropConfig(n_local=0, global_size=48), size=64, mean=(0,) * 3, std=(1,) * 3)
    assert [c.shape[-1] for c in t2(image)["crops"]] == [48, 48]


def test_head_outputs_and_weight_norm():
    torch.manual_seed(0)
    head = DINOHead(16, 50, hidden_dim=32, bottleneck_dim=8, n_layers=3, norm_last_layer=True)
    out = head(torch.randn(4, 16))
    assert out.shape == (4, 50)
    # bottleneck is L2-normalised and each prototype has unit norm: |logit| <= 1 (cosines)
    assert out.abs().max() <= 1 + 1e-5
    g = head.last_layer.parametrizations.weight.original0
    assert not g.requires_grad and torch.all(g == 1)
    assert DINOHead(16, 50, 32, 8, norm_last_layer=False).last_layer.parametrizations.weight.original0.requires_grad


def test_loss_hand_computed_case():
    """Two global crops, one local, batch 1, K = 2: the loss is the mean of the four cross-entropies."""
    loss_fn = DINOLoss(out_dim=2, n_global=2, student_temp=1.0, center_momentum=0.9)
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])  # crops g1, g2, l1
    teacher = torch.tensor([[2.0, 0.0], [0.0, 0.0]])              # crops g1, g2
    loss = loss_fn(student, teacher, teacher_temp=1.0)
    q = F.softmax(teacher, -1)
    logp = F.log_softmax(student, -1)
    ce = lambda a, b: -(q[a] * logp[b]).sum()  # noqa: E731
    expected = (ce(0, 1) + ce(0, 2) + ce(1, 0) + ce(1, 2)) / 4  # never a crop against itself
    assert torch.allclose(loss, expected)
    # centre after one update: 0.9 * 0 + 0.1 * mean(teacher)
    assert torch.allclose(loss_fn.center, 0.1 * teacher.mean(0, keepdim=True))


def test_centering_update_and_effect():
    torch.manual_seed(0)
    loss_fn = DINOLoss(out_dim=5, n_global=2, center_momentum=0.9)
    t1, t2 = torch.randn(8, 5), torch.randn(8, 5) + 3
    loss_fn(torch.randn(16, 5), t1, 0.04)
    loss_fn(torch.randn(16, 5), t2, 0.04)
    expected = 0.9 * (0.1 * t1.mean(0)) + 0.1 * t2.mean(0)
    assert torch.allclose(loss_fn.center[0], expected, atol=1e-6)
    # no update when asked (evaluation)
    before = loss_fn.center.clone()
    loss_fn(torch.randn(16, 5), t2, 0.04, update_center=False)
    assert torch.equal(before, loss_fn.center)
    # centering removes a constant offset common to all teacher outputs: a teacher that always
    # prefers prototype 0 by the same margin gives uniform targets once the centre has converged
    loss_fn = DINOLoss(out_dim=3, n_global=1, center_momentum=0.0)
    biased = torch.tensor([[5.0, 0.0, 0.0]] * 4)
    loss_fn(torch.zeros(8, 3), biased, 0.04)
    q = F.softmax((biased - loss_fn.center) / 0.04, -1)
    assert torch.allclose(q, torch.full_like(q, 1 / 3))


def test_schedules():
    cfg = DINOConfig(teacher_temp=0.07, warmup_teacher_temp=0.04, warmup_teacher_temp_frac=0.3,
                     momentum_teacher=0.996, momentum_final=1.0)
    assert teacher_temperature(0, 100, cfg) == pytest.approx(0.04)
    assert teacher_temperature(15, 100, cfg) == pytest.approx(0.055)
    assert teacher_temperature(30, 100, cfg) == pytest.approx(0.07) == teacher_temperature(99, 100, cfg)
    assert ema_momentum(0, 100, cfg) == pytest.approx(0.996)
    assert ema_momentum(50, 100, cfg) == pytest.approx(0.998)
    assert ema_momentum(100, 100, cfg) == pytest.approx(1.0) == ema_momentum(150, 100, cfg)
    ms = [ema_momentum(s, 100, cfg) for s in range(101)]
    assert all(b >= a for a, b in zip(ms, ms[1:]))
    assert cosine_schedule(1.0, 0.0, 25, 100) == pytest.approx(0.5 + 0.5 * math.cos(math.pi / 4))


def small_objective(tiny_bundle, **kw):
    cfg = DINOConfig(enabled=True, out_dim=64, hidden_dim=32, bottleneck_dim=16, **kw)
    visual = tiny_bundle.model.visual
    return DINOObjective(visual, tiny_bundle.embed_dim, cfg, total_steps=10), visual


def test_interpolated_position_embedding_matches_native_size(tiny_bundle):
    visual = tiny_bundle.model.visual
    visual.eval()
    x = torch.randn(2, 3, 32, 32)
    # same grid: identical to the plain forward; local 16 px crops: a 2x2 patch grid
    assert torch.allclose(encode_crops(visual, x), visual(x))
    pos = visual.positional_embedding
    assert interpolate_pos_embed(pos, (4, 4)) is pos
    assert interpolate_pos_embed(pos, (2, 2)).shape == (5, pos.shape[1])
    out = encode_crops(visual, torch.randn(2, 3, 16, 16))
    assert out.shape == (2, tiny_bundle.embed_dim)
    out.sum().backward()  # the gradient reaches the trained positional embedding through the resize
    assert visual.positional_embedding.grad is not None and visual.positional_embedding.grad.abs().sum() > 0
    visual.zero_grad()


def test_teacher_gets_no_gradient_and_follows_student(tiny_bundle):
    torch.manual_seed(0)
    dino, visual = small_objective(tiny_bundle)
    crops = [torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32), torch.randn(2, 3, 16, 16)]
    feats = dino.student_features(visual, crops)
    loss = dino(feats, crops, step=0)
    loss.backward()
    assert all(p.grad is None for p in dino.teacher_visual.parameters())
    assert all(p.grad is None for p in dino.teacher_head.parameters())
    assert not any(p.requires_grad for p in dino.teacher_visual.parameters())
    assert visual.conv1.weight.grad is not None and dino.student_head.mlp[0].weight.grad is not None
    assert all(p.requires_grad for p in dino.trainable_parameters())
    assert not any(p is q for p in dino.trainable_parameters() for q in visual.parameters())
    # EMA: after the student moves, the teacher moves a (1 - m) fraction of the way
    t_before = dino.teacher_visual.conv1.weight.detach().clone()
    with torch.no_grad():
        visual.conv1.weight.add_(1.0)
    m = dino.update_teacher(visual, step=0)
    assert m == pytest.approx(0.996)
    assert torch.allclose(dino.teacher_visual.conv1.weight - t_before, torch.full_like(t_before, 1 - m), atol=1e-6)
    with torch.no_grad():
        visual.conv1.weight.sub_(1.0)
    visual.zero_grad()


def test_dino_loss_falls_on_toy_problem():
    """A small MLP backbone sees noisy views of 4 clusters. DINO's loss first rises (the centre
    starts at zero and the teacher temperature warms up), then falls well below log K, the value
    of a uniform (collapsed) teacher, and the teacher maps the clusters to different prototypes."""
    torch.manual_seed(0)
    protos = torch.randn(4, 10) * 3
    student = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.GELU(), torch.nn.Linear(32, 16))
    cfg = DINOConfig(enabled=True, out_dim=64, hidden_dim=32, bottleneck_dim=8, warmup_teacher_temp_frac=0.2,
                     momentum_teacher=0.996, crops=MultiCropConfig(n_global=2, n_local=2))
    steps = 300
    dino = DINOObjective(student, 16, cfg, total_steps=steps)
    opt = torch.optim.AdamW(list(student.parameters()) + dino.trainable_parameters(), lr=1e-3)
    losses = []
    for step in range(steps):
        labels = torch.randint(0, 4, (32,))
        crops = [protos[labels] + 0.5 * torch.randn(32, 10) for _ in range(4)]
        loss = dino([student(c) for c in crops], crops, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        dino.update_teacher(student, step)
        losses.append(loss.item())
    windows = [np.mean(losses[i:i + 10]) for i in range(0, steps, 10)]
    peak, last = max(windows[: len(windows) // 3]), np.mean(losses[-20:])
    assert last < 0.85 * peak and last < math.log(64) - 0.5, (peak, last)
    with torch.no_grad():
        out = dino.teacher_head(dino.teacher_visual(protos)) - dino.loss_fn.center
    assert len(set(out.argmax(-1).tolist())) >= 3


# ---------------------------------------------------------------- in the training loop
@pytest.fixture
def toy_captions(tmp_path):
    """12 images, captions in English and Portuguese, as one Karpathy file with lang fields."""
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    records = []
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "images" / f"{i}.png")
        records.append(CaptionRecord(f"{i}.png", "train", [f"image number {i}", f"imagem numero {i}"], ["en", "pt"]))
    return write_karpathy(records, tmp_path / "toy.json")


def dino_cfg(path, **kw):
    settings = dict(data__datasets=[str(path)], data__fraction=1.0, data__cache_images=False, loop__batch_size=4,
                    loop__steps=4, loop__ckpt_every=2)
    return load_clip_config("smoke_dino", **{**settings, **kw})


def test_smoke_dino_config_loads():
    for name in ("smoke_dino", "cpu_dino", "paper_dino", "paper_rsmclip"):
        cfg = load_clip_config(name)
        assert cfg.dino.enabled and cfg.dino.crops.n_global == 2
    # beside the other runs of its profile: same model; the RS-M-CLIP recipe is multilingual
    assert load_clip_config("paper_dino").model == load_clip_config("paper").model
    rsm = load_clip_config("paper_rsmclip")
    assert rsm.model == "xlm-roberta-base-ViT-B-32" and len(rsm.data.languages) == 10
    with pytest.raises(ConfigError, match="clip_view"):
        load_config(DINOConfig, {"clip_view": "local"})


def test_train_clip_with_dino_resumes_exactly(toy_captions, tmp_path):
    """CLIP + DINO in rsdix.training.loop.fit: the DINO teacher, centre and step count are checkpointed,
    so a run killed after step 3 and resumed equals an uninterrupted one."""
    ref = train_clip(dino_cfg(toy_captions), run_dir=tmp_path / "ref")
    assert {"hard", "clip_loss", "dino/loss", "dino/teacher_temp", "dino/momentum"} <= set(ref.history[0])
    assert all(np.isfinite(r["dino/loss"]) for r in ref.history)
    term = ref.objective.dino
    assert int(term.step) == 4 and term.dino.loss_fn.center.abs().sum() > 0
    # the teacher moved towards the student but is not the student
    s = dict(ref.model.visual.named_parameters())
    assert any(not torch.equal(p, s[n]) for n, p in term.dino.teacher_visual.named_parameters())

    class Killed(Exception):
        pass

    def kill(step, logs):
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        train_clip(dino_cfg(toy_captions), run_dir=tmp_path / "run", callbacks=[kill])
    resumed = train_clip(dino_cfg(toy_captions), run_dir=tmp_path / "run", resume=True)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in ref.history]
    for a, b in zip(ref.objective.state_dict().values(), resumed.objective.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(ref.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_train_clip_dino_with_rsdix_and_languages(toy_captions, tmp_path):
    """DINO combines with RSDiX's OT distillation and with one language per step."""
    cfg = dino_cfg(toy_captions, loss__method="rsdix", data__languages=["en", "pt"], loop__steps=2,
                   loop__ckpt_every=0)
    bundle = build_model(cfg)
    ds = build_train_dataset(cfg, bundle)
    views, caps, index = ds[0]
    assert len(views["crops"]) == 4 and set(caps) == {"en", "pt"}
    assert "image" not in views   # CLIP on the first global view: ClipWithDino takes crops[0], no copy
    batch = LanguageCollate(bundle.tokenizer, ["en", "pt"], seed=0)([ds[i] for i in range(4)])
    assert len(set(batch["lang"])) == 1 and len(batch["crops"]) == 4
    res = train_clip(cfg, bundle=bundle)
    assert {"distill", "hard", "dino/loss"} <= set(res.history[-1])


def test_clip_term_reuses_the_global_crop_pass(tiny_bundle):
    """With clip_view=global the CLIP loss equals the plain CLIP objective on the first global
    crop, though the image tower ran once for both terms."""
    torch.manual_seed(0)
    model = tiny_bundle.model.eval()
    clip = ClipObjective(ClipLossConfig(method="infonce"))
    cfg = DINOConfig(enabled=True, out_dim=32, hidden_dim=16, bottleneck_dim=8,
                     crops=MultiCropConfig(n_global=2, n_local=1))
    both = ClipWithDino(clip, DinoTerm(model, tiny_bundle.embed_dim, cfg, 10), weight=0.5)
    crops = [torch.randn(3, 3, 32, 32), torch.randn(3, 3, 32, 32), torch.randn(3, 3, 16, 16)]
    batch = {"image": crops[0].clone(), "crops": crops, "text": tiny_bundle.tokenizer(["a", "b", "c"]),
             "caption": ["a", "b", "c"]}
    calls = []
    hook = model.visual.register_forward_hook(lambda *a: calls.append(1))
    out = both(batch, model)
    hook.remove()
    assert len(calls) == 2  # one pass per crop size (globals together, the local), none extra for CLIP
    plain = clip(dict(batch, image=crops[0]), model)
    assert torch.allclose(out["clip_loss"], plain["loss"], atol=1e-6)
    assert torch.allclose(out["loss"], out["clip_loss"] + 0.5 * out["dino/loss"])


def test_encode_crops_cnn_native_and_fixed_size_fallback():
    class AnySize(torch.nn.Module):  # a CNN with global pooling (rsdix-cnn's ResNet)
        image_size = (32, 32)

        def __init__(self):
            super().__init__()
            self.seen = []

        def forward(self, x):
            self.seen.append(tuple(x.shape[-2:]))
            return x.mean(dim=(2, 3))

    class FixedSize(AnySize):  # attention pooling with a fixed grid: fails on other sizes
        def forward(self, x):
            if tuple(x.shape[-2:]) != self.image_size:
                raise RuntimeError("size mismatch")
            return super().forward(x)

    cnn, fixed = AnySize(), FixedSize()
    assert encode_crops(cnn, torch.ones(2, 3, 16, 16)).shape == (2, 3) and cnn.seen == [(16, 16)]
    out = encode_crops(fixed, torch.ones(2, 3, 16, 16))
    assert torch.allclose(out, torch.ones(2, 3)) and fixed.seen == [(32, 32)]
    encode_crops(fixed, torch.ones(2, 3, 16, 16))  # remembered: no second failing attempt
    assert fixed.seen == [(32, 32), (32, 32)]


def test_the_loss_takes_each_views_log_softmax_once(monkeypatch):
    """issue #28: log_softmax over [B x K] was recomputed for every (teacher view, student view) pair:
    18 instead of 10 at 2 + 8 crops (~2 GiB extra at B 512, K 65536). Same loss, one per view."""
    torch.manual_seed(0)
    loss_fn = DINOLoss(16, n_global=2)
    student, teacher = torch.randn(10 * 4, 16), torch.randn(2 * 4, 16)
    want = loss_fn(student, teacher, 0.04, update_center=False)
    calls = []
    real = F.log_softmax
    monkeypatch.setattr(F, "log_softmax", lambda *a, **k: calls.append(1) or real(*a, **k))
    got = loss_fn(student, teacher, 0.04, update_center=False)
    assert len(calls) == 10 and torch.equal(got, want)


def test_the_dino_step_is_counted_on_the_host():
    """issue #28: ``int(self.step)`` read a CUDA buffer every step; the host count is restored from a
    checkpoint's state dict."""
    torch.manual_seed(0)
    bundle = load_model("rsdix-tiny")
    term = DinoTerm(bundle.model, bundle.embed_dim, DINOConfig(enabled=True, out_dim=16, hidden_dim=8,
                                                                bottleneck_dim=4), total_steps=10)
    term.after_step(3)
    assert term.n_steps == 3 and int(term.step) == 3
    other = DinoTerm(bundle.model, bundle.embed_dim, DINOConfig(enabled=True, out_dim=16, hidden_dim=8,
                                                                 bottleneck_dim=4), total_steps=10)
    other.load_state_dict(term.state_dict())
    assert other.n_steps == 3
