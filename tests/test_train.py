import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rsdix.errors import DataError
from rsdix.training.loop import (BatchPlan, EMATeacher, LoopConfig, NonFiniteLossError, SumObjective, cosine_with_warmup,
                         fit, load_checkpoint, param_groups)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 8)
        self.norm = nn.LayerNorm(8)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(8, 1)
        self.logit_scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        return self.out(self.drop(self.norm(self.lin(x)))).squeeze(-1) * self.logit_scale


class Mse(nn.Module):
    def __init__(self, needs_teacher=True, nan_at=None):
        super().__init__()
        self.needs_teacher, self.nan_at, self.calls = needs_teacher, nan_at, 0
        self.temperature = nn.Parameter(torch.tensor(0.5))

    def forward(self, batch, student, teacher=None):
        self.calls += 1
        x, y = batch["x"], batch["y"]
        loss = F.mse_loss(student(x), y) + self.temperature ** 2
        if teacher is not None:
            loss = loss + 0.1 * F.mse_loss(student(x), teacher(x))
        if self.nan_at is not None and self.calls >= self.nan_at:
            loss = loss * float("nan")
        return {"loss": loss, "mse": loss.detach()}


class NoisyData(torch.utils.data.Dataset):
    """Items with randomness drawn at load time (like augmentation)."""

    def __init__(self, n=40):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0])

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i] + 0.1 * torch.randn(4), "y": self.y[i]}


def _cfg(**kw):
    base = dict(steps=9, batch_size=8, grad_accum=2, lr=0.05, warmup_steps=2, log_every=1, ckpt_every=3, seed=3)
    base.update(kw)
    return LoopConfig(**base)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_cosine_with_warmup_values():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = cosine_with_warmup(opt, warmup_steps=4, total_steps=14, min_lr_ratio=0.1)
    lrs = []
    for _ in range(14):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4] == pytest.approx(1.0)
    assert lrs[9] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)  # after the last step: the floor


def test_param_groups_decay_lr_mult_and_frozen():
    net = Net()
    net.lin.weight.requires_grad_(False)
    groups = param_groups(net.named_parameters(), lr=1.0, weight_decay=0.1, lr_mult={"out.": 0.1})
    by_name = {n: g for g in groups for n in g["names"]}
    assert "lin.weight" not in by_name
    assert by_name["out.weight"]["lr"] == pytest.approx(0.1) and by_name["out.weight"]["weight_decay"] == 0.1
    assert by_name["out.bias"]["weight_decay"] == 0.0 and by_name["out.bias"]["lr"] == pytest.approx(0.1)
    for name in ("lin.bias", "norm.weight", "norm.bias", "logit_scale"):
        assert by_name[name]["weight_decay"] == 0.0 and by_name[name]["lr"] == 1.0


def test_ema_teacher_decay_and_update():
    student = nn.Linear(2, 1)
    teacher = EMATeacher(student, max_decay=0.999)
    assert not any(p.requires_grad for p in teacher.parameters())
    t0 = teacher.module.weight.clone()
    with torch.no_grad():
        student.weight.add_(1.0)
    d = teacher.decay()
    assert d == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    teacher.update(student)
    assert torch.allclose(teacher.module.weight, d * t0 + (1 - d) * student.weight)
    teacher.updates.fill_(10_000)
    assert teacher.decay() == 0.999


def test_batch_plan_shards_concatenate_to_single_process_batches():
    single = list(BatchPlan(23, 6, seed=1, stop=10))
    r0 = list(BatchPlan(23, 6, rank=0, world=2, seed=1, stop=10))
    r1 = list(BatchPlan(23, 6, rank=1, world=2, seed=1, stop=10))
    assert [a + b for a, b in zip(r0, r1)] == single
    # one epoch = 3 full batches of a permutation (last 5 items dropped), epochs differ
    ep0 = [i for b in single[:3] for _, i in b]
    assert len(set(ep0)) == 18 and {e for b in single[3:6] for e, _ in b} == {1}
    assert ep0 != [i for b in single[3:6] for _, i in b]
    assert list(BatchPlan(23, 6, seed=1, start=4, stop=10)) == single[4:]  # resume mid-stream


def test_same_seed_same_numbers_and_training_reduces_loss(tmp_path):
    torch.manual_seed(0)
    a = fit(Net(), Mse(), NoisyData(), _cfg(seed=5, ckpt_every=0))
    torch.manual_seed(0)
    net = Net()
    torch.manual_seed(123)  # global RNG state when fit starts must not matter
    b = fit(net, Mse(), NoisyData(), _cfg(seed=5, ckpt_every=0))
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]
    assert a.history[-1]["loss"] < a.history[0]["loss"]


