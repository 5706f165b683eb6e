import math
import os

import pytest
import torch
import torch.distributed as dist

from rsdix.training import losses
from rsdix.config import ConfigError
from rsdix.training.clip import (ClipLossConfig, ClipObjective, SBertSimilarity, build_train_dataset, load_clip_config,
                           train_clip)
from rsdix.training.loop import EMATeacher, Trainee

CAPTIONS = ["many buildings and green trees", "a plane parked at the airport", "a river through a forest",
            "a baseball field beside a road", "a beach with white waves", "dense houses and roads",
            "an empty parking lot", "storage tanks near a harbour"]


def _tiny():
    from rsdix.models import load_model

    torch.manual_seed(0)
    return load_model("rsdix-tiny")


def _batch(bundle, n=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(n, 3, 32, 32, generator=g), "text": bundle.tokenizer(CAPTIONS[:n]),
            "caption": CAPTIONS[:n]}


def _teacher(model):
    teacher = EMATeacher(model)
    with torch.no_grad():  # a teacher that differs from the student
        for p in teacher.module.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return teacher


def test_objective_total_and_terms_match_the_losses():
    bundle = _tiny()
    model, batch = bundle.model, _batch(bundle)
    teacher = _teacher(model)
    obj = ClipObjective(ClipLossConfig(method="rsdix", alpha=0.3))
    out = obj(batch, model, teacher)
    with torch.no_grad():
        img = model.encode_image(batch["image"], normalize=True)
        txt = model.encode_text(batch["text"], normalize=True)
        hard = losses.infonce(img, txt, model.logit_scale.exp())
        t_img = teacher.encode_image(batch["image"], normalize=True)
        t_txt = teacher.encode_text(batch["text"], normalize=True)
        lp_i, lp_t = losses.ot_targets(t_img, t_txt, eps=0.1, iters=5)
        distill = losses.distill_kl(torch.exp(torch.tensor(3.9)) * img @ txt.t(), lp_i, lp_t)
    assert out["hard"].item() == pytest.approx(hard.item(), rel=1e-5)
    assert out["distill"].item() == pytest.approx(distill.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx(0.3 * hard.item() + 0.7 * distill.item(), rel=1e-5)


@pytest.mark.parametrize("method", ["rsdix", "rsdix-siglip"])
def test_gradient_reaches_student_and_temperature_never_teacher(method):
    bundle = _tiny()
    model, batch = bundle.model, _batch(bundle)
    teacher = _teacher(model)
    obj = ClipObjective(ClipLossConfig(method=method))
    obj(batch, model, teacher)["loss"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert model.visual.conv1.weight.grad.abs().sum() > 0
    assert model.token_embedding.weight.grad.abs().sum() > 0
    own = [p for p in obj.parameters()]
    assert own and all(p.grad is not None and p.grad.abs() > 0 for p in own)


def test_infonce_and_siglip_need_no_teacher():
    bundle = _tiny()
    for method in ("infonce", "siglip"):
        obj = ClipObjective(ClipLossConfig(method=method))
        assert not obj.needs_teacher
        out = obj(_batch(bundle), bundle.model, None)
        assert out["loss"] is out["hard"] and torch.isfinite(out["loss"])


def test_sbert_similarities_replace_the_text_text_term():
    sbert = SBertSimilarity()
    e = sbert.embed(["a plane at the airport", "a plane at the airport", "a dense forest"], "cpu")
    sims = e @ e.t()
    assert sims[0, 1].item() == pytest.approx(1.0, abs=1e-5) and sims[0, 2] < 0.5
    assert len(sbert.cache) == 2  # cached per distinct caption
    from rsdix.models import sbert_model
    assert SBertSimilarity().model is sbert_model() is sbert.model  # one MiniLM per process
    bundle = _tiny()
    model, batch = bundle.model, _batch(bundle)
    teacher = _teacher(model)
    plain = ClipObjective(ClipLossConfig(method="rsdix"))(batch, model, teacher)
    with_sbert = ClipObjective(ClipLossConfig(method="rsdix-sbert"), sbert=sbert)(batch, model, teacher)
    assert with_sbert["hard"].item() == pytest.approx(plain["hard"].item())
    assert with_sbert["distill"].item() != pytest.approx(plain["distill"].item(), rel=1e-3)


def _ddp_worker(rank, world, init_file, out_dir, method):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        bundle = _tiny()
        teacher = _teacher(bundle.model)
        trainee = torch.nn.parallel.DistributedDataParallel(Trainee(bundle.model,
                                                                    ClipObjective(ClipLossConfig(method=method))))
        batch = _batch(bundle)
        n = batch["image"].shape[0] // world
        local = {k: v[rank * n:(rank + 1) * n] for k, v in batch.items()}
        out = trainee(local, teacher=teacher)
        out["loss"].backward()
        grads = {k: p.grad.clone() for k, p in trainee.module.named_parameters() if p.grad is not None}
        torch.save({"loss": out["loss"].detach(), "grads": grads}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("method", ["rsdix"])
def test_ddp_two_processes_equal_single_process_on_the_concatenated_batch(tmp_path, method):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path), method), nprocs=2, join=True)
    bundle = _tiny()
    teacher = _teacher(bundle.model)
    trainee = Trainee(bundle.model, ClipObjective(ClipLossConfig(method=method)))
    out = trainee(_batch(bundle), teacher=teacher)
    out["loss"].backward()
    single = {k: p.grad for k, p in trainee.named_parameters() if p.grad is not None}
    for rank in range(2):
        res = torch.load(tmp_path / f"rank{rank}.pt")
        assert res["loss"].item() == pytest.approx(out["loss"].item(), rel=1e-5)
        assert set(res["grads"]) == set(single)
        for k, g in single.items():
            torch.testing.assert_close(res["grads"][k], g, rtol=1e-4, atol=1e-6, msg=k)


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


