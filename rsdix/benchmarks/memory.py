"""GPU memory of CLIP training per model and batch, from activations measured on the CPU.

What is measured (on this machine's CPU): the bytes a training forward keeps for the backward pass,
per (image, caption) pair, of open_clip's ViT-B/32, ViT-B/16 and ViT-L/14 (random weights, the
architecture is what matters), under bf16 autocast over float32 weights (accelerate's ``bf16``, the
paper configs' precision). Every tensor autograd saves goes through
``torch.autograd.graph.saved_tensors_hooks``; storages are counted once, the parameters themselves
not. Two batch sizes separate the part that grows with the batch (activations, per sample) from
the fixed part (the bf16 copies autocast makes of the weights). Each transformer block's share is
recorded too (forward hooks), which gives the activations under gradient checkpointing
(``loop.grad_checkpointing``): every block keeps only its input, and the backward pass holds one
block's recomputed activations at a time.

What is computed from it (:func:`memory_table`): per model at a batch, float32 weights,
gradients and AdamW's two moments (16 bytes per parameter), the EMA teacher of the distillation
methods (4 bytes per parameter), the fixed autocast copies and the activations, with and without
checkpointing. Not counted: the CUDA context and workspaces, allocator fragmentation, the
teacher's forward (no gradient: one block's activations at a time), the batch itself and the
B x B loss matrices (a few MB at 512); keep ~10% free. The rows go to ``figures/bench.csv``
(``rsdix bench --only memory``) and :func:`markdown` renders the table docs/paper.md holds.
"""
from __future__ import annotations

import math
import time

import open_clip
import torch
from torch import nn

ARCHS = ("ViT-B-32", "ViT-B-16", "ViT-L-14")
BATCH = 512
GPU_GIB = 80
STATE_BYTES, EMA_BYTES = 16, 4    # fp32 weights + grads + AdamW m and v; the EMA teacher's fp32 copy


def _blocks(model: nn.Module) -> list[nn.Module]:
    towers = [getattr(model, "visual", None), model]
    out = []
    for tower in towers:
        transformer = getattr(tower, "transformer", None)
        if transformer is not None and hasattr(transformer, "resblocks"):
            out.extend(transformer.resblocks)
    return out


def saved_bytes(model: nn.Module, batch: int, image_size: int = 224, context: int = 77) -> dict:
    """Bytes saved for the backward pass by one bf16-autocast training forward of ``batch`` pairs:
    ``total``, per transformer block (``blocks``: list) and each block's input (``inputs``: list)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    blocks = _blocks(model)
    current = [None]
    storages: dict[int, tuple[int, object]] = {}
    inputs = [0] * len(blocks)
    keep = []

    def pack(t):
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in params and ptr not in storages:
            storages[ptr] = (storage.nbytes(), current[0])
            keep.append(t)          # alive until counted: no address is reused meanwhile
        return t

    handles = []
    for i, block in enumerate(blocks):
        def enter(module, args, i=i):
            current[0] = i
            inputs[i] = args[0].numel() * args[0].element_size()

        def leave(module, args, out):
            current[0] = None
        handles += [block.register_forward_pre_hook(enter), block.register_forward_hook(leave)]
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, image_size, image_size, generator=g)
    texts = torch.randint(1, 1000, (batch, context), generator=g)
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
                torch.autocast("cpu", dtype=torch.bfloat16):
            model(images, texts)
    finally:
        for h in handles:
            h.remove()
    per_block = [0] * len(blocks)
    for nbytes, owner in storages.values():
        if owner is not None:
            per_block[owner] += nbytes
    return {"total": sum(n for n, _ in storages.values()), "blocks": per_block, "inputs": inputs}


def measure(arch: str) -> dict:
    """Per-sample and fixed bytes of ``arch`` (two forwards, batch 1 and 2) and its parameter count."""
    torch.manual_seed(0)
    model = open_clip.create_model(arch, pretrained=None).train()
    start = time.perf_counter()
    one, two = saved_bytes(model, 1), saved_bytes(model, 2)
    per = {k: ([b - a for a, b in zip(one[k], two[k])] if isinstance(one[k], list) else two[k] - one[k])
           for k in one}
    checkpointed = per["total"] - sum(per["blocks"]) + sum(per["inputs"]) + max(per["blocks"])
    return {"arch": arch, "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            "act_mib_per_sample": per["total"] / 2 ** 20,
            "act_ckpt_mib_per_sample": checkpointed / 2 ** 20,
            "fixed_mib": (one["total"] - per["total"]) / 2 ** 20,
            "measure_s": time.perf_counter() - start}


def memory_table(measured: list[dict], batch: int = BATCH, gpu_gib: float = GPU_GIB) -> list[dict]:
    """The estimate per model at ``batch`` (GiB), from :func:`measure`'s figures."""
    rows = []
    for m in measured:
        params = m["params_m"] * 1e6
        state = params * STATE_BYTES / 2 ** 30
        ema = params * EMA_BYTES / 2 ** 30
        fixed = m["fixed_mib"] / 2 ** 10
        act, act_ckpt = (m[k] * batch / 2 ** 10 for k in ("act_mib_per_sample", "act_ckpt_mib_per_sample"))
        total, total_ckpt = state + ema + fixed + act, state + ema + fixed + act_ckpt
        rows.append({**m, "batch": batch, "state_gib": state, "ema_gib": ema, "fixed_gib": fixed,
                     "act_gib": act, "act_ckpt_gib": act_ckpt, "total_gib": total, "total_ckpt_gib": total_ckpt,
                     "gpus_needed": math.ceil(total / gpu_gib), "fits": total <= gpu_gib,
                     "fits_ckpt": total_ckpt <= gpu_gib})
    return rows


def markdown(rows: list[dict]) -> str:
    """The table of docs/paper.md: one line per model (rows of ``figures/bench.csv``, module memory)."""
    lines = ["| model | parameters | activations per pair | at batch | weights + grads + AdamW | EMA teacher "
             "| activations | total | with grad checkpointing |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def fit(total, ok):
            return f"{total:.1f} GiB" + ("" if ok else f" (> {GPU_GIB} GB)")
        lines.append(f"| {r['arch']} | {r['params_m']:.0f} M | {r['act_mib_per_sample']:.1f} MiB "
                     f"({r['act_ckpt_mib_per_sample']:.1f} checkpointed) | {int(r['batch'])} | "
                     f"{r['state_gib']:.1f} GiB | {r['ema_gib']:.1f} GiB | {r['act_gib']:.1f} GiB | "
                     f"{fit(r['total_gib'], r['fits'])} | {fit(r['total_ckpt_gib'], r['fits_ckpt'])} |")
    return "\n".join(lines)


def run(quick: bool = False) -> list[dict]:
    archs = ARCHS[:1] if quick else ARCHS
    threads = torch.get_num_threads()
    rows = []
    for m in memory_table([measure(a) for a in archs]):
        rows.append({"benchmark": f"training memory at batch {BATCH}, bf16 autocast, AdamW "
                                  f"(activations measured on the CPU)", "metric": f"{m['arch']} GiB",
                     "value": m["total_gib"], "unit": "GiB", "goal": None, "ok": None,
                     **m, "threads": threads})
    return rows


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
