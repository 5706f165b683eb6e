"""rsdix.training.clip_objectives: the CLIP objectives against the losses, gradients, S-BERT, DDP."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from training_fixtures import CAPTIONS, tiny_clip
from rsdix.models import sbert_model
from rsdix.training import losses
from rsdix.training.clip_objectives import ClipLossConfig, ClipObjective, SBertSimilarity
from rsdix.training.ema import EMATeacher
from rsdix.training.objectives import Trainee
from rsdix.errors import ConfigError





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
    bundle = tiny_clip()
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
    bundle = tiny_clip()
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
    bundle = tiny_clip()
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
    assert SBertSimilarity().model is sbert_model() is sbert.model  # one MiniLM per process
    bundle = tiny_clip()
    model, batch = bundle.model, _batch(bundle)
    teacher = _teacher(model)
    plain = ClipObjective(ClipLossConfig(method="rsdix"))(batch, model, teacher)
    with_sbert = ClipObjective(ClipLossConfig(method="rsdix-sbert"), sbert=sbert)(batch, model, teacher)
    assert with_sbert["hard"].item() == pytest.approx(plain["hard"].item())
    assert with_sbert["distill"].item() != pytest.approx(plain["distill"].item(), rel=1e-3)


def _join_gloo(rank, world, init_file):
    """One process of a CPU process group (gloo, one thread), rendezvous through ``init_file``."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)


def _ddp_worker(rank, world, init_file, out_dir, method):
    _join_gloo(rank, world, init_file)
    try:
        bundle = tiny_clip()
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


@pytest.mark.slow
@pytest.mark.parametrize("method", ["rsdix"])
def test_ddp_two_processes_equal_single_process_on_the_concatenated_batch(tmp_path, method):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path), method), nprocs=2, join=True)
    bundle = tiny_clip()
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


# ---------------------------------------------------------------- issue 28: the GPU path
from torch import nn  # noqa: E402

from rsdix.training import clip_objectives  # noqa: E402
from rsdix.training.clip_objectives import METHODS  # noqa: E402
from rsdix.training.loop import LoopConfig, fit  # noqa: E402
from rsdix.training.collate import ClipCollate  # noqa: E402
from training_fixtures import SyntheticCaptions, clustered_pairs  # noqa: E402


class FixedFeatures(nn.Module):
    """A student (or teacher) whose features are given: the objective's own arithmetic alone."""

    def __init__(self, img, txt):
        super().__init__()
        self.img, self.txt = img, txt
        self.logit_scale = nn.Parameter(torch.tensor(2.0))

    def encode_image(self, image, normalize=False):
        return self.img + 0 * self.logit_scale

    def encode_text(self, text, normalize=False):
        return self.txt


