"""Locked-text tuning: the pretrained trunk of an HF text tower frozen (its projection trains), its
pooled output computed once per distinct caption and reused (:func:`lock_text_trunk`)."""
from __future__ import annotations

import types

import torch


def lock_text_trunk(model: torch.nn.Module, cache: bool = True) -> int:
    """Freeze the pretrained trunk of an HF text tower (``model.text.transformer``), keeping the
    projection trainable (locked-text tuning). With ``cache=True`` the pooled trunk output of each
    distinct token sequence is computed once and reused (the trunk is frozen, so it never
    changes): on a CPU this removes the text transformer from every training step. Entries are
    kept per autocast state: features cached under bf16 autocast during training are not reused
    by an fp32 check after it (they differ by bf16 rounding, enough to move a quick check's mR
    by ~0.5 from the saved model's evaluation).

    State-dict keys are unchanged, so saved models load as plain open_clip models.
    Returns the number of frozen parameters.
    """
    text = getattr(model, "text", None)
    if text is None or not hasattr(text, "transformer") or not hasattr(text, "pooler"):
        raise ValueError("lock_text_trunk needs an open_clip model with an HF text tower (model.text)")
    n = 0
    for p in text.transformer.parameters():
        p.requires_grad_(False)
        n += p.numel()
    text.transformer.eval()
    if cache:
        text._pooled_cache = {}
        text.forward = types.MethodType(_cached_text_forward, text)
    return n


def _cached_text_forward(self, x: torch.Tensor) -> torch.Tensor:
    pad = self.config.pad_token_id
    device = x.device.type
    precision = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
    cache = self._pooled_cache.setdefault(precision, {})   # one cache per autocast state
    rows = x.tolist()
    keys = [tuple(t for t in r if t != pad) for r in rows]
    missing = sorted({k for k in keys if k not in cache})
    if missing:
        width = max(len(k) for k in missing)
        ids = torch.full((len(missing), width), pad, dtype=x.dtype, device=x.device)
        for i, k in enumerate(missing):
            ids[i, :len(k)] = torch.tensor(k, dtype=x.dtype)
        mask = (ids != pad).long()
        with torch.no_grad():
            self.transformer.eval()
            pooled = self.pooler(self.transformer(input_ids=ids, attention_mask=mask), mask).float()
        for k, v in zip(missing, pooled.cpu()):   # CPU entries: one cache for a model on any device
            cache[k] = v
    pooled = torch.stack([cache[k] for k in keys]).to(x.device)
    return self.proj(pooled.to(self.proj.weight.dtype if hasattr(self.proj, "weight") else pooled.dtype))