def test_resume_after_kill_equals_uninterrupted(tmp_path):
    torch.manual_seed(0)
    ref = fit(Net(), Mse(), NoisyData(), _cfg(), run_dir=tmp_path / "ref")

    class Killed(Exception):
        pass

    def kill_at_5(step, logs):
        if step == 5:
            raise Killed

    torch.manual_seed(0)
    with pytest.raises(Killed):
        fit(Net(), Mse(), NoisyData(), _cfg(), run_dir=tmp_path / "run", callbacks=[kill_at_5])
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 3
    torch.manual_seed(99)  # a fresh process would start from a different model: it must not matter
    resumed = fit(Net(), Mse(), NoisyData(), _cfg(), run_dir=tmp_path / "run", resume=True)
    for (k, v), (k2, v2) in zip(ref.model.state_dict().items(), resumed.model.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    assert torch.equal(ref.objective.temperature, resumed.objective.temperature)
    for v, v2 in zip(ref.teacher.state_dict().values(), resumed.teacher.state_dict().values()):
        assert torch.equal(v, v2)
    assert [r["loss"] for r in ref.history] == [r["loss"] for r in resumed.history]
    import pandas as pd

    logs = [pd.read_csv(tmp_path / d / "train_log.csv").drop(columns="img_per_s") for d in ("ref", "run")]
    pd.testing.assert_frame_equal(*logs)  # the log continues seamlessly (timing aside)
    assert list(logs[0]["step"]) == list(range(1, 10))
    # the training time survives the resume: a finished run resumed again reports it, not ~0 s
    part = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["seconds"]
    assert part == pytest.approx(resumed.seconds, abs=0.5) and part > 0
    again = fit(Net(), Mse(), NoisyData(), _cfg(), run_dir=tmp_path / "run", resume=True)
    assert again.step == resumed.step and part <= again.seconds < part + 5


def test_seconds_from_log_for_checkpoints_without_a_clock():
    from rsdix.training.loop import _seconds_from_log

    rows = [{"step": 10, "img_per_s": 100.0}, {"step": 20, "img_per_s": 50.0}, {"step": 25, "img_per_s": 0.0}]
    assert _seconds_from_log(rows, images_per_step=32) == pytest.approx(10 * 32 / 100 + 10 * 32 / 50)


def test_nan_loss_stops_with_step_and_no_new_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"step 4 \(micro-batch 1/2\): the loss is nan"):
        # 2 micro-batches per step: call 7 is step 4's first micro-batch
        fit(Net(), Mse(nan_at=7), NoisyData(), _cfg(), run_dir=tmp_path)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3


def test_sum_objective_weights_terms():
    class Const(nn.Module):
        needs_teacher = False

        def __init__(self, v):
            super().__init__()
            self.v = v

        def forward(self, batch, student, teacher=None):
            return {"loss": torch.tensor(self.v), "x": torch.tensor(1.0)}

    out = SumObjective({"a": (1.0, Const(2.0)), "b": (0.5, Const(3.0))})({}, None)
    assert out["loss"].item() == pytest.approx(3.5) and set(out) == {"loss", "a/loss", "a/x", "b/loss", "b/x"}


def test_corrupt_checkpoint_names_file(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="checkpoint.pt"):
        load_checkpoint(bad)
    with pytest.raises(DataError, match="missing.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_resume_under_a_different_config_is_refused(tmp_path):
    from rsdix.errors import ConfigError

    fit(Net(), Mse(), NoisyData(), _cfg(steps=2, ckpt_every=0), run_dir=tmp_path,
        config_snapshot={"loop": {"lr": 0.05, "steps": 2}})
    with pytest.raises(ConfigError, match=r"checkpoint.pt: checkpoint was written by a different configuration \(differs in \['loop'\]\)"):
        fit(Net(), Mse(), NoisyData(), _cfg(steps=4), run_dir=tmp_path, resume=True,
            config_snapshot={"loop": {"lr": 0.1, "steps": 4}})
    # more steps only: allowed (continue a finished run for longer)
    res = fit(Net(), Mse(), NoisyData(), _cfg(steps=4, ckpt_every=0), run_dir=tmp_path, resume=True,
              config_snapshot={"loop": {"lr": 0.05, "steps": 4}})
    assert res.step == 4


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.out = nn.Linear(4, 1)

    def forward(self, x):
        return self.out(self.conv(x).mean((2, 3))).squeeze(-1)


class ImageData(torch.utils.data.Dataset):
    def __init__(self, n=16):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, 8, 8, generator=g)
        self.y = self.x.mean((1, 2, 3))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def test_precision_auto_resolves_to_a_real_mode():
    from rsdix.training.loop import resolve_precision

    assert resolve_precision("no") == "no" and resolve_precision("fp16") == "fp16"
    assert resolve_precision("auto", cpu=True) in ("bf16", "no")


def test_bf16_channels_last_trains_like_fp32():
    """bf16 autocast + NHWC: same loop, finite losses that follow the fp32 run closely."""
    torch.manual_seed(0)
    fp32 = fit(ConvNet(), Mse(needs_teacher=False), ImageData(), _cfg(ckpt_every=0, lr=0.01))
    torch.manual_seed(0)
    model = ConvNet()
    fast = fit(model, Mse(needs_teacher=False), ImageData(),
               _cfg(ckpt_every=0, lr=0.01, precision="bf16", channels_last=True))
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    a, b = [r["loss"] for r in fp32.history], [r["loss"] for r in fast.history]
    assert all(math.isfinite(v) for v in b)
    assert max(abs(x - y) / max(abs(x), 1e-6) for x, y in zip(a, b)) < 0.05   # bf16 keeps ~3 digits