@pytest.mark.parametrize("method", ["rsdix", "rsdix-siglip"])
def test_distillation_is_float32_under_bf16_autocast(method):
    """issue #28: the distillation logits (student similarities x temperature, and their softmax) and
    the OT targets ran in bf16 under accelerate's autocast; on a clustered batch the term now equals
    float32's to 1e-5."""
    img, txt = clustered_pairs()
    t_img, t_txt = clustered_pairs(seed=1)
    student, teacher = FixedFeatures(img, txt), FixedFeatures(t_img, t_txt)
    batch = {"image": torch.zeros(len(img), 3, 4, 4), "text": torch.zeros(len(img), 4, dtype=torch.long)}
    obj = ClipObjective(ClipLossConfig(method=method))
    want = obj(batch, student, teacher)["distill"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = obj(batch, student, teacher)["distill"]
    assert got.dtype == torch.float32 and abs(got.item() - want.item()) < 1e-5 * max(1.0, abs(want.item()))


def test_sbert_runs_on_the_students_device(monkeypatch):
    """issue #28: MiniLM stayed on the CPU while the student trained on a GPU. It now encodes on the
    device the student's features are on (the cache keeps CPU tensors)."""
    asked = []

    class FakeSbert:
        def __init__(self, device):
            self.device = torch.device(device)

        def eval(self):
            return self

        def requires_grad_(self, flag):
            return self

        def encode(self, texts, **kwargs):
            return torch.ones(len(texts), 4)

    def fake_model(path, device):
        asked.append(device)
        return FakeSbert(device)

    monkeypatch.setattr(clip_objectives, "sbert_model", fake_model)
    sbert = SBertSimilarity()
    e = sbert.embed(["a", "b"], "meta")
    assert asked[-1] == "meta" and e.device.type == "meta"
    assert all(v.device.type == "cpu" for v in sbert.cache.values())


def _fit_every_method(rank, world, port, out_dir):
    """One process of a 2-process run (or the single process): 2 steps of each CLIP method with fit."""
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                          WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    losses_by_method = {}
    for method in METHODS:
        bundle = tiny_clip()
        cfg = LoopConfig(steps=2, batch_size=8, lr=1e-3, warmup_steps=1, log_every=1, precision="no", cpu=True,
                         seed=0)
        res = fit(bundle.model, ClipObjective(ClipLossConfig(method=method)), SyntheticCaptions(), cfg,
                  collate_fn=ClipCollate(bundle.tokenizer))
        losses_by_method[method] = [r["loss"] for r in res.history]
    if rank == 0:
        torch.save(losses_by_method, os.path.join(out_dir, f"world{world}.pt"))


@pytest.mark.slow
def test_every_method_trains_under_two_process_ddp_like_one_process(tmp_path):
    """issue #28: ``siglip`` and ``rsdix-siglip`` never used ``student.logit_scale``, and DDP (with
    ``find_unused_parameters=False``) stopped at the second step ("Expected to have finished reduction
    in the prior iteration"). Every method now trains 2 steps under 2 gloo processes through
    :func:`rsdix.training.loop.fit`, with the single-process losses on the concatenated batch."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_fit_every_method, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    _fit_every_method(0, 1, None, str(tmp_path))
    two, one = torch.load(tmp_path / "world2.pt"), torch.load(tmp_path / "world1.pt")
    assert set(two) == set(METHODS)
    for method in METHODS:
        assert two[method] == pytest.approx(one[method], rel=1e-5), method
# ---------------------------------------------------------------- the original recipe (docs/training.md)
import math  # noqa: E402

import numpy as np  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from rsdix.training.clip import load_clip_config, with_recipe  # noqa: E402
from rsdix.training.clip_objectives import RECIPES  # noqa: E402
from rsdix.training.optim import build_optimizer  # noqa: E402


class FeatureModel(nn.Module):
    """A stand-in CLIP whose features are parameters: ``encode_image(idx)`` returns the normalised rows
    ``idx`` of ``img`` (float64), so a test controls the features exactly."""

    def __init__(self, img, txt, logit_scale=math.log(1 / 0.07)):
        super().__init__()
        self.img = nn.Parameter(torch.as_tensor(img, dtype=torch.float64).clone())
        self.txt = nn.Parameter(torch.as_tensor(txt, dtype=torch.float64).clone())
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale), dtype=torch.float64))

    def encode_image(self, idx, normalize=True):
        return F.normalize(self.img[idx], dim=-1) if normalize else self.img[idx]

    def encode_text(self, idx, normalize=True):
        return F.normalize(self.txt[idx], dim=-1) if normalize else self.txt[idx]


def _duplicated_batch(n=12, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    img, txt = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)
    img[5], txt[5] = img[2], txt[2]
    txt[n - 1] = txt[1]
    return img, txt


def _reference_original_loss(s_img, s_txt, t_img, t_txt, logit_scale, t_s, alpha=0.5, eps=0.1, iters=4,
                             remove_diag=False):
    """The original RSDiX-CLIP loss in float64 from its description: hard = HF CLIP's loss (mean of the
    two cross-entropies, exp(logit_scale) unclamped); soft = mean of KL(P || softmax(tau s)) over both
    directions, batchmean, tau = clamp(exp(T_s), 1, 100); total = alpha hard + (1 - alpha) soft."""
    n = len(s_img)
    s = s_img @ s_txt.T

    def log_softmax(x):
        m = x.max(axis=1, keepdims=True)
        return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))

    logits = math.exp(logit_scale) * s
    hard = 0.5 * (-np.mean(np.diag(log_softmax(logits))) - np.mean(np.diag(log_softmax(logits.T))))
    eye = np.eye(n)
    r = 1.0 if remove_diag else 0.0
    s_ii, s_tt, s_it = t_img @ t_img.T - 100 * r * eye, t_txt @ t_txt.T - 100 * r * eye, t_img @ t_txt.T

    def sinkhorn(cost):
        q = np.exp(-cost / eps)
        q /= q.sum()
        for _ in range(iters):
            q = q / q.sum(axis=1, keepdims=True) / n
            q = q / q.sum(axis=0, keepdims=True) / n
        return q / q.sum(axis=1, keepdims=True)

    p_img, p_txt = sinkhorn(-(s_ii + s_tt + s_it)), sinkhorn(-(s_ii + s_tt + s_it.T))
    tau = min(100.0, max(1.0, math.exp(t_s)))

    def kl(p, lq):
        return np.sum(np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - lq), 0.0)) / n

    soft = 0.5 * (kl(p_img, log_softmax(tau * s)) + kl(p_txt, log_softmax(tau * s.T)))
    return alpha * hard + (1 - alpha) * soft, hard, soft


def _unit_np(x):
    x = x.detach().numpy()
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("remove_diag", [False, True])
def test_original_recipe_loss_equals_an_independent_implementation(remove_diag):
    img, txt = _duplicated_batch()
    student = FeatureModel(img, txt, logit_scale=math.log(120.0))      # above 100: the original does not clamp
    teacher = FeatureModel(img + 0.3 * torch.randn(img.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(5)),
                           txt + 0.3 * torch.randn(txt.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(6)))
    obj = ClipObjective(ClipLossConfig(method="rsdix", recipe="original", remove_diag=remove_diag))
    idx = torch.arange(len(img))
    out = obj({"image": idx, "text": idx, "caption": [""] * len(img)}, student, teacher)
    total, hard, soft = _reference_original_loss(_unit_np(student.img), _unit_np(student.txt), _unit_np(teacher.img),
                                                 _unit_np(teacher.txt), math.log(120.0), 3.9, remove_diag=remove_diag)
    assert out["hard"].item() == pytest.approx(hard, rel=1e-6)
    assert out["distill"].item() == pytest.approx(soft, rel=1e-6)
    assert out["loss"].item() == pytest.approx(total, rel=1e-6)
    assert out["logit_scale"].item() == pytest.approx(120.0)
    if remove_diag:
        assert out["p_diag"].item() == 0.0


def _reference_adamw_step(p, g, lr, wd, betas=(0.9, 0.99), eps=1e-8):
    """One AdamW step from zero moments, float64: decoupled decay on the parameter, then Adam."""
    p = p * (1 - lr * wd)
    m, v = (1 - betas[0]) * g, (1 - betas[1]) * g * g
    m_hat, v_hat = m / (1 - betas[0]), v / (1 - betas[1])
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


def test_original_recipe_one_optimizer_step_decays_every_parameter():
    """The loop's AdamW under the original recipe (decay_all): every parameter, the distillation
    temperature T_s and logit_scale included, takes the decay; against an AdamW step written out."""
    img, txt = _duplicated_batch(seed=3)
    student = FeatureModel(img, txt)
    teacher = FeatureModel(img.flip(0), txt)
    obj = ClipObjective(ClipLossConfig(method="rsdix", recipe="original"))
    trainee = Trainee(student, obj)
    idx = torch.arange(len(img))
    trainee({"image": idx, "text": idx, "caption": [""] * len(img)}, teacher=teacher)["loss"].backward()
    before = {n: (p.detach().double().numpy().copy(), p.grad.double().numpy().copy())
              for n, p in trainee.named_parameters()}
    assert "objective.distill_scale.log_scale" in before and "model.logit_scale" in before
    loop = with_recipe(load_clip_config({"loss": {"recipe": "original"}})).loop
    assert loop.decay_all is True and loop.ema_schedule == "original" and loop.ema_buffers == "keep"
    opt = build_optimizer(trainee.named_parameters(), lr=5e-4, weight_decay=0.1, decay_all=loop.decay_all)
    opt.step()
    for name, p in trainee.named_parameters():
        want = _reference_adamw_step(*before[name], lr=5e-4, wd=0.1)
        np.testing.assert_allclose(p.detach().double().numpy(), want, rtol=0, atol=1e-6 * max(1.0, np.abs(want).max()),
                                   err_msg=name)


def test_v5_weight_decay_on_a_scalar_with_zero_gradient():
    """lr 5e-4, wd 0.1, zero gradient: the original's single group decays w = 1 to 0.99995; rsdix's
    no-decay group leaves a scalar temperature alone."""
    for decay_all, want in ((True, 0.99995), (False, 1.0)):
        w = nn.Parameter(torch.ones((), dtype=torch.float64))
        opt = build_optimizer([("distill_scale.log_scale", w)], lr=5e-4, weight_decay=0.1, decay_all=decay_all)
        w.grad = torch.zeros_like(w)
        opt.step()
        assert w.item() == pytest.approx(want, abs=1e-12)


def test_v6_logit_scale_clamp():
    """Similarities [[0.03, 0.02], [0.01, 0.04]], logit_scale ln 120: the original's CE at scale 120 is
    0.115978; rsdix clamps to 100 (CE 0.153926) and passes no gradient to logit_scale."""
    sims = torch.tensor([[0.03, 0.02], [0.01, 0.04]], dtype=torch.float64)
    idx = torch.arange(2)
    batch = {"image": idx, "text": idx, "caption": ["", ""]}
    for recipe, want in (("original", 0.115978), ("rsdix", 0.153926)):
        student = FeatureModel(sims, torch.eye(2, dtype=torch.float64), logit_scale=math.log(120.0))
        student.encode_image = lambda i, normalize=True, m=student: m.img[i]       # the rows as they are
        out = ClipObjective(ClipLossConfig(method="infonce", recipe=recipe))(batch, student)
        assert out["loss"].item() == pytest.approx(want, abs=1e-6)
        out["loss"].backward()
        assert (student.logit_scale.grad.abs().item() > 0) == (recipe == "original")


class FixedSBert:
    """S-BERT stand-in: fixed caption embeddings (already normalised), ``model`` reports the size."""

    def __init__(self, table):
        self.table = table
        self.model = type("M", (), {"get_sentence_embedding_dimension": lambda self: table.shape[1]})()

    def embed(self, captions, device):
        return torch.stack([self.table[int(c)] for c in captions]).to(device)


def test_original_sbert_teacher_is_a_fixed_projection_for_tt_and_it():
    img, txt = _duplicated_batch(n=6, d=4, seed=7)
    e = F.normalize(torch.randn(6, 5, generator=torch.Generator().manual_seed(8)), dim=-1)
    student, teacher = FeatureModel(img, txt), FeatureModel(img.flip(1), txt)
    torch.manual_seed(0)
    obj = ClipObjective(ClipLossConfig(method="rsdix-sbert", recipe="original"), sbert=FixedSBert(e), embed_dim=4)
    assert not obj.sbert_proj.weight.requires_grad
    idx = torch.arange(6)
    out = obj({"image": idx, "text": idx, "caption": [str(i) for i in range(6)]}, student, teacher)
    u = obj.sbert_proj(e).detach()              # not renormalised
    assert abs(u.norm(dim=1) - 1).max() > 1e-3
    log_p_i, log_p_t = losses.ot_targets(teacher.encode_image(idx).float(), u, original=True, eps=0.1, iters=4)
    s = student.encode_image(idx) @ student.encode_text(idx).t()
    want = losses.distill_kl(math.exp(3.9) * s, log_p_i, log_p_t)
    assert out["distill"].item() == pytest.approx(want.item(), rel=1e-6)
    out["loss"].backward()
    assert obj.sbert_proj.weight.grad is None
    with pytest.raises(ConfigError, match="embed_dim"):
        ClipObjective(ClipLossConfig(method="rsdix-sbert", recipe="original"), sbert=FixedSBert(e))


def test_original_siglip_distillation_has_its_own_scale_and_bias():
    img, txt = _duplicated_batch(n=6, d=4, seed=9)
    student, teacher = FeatureModel(img, txt), FeatureModel(img, txt.flip(1))
    obj = ClipObjective(ClipLossConfig(method="rsdix-siglip", recipe="original", siglip_log_scale=math.log(10),
                                       siglip_bias=-10.0)).double()
    idx = torch.arange(6)
    with torch.no_grad():
        obj.siglip_bias.fill_(-3.0)              # the contrastive term's bias moves; the distillation's does not
    out = obj({"image": idx, "text": idx, "caption": [""] * 6}, student, teacher)
    s = student.encode_image(idx) @ student.encode_text(idx).t()
    p_i, p_t = (x.exp() for x in losses.ot_targets(teacher.encode_image(idx), teacher.encode_text(idx),
                                                    original=True, eps=0.1, iters=4))
    want = losses.siglip_distill_original(10 * s - 10, p_i, p_t)
    assert out["distill"].item() == pytest.approx(want.item(), rel=1e-6)
    assert out["hard"].item() == pytest.approx(losses.siglip_loss(student.encode_image(idx), student.encode_text(idx),
                                                                  10.0, -3.0).item(), rel=1e-6)
    out["loss"].backward()
    assert obj.distill_siglip_bias.grad is not None and obj.distill_siglip_scale.log_scale.grad is not None


def test_recipe_switches_resolve_and_each_can_be_set_alone():
    cfg = ClipLossConfig(recipe="original")
    assert {k: cfg.switch(k) for k in RECIPES["original"]} == RECIPES["original"]
    assert ClipLossConfig(recipe="original", sinkhorn="log").switch("sinkhorn") == "log"
    assert ClipLossConfig(sinkhorn_iters=7).switch("sinkhorn_iters") == 7
    assert ClipLossConfig().switch("scope") == "global"
    loop = with_recipe(load_clip_config({"loss": {"recipe": "original"}, "loop": {"decay_all": False}})).loop
    assert loop.decay_all is False and loop.ema_schedule == "original"    # set alone: kept
    assert with_recipe(load_clip_config({})).loop.ema_buffers == "copy"


def test_original_recipe_targets_through_the_objective_match_ot_targets():
    """The objective's default original targets are ot_targets(original=True) with 4 iterations."""
    img, txt = _duplicated_batch(n=8, d=6, seed=11)
    student, teacher = FeatureModel(img, txt), FeatureModel(txt, img)
    obj = ClipObjective(ClipLossConfig(method="rsdix", recipe="original"))
    idx = torch.arange(8)
    out = obj({"image": idx, "text": idx, "caption": [""] * 8}, student, teacher)
    log_p_i, log_p_t = losses.ot_targets(teacher.encode_image(idx), teacher.encode_text(idx), original=True,
                                         eps=0.1, iters=4)
    want = losses.target_stats(log_p_i, log_p_t)
    assert out["p_entropy"].item() == pytest.approx(want["p_entropy"].item(), rel=1e-6)
    assert out["p_diag"].item() == pytest.approx(want["p_diag"].item(), rel=1e-6)