def test_fraction_subsets_are_seeded(ucm_root):
    from rsdix.models import load_model

    bundle = load_model("rsdix-tiny")
    cfg = load_clip_config("smoke", data__fraction=0.1, data__data_root=str(ucm_root.parent))
    a = build_train_dataset(cfg, bundle, seed=0)
    b = build_train_dataset(cfg, bundle, seed=0)
    c = build_train_dataset(cfg, bundle, seed=1)
    assert len(a) == 168 and a.filenames() == b.filenames() and a.filenames() != c.filenames()
    image, caption = a[0]
    assert image.shape == (3, 32, 32) and caption in a.records[0].captions


def test_train_clip_runs_and_saves(tmp_path):
    from rsdix.models import load_model, save_model

    bundle = _tiny()

    class Synthetic(torch.utils.data.Dataset):
        def __len__(self):
            return 16

        def __getitem__(self, i):
            return torch.randn(3, 32, 32), CAPTIONS[i % 8]

    cfg = load_clip_config("smoke", steps=3, batch_size=8, ckpt_every=0)
    res = train_clip(cfg, run_dir=tmp_path / "run", bundle=bundle, dataset=Synthetic())
    assert res.step == 3 and len(res.history) == 3 and (tmp_path / "run" / "checkpoint.pt").exists()
    assert {"hard", "distill", "distill_tau", "lr", "img_per_s"} <= set(res.history[-1])
    save_model(res.bundle, tmp_path / "model")
    assert load_model(str(tmp_path / "model")).fingerprint() == res.bundle.fingerprint()


def test_locked_text_trunk_cache_equals_uncached_forward():
    from rsdix.models import load_model, lock_text_trunk

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
    from rsdix.models import load_model, lock_text_trunk

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
    bundle = _tiny()

    class Synthetic(torch.utils.data.Dataset):
        def __len__(self):
            return 16

        def __getitem__(self, i):
            return torch.randn(3, 32, 32), CAPTIONS[i % 8]

    cfg = load_clip_config("smoke", method=method, steps=2, batch_size=8, ckpt_every=0, precision="bf16",
                           loss__sinkhorn_eps=0.05)
    res = train_clip(cfg, bundle=bundle, dataset=Synthetic())
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["distill"]) for r in res.history)


def test_train_run_resumes_same_config_and_retrains_a_changed_one(tmp_path, ucm_root):
    from types import SimpleNamespace

    from rsdix.training.clip import train_run

    dirs = SimpleNamespace(run=tmp_path / "run", models=tmp_path / "models")
    cfg = load_clip_config("smoke", steps=2, batch_size=8, data__data_root=str(ucm_root.parent))
    first = train_run(cfg, "rsdix_s0", dirs)
    again = train_run(cfg, "rsdix_s0", dirs)                  # finished, same config: nothing retrained
    assert again["history"] == first["history"] and not (tmp_path / "run" / "train" / "rsdix_s0.previous").exists()
    changed = load_clip_config("smoke", steps=2, batch_size=8, loop__lr=5e-3, data__data_root=str(ucm_root.parent))
    third = train_run(changed, "rsdix_s0", dirs)              # config changed: trained anew, old run kept aside
    assert (tmp_path / "run" / "train" / "rsdix_s0.previous" / "checkpoint.pt").exists()
    assert third["history"][-1]["loss"] != first["history"][-1]["loss"]     # really retrained, new lr


