"""rsdix.training.loop: fit's determinism, exact resume, NaN guard, same-run rule, precision."""
import math
import os

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from training_fixtures import Net
from rsdix.errors import ConfigError
from rsdix.training.checkpoints import load_checkpoint
from rsdix.training.loop import LoopConfig, NonFiniteLossError, fit, resolve_precision, seconds_from_log




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


def test_same_seed_same_numbers_and_training_reduces_loss(tmp_path):
    torch.manual_seed(0)
    a = fit(Net(), Mse(), NoisyData(), _cfg(seed=5, ckpt_every=0))
    torch.manual_seed(0)
    net = Net()
    torch.manual_seed(123)  # global RNG state when fit starts must not matter
    b = fit(net, Mse(), NoisyData(), _cfg(seed=5, ckpt_every=0))
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]
    assert a.history[-1]["loss"] < a.history[0]["loss"]


class Killed(Exception):
    """What a callback raises to stop fit as a crash would (no checkpoint at that step)."""


def fit_killed_at(step: int, run_dir, cfg=None) -> None:
    """fit from seed 0, stopped by a crash at ``step`` (its last checkpoint stays in ``run_dir``)."""
    def kill(at, logs):
        if at == step:
            raise Killed

    torch.manual_seed(0)
    with pytest.raises(Killed):
        fit(Net(), Mse(), NoisyData(), cfg or _cfg(), run_dir=run_dir, callbacks=[kill])


def test_resume_after_kill_equals_uninterrupted(tmp_path):
    torch.manual_seed(0)
    ref = fit(Net(), Mse(), NoisyData(), _cfg(), run_dir=tmp_path / "ref")

    fit_killed_at(5, tmp_path / "run")
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 3
    torch.manual_seed(99)  # a fresh process would start from a different model: it must not matter
    resumed = fit(Net(), Mse(), NoisyData(), _cfg(), run_dir=tmp_path / "run", resume=True)
    for (k, v), (k2, v2) in zip(ref.model.state_dict().items(), resumed.model.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    assert torch.equal(ref.objective.temperature, resumed.objective.temperature)
    for v, v2 in zip(ref.teacher.state_dict().values(), resumed.teacher.state_dict().values()):
        assert torch.equal(v, v2)
    assert [r["loss"] for r in ref.history] == [r["loss"] for r in resumed.history]
    logs = [pd.read_csv(tmp_path / d / "train_log.csv").drop(columns="img_per_s") for d in ("ref", "run")]
    pd.testing.assert_frame_equal(*logs)  # the log continues seamlessly (timing aside)
    assert list(logs[0]["step"]) == list(range(1, 10))
    # the training time survives the resume: a finished run resumed again reports it, not ~0 s
    part = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["seconds"]
    assert part == pytest.approx(resumed.seconds, abs=0.5) and part > 0
    again = fit(Net(), Mse(), NoisyData(), _cfg(), run_dir=tmp_path / "run", resume=True)
    assert again.step == resumed.step and part <= again.seconds < part + 5


def test_a_finished_runs_checkpoint_drops_the_optimizer_and_is_not_written_again(tmp_path):
    """The last checkpoint held AdamW's moments too (the paper's GPT-2 captioner: 7.3 GB, x8 runs),
    and reloading a finished run wrote it once more."""
    torch.manual_seed(0)
    done = fit(Net(), Mse(), NoisyData(), _cfg(keep_optimizer_at_end=False), run_dir=tmp_path / "run")
    path = tmp_path / "run" / "checkpoint.pt"
    state = load_checkpoint(path)
    assert state["step"] == 9 and state["finished"] is True
    assert state["optimizer"] is None and state["scheduler"] is None
    assert state["trainee"] and state["teacher"]                     # weights (and the EMA teacher) stay
    stamp = path.stat().st_mtime_ns
    again = fit(Net(), Mse(), NoisyData(), _cfg(keep_optimizer_at_end=False), run_dir=tmp_path / "run", resume=True)
    assert path.stat().st_mtime_ns == stamp                           # loaded back, not rewritten
    for v, v2 in zip(done.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(v, v2)
    with pytest.raises(DataError, match="finished run .* cannot continue to 12 steps"):
        fit(Net(), Mse(), NoisyData(), _cfg(steps=12), resume=path)
    torch.manual_seed(0)
    full = fit(Net(), Mse(), NoisyData(), _cfg(), run_dir=tmp_path / "full")   # the default keeps it
    assert load_checkpoint(tmp_path / "full" / "checkpoint.pt")["optimizer"] is not None


def test_seconds_from_log_for_checkpoints_without_a_clock():
    rows = [{"step": 10, "img_per_s": 100.0}, {"step": 20, "img_per_s": 50.0}, {"step": 25, "img_per_s": 0.0}]
    assert seconds_from_log(rows, images_per_step=32) == pytest.approx(10 * 32 / 100 + 10 * 32 / 50)


def test_nan_loss_stops_with_step_and_no_new_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"step 4 \(micro-batch 1/2\): the loss is nan"):
        # 2 micro-batches per step: call 7 is step 4's first micro-batch
        fit(Net(), Mse(nan_at=7), NoisyData(), _cfg(), run_dir=tmp_path)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3


def test_resume_under_a_different_config_is_refused(tmp_path):
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


# ---------------------------------------------------------------- issue 19: safe resume, faults
import errno  # noqa: E402
from malicious import Touch  # noqa: E402

from PIL import Image  # noqa: E402

from rsdix.data.images import load_image  # noqa: E402
from rsdix.errors import DataError  # noqa: E402
from rsdix.training.data_order import BatchPlan  # noqa: E402



def test_checkpoints_hold_only_tensors_and_plain_values(tmp_path):
    fit(Net(), Mse(), NoisyData(), _cfg(steps=2, ckpt_every=0), run_dir=tmp_path,
        config_snapshot={"data": {"root": tmp_path, "scale": (0.5, 1.0)}})
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)   # plain torch, no allowlist
    assert state["config"] == {"data": {"root": str(tmp_path), "scale": [0.5, 1.0]}}


