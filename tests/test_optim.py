"""rsdix.training.optim: the cosine schedule with warmup and the AdamW parameter groups."""
import math

import pytest
import torch
from torch import nn

from training_fixtures import Net
from rsdix.training.optim import cosine_with_warmup, param_groups




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
