"""RS-M-CLIP's local/global self-distillation on the image tower (DINO, Caron et al. 2021).

Each training image gives ``n_global`` large crops and ``n_local`` small crops
(:class:`rsdix.training.collate.MultiCropTransform`). A student (the CLIP image tower being trained, plus a
:class:`DINOHead`) sees every crop; an EMA teacher (a frozen copy of tower and head, updated
with a cosine momentum schedule 0.996 -> 1) sees only the global crops. The student's
distribution on each crop is pulled towards the teacher's on every *other* global crop
(:class:`DINOLoss`: cross-entropy, teacher outputs centred by a running mean and sharpened by
a low temperature that warms up from 0.04 to 0.07).

:class:`DINOObjective` bundles head, teacher and loss into one module that a training loop adds
to its CLIP objective: ``loss = clip_loss(global views) + lambda * dino_loss``::

    dino = DINOObjective(model.visual, embed_dim, cfg, total_steps)
    crops = batch["crops"]                            # list of [B, 3, h, w] tensors, globals first
    feats = dino.student_features(model.visual, crops)    # image-tower outputs per crop
    loss = clip_loss(feats[0], text) + cfg.weight * dino(feats, crops, step)
    loss.backward(); opt.step(); dino.update_teacher(model.visual, step)

Local crops are smaller than the tower's input: for open_clip ViTs the positional embedding is
interpolated on the fly (a differentiable function of the trained one), other towers get the
crop resized to their input size.
"""
from __future__ import annotations

import copy
import math
import weakref
from dataclasses import dataclass, field
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rsdix.config import option
from rsdix.errors import ConfigError
from rsdix.training.ema import ema_update

__all__ = ["MultiCropConfig", "DINOConfig", "DINOHead", "DINOLoss", "DINOObjective",
           "cosine_schedule", "teacher_temperature", "ema_momentum", "encode_crops",
           "interpolate_pos_embed", "DinoTerm", "ClipWithDino"]


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
@dataclass
class MultiCropConfig:
    """Multi-crop augmentation (DINO defaults; sizes in pixels, scales as area fractions).

    ``global_size`` 0 means the model's input size; ``local_size`` 0 means
    ``round(96 / 224 * global_size)`` rounded to the patch size by the caller (DINO's ratio).
    """
    n_global: int = option(2, min=1)
    n_local: int = option(6, min=0)
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.4)
    global_size: int = option(0, min=0)
    local_size: int = option(0, min=0)
    flip: bool = True              # horizontal and vertical flips (overhead imagery has no "up")
    colour_jitter: float = option(0.8, min=0, max=1)  # probability of colour jitter (brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1)
    grayscale: float = option(0.2, min=0, max=1)
    blur: tuple[float, float, float] = (1.0, 0.1, 0.5)   # blur probability: global 1, global 2, locals
    solarize: float = option(0.2, min=0, max=1)  # on the second global crop
    on_device: bool | None = None  # colour jitter, grayscale, blur and solarisation on the training device
                                   # (rsdix.training.photometric; true), on PIL images in the data workers
                                   # (false), or None: on the device when training on CUDA (on a CPU the
                                   # PIL path in the workers is the faster one)


@dataclass
class DINOConfig:
    """The DINO term of the training objective (``enabled`` switches it on; ``weight`` = lambda)."""
    enabled: bool = False
    weight: float = option(1.0, min=0)
    out_dim: int = option(65536, min=1)  # K; 4096 or less is plenty for small data
    hidden_dim: int = option(2048, min=1)
    bottleneck_dim: int = option(256, min=1)
    n_layers: int = option(3, min=1)
    norm_last_layer: bool = True
    student_temp: float = option(0.1, min=0, min_exclusive=True)
    teacher_temp: float = option(0.07, min=0, min_exclusive=True)
    warmup_teacher_temp: float = option(0.04, min=0, min_exclusive=True)
    warmup_teacher_temp_frac: float = option(0.3, min=0, max=1)  # fraction of training to warm the teacher temperature up
    center_momentum: float = option(0.9, min=0, max=1)
    momentum_teacher: float = option(0.996, min=0, max=1)
    momentum_final: float = option(1.0, min=0, max=1)
    clip_view: Literal["global", "base"] = "global"  # CLIP loss on: the first global crop | the usual augmentation
    crops: MultiCropConfig = field(default_factory=MultiCropConfig)

    def validate(self):
        if self.crops.n_global < 1 or self.crops.n_global + self.crops.n_local < 2:
            raise ConfigError("crops: DINO needs at least one global crop and two crops in all")


