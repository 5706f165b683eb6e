"""Contrastive and distillation losses for CLIP-style models (pure functions + tiny modules).

All functions take L2-normalised embeddings ``img`` (N x D) and ``txt`` (N x D) of matched
pairs (row i of each belongs together) and return scalar tensors.

* :func:`infonce` - CLIP's symmetric cross-entropy over ``scale * img @ txt.T``.
* :func:`siglip_loss` - SigLIP's pairwise sigmoid loss, ``-sum log sigmoid(z_ij (t s_ij + b)) / N``.
* :func:`sinkhorn_log` / :func:`ot_targets` - OTTER's soft targets: teacher similarities as an
  optimal-transport cost, entropic Sinkhorn with uniform marginals, rows normalised to
  distributions; computed in the log domain, so ``exp(-C / eps)`` never overflows (it does in
  fp16 for eps = 0.1).
* :func:`distill_kl` - ``KL(P || softmax(tau * logits))`` in both directions, averaged.
* :func:`siglip_distill` - sigmoid cross-entropy against OT probabilities as soft binary targets.
* :class:`LearnableScale` - a learnable log-temperature with clamping (CLIP's ``logit_scale`` idiom).

Reference: OTTER (Wu et al. 2021) and RSDiX (Terlizzi et al. 2025); see docs METHODS.md s.1.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def infonce(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE: mean of image->text and text->image cross-entropy (targets = diagonal)."""
    logits = scale * img @ txt.t()
    labels = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


def siglip_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor | float,
                bias: torch.Tensor | float) -> torch.Tensor:
    """SigLIP (Zhai et al. 2023): every pair is a binary problem, positives on the diagonal.

    ``-(1/N) sum_ij log sigmoid(z_ij * (scale * <img_i, txt_j> + bias))``, z = +1 on the
    diagonal and -1 elsewhere (normalised by N as in the paper and open_clip).
    """
    logits = scale * img @ txt.t() + bias
    z = 2 * torch.eye(logits.shape[0], device=logits.device, dtype=logits.dtype) - 1
    return -F.logsigmoid(z * logits).sum() / logits.shape[0]


def sinkhorn_log(cost: torch.Tensor, eps: float = 0.1, iters: int = 5) -> torch.Tensor:
    """Log of the row-normalised entropic transport plan between uniform marginals.

    Sinkhorn-Knopp on ``K = exp(-cost / eps)`` in the log domain: each iteration scales the
    columns to sum 1/M, then the rows to sum 1/N (the same update order as POT's
    ``ot.sinkhorn``, so ``iters`` iterations here equal ``numItermax=iters`` there). The plan's
    rows are finally normalised to sum 1, giving one target distribution per row.
    Returns ``log P`` (N x M); ``P = exp(log P)`` rows sum to 1.
    """
    if eps <= 0:
        raise ValueError(f"sinkhorn eps must be > 0, got {eps}")
    n, m = cost.shape
    log_q = -cost / eps
    log_n, log_m = math.log(n), math.log(m)
    for _ in range(iters):
        log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True) - log_m  # columns sum to 1/M
        log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True) - log_n  # rows sum to 1/N
    return log_q - torch.logsumexp(log_q, dim=1, keepdim=True)


def ot_costs(img: torch.Tensor, txt: torch.Tensor, txt_txt: torch.Tensor | None = None,
             remove_diag: bool = False, ii_coeff: float = 1.0, tt_coeff: float = 1.0
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """OTTER's transport costs from (teacher) embeddings.

    ``C_img = -(ii * S_ii + tt * S_tt + S_it)`` and ``C_txt = -(ii * S_ii + tt * S_tt + S_it^T)``
    with ``S_ii = I I^T``, ``S_tt = T T^T`` (or ``txt_txt`` when given, e.g. S-BERT
    similarities), ``S_it = I T^T``; ``remove_diag`` zeroes the diagonals of S_ii and S_tt.
    """
    s_ii = img @ img.t()
    s_tt = txt @ txt.t() if txt_txt is None else txt_txt.to(img.dtype)
    s_it = img @ txt.t()
    if remove_diag:
        off = 1 - torch.eye(s_ii.shape[0], device=s_ii.device, dtype=s_ii.dtype)
        s_ii, s_tt = s_ii * off, s_tt * off
    shared = ii_coeff * s_ii + tt_coeff * s_tt
    return -(shared + s_it), -(shared + s_it.t())


@torch.no_grad()
def ot_targets(img: torch.Tensor, txt: torch.Tensor, txt_txt: torch.Tensor | None = None,
               eps: float = 0.1, iters: int = 5, remove_diag: bool = False, ii_coeff: float = 1.0,
               tt_coeff: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft targets ``(log P_img, log P_txt)`` from teacher embeddings (no gradient).

    Row i of ``P_img`` is the target distribution of image i over the batch's texts; row j of
    ``P_txt`` that of text j over the images. Computed in float32 whatever autocast is active
    (under bf16 autocast the similarities and Sinkhorn would run in bf16: on a batch of
    near-duplicate captions, targets off by a quarter of their value).
    """
    with torch.autocast(img.device.type, enabled=False):
        txt_txt = txt_txt.float() if txt_txt is not None else None
        c_img, c_txt = ot_costs(img.float(), txt.float(), txt_txt, remove_diag, ii_coeff, tt_coeff)
        return sinkhorn_log(c_img, eps, iters), sinkhorn_log(c_txt, eps, iters)


def distill_kl(logits: torch.Tensor, log_p_img: torch.Tensor, log_p_txt: torch.Tensor) -> torch.Tensor:
    """``(KL(P_img || softmax(logits)) + KL(P_txt || softmax(logits^T))) / 2``, mean over rows.

    ``logits`` is ``tau * s_I s_T^T`` from the student (tau: the distillation temperature).
    """
    kl_i = F.kl_div(F.log_softmax(logits, dim=1), log_p_img, log_target=True, reduction="batchmean")
    kl_t = F.kl_div(F.log_softmax(logits.t(), dim=1), log_p_txt, log_target=True, reduction="batchmean")
    return 0.5 * (kl_i + kl_t)


def siglip_distill(logits: torch.Tensor, p_img: torch.Tensor, p_txt: torch.Tensor) -> torch.Tensor:
    """Sigmoid cross-entropy of the SigLIP logits (``t * s + b``) against OT probabilities in
    [0, 1] as soft binary targets, both directions averaged, normalised by N like SigLIP."""
    n = logits.shape[0]
    b_i = F.binary_cross_entropy_with_logits(logits, p_img, reduction="sum") / n
    b_t = F.binary_cross_entropy_with_logits(logits.t(), p_txt, reduction="sum") / n
    return 0.5 * (b_i + b_t)


class LearnableScale(nn.Module):
    """``exp(log_scale)`` clamped to ``[min, max]``; ``log_scale`` is learnable.

    Used for the distillation temperature (init 3.9 -> about 49.4, clamp [1, 100]) and SigLIP's
    temperature (init log 10).
    """

    def __init__(self, init_log: float, min: float | None = 1.0, max: float | None = 100.0):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(float(init_log)))
        self.min, self.max = min, max

    def forward(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(self.min, self.max)

    def extra_repr(self) -> str:
        return f"init={self.log_scale.item():.3f}, clamp=[{self.min}, {self.max}]"
