"""A training run that records what the distributed tests compare, run by tests/test_distributed*.py
under ``accelerate launch --multi_gpu`` / ``torchrun`` (N processes) or plain ``python`` (one):

    python distributed_worker.py OUT.pt CONFIG [OVERRIDES ...]

trains ``CONFIG`` with the overrides and saves, from the main process, the log rows, the
synchronised gradients of every step (``grad_callbacks``: after DDP's all-reduce and the clip,
before the optimizer step) and the sample keys each step's global batch held (shards only:
``ShardDataset.with_keys``, gathered from every process).
"""
from __future__ import annotations

import sys

import torch
import torch.distributed as dist
from torch import nn

from rsdix import config
from rsdix.data.shards import ShardDataset
from rsdix.training.clip import build_model
from rsdix.training.clip_data import build_train_dataset
from rsdix.data.transforms import bundle_mean_std
from rsdix.training.collate import ClipCollate, DeviceNormalize
from rsdix.training.clip_objectives import ClipObjective
from rsdix.training.loop import fit


class RecordKeys(nn.Module):
    """The CLIP objective, noting the sample keys of each micro-batch."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.needs_teacher, self.keys = inner, inner.needs_teacher, []

    def forward(self, batch, student, teacher=None):
        self.keys.append(list(batch.get("key", [])))
        return self.inner(batch, student, teacher)


def main(out: str, name: str, *overrides: str) -> None:
    cfg = config.load("train", name, overrides=list(overrides))
    bundle = build_model(cfg)
    dataset = build_train_dataset(cfg, bundle)
    if isinstance(dataset, ShardDataset):
        dataset.with_keys = True
    grads = {}

    def keep(step, named):
        grads[step] = {n: p.grad.detach().clone() for n, p in named if p.grad is not None}

    objective = RecordKeys(ClipObjective(cfg.loss))
    res = fit(bundle.model, objective, dataset, cfg.loop, collate_fn=ClipCollate(bundle.tokenizer),
              grad_callbacks=[keep], on_device=DeviceNormalize(*bundle_mean_std(bundle)))   # uint8 images
    keys = objective.keys
    if dist.is_available() and dist.is_initialized():
        parts = [None] * dist.get_world_size()
        dist.all_gather_object(parts, keys)
        keys = [sum((p[i] for p in parts), []) for i in range(len(keys))]
    if not dist.is_initialized() or dist.get_rank() == 0:
        torch.save({"history": res.history, "grads": grads, "keys": keys,
                    "world": dist.get_world_size() if dist.is_initialized() else 1}, out)


if __name__ == "__main__":
    main(*sys.argv[1:])