class DINOHead(nn.Module):
    """MLP (``n_layers``, GELU) -> bottleneck -> L2 normalisation -> weight-normalised linear to K.

    With ``norm_last_layer`` the weight-norm magnitude is fixed to 1 (DINO's default, it
    stabilises training): the last layer computes cosine similarities to K prototypes.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 n_layers: int = 3, norm_last_layer: bool = True):
        super().__init__()
        n_layers = max(n_layers, 1)
        if n_layers == 1:
            self.mlp = nn.Linear(in_dim, bottleneck_dim)
        else:
            layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim), nn.GELU()]
            for _ in range(n_layers - 2):
                layers += [nn.Linear(hidden_dim, hidden_dim), nn.GELU()]
            layers.append(nn.Linear(hidden_dim, bottleneck_dim))
            self.mlp = nn.Sequential(*layers)
        self.mlp.apply(self._init)
        last = nn.Linear(bottleneck_dim, out_dim, bias=False)
        self.last_layer = nn.utils.parametrizations.weight_norm(last)
        magnitude = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            magnitude.fill_(1.0)
        magnitude.requires_grad = not norm_last_layer

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(self.mlp(x), dim=-1)
        return self.last_layer(x)


def cosine_schedule(start: float, end: float, step: int, total: int) -> float:
    """Cosine from ``start`` (step 0) to ``end`` (step ``total``), constant afterwards."""
    if total <= 0:
        return end
    t = min(max(step, 0), total) / total
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * t))


def teacher_temperature(step: int, total: int, cfg: DINOConfig) -> float:
    """Linear warm-up from ``warmup_teacher_temp`` to ``teacher_temp`` over the first
    ``warmup_teacher_temp_frac`` of training, then constant."""
    warm = int(round(cfg.warmup_teacher_temp_frac * total))
    if warm <= 0 or step >= warm:
        return cfg.teacher_temp
    return cfg.warmup_teacher_temp + (cfg.teacher_temp - cfg.warmup_teacher_temp) * step / warm


def ema_momentum(step: int, total: int, cfg: DINOConfig) -> float:
    """DINO's teacher momentum: cosine from ``momentum_teacher`` to ``momentum_final``."""
    return cosine_schedule(cfg.momentum_teacher, cfg.momentum_final, step, total)


class DINOLoss(nn.Module):
    """Cross-entropy between the teacher's centred, sharpened distribution on each global crop
    and the student's on every other crop; the centre is a running mean of teacher outputs.

    ``student_out``: ``[n_crops * B, K]`` (crop-major: all images of crop 0, then crop 1, ...);
    ``teacher_out``: ``[n_global * B, K]``. The centre is updated (no gradient) after the loss
    is computed, from this batch's teacher outputs (averaged over processes when distributed).
    """

    def __init__(self, out_dim: int, n_global: int = 2, student_temp: float = 0.1,
                 center_momentum: float = 0.9):
        super().__init__()
        self.n_global = n_global
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(self, student_out: torch.Tensor, teacher_out: torch.Tensor, teacher_temp: float,
                update_center: bool = True) -> torch.Tensor:
        n_crops = student_out.shape[0] // (teacher_out.shape[0] // self.n_global)
        student = (student_out.float() / self.student_temp).chunk(n_crops)
        teacher_probs = F.softmax((teacher_out.float() - self.center) / teacher_temp, dim=-1).detach()
        teacher = teacher_probs.chunk(self.n_global)
        log_student = [F.log_softmax(s, dim=-1) for s in student]   # once per view, not per pair
        total, terms = student_out.new_zeros((), dtype=torch.float32), 0
        for iq, q in enumerate(teacher):
            for v, log_s in enumerate(log_student):
                if v == iq:
                    continue  # the student never matches the teacher on the same view
                total = total + torch.sum(-q * log_s, dim=-1).mean()
                terms += 1
        if update_center:
            self.update_center(teacher_out)
        return total / terms

    @torch.no_grad()
    def update_center(self, teacher_out: torch.Tensor) -> None:
        batch_center = teacher_out.float().sum(dim=0, keepdim=True)
        count = teacher_out.shape[0]   # every process holds a batch of the same size
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(batch_center)
            count *= torch.distributed.get_world_size()
        batch_center = batch_center / float(count)
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)


# --------------------------------------------------------------------------------------------
# Image tower on crops of any size
# --------------------------------------------------------------------------------------------
def interpolate_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """open_clip ViT positional embedding ``[1 + g*g, D]`` resized (bicubic) to a new patch grid."""
    cls_pos, patch_pos = pos_embed[:1], pos_embed[1:]
    old = int(math.isqrt(patch_pos.shape[0]))
    if (old, old) == tuple(grid):
        return pos_embed
    patch_pos = patch_pos.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    patch_pos = F.interpolate(patch_pos.float(), size=grid, mode="bicubic", align_corners=False)
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1).to(pos_embed.dtype)
    return torch.cat([cls_pos, patch_pos], dim=0)


