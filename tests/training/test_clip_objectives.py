"""rsdix.training.clip_objectives: the CLIP objectives against the losses, gradients, S-BERT, DDP."""
import os

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
