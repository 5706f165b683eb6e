"""The CLIP objectives of RSDiX-CLIP training, for :func:`rsdix.training.loop.fit`.

Methods (``ClipLossConfig.method``):

* ``infonce``       - CLIP's symmetric InfoNCE (the baseline).
* ``rsdix``         - RSDiX-CLIP / OTTER: ``alpha * InfoNCE + (1 - alpha) * KL(P || softmax(tau L))``
  with OT soft targets ``P`` from an EMA teacher (image-image, text-text and cross-modal
  similarities, log-domain Sinkhorn).
* ``rsdix-sbert``   - the same, with the text-text similarities taken from a frozen
  Sentence-BERT model (all-MiniLM-L6-v2), used directly (no projection).
* ``siglip``        - SigLIP's sigmoid loss (learnable temperature and bias).
* ``rsdix-siglip``  - SigLIP + distillation with OT probabilities as soft binary targets.

Under DDP the loss uses the global batch: student features are gathered with their gradient
(:mod:`rsdix.training.distributed`), teacher features and OT targets without. The loss
functions themselves are in :mod:`rsdix.training.losses`.
"""
from __future__ import annotations

import os
import typing
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import nn

from rsdix.config import option
from rsdix.errors import ConfigError
from rsdix.models import sbert_model
from rsdix.training import losses
from rsdix.training.distributed import gather_nograd, gather_with_grad

Method = Literal["infonce", "rsdix", "rsdix-sbert", "siglip", "rsdix-siglip"]
METHODS = typing.get_args(Method)


@dataclass
class ClipLossConfig:
    method: Method = "rsdix"
    alpha: float = option(0.5, min=0, max=1)  # weight of the hard (contrastive) loss
    sinkhorn_eps: float = option(0.1, min=0, min_exclusive=True)  # entropic regularisation (OTTER used 0.15)
    sinkhorn_iters: int = option(5, min=1)
    remove_diag: bool = False
    ii_coeff: float = 1.0
    tt_coeff: float = 1.0
    distill_log_scale: float = 3.9      # init of log tau (tau = exp, clamped)
    distill_scale_min: float = option(1.0, min=0, min_exclusive=True)
    distill_scale_max: float = option(100.0, min=0, min_exclusive=True)
    siglip_log_scale: float = 2.302585  # log 10
    siglip_bias: float = -10.0
    max_logit_scale: float = option(100.0, min=0, min_exclusive=True)  # CLIP's logit scale is clamped to this


class SBertSimilarity:
    """Cosine similarities between captions from a frozen sentence-transformers model.

    Embeddings are cached per caption. Not an ``nn.Module`` attribute of the objective on
    purpose: it is never trained, checkpointed or synchronised.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        self.model_path = model_path
        self.model = sbert_model(model_path, str(device))  # one copy per process, shared with the caption metrics
        self.model.eval().requires_grad_(False)
        self.cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def embed(self, captions: Sequence[str], device) -> torch.Tensor:
        """Embeddings of ``captions`` on ``device``; captions not cached yet are encoded there (the
        student's device: MiniLM on the GPU in a GPU run). The cache holds CPU tensors."""
        missing = sorted({c for c in captions if c not in self.cache})
        if missing:
            if str(torch.device(device)) != str(self.model.device):
                self.model = sbert_model(self.model_path, str(torch.device(device)))
                self.model.eval().requires_grad_(False)
            emb = self.model.encode(missing, convert_to_tensor=True, normalize_embeddings=True,
                                    batch_size=128, show_progress_bar=False).float().cpu()
            self.cache.update(zip(missing, emb))
        return torch.stack([self.cache[c] for c in captions]).to(device)


class ClipObjective(nn.Module):
    """The five CLIP objectives above; ``forward(batch, student, teacher)`` -> dict of losses.

    ``batch``: ``{"image": (B,3,H,W), "text": (B,L) token ids, "caption": [str]*B}``.
    Owns the distillation temperature and SigLIP's temperature/bias (trainable, no decay).
    """

    def __init__(self, cfg: ClipLossConfig, sbert: SBertSimilarity | None = None):
        super().__init__()
        if cfg.method not in METHODS:
            raise ConfigError(f"unknown method {cfg.method!r}; use one of {METHODS}")
        self.cfg = cfg
        self.distill = cfg.method.startswith("rsdix")
        self.sigmoid = cfg.method.endswith("siglip")
        self.needs_teacher = self.distill
        if self.distill and not self.sigmoid:
            self.distill_scale = losses.LearnableScale(cfg.distill_log_scale, cfg.distill_scale_min,
                                                       cfg.distill_scale_max)
        if self.sigmoid:
            self.siglip_scale = losses.LearnableScale(cfg.siglip_log_scale, None, cfg.max_logit_scale)
            self.siglip_bias = nn.Parameter(torch.tensor(float(cfg.siglip_bias)))
        if cfg.method == "rsdix-sbert" and sbert is None:
            sbert = SBertSimilarity()
        object.__setattr__(self, "sbert", sbert)

    def forward(self, batch: dict, student: nn.Module, teacher: nn.Module | None = None) -> dict:
        cfg = self.cfg
        img = student.encode_image(batch["image"], normalize=True).float()
        txt = student.encode_text(batch["text"], normalize=True).float()
        img, txt = gather_with_grad(img), gather_with_grad(txt)
        out = {}
        if self.sigmoid:
            scale, bias = self.siglip_scale(), self.siglip_bias
            # the student's own logit_scale is not SigLIP's temperature: touched with weight 0 so DDP
            # (find_unused_parameters=False) sees every parameter used; its gradient is 0, AdamW leaves it
            hard = losses.siglip_loss(img, txt, scale, bias)
            unused = getattr(student, "logit_scale", None)
            if isinstance(unused, torch.Tensor) and unused.requires_grad:
                hard = hard + 0.0 * unused
            out["siglip_scale"], out["siglip_bias"] = scale.detach(), bias.detach()
        else:
            scale = student.logit_scale.exp().clamp(max=cfg.max_logit_scale)
            hard = losses.infonce(img, txt, scale)
            out["logit_scale"] = scale.detach()
        out["hard"] = hard
        if not self.distill:
            out["loss"] = hard
            return out
        if teacher is None:
            raise ValueError(f"method {cfg.method!r} needs a teacher (fit() makes an EMA teacher)")
        with torch.no_grad():
            t_img = gather_nograd(teacher.encode_image(batch["image"], normalize=True).float())
            t_txt = gather_nograd(teacher.encode_text(batch["text"], normalize=True).float())
            s_tt = None
            if self.sbert is not None:
                e = gather_nograd(self.sbert.embed(batch["caption"], img.device))
                s_tt = e @ e.t()
            log_p_img, log_p_txt = losses.ot_targets(
                t_img, t_txt, s_tt, eps=cfg.sinkhorn_eps, iters=cfg.sinkhorn_iters,
                remove_diag=cfg.remove_diag, ii_coeff=cfg.ii_coeff, tt_coeff=cfg.tt_coeff)
        with torch.autocast(img.device.type, enabled=False):   # the distillation logits in float32
            sims = img.float() @ txt.float().t()
            if self.sigmoid:
                distill = losses.siglip_distill(scale.float() * sims + bias.float(), log_p_img.exp(), log_p_txt.exp())
            else:
                tau = self.distill_scale()
                distill = losses.distill_kl(tau.float() * sims, log_p_img, log_p_txt)
                out["distill_tau"] = tau.detach()
        out["distill"] = distill
        out["loss"] = cfg.alpha * hard + (1 - cfg.alpha) * distill
        return out