def _input_size(visual: nn.Module) -> tuple[int, int] | None:
    size = getattr(visual, "image_size", None)
    if size is None:
        return None
    return (size, size) if isinstance(size, int) else tuple(size)


_FIXED_SIZE: "weakref.WeakKeyDictionary[nn.Module, bool]" = weakref.WeakKeyDictionary()


def encode_crops(visual: nn.Module, crops: torch.Tensor) -> torch.Tensor:
    """Image-tower output for a batch of crops of one size, which may differ from its input size.

    ViTs get an interpolated positional embedding; a CNN with global pooling takes the crop as
    it is; a tower that fails on another size (attention pooling) gets the crop resized.
    """
    size = _input_size(visual)
    if size is None or tuple(crops.shape[-2:]) == size:
        return visual(crops)
    pos = getattr(visual, "positional_embedding", None)
    patch = getattr(visual, "patch_size", None)
    if isinstance(pos, torch.Tensor) and pos.dim() == 2 and patch is not None:
        ph, pw = (patch, patch) if isinstance(patch, int) else patch
        grid = (crops.shape[-2] // ph, crops.shape[-1] // pw)
        new_pos = interpolate_pos_embed(pos, grid)
        return torch.func.functional_call(visual, {"positional_embedding": new_pos}, (crops,), strict=False)
    if not _FIXED_SIZE.get(visual, False):
        try:
            return visual(crops)
        except RuntimeError:
            _FIXED_SIZE[visual] = True
    resized = F.interpolate(crops, size=size, mode="bicubic", align_corners=False)
    return visual(resized)


# --------------------------------------------------------------------------------------------
# The objective term
# --------------------------------------------------------------------------------------------
class DINOObjective(nn.Module):
    """Student head + EMA teacher (image tower and head) + loss, for a CLIP model's image tower.

    Its trainable parameters (the student head) must go to the optimiser with the model's;
    the teacher's parameters have ``requires_grad=False`` and are not trained by backprop.
    """

    def __init__(self, visual: nn.Module, embed_dim: int, cfg: DINOConfig, total_steps: int):
        super().__init__()
        self.cfg = cfg
        self.total_steps = int(total_steps)
        self.student_head = DINOHead(embed_dim, cfg.out_dim, cfg.hidden_dim, cfg.bottleneck_dim,
                                     cfg.n_layers, cfg.norm_last_layer)
        self.teacher_visual = copy.deepcopy(visual)
        self.teacher_head = copy.deepcopy(self.student_head)
        for p in list(self.teacher_visual.parameters()) + list(self.teacher_head.parameters()):
            p.requires_grad_(False)
        self.loss_fn = DINOLoss(cfg.out_dim, cfg.crops.n_global, cfg.student_temp, cfg.center_momentum)
        # The teacher follows the module's mode, as in DINO: in training, batch-norm layers of a
        # CNN tower normalise with the batch statistics (running statistics, copied from the
        # student, do not fit the lagging teacher weights). open_clip ViTs have no dropout.

    def trainable_parameters(self):
        return [p for p in self.student_head.parameters() if p.requires_grad]

    @staticmethod
    def student_features(visual: nn.Module, crops: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Image-tower outputs for each crop batch (same-size crops are encoded together)."""
        out: list[torch.Tensor | None] = [None] * len(crops)
        by_size: dict[tuple, list[int]] = {}
        for i, c in enumerate(crops):
            by_size.setdefault(tuple(c.shape[-2:]), []).append(i)
        for idx in by_size.values():
            feats = encode_crops(visual, torch.cat([crops[i] for i in idx])).chunk(len(idx))
            for i, f in zip(idx, feats):
                out[i] = f
        return out  # type: ignore[return-value]

    @torch.no_grad()
    def teacher_output(self, global_crops: Sequence[torch.Tensor]) -> torch.Tensor:
        feats = encode_crops(self.teacher_visual, torch.cat(list(global_crops)))
        return self.teacher_head(feats)

    def forward(self, student_feats: Sequence[torch.Tensor], crops: Sequence[torch.Tensor],
                step: int) -> torch.Tensor:
        """DINO loss from the student's tower outputs on every crop and the raw global crops."""
        n_global = self.cfg.crops.n_global
        student_out = self.student_head(torch.cat(list(student_feats)))
        teacher_out = self.teacher_output(crops[:n_global])
        temp = teacher_temperature(step, self.total_steps, self.cfg)
        return self.loss_fn(student_out, teacher_out, temp, update_center=self.training)

    @torch.no_grad()
    def update_teacher(self, visual: nn.Module, step: int) -> float:
        """EMA step of teacher tower and head towards the student (call after ``optimizer.step``)."""
        m = ema_momentum(step, self.total_steps, self.cfg)
        ema_update(self.teacher_visual, visual, m, lerp=False)
        ema_update(self.teacher_head, self.student_head, m, lerp=False)
        return m


# --------------------------------------------------------------------------------------------
# Glue for rsdix.training.loop.fit (the objective term; views and collate: rsdix.training.collate)
# --------------------------------------------------------------------------------------------
class DinoTerm(nn.Module):
    """The DINO term as an objective of :func:`rsdix.training.loop.fit`: reads ``batch["crops"]``,
    returns ``{"loss", "teacher_temp", "momentum"}``. Pass :meth:`after_step` as the first
    ``fit`` callback: it moves the EMA teacher after every optimizer step. The step count is a
    buffer, so a resumed run continues the schedules where they were."""

    needs_teacher = False

    def __init__(self, model: nn.Module, embed_dim: int, cfg: DINOConfig, total_steps: int):
        super().__init__()
        self.dino = DINOObjective(model.visual, embed_dim, cfg, total_steps)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.n_steps = 0   # the step count on the host (the buffer is its checkpointed copy): no GPU wait
        self.register_load_state_dict_pre_hook(_sync_step_count)
        object.__setattr__(self, "_student", model)  # not a submodule: the loop owns the student

    def from_features(self, feats: Sequence[torch.Tensor], crops: Sequence[torch.Tensor]) -> dict:
        step = self.n_steps
        loss = self.dino(feats, crops, step)
        return {"loss": loss, "teacher_temp": teacher_temperature(step, self.dino.total_steps, self.dino.cfg),
                "momentum": ema_momentum(step, self.dino.total_steps, self.dino.cfg)}

    def forward(self, batch: dict, student: nn.Module, teacher=None) -> dict:
        crops = batch["crops"]
        return self.from_features(self.dino.student_features(student.visual, crops), crops)

    def after_step(self, step: int, logs: dict | None = None) -> None:
        self.dino.update_teacher(self._student.visual, step - 1)
        self.step.fill_(step)
        self.n_steps = step


def _sync_step_count(module: DinoTerm, state_dict, prefix, *args) -> None:
    """The host count from the state dict being loaded (a checkpoint, on the CPU)."""
    if prefix + "step" in state_dict:
        module.n_steps = int(state_dict[prefix + "step"])


class _SharedImageStudent:
    """The student, except that ``encode_image`` of one given tensor returns features already
    computed (so the CLIP term reuses the DINO student's pass on the first global crop)."""

    def __init__(self, student: nn.Module, image: torch.Tensor, features: torch.Tensor):
        self._student, self._image, self._features = student, image, features

    def encode_image(self, image, normalize: bool = False):
        if image is self._image:
            return F.normalize(self._features, dim=-1) if normalize else self._features
        return self._student.encode_image(image, normalize=normalize)

    def __getattr__(self, name):
        return getattr(self._student, name)


class ClipWithDino(nn.Module):
    """``clip + weight * dino`` as one objective of :func:`rsdix.training.loop.fit` (RS-M-CLIP).

    ``clip`` is any CLIP objective (InfoNCE, RSDiX's OT distillation, SigLIP ...). With
    ``clip_view="global"`` the CLIP image is the first global crop and the student's image
    tower runs once on it for both terms. The CLIP term's entries keep their names (``hard``,
    ``distill``, ...; its total is ``clip_loss``); the DINO term's are prefixed ``dino/``.
    """

    def __init__(self, clip: nn.Module, dino: DinoTerm, weight: float = 1.0):
        super().__init__()
        self.clip, self.dino, self.weight = clip, dino, float(weight)
        self.needs_teacher = bool(getattr(clip, "needs_teacher", False))

    def forward(self, batch: dict, student: nn.Module, teacher=None) -> dict:
        crops = batch["crops"]
        feats = self.dino.dino.student_features(student.visual, crops)
        if self.dino.dino.cfg.clip_view == "global":
            batch = dict(batch, image=crops[0])
            clip_out = self.clip(batch, _SharedImageStudent(student, crops[0], feats[0]), teacher)
        else:
            clip_out = self.clip(batch, student, teacher)
        dino_out = self.dino.from_features(feats, crops)
        out = dict(clip_out)  # hard, distill, ... as in runs without DINO (same log columns)
        out["clip_loss"] = clip_out["loss"]
        out.update({f"dino/{k}": v for k, v in dino_out.items()})
        out["loss"] = clip_out["loss"] + self.weight * dino_out["loss"]
        return out
