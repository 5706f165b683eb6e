"""rsdix.training.ema: the EMA teacher's decay schedule and the one update step (both forms, bit for bit)."""
import pytest
import torch
from torch import nn

from rsdix.training.ema import EMATeacher, ema_update


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
    assert int(teacher.updates) == teacher.n_updates == 1
    teacher.load_state_dict({**teacher.state_dict(), "updates": torch.tensor(10_000)})  # a resumed run
    assert teacher.n_updates == 10_000 and teacher.decay() == 0.999


def test_the_decay_is_counted_on_the_host_never_read_from_the_device():
    """issue #28: ``int(updates)`` on a CUDA buffer waited for the GPU at every step. The buffer here
    lives on the meta device (no data at all): reading it would fail; the host count goes on."""
    student = nn.Linear(2, 1)
    teacher = EMATeacher(student)
    teacher.updates = torch.zeros((), dtype=torch.long, device="meta")
    for n in range(3):
        assert teacher.decay() == pytest.approx((1 + n) / (10 + n))
        teacher.update(student)
    assert teacher.n_updates == 3


def test_ema_update_is_one_foreach_operation(monkeypatch):
    """issue #28: ~300 small kernels one by one per step on a ViT; now one foreach call per form."""
    calls = []
    for name in ("_foreach_lerp_", "_foreach_mul_", "_foreach_add_"):
        real = getattr(torch, name)
        monkeypatch.setattr(torch, name, lambda *a, _real=real, _n=name, **k: (calls.append(_n), _real(*a, **k))[1])
    student = nn.Sequential(*[nn.Linear(4, 4) for _ in range(5)])
    teacher = nn.Sequential(*[nn.Linear(4, 4) for _ in range(5)])
    ema_update(teacher, student, 0.9)
    ema_update(teacher, student, 0.9, lerp=False)
    assert calls == ["_foreach_lerp_", "_foreach_mul_", "_foreach_add_"]


def test_ema_update():
    torch.manual_seed(0)
    s, t = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    expected = 0.9 * t.weight.detach() + 0.1 * s.weight.detach()
    ema_update(t, s, 0.9, lerp=False)  # DINO's teacher step
    assert torch.allclose(t.weight, expected)


def test_ema_update_forms_are_the_previous_arithmetic_bit_for_bit():
    """EMATeacher's step is ``lerp_``, DINO's ``mul_`` + ``add_``: the shared function keeps each exactly
    (the two differ in the last bit, so the runs made with either keep their numbers)."""
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64))
    student(torch.randn(8, 64))  # running statistics: buffers to copy
    for lerp in (True, False):
        teacher = nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64))
        before = {k: v.clone() for k, v in teacher.named_parameters()}
        ema_update(teacher, student, 0.996, lerp=lerp)
        s = dict(student.named_parameters())
        for name, t in teacher.named_parameters():
            old = before[name]
            want = old.clone().lerp_(s[name].detach(), 1 - 0.996) if lerp else \
                old.clone().mul_(0.996).add_(s[name].detach(), alpha=1.0 - 0.996)
            assert torch.equal(t, want), (lerp, name)
        for (name, b), (_, sb) in zip(teacher.named_buffers(), student.named_buffers()):
            assert torch.equal(b, sb), name


@pytest.mark.parametrize("schedule, want", [
    ("original", {1: 0.181818, 2: 0.25, 3: 0.307692, 10: 0.55, 100: 0.918182, 1000: 0.991089}),
    ("rsdix", {1: 0.1, 2: 0.181818, 3: 0.25, 10: 0.526316, 100: 0.917431, 1000: 0.991080})])
def test_v4_decay_of_the_kth_update(schedule, want):
    """The k-th update decays by min(0.999, (1 + k) / (10 + k)) in the original RSDiX / OTTER code (it
    counts the update first) and by k / (9 + k) in rsdix."""
    teacher = EMATeacher(nn.Linear(1, 1), schedule=schedule)
    for k, d in want.items():
        teacher.n_updates = k - 1   # the host count (the updates buffer is its copy on the device)
        assert teacher.decay() == pytest.approx(d, abs=1e-6), k
    teacher.n_updates = 8990
    assert teacher.decay() == 0.999


@pytest.mark.parametrize("schedule, want", [("original", 0.25), ("rsdix", 2 / 11)])
def test_v4_one_step_example(schedule, want):
    """Teacher built from the student (weight 1): the first update changes nothing; then the student is 0
    and the second update leaves d_2 * 1."""
    student = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        student.weight.fill_(1.0)
    teacher = EMATeacher(student, schedule=schedule)
    teacher.update(student)
    with torch.no_grad():
        student.weight.fill_(0.0)
    teacher.update(student)
    assert teacher.module.weight.item() == pytest.approx(want, abs=1e-6)


def test_original_ema_keeps_the_buffers():
    """The original averages parameters only: BatchNorm statistics stay as the teacher was built."""
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    kept = EMATeacher(student, copy_buffers=False, schedule="original")
    copied = EMATeacher(student)
    built = kept.module[1].running_mean.clone()
    student(torch.randn(16, 4) + 3)             # the student's running statistics move
    kept.update(student)
    copied.update(student)
    assert torch.equal(kept.module[1].running_mean, built)
    assert torch.equal(copied.module[1].running_mean, student[1].running_mean)
    with pytest.raises(ValueError, match="schedule"):
        EMATeacher(student, schedule="otter")
