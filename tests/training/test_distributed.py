"""Fast checks of the multi-process pieces, without launching processes."""
from __future__ import annotations

import torch

from rsdix.training.checkpoints import load_checkpoint


def test_a_checkpoint_loads_onto_accelerates_multi_process_cpu_device(tmp_path):
    """Under `torchrun` / `accelerate launch` on a CPU, accelerate's device is ``cpu:0``; a resume
    mapped the checkpoint there and torch.load refused it ("don't know how to restore data
    location ... cpu:0"), so no multi-process CPU run could be resumed."""
    torch.save({"step": 3, "w": torch.arange(4.0)}, tmp_path / "checkpoint.pt")
    state = load_checkpoint(tmp_path / "checkpoint.pt", map_location=torch.device("cpu", 0))
    assert state["step"] == 3 and torch.equal(state["w"], torch.arange(4.0))
    assert load_checkpoint(tmp_path / "checkpoint.pt", map_location="cpu:0")["step"] == 3
