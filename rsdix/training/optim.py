"""Optimizer and schedule of the training loop: AdamW parameter groups and a cosine schedule with warmup.

Groups are (lr multiplier) x (decay / no decay): :func:`no_weight_decay` names the parameters
that take none (norms, biases, scalars, temperatures), ``lr_mult`` maps name prefixes (or
``"image"`` / ``"text"``, a CLIP tower) to multipliers of the base lr, and :func:`apply_freeze`
takes parameters out of training altogether.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import torch
from torch import nn

from rsdix.errors import ConfigError

TOWER_PREFIXES = {
    "image": ("visual.",),
    "text": ("text.", "transformer.", "token_embedding.", "positional_embedding", "ln_final.",
             "text_projection"),
}
NO_DECAY_WORDS = ("bias", "norm", "ln_", ".ln", "bn", "logit_scale", "logit_bias", "log_scale",
                  "temperature")


def _expand_prefixes(prefixes: Iterable[str]) -> list[str]:
    out = []
    for p in prefixes:
        out.extend(TOWER_PREFIXES.get(p, (p,)))
    return out


def no_weight_decay(name: str, param: torch.Tensor) -> bool:
    """Norms, biases, scalars and temperatures take no weight decay (1-D or named so)."""
    return param.ndim < 2 or any(w in name for w in NO_DECAY_WORDS)


def apply_freeze(model: nn.Module, freeze: Sequence[str]) -> int:
    """Set ``requires_grad=False`` on parameters whose name starts with a prefix; returns count."""
    prefixes = _expand_prefixes(freeze)
    n = 0
    for name, p in model.named_parameters():
        if any(name.startswith(pre) for pre in prefixes):
            p.requires_grad_(False)
            n += p.numel()
    if freeze and n == 0:
        raise ConfigError(f"freeze={list(freeze)} matched no parameter names")
    return n


def param_groups(named: Iterable[tuple[str, nn.Parameter]], lr: float, weight_decay: float,
                 lr_mult: Mapping[str, float] | None = None, decay_all: bool = False) -> list[dict]:
    """AdamW groups: (lr multiplier) x (decay / no decay); frozen parameters are left out.

    ``lr_mult`` maps a name prefix (or ``"image"`` / ``"text"`` for a CLIP tower) to a
    multiplier of ``lr``; the first matching prefix wins. Each group records ``lr_mult`` so the
    schedule scales all groups alike. ``decay_all``: every parameter takes the weight decay, norms,
    biases, scalars and temperatures too (the original RSDiX-CLIP code's single AdamW group).
    """
    mults = [(pre, float(m)) for key, m in (lr_mult or {}).items() for pre in _expand_prefixes([key])]
    groups: dict[tuple[float, bool], dict] = {}
    for name, p in named:
        if not p.requires_grad:
            continue
        mult = next((m for pre, m in mults if name.startswith(pre)), 1.0)
        decay = decay_all or not no_weight_decay(name, p)
        g = groups.setdefault((mult, decay), {"params": [], "names": [], "lr": lr * mult,
                                              "initial_lr": lr * mult, "lr_mult": mult,
                                              "weight_decay": weight_decay if decay else 0.0})
        g["params"].append(p)
        g["names"].append(name)
    if not groups:
        raise ConfigError("no trainable parameters (everything frozen?)")
    return list(groups.values())


def build_optimizer(named: Iterable[tuple[str, nn.Parameter]], lr: float, weight_decay: float,
                    lr_mult: Mapping[str, float] | None = None, betas: Sequence[float] = (0.9, 0.99),
                    eps: float = 1e-8, decay_all: bool = False) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups` (the loop passes its ``LoopConfig``'s lr, weight_decay,
    lr_mult, betas, eps and decay_all), with torch's fused kernel where every parameter allows it (floating
    point on a CPU or CUDA device): the same update to float rounding, and on a CPU 4-10x faster
    than the default per-tensor loop (600M parameters of the paper's GPT-2 captioner: 19 s -> 2 s
    for the first step). The loop moves the model with accelerate afterwards; the fused kernel
    runs on whichever of the two devices the parameters are then on."""
    groups = param_groups(named, lr, weight_decay, lr_mult, decay_all)
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, fused=can_fuse(groups))


def can_fuse(groups) -> bool:
    """Whether torch's fused AdamW takes every parameter of ``groups``: floating point, on a CPU or
    a CUDA device."""
    params = [p for g in groups for p in g["params"]]
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


def cosine_with_warmup(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                       min_lr_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule: linear warmup from lr/warmup to lr, then cosine down to lr*min_lr_ratio.

    Call ``scheduler.step()`` once per optimizer step.
    """
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
