"""Gathering a batch across processes for losses over the global batch.

``gather_with_grad(x)``: every process gets the concatenation of all processes' ``x``; the
backward pass sums the incoming gradients over processes and returns this process's slice.
Each process computes the same global loss, so the local shard receives ``W * dL/dx_local``,
and DDP's averaging over the W processes then gives exactly the single-process gradient of the
concatenated batch. ``gather_nograd`` is the plain version (teacher features, targets).
Both are the identity in a single process.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    return x if world_size() == 1 else _GatherWithGrad.apply(x)


@torch.no_grad()
def gather_nograd(x: torch.Tensor) -> torch.Tensor:
    if world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)