def _local_worker(rank, world, init_file, out_dir):
    _join_gloo(rank, world, init_file)
    try:
        bundle = tiny_clip()
        teacher = _teacher(bundle.model)
        obj = ClipObjective(ClipLossConfig(method="rsdix", recipe="original"))
        batch = _batch(bundle)
        n = batch["image"].shape[0] // world
        local = {k: v[rank * n:(rank + 1) * n] for k, v in batch.items()}
        torch.save({"loss": obj(local, bundle.model, teacher)["loss"].detach()}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_original_recipe_under_ddp_is_per_process():
    """scope local (the original): under DDP each process's loss is the single-process loss of its own
    half-batch (nothing gathered)."""
    import tempfile  # noqa: PLC0415 (a folder for the spawned processes only)
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_local_worker, args=(2, os.path.join(tmp, "init"), tmp), nprocs=2, join=True)
        bundle = tiny_clip()
        teacher = _teacher(bundle.model)
        obj = ClipObjective(ClipLossConfig(method="rsdix", recipe="original"))
        batch = _batch(bundle)
        for rank in range(2):
            local = {k: v[rank * 4:(rank + 1) * 4] for k, v in batch.items()}
            want = obj(local, bundle.model, teacher)["loss"].item()
            assert torch.load(os.path.join(tmp, f"rank{rank}.pt"))["loss"].item() == pytest.approx(want, rel=1e-5)
