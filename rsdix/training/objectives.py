"""Generic objective plumbing of the training loop (no model or loss of its own).

An objective is an ``nn.Module`` called as ``objective(batch, student, teacher) -> {"loss": total,
"<term>": value, ...}``. :class:`SumObjective` adds named objectives with weights;
:class:`Trainee` joins student and objective into the one module that DDP and autocast see.
"""
from __future__ import annotations

from typing import Mapping

from torch import nn


class SumObjective(nn.Module):
    """Weighted sum of named objectives: ``{"clip": (1.0, clip), "dino": (0.5, dino)}``.

    Returns ``loss`` (the weighted sum) and every term's own entries prefixed by its name
    (``clip/loss``, ``dino/loss``, ...). It needs a teacher if any term does.
    """

    def __init__(self, terms: Mapping[str, tuple[float, nn.Module]]):
        super().__init__()
        self.weights = {k: float(w) for k, (w, _) in terms.items()}
        self.terms = nn.ModuleDict({k: obj for k, (_, obj) in terms.items()})
        self.needs_teacher = any(getattr(o, "needs_teacher", False) for o in self.terms.values())

    def forward(self, batch, student, teacher=None):
        out, total = {}, 0.0
        for name, obj in self.terms.items():
            res = obj(batch, student, teacher)
            total = total + self.weights[name] * res["loss"]
            out.update({f"{name}/{k}": v for k, v in res.items()})
        out["loss"] = total
        return out


class Trainee(nn.Module):
    """Student + objective as one module, so DDP and autocast see a single forward."""

    def __init__(self, model: nn.Module, objective: nn.Module):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch, teacher=None):
        return self.objective(batch, self.model, teacher)