def test_train_run_checks_validation_and_ema_teacher_weights(tmp_path, ucm_root):
    from types import SimpleNamespace

    from rsdix.training.clip import long_run_name, result_rows, train_run

    def weight_sum(bundle):  # a stand-in check: which weights did it see?
        return {"mR": float(sum(p.double().sum() for p in bundle.model.visual.parameters())), "zs_top1": 1.0}

    dirs = SimpleNamespace(run=tmp_path / "run", models=tmp_path / "models")
    cfg = load_clip_config("smoke", steps=3, batch_size=8, data__data_root=str(ucm_root.parent))
    out = train_run(cfg, long_run_name("rsdix", 0), dirs, check=weight_sum, val_check=lambda b: {"mR": 42.0},
                    check_teacher=True)
    assert out["run"] == "rsdix-long_s0" and out["val_mR"] == 42.0
    assert out["ema_mR"] != out["mR"]  # the averaged weights, not the student's
    rows = result_rows([out], "smoke")
    ema = [r for r in rows if r.model == "rsdix-long_s0-ema"]
    assert {(r.metric, r.value) for r in ema} == {("mR", out["ema_mR"]), ("top1", 1.0)}
    assert sorted((r.split, r.value) for r in rows if r.model == "rsdix-long_s0" and r.metric == "mR") == \
        [("test", out["mR"]), ("val", 42.0)]
    infonce = train_run(load_clip_config("smoke", method="infonce", steps=2, batch_size=8,
                                         data__data_root=str(ucm_root.parent)),
                        "infonce_s0", dirs, check=weight_sum, check_teacher=True)
    assert not any(k.startswith("ema_") for k in infonce)  # no teacher, no EMA rows


def test_quick_check_reports_what_the_evaluation_suite_reports(tmp_path, ucm_root, whu_root, tiny_bundle):
    """Notebook 03's check and notebook 05's evaluation write rows with the same key (model,
    dataset, task, metric, split): they must be the same numbers, not two definitions.
    On a small slice of the real data (40 UCM test images, 4 WHU-RS19 classes x 6 images)."""
    import json

    from rsdix.evaluation import suite as evaluate
    from rsdix.evaluation.quick_check import QuickCheck

    ann = json.loads((ucm_root / "dataset_ucm.json").read_text())
    ann["images"] = [im for im in ann["images"] if im["split"] == "test"][:40]
    (tmp_path / "ucm_captions").mkdir()
    (tmp_path / "ucm_captions" / "dataset_ucm.json").write_text(json.dumps(ann))
    (tmp_path / "ucm_captions" / "images").symlink_to(ucm_root / "images")
    for cls in sorted(p.name for p in whu_root.iterdir() if p.is_dir())[:4]:
        (tmp_path / "whu_rs19" / cls).mkdir(parents=True)
        for img in sorted((whu_root / cls).iterdir())[:6]:
            (tmp_path / "whu_rs19" / cls / img.name).symlink_to(img)

    check = QuickCheck(tiny_bundle, tmp_path)
    quick = check(tiny_bundle)
    assert check.zero_shot_split == "all"
    ret = evaluate.retrieval(tiny_bundle, evaluate.load_retrieval("ucm_captions", tmp_path))
    zs = evaluate.zero_shot(tiny_bundle, evaluate.load_classification("whu_rs19", tmp_path), templates="rs")
    assert set(ret) <= set(quick)
    for key, value in ret.items():
        assert quick[key] == pytest.approx(value, abs=1e-6), key
    assert quick["zs_top1"] == pytest.approx(zs.metrics["top1"], abs=1e-6)
    torch.testing.assert_close(check.zero_shot_scores(tiny_bundle), torch.as_tensor(zs.scores).float(),
                               rtol=1e-4, atol=1e-5)  # same prompts, same class embeddings
