"""Contrastive and distillation losses for CLIP-style models (pure functions + tiny modules).

All functions take L2-normalised embeddings ``img`` (N x D) and ``txt`` (N x D) of matched
pairs (row i of each belongs together) and return scalar tensors.

* :func:`infonce` - CLIP's symmetric cross-entropy over ``scale * img @ txt.T``.
* :func:`siglip_loss` - SigLIP's pairwise sigmoid loss, ``-sum log sigmoid(z_ij (t s_ij + b)) / N``.
* :func:`sinkhorn_log` / :func:`ot_targets` - OTTER's soft targets: teacher similarities as an
  optimal-transport cost, entropic Sinkhorn with uniform marginals, rows normalised to
  distributions; computed in the log domain, so ``exp(-C / eps)`` never overflows (it does in
  fp16 for eps = 0.1).
* :func:`sinkhorn_original` / ``ot_targets(..., original=True)`` - the same targets as the original
  RSDiX-CLIP / OTTER code computes them: probability domain, rows then columns, and ``remove_diag``
  subtracting 100 from the self-similarity diagonals (a zero target diagonal); docs/training.md
  lists every difference.
* :func:`distill_kl` - ``KL(P || softmax(tau * logits))`` in both directions, averaged.
* :func:`siglip_distill` - sigmoid cross-entropy against OT probabilities as soft binary targets;
  :func:`siglip_distill_original` - the original's ``-sum log sigmoid(P_ij z_ij)``.
* :func:`target_stats` - what the targets say about the teacher: diagonal mass, entropy, top-1.
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


def sinkhorn_original(cost: torch.Tensor, eps: float = 0.1, iters: int = 4) -> torch.Tensor:
    """Log of the original RSDiX-CLIP / OTTER targets: Sinkhorn in the probability domain.

    ``Q = exp(-cost / eps)`` divided by its sum; each iteration scales the rows to sum 1/N, then
    the columns to sum 1/M; finally every row is normalised to sum 1. Entries of ``Q`` that
    underflow stay exactly 0 (``remove_diag`` in the original form relies on it), so the log holds
    ``-inf`` there. Each row of the kernel is divided by its largest entry first: the first row
    normalisation absorbs any per-row factor, so the result is the original's, but no row of
    ``exp`` overflows or underflows as a whole.
    """
    if eps <= 0:
        raise ValueError(f"sinkhorn eps must be > 0, got {eps}")
    n, m = cost.shape
    logits = -cost / eps
    q = torch.exp(logits - logits.amax(dim=1, keepdim=True))
    q = q / q.sum()
    for _ in range(iters):
        q = q / q.sum(dim=1, keepdim=True) / n    # rows sum to 1/N
        q = q / q.sum(dim=0, keepdim=True) / m    # columns sum to 1/M
    return (q / q.sum(dim=1, keepdim=True)).log()


DIAG_FORMS = ("zero", "minus100")


def ot_costs(img: torch.Tensor, txt: torch.Tensor, txt_txt: torch.Tensor | None = None,
             remove_diag: bool = False, ii_coeff: float = 1.0, tt_coeff: float = 1.0,
             diag: str = "zero") -> tuple[torch.Tensor, torch.Tensor]:
    """OTTER's transport costs from (teacher) embeddings.

    ``C_img = -(ii * S_ii + tt * S_tt + S_it)`` and ``C_txt = -(ii * S_ii + tt * S_tt + S_it^T)``
    with ``S_ii = I I^T``, ``S_tt = T T^T`` (or ``txt_txt`` when given, e.g. S-BERT
    similarities), ``S_it = I T^T``. ``remove_diag`` takes the self-similarities off the
    diagonals of S_ii and S_tt: ``diag="zero"`` sets them to 0 (rsdix; the diagonal keeps the
    S_it mass), ``diag="minus100"`` subtracts 100 before the coefficients multiply, as the
    original RSDiX / OTTER code does (diagonal cost about 197: a target diagonal of exactly 0).
    """
    if diag not in DIAG_FORMS:
        raise ValueError(f"diag must be one of {DIAG_FORMS}, got {diag!r}")
    s_ii = img @ img.t()
    s_tt = txt @ txt.t() if txt_txt is None else txt_txt.to(img.dtype)
    s_it = img @ txt.t()
    if remove_diag and diag == "minus100":
        eye = torch.eye(s_ii.shape[0], device=s_ii.device, dtype=s_ii.dtype)
        s_ii, s_tt = s_ii - 100 * eye, s_tt - 100 * eye
    elif remove_diag:
        off = 1 - torch.eye(s_ii.shape[0], device=s_ii.device, dtype=s_ii.dtype)
        s_ii, s_tt = s_ii * off, s_tt * off
    shared = ii_coeff * s_ii + tt_coeff * s_tt
    return -(shared + s_it), -(shared + s_it.t())


SINKHORN_FORMS = {"log": sinkhorn_log, "original": sinkhorn_original}


@torch.no_grad()
def ot_targets(img: torch.Tensor, txt: torch.Tensor, txt_txt: torch.Tensor | None = None,
               eps: float = 0.1, iters: int = 5, remove_diag: bool = False, ii_coeff: float = 1.0,
               tt_coeff: float = 1.0, original: bool = False, diag: str | None = None,
               sinkhorn: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft targets ``(log P_img, log P_txt)`` from teacher embeddings (no gradient).

    Row i of ``P_img`` is the target distribution of image i over the batch's texts; row j of
    ``P_txt`` that of text j over the images. ``original=True``: the original RSDiX-CLIP code's
    targets for the same arguments (``diag="minus100"``, ``sinkhorn="original"``); ``diag`` and
    ``sinkhorn`` choose either part on its own.
    """
    diag = diag or ("minus100" if original else "zero")
    solve = SINKHORN_FORMS[sinkhorn or ("original" if original else "log")]
    with torch.autocast(img.device.type, enabled=False):   # targets in fp32 under bf16/fp16 autocast
        img, txt = img.float(), txt.float()
        txt_txt = txt_txt.float() if txt_txt is not None else None
        c_img, c_txt = ot_costs(img, txt, txt_txt, remove_diag, ii_coeff, tt_coeff, diag=diag)
        return solve(c_img, eps, iters), solve(c_txt, eps, iters)