def test_resume_from_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "marker"
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"step": 1, "trainee": Touch(marker)}, run / "checkpoint.pt")
    objective = Mse()
    with pytest.raises(DataError, match=r"run/checkpoint.pt: refused") as err:
        fit(Net(), objective, NoisyData(), _cfg(), run_dir=run, resume=True)
    assert not marker.exists() and objective.calls == 0 and "\n" not in str(err.value)


def test_an_unwritable_run_folder_fails_before_any_step(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    objective = Mse()
    with pytest.raises(DataError, match="file/run: run folder is not writable"):
        fit(Net(), objective, NoisyData(), _cfg(ckpt_every=0), run_dir=tmp_path / "file" / "run")
    run = tmp_path / "ro"
    run.mkdir()
    run.chmod(0o555)
    if os.geteuid() == 0:   # root writes anyway: make the probe fail as a read-only folder does
        def read_only(*a, **k):
            raise PermissionError(errno.EACCES, "Permission denied")
        monkeypatch.setattr("rsdix.training.checkpoints.tempfile.mkstemp", read_only)
    with pytest.raises(DataError, match="ro: run folder is not writable"):
        fit(Net(), objective, NoisyData(), _cfg(ckpt_every=0), run_dir=run)
    assert objective.calls == 0


def test_a_full_disk_fails_before_any_step_or_names_the_folder_at_a_checkpoint(tmp_path, monkeypatch):
    objective = Mse()
    monkeypatch.setattr("rsdix.training.checkpoints.shutil.disk_usage",
                        lambda p: type("U", (), {"free": 1000})())
    with pytest.raises(DataError, match=r"full: disk full: 0 MB free"):
        fit(Net(), objective, NoisyData(), _cfg(ckpt_every=0), run_dir=tmp_path / "full")
    assert objective.calls == 0
    monkeypatch.undo()

    def full(obj, f, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(DataError, match=f"{tmp_path / 'run'}: disk full while writing checkpoint.pt"):
        fit(Net(), Mse(), NoisyData(), _cfg(), run_dir=tmp_path / "run")


class ImageFiles(torch.utils.data.Dataset):
    def __init__(self, files):
        self.files = files

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        image = load_image(self.files[i])
        x = torch.tensor(image.getpixel((0, 0)), dtype=torch.float32)[:3] / 255
        return {"x": torch.cat([x, x[:1]]), "y": x.sum()}


def test_an_unreadable_image_in_a_worker_names_the_file_and_keeps_the_last_checkpoint(tmp_path):
    files = []
    for i in range(24):
        files.append(tmp_path / f"im{i}.png")
        Image.new("RGB", (4, 4), (i * 10, 50, 240 - i * 10)).save(files[-1])
    cfg = _cfg(steps=4, grad_accum=1, ckpt_every=1, num_workers=1)
    # the corrupt image is one of step 3's batch (not in steps 1-2): checkpoints of steps 1, 2 exist
    plan = list(BatchPlan(24, cfg.batch_size, seed=cfg.seed, stop=4))
    early = {i for b in plan[:2] for _, i in b}
    bad = next(i for _, i in plan[2] if i not in early)
    files[bad].write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    with pytest.raises(DataError, match=rf"im{bad}.png: corrupt or unreadable image") as err:
        fit(Net(), Mse(), ImageFiles(files), cfg, run_dir=tmp_path / "run")
    assert "\n" not in str(err.value) and "worker" not in str(err.value)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 2


# ---------------------------------------------------------------- issue 28: the GPU path
import socket  # noqa: E402

import torch.multiprocessing as mp  # noqa: E402
from accelerate import Accelerator  # noqa: E402

from rsdix.training.loop import FiniteGuard, compile_towers  # noqa: E402


class OnDevice:
    """An accelerator whose device is ``meta``, standing in for a GPU: tensors put there hold no data,
    so anything the loop reads back from its device, or a CPU-only tensor left there, fails."""

    device = torch.device("meta")

    def __init__(self):
        self._real = Accelerator(cpu=True, device_placement=False)

    def __getattr__(self, name):
        return getattr(self._real, name)


@pytest.mark.filterwarnings("ignore:for module")   # copying into meta parameters is a no-op, as intended here
def test_a_finished_run_loads_back_onto_a_device(tmp_path):
    """issue #28: the checkpoint was loaded with ``map_location=acc.device``: on a GPU the RNG states
    landed there and ``.numpy()`` / ``torch.set_rng_state`` failed, on every re-run of a finished run
    (notebook 03, captioning) and every ``--resume``. It now loads onto the CPU and the weights are
    copied onto the device."""
    torch.manual_seed(0)
    fit(Net(), Mse(), NoisyData(), _cfg(ckpt_every=0), run_dir=tmp_path)
    again = fit(Net(), Mse(), NoisyData(), _cfg(ckpt_every=0), run_dir=tmp_path, resume=True, accelerator=OnDevice())
    assert again.step == 9 and next(again.model.parameters()).device.type == "meta"


def _count_syncs(steps, log_every):
    """Python-level reads of 0-dim tensors (``.item()``, ``float()``, ``bool()`` ...) during a run:
    on a GPU each one waits for the device."""
    names = ("item", "__float__", "__bool__", "tolist", "__int__", "__index__")
    saved = {k: getattr(torch.Tensor, k) for k in names}
    n = [0]

    def counting(real):
        def read(self, *a, **k):
            n[0] += self.dim() == 0
            return real(self, *a, **k)
        return read

    for k in names:
        setattr(torch.Tensor, k, counting(saved[k]))
    try:
        fit(Net(), Mse(), NoisyData(), _cfg(steps=steps, log_every=log_every, ckpt_every=0))
    finally:
        for k in names:
            setattr(torch.Tensor, k, saved[k])
    return n[0]


def test_a_step_never_waits_for_the_device():
    """issue #28: the loop read the loss back before every backward (the finiteness check), every
    logged term and the gradient norm at every step. Now 13 steps logged once read back no more than
    one step does: the finiteness check and the log read the device at log steps only."""
    assert _count_syncs(13, log_every=13) == _count_syncs(1, log_every=1)


def test_a_nan_between_log_steps_stops_the_run_before_the_next_checkpoint(tmp_path):
    """Checked at log steps and before each checkpoint (FiniteGuard): a NaN in step 5 (logged every 4,
    checkpoints every 3) stops the run at the step-6 checkpoint, naming step 5; the checkpoint of step
    3 stays the last one, nothing non-finite is written."""
    with pytest.raises(NonFiniteLossError, match=r"step 5 \(micro-batch 1/2\): the loss is nan"):
        fit(Net(), Mse(nan_at=9), NoisyData(), _cfg(log_every=4, ckpt_every=3), run_dir=tmp_path)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 3
    guard = FiniteGuard("cpu", accum=1)
    for i, v in enumerate([1.0, float("inf"), float("nan")]):
        guard.record(torch.tensor(v), i)
    assert guard.first_bad(False) == (1, float("inf"))


def test_grad_checkpointing_and_compile_are_wired(monkeypatch):
    class Checkpointed(Net):
        def set_grad_checkpointing(self, enable=True):
            self.checkpointing = enable

    net = Checkpointed()
    fit(net, Mse(), NoisyData(), _cfg(steps=1, ckpt_every=0, grad_checkpointing=True))
    assert net.checkpointing is True
    with pytest.raises(ConfigError, match="loop.grad_checkpointing: Net has no set_grad_checkpointing"):
        fit(Net(), Mse(), NoisyData(), _cfg(steps=1, ckpt_every=0, grad_checkpointing=True))
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda fn, **k: compiled.append(fn) or fn)
    fit(Net(), Mse(), NoisyData(), _cfg(steps=1, ckpt_every=0, compile=True))
    assert len(compiled) == 1      # Net has no towers: the model itself
    tower = nn.Module()
    tower.visual, tower.transformer = nn.Linear(2, 2), nn.Linear(2, 2)
    assert compile_towers(tower) == ["visual", "transformer"] and len(compiled) == 3


@pytest.mark.slow
def test_torch_compile_trains_on_the_cpu():
    torch.manual_seed(0)
    res = fit(Net(), Mse(needs_teacher=False), NoisyData(), _cfg(steps=2, ckpt_every=0, compile=True))
    assert all(math.isfinite(r["loss"]) for r in res.history)


def test_the_on_device_step_sees_every_batch_on_the_device():
    seen = []

    def on_device(batch):
        seen.append(batch["x"].device.type)
        return {**batch, "x": batch["x"] * 1.0}

    fit(Net(), Mse(), NoisyData(), _cfg(steps=3, ckpt_every=0), on_device=on_device)
    assert seen == ["cpu"] * 6   # 3 steps x 2 micro-batches


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _resume_worker(rank, world, port, run_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    fit(Net(), Mse(), NoisyData(), _cfg(cpu=True), run_dir=run_dir, resume=True)


@pytest.mark.slow
def test_a_one_process_checkpoint_resumes_under_two_processes(tmp_path):
    """issue #28: the per-process RNG states were read by rank (``IndexError`` for rank 1 of a
    1-process checkpoint). Process 0 continues its states, process 1 takes re-seeded ones; the data
    order is the same, and the run continues from the checkpoint's step to the end."""
    fit_killed_at(5, tmp_path)
    assert len(load_checkpoint(tmp_path / "checkpoint.pt")["rng"]) == 1
    mp.spawn(_resume_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 9 and len(state["rng"]) == 2
    log = pd.read_csv(tmp_path / "train_log.csv")
    assert log["step"].tolist() == list(range(1, 10)) and log["loss"].notna().all()
