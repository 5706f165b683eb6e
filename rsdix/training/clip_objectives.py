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

``ClipLossConfig.recipe``: ``rsdix`` (the defaults above) or ``original``, the published
RSDiX-CLIP code's recipe: its targets (``remove_diag`` subtracting 100, probability-domain
Sinkhorn, 4 iterations), no clamp on the logit scales, targets and losses per process under DDP,
its S-BERT teacher (a fixed random projection, used for S_tt and S_it) and its SigLIP
distillation term (own temperature and bias); and in the loop (:func:`loop_recipe`) its EMA
schedule, an EMA of the parameters only, and weight decay on every parameter. Each switch can be
set on its own; a switch left unset (None) takes the recipe's value. docs/training.md has the
table of differences.

Under DDP (scope ``global``) the loss uses the global batch: student features are gathered with
their gradient (:mod:`rsdix.training.distributed`), teacher features and OT targets without. The
loss functions themselves are in :mod:`rsdix.training.losses`.
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
Recipe = Literal["rsdix", "original"]

# the value of every recipe switch left unset (None), per recipe (docs/training.md, the differences table)
RECIPES = {
    "rsdix": {"sinkhorn_iters": 5, "diag_removal": "zero", "sinkhorn": "log", "scope": "global",
              "clamp_scale": True, "sbert_teacher": "similarity", "siglip_distill": "bce"},
    "original": {"sinkhorn_iters": 4, "diag_removal": "minus100", "sinkhorn": "original", "scope": "local",
                 "clamp_scale": False, "sbert_teacher": "projected", "siglip_distill": "original"},
}
# the loop's recipe switches (rsdix.training.loop.LoopConfig), filled by rsdix.training.clip.build_setup
LOOP_RECIPES = {
    "rsdix": {"ema_schedule": "rsdix", "ema_buffers": "copy", "decay_all": False},
    "original": {"ema_schedule": "original", "ema_buffers": "keep", "decay_all": True},
}


@dataclass
class ClipLossConfig:
    method: Method = "rsdix"
    # rsdix: rsdix's choices; original: the published RSDiX-CLIP code's, for every switch below left unset
    recipe: Recipe = "rsdix"
    alpha: float = option(0.5, min=0, max=1)  # weight of the hard (contrastive) loss
    sinkhorn_eps: float = option(0.1, min=0, min_exclusive=True)  # entropic regularisation (OTTER used 0.15)
    sinkhorn_iters: int | None = option(None, min=1)  # None: the recipe's (rsdix 5, original 4)
    remove_diag: bool = False           # take the self-similarities off the S_ii and S_tt diagonals
    # how remove_diag takes them off: zero (rsdix: set to 0, the target diagonal keeps the S_it mass) |
    # minus100 (original: 100 subtracted before the coefficients, a target diagonal of exactly 0)
    diag_removal: Literal["zero", "minus100"] | None = None
    # Sinkhorn: log (rsdix: log domain, columns then rows; stable in fp16/bf16) | original (probability
    # domain, rows then columns, then rows normalised)
    sinkhorn: Literal["log", "original"] | None = None
    # under DDP: global (rsdix: losses and targets over the gathered batch) | local (original: per process)
    scope: Literal["global", "local"] | None = None
    clamp_scale: bool | None = None     # clamp CLIP's logit scale and SigLIP's at max_logit_scale (rsdix) or not (original)
    # rsdix-sbert: similarity (rsdix: S-BERT cosines replace S_tt) | projected (original: normalised S-BERT
    # embeddings through a fixed, untrained random Linear(d_sbert, d_clip), not renormalised, replace the
    # teacher's text features in S_tt and S_it)
    sbert_teacher: Literal["similarity", "projected"] | None = None
    # rsdix-siglip: bce (rsdix: binary cross-entropy against P with the contrastive term's scale and bias) |
    # original (-sum log sigmoid(P_ij z_ij) with its own scale and bias, init siglip_log_scale / siglip_bias)
    siglip_distill: Literal["bce", "original"] | None = None
    ii_coeff: float = 1.0
    tt_coeff: float = 1.0
    distill_log_scale: float = 3.9      # init of log tau (tau = exp, clamped)
    distill_scale_min: float = option(1.0, min=0, min_exclusive=True)
    distill_scale_max: float = option(100.0, min=0, min_exclusive=True)
    siglip_log_scale: float = 2.302585  # log 10
    siglip_bias: float = -10.0
    max_logit_scale: float = option(100.0, min=0, min_exclusive=True)  # CLIP's logit scale is clamped to this

    def switch(self, name: str):
        """The value of recipe switch ``name``: its own when set, else the recipe's."""
        value = getattr(self, name)
        return RECIPES[self.recipe][name] if value is None else value


