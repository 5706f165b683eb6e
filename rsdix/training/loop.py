"""One training loop for every rsdix model: HF accelerate, an objective plugged in.

The loop (:func:`fit`) knows nothing about CLIP. It takes a model, an *objective* and a
dataset, and does: mixed precision, gradient accumulation, gradient clipping, AdamW with
decay / no-decay and per-prefix lr groups, a per-step cosine schedule with warmup, an optional
EMA teacher, atomic checkpoints with exact resume (weights, optimizer, schedule, EMA, RNG
states, data position), a progress bar, a CSV log, and a stop on a non-finite loss.

An objective is an ``nn.Module`` (it may own parameters, e.g. a temperature or a projection
head) called as ``objective(batch, student, teacher) -> {"loss": total, "<term>": value, ...}``.
``batch`` is whatever ``collate_fn`` made (a dict; extra views such as multi-crop go in it),
``student`` the model being trained (call any of its methods: ``encode_image``,
``encode_text``, ``forward``), ``teacher`` the EMA copy of the student when the objective sets
``needs_teacher = True`` (else None). Student and objective are wrapped into one module for
DDP, so every parameter they own is synchronised, however many student calls a step makes.

Plugging in a different model, e.g. a captioner (issue: captioning)::

    class CaptionObjective(nn.Module):
        needs_teacher = False
        def forward(self, batch, student, teacher=None):
            logits = student(batch["image"], batch["tokens"][:, :-1])        # any model
            ce = F.cross_entropy(logits.flatten(0, 1), batch["tokens"][:, 1:].flatten(),
                                 ignore_index=0)
            return {"loss": ce, "ce": ce}

    cfg = load_config(LoopConfig, "rsdix/configs/caption/cpu.yaml")   # or LoopConfig(...)
    result = fit(model, CaptionObjective(), dataset, cfg, collate_fn=my_collate,
                 run_dir=dirs.run / "caption_s0", resume=True)
    result.model, result.history                                        # trained model, log rows

More terms in the same loop (issue: RS-M-CLIP's DINO term): :class:`SumObjective`
adds named objectives with weights, e.g. ``SumObjective({"clip": (1.0, clip), "dino": (0.5,
dino)})``; the dataset returns extra views in the batch dict and each term reads what it needs.

Building blocks usable on their own: :func:`param_groups`, :func:`build_optimizer`,
:func:`cosine_with_warmup`, :class:`EMATeacher`, :class:`Checkpointer` /
:func:`save_checkpoint` / :func:`load_checkpoint`, :func:`rng_state` / :func:`set_rng_state`,
:class:`BatchPlan` + :class:`SeededView` (deterministic, resumable data order and augmentation).

The CLIP objectives and the ``python -m rsdix.training.loop --config ...`` entry point live in
:mod:`rsdix.training.clip`; this module's ``main`` forwards to it.
"""
from __future__ import annotations

import copy
import csv
import json
import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from rsdix.config import option
from rsdix.errors import ConfigError, DataError, RsdixError
from rsdix.utils import progress, seed_everything, stable_hash, torch_save_atomic


class NonFiniteLossError(RsdixError, FloatingPointError):
    """The loss became NaN or infinite; training stopped before any weights were saved."""


@dataclass
class LoopConfig:
    """Settings of :func:`fit` (model-independent)."""
    steps: int = option(1000, min=1)  # optimizer steps
    batch_size: int = option(64, min=1)  # global batch per micro-step (all processes together)
    grad_accum: int = option(1, min=1)  # micro-steps per optimizer step
    lr: float = option(5e-4, min=0, min_exclusive=True)
    min_lr_ratio: float = option(0.0, min=0, max=1)  # cosine ends at lr * min_lr_ratio
    warmup_steps: int = option(100, min=0)
    weight_decay: float = option(0.1, min=0)
    betas: tuple = (0.9, 0.99)
    eps: float = 1e-8
    grad_clip: float | None = 1.0     # max global grad norm; None: no clipping
    precision: Literal["no", "fp16", "bf16", "auto"] = "no"  # accelerate mixed precision: no | fp16 | bf16 | auto (bf16 where the
                                      # GPU or CPU computes it natively (AMX / AVX512-BF16), else no)
    channels_last: bool = False       # NHWC weights: faster convolutions on CPU (oneDNN) and tensor cores
    lr_mult: dict = field(default_factory=dict)  # name prefix (or "image"/"text") -> lr multiplier
    freeze: list = field(default_factory=list)   # name prefixes (or "image"/"text") to freeze
    ema_max_decay: float = option(0.999, min=0, max=1)  # teacher decay d = min(max, (1+n)/(10+n))
    num_workers: int = option(0, min=0)
    seed: int = 0
    log_every: int = option(10, min=1)
    ckpt_every: int = option(0, min=0)  # steps between checkpoints (0: only at the end)
    find_unused_parameters: bool = False
    cpu: bool = False                 # force CPU even with a GPU


