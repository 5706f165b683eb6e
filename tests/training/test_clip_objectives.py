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


def _ddp_worker(rank, world, init_file, out_dir, method):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
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