def loop_recipe(cfg: ClipLossConfig) -> dict:
    """The loop settings (``LoopConfig`` fields) of ``cfg``'s recipe."""
    return dict(LOOP_RECIPES[cfg.recipe])


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
    Owns the distillation temperature and SigLIP's temperature/bias (trainable, no decay in the
    rsdix recipe), and with the original S-BERT teacher its fixed random projection to the CLIP
    embedding size ``embed_dim`` (frozen). Distillation methods also return the soft targets'
    :func:`rsdix.training.losses.target_stats` (``p_diag``, ``p_entropy``, ``p_top1``) and
    ``teacher_top1``, the share of the batch's images and texts whose best match under the teacher's
    own image-text similarities is their pair (what the teacher knows, apart from the self-similarities
    that put most of P on the diagonal whatever it knows).
    """

    def __init__(self, cfg: ClipLossConfig, sbert: SBertSimilarity | None = None, embed_dim: int | None = None):
        super().__init__()
        if cfg.method not in METHODS:
            raise ConfigError(f"unknown method {cfg.method!r}; use one of {METHODS}")
        self.cfg = cfg
        self.distill = cfg.method.startswith("rsdix")
        self.sigmoid = cfg.method.endswith("siglip")
        self.needs_teacher = self.distill
        self.local = cfg.switch("scope") == "local"
        clamp = cfg.max_logit_scale if cfg.switch("clamp_scale") else None
        self.max_logit_scale = clamp
        if self.distill and not self.sigmoid:
            self.distill_scale = losses.LearnableScale(cfg.distill_log_scale, cfg.distill_scale_min,
                                                       cfg.distill_scale_max)
        if self.sigmoid:
            self.siglip_scale = losses.LearnableScale(cfg.siglip_log_scale, None, clamp)
            self.siglip_bias = nn.Parameter(torch.tensor(float(cfg.siglip_bias)))
        self.original_siglip = self.distill and self.sigmoid and cfg.switch("siglip_distill") == "original"
        if self.original_siglip:   # the distillation term's own temperature and bias, unclamped
            self.distill_siglip_scale = losses.LearnableScale(cfg.siglip_log_scale, None, None)
            self.distill_siglip_bias = nn.Parameter(torch.tensor(float(cfg.siglip_bias)))
        if cfg.method == "rsdix-sbert" and sbert is None:
            sbert = SBertSimilarity()
        object.__setattr__(self, "sbert", sbert)
        self.sbert_projected = cfg.method == "rsdix-sbert" and cfg.switch("sbert_teacher") == "projected"
        if self.sbert_projected:
            if embed_dim is None:
                raise ConfigError("loss.sbert_teacher: projected needs the CLIP embedding size (embed_dim)")
            # torch's default init from the seeded RNG; never trained (the original runs it under no_grad)
            self.sbert_proj = nn.Linear(sbert.model.get_sentence_embedding_dimension(), embed_dim)
            self.sbert_proj.requires_grad_(False)

    def _gather(self, x: torch.Tensor, grad: bool) -> torch.Tensor:
        if self.local:
            return x
        return gather_with_grad(x) if grad else gather_nograd(x)

    def forward(self, batch: dict, student: nn.Module, teacher: nn.Module | None = None) -> dict:
        cfg = self.cfg
        img = student.encode_image(batch["image"], normalize=True).float()
        txt = student.encode_text(batch["text"], normalize=True).float()
        img, txt = self._gather(img, True), self._gather(txt, True)
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
            scale = student.logit_scale.exp()
            if self.max_logit_scale is not None:
                scale = scale.clamp(max=self.max_logit_scale)
            hard = losses.infonce(img, txt, scale)
            out["logit_scale"] = scale.detach()
        out["hard"] = hard
        if not self.distill:
            out["loss"] = hard
            return out
        if teacher is None:
            raise ValueError(f"method {cfg.method!r} needs a teacher (fit() makes an EMA teacher)")
        with torch.no_grad():
            t_img = self._gather(teacher.encode_image(batch["image"], normalize=True).float(), False)
            s_tt = None
            if self.sbert_projected:   # the projected S-BERT embeddings are the teacher's text: S_tt and S_it
                t_txt = self.sbert_proj(self._gather(self.sbert.embed(batch["caption"], img.device), False)).float()
            else:
                t_txt = self._gather(teacher.encode_text(batch["text"], normalize=True).float(), False)
            if self.sbert is not None and not self.sbert_projected:
                e = self._gather(self.sbert.embed(batch["caption"], img.device), False)
                s_tt = e @ e.t()
            log_p_img, log_p_txt = losses.ot_targets(
                t_img, t_txt, s_tt, eps=cfg.sinkhorn_eps, iters=cfg.switch("sinkhorn_iters"),
                remove_diag=cfg.remove_diag, ii_coeff=cfg.ii_coeff, tt_coeff=cfg.tt_coeff,
                diag=cfg.switch("diag_removal"), sinkhorn=cfg.switch("sinkhorn"))
            out.update(losses.target_stats(log_p_img, log_p_txt))
            s_it = t_img @ t_txt.t()      # the teacher's own cross-modal ranking of the batch: its quality
            rows = torch.arange(s_it.shape[0], device=s_it.device)
            out["teacher_top1"] = 0.5 * ((s_it.argmax(1) == rows).float().mean() + (s_it.argmax(0) == rows).float().mean())
        with torch.autocast(img.device.type, enabled=False):   # the distillation logits in float32
            sims = img.float() @ txt.float().t()
            if self.original_siglip:
                d_scale, d_bias = self.distill_siglip_scale(), self.distill_siglip_bias
                distill = losses.siglip_distill_original(d_scale.float() * sims + d_bias.float(), log_p_img.exp(),
                                                         log_p_txt.exp())
                out["distill_siglip_scale"], out["distill_siglip_bias"] = d_scale.detach(), d_bias.detach()
            elif self.sigmoid:
                distill = losses.siglip_distill(scale.float() * sims + bias.float(), log_p_img.exp(), log_p_txt.exp())
            else:
                tau = self.distill_scale()
                distill = losses.distill_kl(tau.float() * sims, log_p_img, log_p_txt)
                out["distill_tau"] = tau.detach()
        out["distill"] = distill
        out["loss"] = cfg.alpha * hard + (1 - cfg.alpha) * distill
        return out