@torch.no_grad()
def target_stats(log_p_img: torch.Tensor, log_p_txt: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the soft targets say, averaged over both directions: ``p_diag`` (mean mass on the
    matching pair), ``p_entropy`` (mean row entropy, nats; log N for uniform rows) and ``p_top1``
    (share of rows whose largest target is the matching pair)."""
    out = {"p_diag": 0.0, "p_entropy": 0.0, "p_top1": 0.0}
    for log_p in (log_p_img, log_p_txt):
        p = log_p.exp()
        rows = torch.arange(p.shape[0], device=p.device)
        out["p_diag"] = out["p_diag"] + 0.5 * p.diagonal().mean()
        out["p_entropy"] = out["p_entropy"] - 0.5 * torch.special.xlogy(p, p).sum(1).mean()
        out["p_top1"] = out["p_top1"] + 0.5 * (p.argmax(1) == rows).float().mean()
    return out


def distill_kl(logits: torch.Tensor, log_p_img: torch.Tensor, log_p_txt: torch.Tensor) -> torch.Tensor:
    """``(KL(P_img || softmax(logits)) + KL(P_txt || softmax(logits^T))) / 2``, mean over rows.

    ``logits`` is ``tau * s_I s_T^T`` from the student (tau: the distillation temperature).
    Targets of probability 0 (``log P = -inf``, the original form of ``remove_diag``) add 0.
    """
    low = torch.finfo(log_p_img.dtype).min   # -inf -> the lowest float: exp gives 0, and 0 * finite = 0
    kl_i = F.kl_div(F.log_softmax(logits, dim=1), log_p_img.clamp_min(low), log_target=True, reduction="batchmean")
    kl_t = F.kl_div(F.log_softmax(logits.t(), dim=1), log_p_txt.clamp_min(low), log_target=True,
                    reduction="batchmean")
    return 0.5 * (kl_i + kl_t)


def siglip_distill(logits: torch.Tensor, p_img: torch.Tensor, p_txt: torch.Tensor) -> torch.Tensor:
    """Sigmoid cross-entropy of the SigLIP logits (``t * s + b``) against OT probabilities in
    [0, 1] as soft binary targets, both directions averaged, normalised by N like SigLIP."""
    n = logits.shape[0]
    b_i = F.binary_cross_entropy_with_logits(logits, p_img, reduction="sum") / n
    b_t = F.binary_cross_entropy_with_logits(logits.t(), p_txt, reduction="sum") / n
    return 0.5 * (b_i + b_t)


def siglip_distill_original(logits: torch.Tensor, p_img: torch.Tensor, p_txt: torch.Tensor) -> torch.Tensor:
    """The original RSDiX-CLIP SigLIP distillation term: ``(1/N) sum_i -sum_j log sigmoid(P_ij z_ij)``
    with ``z = t_d * s + b_d`` (its own temperature and bias), both directions averaged. Every
    target is >= 0, so the term only pushes logits up; an entry with P = 0 adds log 2."""
    n = logits.shape[0]
    return 0.5 * (-F.logsigmoid(p_img * logits).sum() / n - F.logsigmoid(p_txt * logits.t()).sum() / n)


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
        scale = self.log_scale.exp()
        return scale if self.min is None and self.max is None else scale.clamp(self.min, self.max)

    def extra_repr(self) -> str:
        return f"init={self.log_scale.item():.3f}, clamp=[{self.min}, {self.max}]"
