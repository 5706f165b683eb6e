"""rsdix.training.objectives: the weighted sum of objectives."""
import pytest
import torch
from torch import nn

from rsdix.training.objectives import SumObjective


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
