"""Experiment tracking (rsdix.training.tracking): the losses fit logs reach TensorBoard's event files."""
import pytest
import torch
from torch import nn

from training_fixtures import Net
from rsdix import config
from rsdix.errors import ConfigError
from rsdix.training.loop import LoopConfig, fit
from rsdix.training.tracking import Trackers, check_trackers


class Mse(nn.Module):
    needs_teacher = False

    def forward(self, batch, model, teacher=None):
        x, y = batch
        loss = ((model(x) - y) ** 2).mean()
        return {"loss": loss, "hard": loss.detach()}


class Pairs(torch.utils.data.Dataset):
    def __init__(self, n=32):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x.sum(1)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def _events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = [p.parent for p in folder.rglob("events.out.tfevents.*")]
    assert runs, f"no event file under {folder}"
    acc = EventAccumulator(str(runs[0]))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_event_files_hold_the_logged_losses(tmp_path):
    pytest.importorskip("tensorboard")
    cfg = LoopConfig(steps=6, batch_size=8, lr=0.05, warmup_steps=1, log_every=2, report_to=["tensorboard"], cpu=True)
    torch.manual_seed(0)
    res = fit(Net(), Mse(), Pairs(), cfg, run_dir=tmp_path / "run", desc="tiny")
    scalars = _events(tmp_path / "run" / "tracking")
    want = [(r["step"], r["loss"]) for r in res.history]
    assert [s for s, _ in scalars["loss"]] == [2, 4, 6] == [s for s, _ in want]
    assert [v for _, v in scalars["loss"]] == pytest.approx([v for _, v in want], rel=1e-6)
    assert "lr" in scalars and "hard" in scalars


def test_no_tracker_by_default_and_unknown_ones_are_refused_naming_the_key(tmp_path):
    cfg = LoopConfig(steps=2, batch_size=8, lr=0.05, warmup_steps=1, log_every=1, cpu=True)
    fit(Net(), Mse(), Pairs(), cfg, run_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "tracking").exists()
    assert check_trackers("tensorboard") == ["tensorboard"]
    with pytest.raises(ConfigError, match=r"loop\.report_to: 'mlflow' is not a tracker"):
        config.load("train", "smoke", ["loop.report_to=[mlflow]"])


def test_wandb_runs_offline_without_a_key(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    trackers = Trackers(["wandb"], "tiny", tmp_path / "tracking", {"loop": {"lr": 0.1}})
    trackers.log({"step": 1, "loss": 0.5}, 1)
    trackers.finish()
    import os
    assert os.environ["WANDB_MODE"] == "offline" and wandb is not None
