"""Exponential moving averages of a model: :func:`ema_update` (one step) and :class:`EMATeacher`
(the averaged copy the training loop keeps for distillation objectives).

DINO's teacher (:mod:`rsdix.training.dino`) takes its steps through the same :func:`ema_update`,
with its own momentum schedule.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float, lerp: bool = True,
               buffers: bool = True) -> None:
    """``t <- d t + (1 - d) s`` for every parameter of ``teacher``; buffers are copied from ``student``
    (``buffers=False``: left as they are, the original RSDiX / OTTER EMA of the parameters only).

    ``lerp=True`` computes it as ``t.lerp_(s, 1 - d)`` (:class:`EMATeacher`), ``lerp=False`` as
    ``t * d + (1 - d) * s`` (DINO's teacher). The two forms round differently in the last bit;
    each caller keeps the one its runs were made with, so their numbers do not move.
    """
    s_params = dict(student.named_parameters())
    pairs = [(t, s_params[name].detach().to(t.dtype)) for name, t in teacher.named_parameters()]
    if pairs:  # one foreach operation (a few fused kernels on a GPU) instead of one per tensor
        ts, ss = [t for t, _ in pairs], [s for _, s in pairs]
        if lerp:
            torch._foreach_lerp_(ts, ss, 1 - decay)
        else:
            torch._foreach_mul_(ts, decay)
            torch._foreach_add_(ts, ss, alpha=1.0 - decay)
    if not buffers:
        return
    s_bufs = dict(student.named_buffers())
    for name, b in teacher.named_buffers():
        b.copy_(s_bufs[name])


def _sync_update_count(module: "EMATeacher", state_dict, prefix, *args) -> None:
    """The host count from the state dict being loaded (a checkpoint, on the CPU)."""
    if prefix + "updates" in state_dict:
        module.n_updates = int(state_dict[prefix + "updates"])


# schedule -> offset of the update count: the k-th update decays by min(max, (1 + k - 1 + offset) / (10 + k - 1 + offset))
SCHEDULES = {"rsdix": 0, "original": 1}


class EMATeacher(nn.Module):
    """Exponential moving average of a model: ``t <- d t + (1 - d) s``, no gradients.

    ``d = min(max_decay, (1 + n) / (10 + n))`` with n the number of updates so far (rsdix: 1/10 at
    the first update) or, ``schedule="original"``, n + 1 (the original RSDiX / OTTER code counts the
    update first: 2/11 at the first). Buffers are copied from the student (``copy_buffers=False``:
    kept as built, the original's EMA of the parameters only). ``teacher.module`` is the averaged copy.
    n is counted on the host (the ``updates`` buffer, saved in checkpoints, is its copy on the device
    and is read back only from a state dict being loaded), so an update never waits for the GPU.
    """

    def __init__(self, model: nn.Module, max_decay: float = 0.999, schedule: str = "rsdix",
                 copy_buffers: bool = True):
        super().__init__()
        if schedule not in SCHEDULES:
            raise ValueError(f"EMA schedule must be one of {sorted(SCHEDULES)}, got {schedule!r}")
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.max_decay = max_decay
        self.offset, self.copy_buffers = SCHEDULES[schedule], copy_buffers
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.n_updates = 0
        self.register_load_state_dict_pre_hook(_sync_update_count)

    def decay(self) -> float:
        n = self.n_updates + self.offset
        return min(self.max_decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        ema_update(self.module, student, self.decay(), buffers=self.copy_buffers)
        self.updates += 1
        self.n_updates += 1

    def train(self, mode: bool = True):  # the teacher always stays in eval mode
        super().train(mode)
        self.module.eval()
        return self

    def forward(self, *args, **kwargs):
        with torch.no_grad():
            return self.module(*args, **kwargs)

    def __getattr__(self, name):  # teacher.encode_image(...) etc. reach the averaged model
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["module"], name)