# ---------------------------------------------------------------- optimizer and schedule

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
                 lr_mult: Mapping[str, float] | None = None) -> list[dict]:
    """AdamW groups: (lr multiplier) x (decay / no decay); frozen parameters are left out.

    ``lr_mult`` maps a name prefix (or ``"image"`` / ``"text"`` for a CLIP tower) to a
    multiplier of ``lr``; the first matching prefix wins. Each group records ``lr_mult`` so the
    schedule scales all groups alike.
    """
    mults = [(pre, float(m)) for key, m in (lr_mult or {}).items() for pre in _expand_prefixes([key])]
    groups: dict[tuple[float, bool], dict] = {}
    for name, p in named:
        if not p.requires_grad:
            continue
        mult = next((m for pre, m in mults if name.startswith(pre)), 1.0)
        decay = not no_weight_decay(name, p)
        g = groups.setdefault((mult, decay), {"params": [], "names": [], "lr": lr * mult,
                                              "initial_lr": lr * mult, "lr_mult": mult,
                                              "weight_decay": weight_decay if decay else 0.0})
        g["params"].append(p)
        g["names"].append(name)
    if not groups:
        raise ConfigError("no trainable parameters (everything frozen?)")
    return list(groups.values())


def build_optimizer(named: Iterable[tuple[str, nn.Parameter]], cfg: LoopConfig) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups` with ``cfg.lr``, ``betas``, ``eps``, ``weight_decay``."""
    groups = param_groups(named, cfg.lr, cfg.weight_decay, cfg.lr_mult)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)


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


# ---------------------------------------------------------------- EMA teacher

class EMATeacher(nn.Module):
    """Exponential moving average of a model: ``t <- d t + (1 - d) s``, no gradients.

    ``d = min(max_decay, (1 + n) / (10 + n))`` with n the number of updates so far (OTTER /
    RSDiX); buffers are copied. ``teacher.module`` is the averaged copy.
    """

    def __init__(self, model: nn.Module, max_decay: float = 0.999):
        super().__init__()
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.max_decay = max_decay
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def decay(self) -> float:
        n = int(self.updates)
        return min(self.max_decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        d = self.decay()
        s_params = dict(student.named_parameters())
        for name, t in self.module.named_parameters():
            t.lerp_(s_params[name].detach().to(t.dtype), 1 - d)
        s_bufs = dict(student.named_buffers())
        for name, b in self.module.named_buffers():
            b.copy_(s_bufs[name])
        self.updates += 1

    def train(self, mode: bool = True):  # the teacher always stays in eval mode
        super().train(mode)
        self.module.eval()
        return self

    def forward(self, *args, **kwargs):
        with torch.no_grad():
            return self.module(*args, **kwargs)

    def __getattr__(self, name):  # teacher.encode_image(...) etc. reach the averaged model
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["module"], name)


# ---------------------------------------------------------------- objectives

class SumObjective(nn.Module):
    """Weighted sum of named objectives: ``{"clip": (1.0, clip), "dino": (0.5, dino)}``.

    Returns ``loss`` (the weighted sum) and every term's own entries prefixed by its name
    (``clip/loss``, ``dino/loss``, ...). It needs a teacher if any term does.
    """

    def __init__(self, terms: Mapping[str, tuple[float, nn.Module]]):
        super().__init__()
        self.weights = {k: float(w) for k, (w, _) in terms.items()}
        self.terms = nn.ModuleDict({k: obj for k, (_, obj) in terms.items()})
        self.needs_teacher = any(getattr(o, "needs_teacher", False) for o in self.terms.values())

    def forward(self, batch, student, teacher=None):
        out, total = {}, 0.0
        for name, obj in self.terms.items():
            res = obj(batch, student, teacher)
            total = total + self.weights[name] * res["loss"]
            out.update({f"{name}/{k}": v for k, v in res.items()})
        out["loss"] = total
        return out


class Trainee(nn.Module):
    """Student + objective as one module, so DDP and autocast see a single forward."""

    def __init__(self, model: nn.Module, objective: nn.Module):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch, teacher=None):
        return self.objective(batch, self.model, teacher)


# ---------------------------------------------------------------- RNG, data order, checkpoints

def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _item_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 1_000_003 + epoch * 10_007 + index * 7_919 + 17) % (2 ** 31 - 1)


class SeededView(torch.utils.data.Dataset):
    """Index with ``(epoch, i)``: sets the dataset's epoch and seeds python/numpy/torch RNGs from
    (seed, epoch, i) around ``dataset[i]``, so random augmentations and caption draws depend
    only on the sample, never on worker count, batch position or resume point."""

    def __init__(self, dataset, seed: int = 0):
        self.dataset, self.seed = dataset, seed

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        s = _item_seed(self.seed, epoch, index)
        # torch and python RNG states are restored afterwards (model-side randomness such as
        # dropout keeps its own stream); numpy's is only re-seeded (nothing in the model uses it)
        torch_state, py_state = torch.default_generator.get_state(), random.getstate()
        torch.default_generator.manual_seed(s)
        random.seed(s)
        np.random.seed(s)
        try:
            return self.dataset[index]
        finally:
            torch.default_generator.set_state(torch_state)
            random.setstate(py_state)


class BatchPlan(torch.utils.data.Sampler):
    """This process's micro-batches ``[(epoch, i), ...]`` from micro-step ``start`` to ``stop``.

    Each epoch is a permutation drawn from (seed, epoch); global batch b of an epoch is
    ``perm[b*B:(b+1)*B]`` (incomplete last batch dropped), and process r takes its r-th slice,
    so the processes' slices concatenated are exactly the single-process batch.
    """

    def __init__(self, n: int, batch_size: int, rank: int = 0, world: int = 1, seed: int = 0,
                 start: int = 0, stop: int | None = None):
        if batch_size % world:
            raise ConfigError(f"batch_size {batch_size} is not divisible by the {world} processes")
        if n < batch_size:
            raise ConfigError(f"dataset has {n} items, fewer than one batch of {batch_size}")
        self.n, self.batch, self.rank, self.world, self.seed = n, batch_size, rank, world, seed
        self.per_epoch = n // batch_size
        self.start, self.stop = start, stop

    def epoch_of(self, micro_step: int) -> int:
        return micro_step // self.per_epoch

    def _perm(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 7_777 + epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def __len__(self):
        return (self.stop if self.stop is not None else 1 << 62) - self.start

    def __iter__(self):
        local = self.batch // self.world
        m, epoch, perm = self.start, None, None
        while self.stop is None or m < self.stop:
            e, b = divmod(m, self.per_epoch)
            if e != epoch:
                epoch, perm = e, self._perm(e)
            idx = perm[b * self.batch:(b + 1) * self.batch][self.rank * local:(self.rank + 1) * local]
            yield [(e, i) for i in idx]
            m += 1


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """``torch.save`` to a temporary file, then rename: a crash never leaves a half checkpoint."""
    return torch_save_atomic(state, path)


def load_checkpoint(path: str | os.PathLike, map_location="cpu", mmap: bool = False) -> dict:
    """Load a checkpoint; ``mmap=True`` maps the tensors instead of reading them (cheap when only
    the config or step is wanted)."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=False, mmap=mmap)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds on a damaged file
        raise DataError(path, f"not a readable checkpoint ({exc.__class__.__name__}: {exc})") from exc


class Checkpointer:
    """``<dir>/checkpoint.pt`` (latest, atomically replaced); ``keep=True`` also keeps
    ``step_<n>.pt`` copies."""

    def __init__(self, directory: str | os.PathLike, keep: bool = False):
        self.dir = Path(directory)
        self.keep = keep

    @property
    def latest(self) -> Path:
        return self.dir / "checkpoint.pt"

    def exists(self) -> bool:
        return self.latest.exists()

    def save(self, state: dict) -> Path:
        path = save_checkpoint(self.latest, state)
        if self.keep:
            save_checkpoint(self.dir / f"step_{state['step']}.pt", state)
        return path

    def load(self, map_location="cpu") -> dict:
        return load_checkpoint(self.latest, map_location)


# ---------------------------------------------------------------- the loop

@dataclass
class FitResult:
    model: nn.Module              # the trained student (unwrapped, on the training device)
    objective: nn.Module
    teacher: EMATeacher | None
    history: list[dict]           # one row per logged step
    step: int
    seconds: float                # training time of all steps, summed over interrupted and resumed parts
    run_dir: Path | None


def resolve_precision(precision: str, cpu: bool = False) -> str:
    """``auto`` -> ``bf16`` where the device computes bf16 natively (a GPU that supports it, or a CPU
    with AMX / AVX512-BF16 through oneDNN), else ``no``; other values unchanged."""
    if precision != "auto":
        return precision
    if torch.cuda.is_available() and not cpu:
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    return "bf16" if native else "no"


def make_accelerator(cfg: LoopConfig):
    """An ``accelerate.Accelerator`` for ``cfg`` (a fresh state in single-process runs, so a
    notebook can train several models with different precision in one kernel)."""
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from accelerate.state import AcceleratorState, GradientState

    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=cfg.find_unused_parameters)]
    return Accelerator(mixed_precision=resolve_precision(cfg.precision, cfg.cpu), cpu=cfg.cpu,
                       kwargs_handlers=handlers)


def _default_collate(items):
    return torch.utils.data.default_collate(items)


def _batch_len(batch) -> int:
    if isinstance(batch, Mapping):
        for v in batch.values():
            if torch.is_tensor(v):
                return v.shape[0]
    if isinstance(batch, (list, tuple)) and batch and torch.is_tensor(batch[0]):
        return batch[0].shape[0]
    return 0


def _read_log(path: Path, upto: int) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        rows = [{k: (float(v) if v not in ("", None) else math.nan) for k, v in r.items()}
                for r in csv.DictReader(fh)]
    for r in rows:
        r["step"], r["epoch"] = int(r["step"]), int(r["epoch"])
    return [r for r in rows if r["step"] <= upto]


def _seconds_from_log(rows: list[dict], images_per_step: int) -> float:
    """Training time of a checkpoint written before checkpoints carried it, estimated from the
    log's throughput column (images between logged steps / img_per_s)."""
    total, prev = 0.0, 0
    for r in rows:
        if r.get("img_per_s", 0) > 0:
            total += (r["step"] - prev) * images_per_step / r["img_per_s"]
        prev = r["step"]
    return total


def _write_log(path: Path, rows: list[dict]) -> None:
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def fit(model: nn.Module, objective: nn.Module, dataset, cfg: LoopConfig,
        collate_fn: Callable | None = None, run_dir: str | os.PathLike | None = None,
        resume: bool | str = False, callbacks: Sequence[Callable[[int, dict], None]] = (),
        accelerator=None, desc: str = "train", config_snapshot: dict | None = None) -> FitResult:
    """Train ``model`` with ``objective`` on ``dataset`` for ``cfg.steps`` optimizer steps.

    ``run_dir`` (optional) receives ``checkpoint.pt`` (every ``cfg.ckpt_every`` steps and at
    the end) and ``train_log.csv``. ``resume=True`` continues from ``run_dir/checkpoint.pt``
    when it exists (a path: from that file); the result equals an uninterrupted run.
    ``callbacks(step, logs)`` run after every optimizer step (``logs`` holds this step's loss
    terms). A NaN/inf loss raises :class:`NonFiniteLossError` naming the step, before anything
    is saved.
    """
    acc = accelerator or make_accelerator(cfg)
    seed_everything(cfg.seed)
    run_dir = Path(run_dir) if run_dir is not None else None
    ckpt = Checkpointer(run_dir) if run_dir is not None else None
    if cfg.freeze:
        apply_freeze(model, cfg.freeze)

    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    trainee = Trainee(model, objective)
    named = [(n[len("model."):] if n.startswith("model.") else n, p) for n, p in trainee.named_parameters()]
    optimizer = build_optimizer(named, cfg)
    scheduler = cosine_with_warmup(optimizer, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio)
    trainee = trainee.to(acc.device)
    teacher = (EMATeacher(model, cfg.ema_max_decay).to(acc.device)
               if getattr(objective, "needs_teacher", False) else None)
    trainee, optimizer = acc.prepare(trainee, optimizer)
    core = acc.unwrap_model(trainee)

    start, history = 0, []
    spent = 0.0  # training seconds before this call (a resumed run carries them in its checkpoint)
    resume_path = (Path(resume) if isinstance(resume, (str, os.PathLike)) and not isinstance(resume, bool)
                   else (ckpt.latest if (resume and ckpt is not None) else None))
    if resume_path is not None and resume_path.exists():
        state = load_checkpoint(resume_path, map_location=acc.device)
        _check_same_run(state.get("config") or {}, config_snapshot or {}, resume_path)
        core.load_state_dict(state["trainee"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if teacher is not None:
            teacher.load_state_dict(state["teacher"])
        if acc.scaler is not None and state.get("scaler"):
            acc.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"][acc.process_index] if isinstance(state["rng"], list) else state["rng"])
        start = int(state["step"])
        if run_dir is not None:
            history = _read_log(run_dir / "train_log.csv", start)
        spent = float(state["seconds"]) if state.get("seconds") is not None else _seconds_from_log(
            history, cfg.batch_size * max(1, cfg.grad_accum) * acc.num_processes)
        acc.print(f"resumed from {resume_path} at step {start}")

    accum = max(1, cfg.grad_accum)
    plan = BatchPlan(len(dataset), cfg.batch_size, acc.process_index, acc.num_processes, cfg.seed,
                     start=start * accum, stop=cfg.steps * accum)
    loader = torch.utils.data.DataLoader(SeededView(dataset, cfg.seed), batch_sampler=plan,
                                         collate_fn=collate_fn or _default_collate,
                                         num_workers=cfg.num_workers,
                                         persistent_workers=False,
                                         # its own generator: making the iterator must not draw from
                                         # the global RNG (that would shift dropout after a resume)
                                         generator=torch.Generator().manual_seed(cfg.seed))
    batches = iter(loader)
    params = [p for p in trainee.parameters() if p.requires_grad]

    def save(step: int) -> None:
        if ckpt is None:
            return
        rngs = [rng_state()]
        if acc.num_processes > 1:
            rngs = [None] * acc.num_processes
            torch.distributed.all_gather_object(rngs, rng_state())
        if acc.is_main_process:
            ckpt.save({"step": step, "trainee": core.state_dict(), "optimizer": optimizer.state_dict(),
                       "scheduler": scheduler.state_dict(),
                       "teacher": teacher.state_dict() if teacher is not None else None,
                       "scaler": acc.scaler.state_dict() if acc.scaler is not None else None,
                       "rng": rngs, "config": config_snapshot or {}, "loop": cfg.__dict__,
                       "seconds": spent + time.perf_counter() - t0})
            _write_log(run_dir / "train_log.csv", history)
        acc.wait_for_everyone()

    trainee.train()
    bar = progress(total=cfg.steps, initial=start, desc=desc, disable=not acc.is_local_main_process)
    t0 = time.perf_counter()
    t_log, n_img = t0, 0
    step = start
    for step in range(start, cfg.steps):
        if teacher is not None:
            teacher.update(core.model)
        terms: dict[str, float] = {}
        for micro in range(accum):
            batch = next(batches)
            n_img += _batch_len(batch) * acc.num_processes
            batch = _to_device(batch, acc.device)
            sync = acc.no_sync(trainee) if (micro < accum - 1 and acc.num_processes > 1) else nullcontext()
            with sync:
                out = trainee(batch, teacher=teacher)
                loss = out["loss"]
                check = loss.detach().float()
                if acc.num_processes > 1:
                    check = acc.reduce(check, "mean")
                if not torch.isfinite(check):
                    raise NonFiniteLossError(
                        f"step {step + 1} (micro-batch {micro + 1}/{accum}): the loss is {check.item()}; "
                        f"stopped without saving (last good checkpoint: "
                        f"{ckpt.latest if ckpt and ckpt.exists() else 'none'}). Lower lr, use bf16/fp32, "
                        f"or check the data")
                acc.backward(loss / accum)
            for k, v in out.items():
                terms[k] = terms.get(k, 0.0) + float(v.detach() if torch.is_tensor(v) else v) / accum
        if cfg.grad_clip:
            grad_norm = acc.clip_grad_norm_(params, cfg.grad_clip)
            terms["grad_norm"] = float(grad_norm)
        optimizer.step()
        if not acc.optimizer_step_was_skipped:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        lr = optimizer.param_groups[0]["lr"] / optimizer.param_groups[0].get("lr_mult", 1.0)
        if done % cfg.log_every == 0 or done == cfg.steps:
            now = time.perf_counter()
            row = {"step": done, "epoch": plan.epoch_of(done * accum - 1), "lr": lr,
                   "img_per_s": n_img / max(now - t_log, 1e-9), **terms}
            if teacher is not None:
                row["ema_decay"] = teacher.decay()
            history.append(row)
            t_log, n_img = now, 0
            bar.set_postfix(loss=f"{terms['loss']:.4f}", lr=f"{lr:.2e}", img_s=f"{row['img_per_s']:.1f}")
        bar.update(1)
        for cb in callbacks:
            cb(done, terms)
        if ckpt is not None and cfg.ckpt_every and done % cfg.ckpt_every == 0 and done < cfg.steps:
            save(done)
    bar.close()
    final = cfg.steps
    save(final)
    return FitResult(model=core.model, objective=core.objective, teacher=teacher, history=history,
                     step=final, seconds=spent + time.perf_counter() - t0, run_dir=run_dir)


RESUME_MAY_CHANGE = ("steps", "ckpt_every", "log_every", "num_workers", "data_root")


def _strip_resumable(d: dict) -> dict:
    return {k: _strip_resumable(v) if isinstance(v, dict) else v for k, v in d.items() if k not in RESUME_MAY_CHANGE}


def _config_diff(saved: dict, current: dict) -> list[str]:
    """Top-level sections in which two config snapshots differ, ignoring what a resume may change
    (empty when either has no config)."""
    if not saved or not current:
        return []
    a, b = _strip_resumable(saved), _strip_resumable(current)
    return sorted(k for k in set(a) | set(b) if stable_hash(a.get(k)) != stable_hash(b.get(k)))


def checkpoint_config_differs(path: str | os.PathLike, config_snapshot: dict) -> list[str]:
    """The top-level config sections in which the checkpoint at ``path`` differs from
    ``config_snapshot`` (empty: same run, resumable; also empty when either has no config)."""
    return _config_diff(load_checkpoint(path, mmap=True).get("config") or {}, config_snapshot)


def retire_stale_run(run_dir: str | os.PathLike, config_snapshot: dict) -> list[str]:
    """If ``run_dir/checkpoint.pt`` was written under another configuration, move the whole run to
    ``<run_dir>.previous`` (replacing an older one) so the caller trains anew instead of failing
    to resume; returns the sections that changed (empty: nothing moved)."""
    import shutil

    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoint.pt"
    changed = checkpoint_config_differs(ckpt, config_snapshot) if ckpt.exists() else []
    if changed:
        stale = run_dir.with_name(run_dir.name + ".previous")
        shutil.rmtree(stale, ignore_errors=True)
        run_dir.rename(stale)
        print(f"{run_dir.name}: the config changed since {ckpt} (in {changed}); training anew, the old run "
              f"moved to {stale}")
    return changed


def _check_same_run(saved: dict, current: dict, path) -> None:
    """Resuming under a different configuration would silently mix two runs: refuse."""
    diff = _config_diff(saved, current)
    if diff:
        raise ConfigError(f"{path}: checkpoint was written by a different configuration (differs in {diff}); "
                          f"use another run directory or delete it to start over")


def _to_device(batch, device):
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and batch and torch.is_tensor(batch[0]):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m rsdix.training.loop --config rsdix/configs/train/cpu.yaml [--resume] [key=value ...]``."""
    from rsdix.training.clip import main as clip_main

    clip_main(argv)


if __name__ == "__main__":
    main()
