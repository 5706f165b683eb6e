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

    cfg = LoopConfig(steps=1000, lr=1e-4)                                # or a config's loop section
    result = fit(model, CaptionObjective(), dataset, cfg, collate_fn=my_collate,
                 run_dir=dirs.run / "caption_s0", resume=True)
    result.model, result.history                                        # trained model, log rows

More terms in the same loop (issue: RS-M-CLIP's DINO term):
:class:`rsdix.training.objectives.SumObjective` adds named objectives with weights, e.g.
``SumObjective({"clip": (1.0, clip), "dino": (0.5, dino)})``; the dataset returns extra views in
the batch dict and each term reads what it needs.

The building blocks live beside it: :mod:`rsdix.training.optim` (parameter groups, AdamW, the
cosine schedule), :mod:`rsdix.training.ema` (the EMA teacher), :mod:`rsdix.training.objectives`
(:class:`~rsdix.training.objectives.Trainee`, the sum of objectives), :mod:`rsdix.training.data_order`
(the seeded, resumable data order and RNG states), :mod:`rsdix.training.loader` (the data loader:
guarded items, pinned memory, workers from the CPUs), :mod:`rsdix.training.checkpoints` (atomic
checkpoints, the same-run rule). The CLIP objectives are in :mod:`rsdix.training.clip_objectives`,
the CLIP entry point :func:`rsdix.training.clip.train_clip`.
"""
from __future__ import annotations

import csv
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Mapping, Sequence

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.state import AcceleratorState, GradientState
from torch import nn

from rsdix.config import option
from rsdix.errors import ConfigError, DataError, RsdixError
from rsdix.log import get_logger
from rsdix.paths import runs_dir
from rsdix.training.checkpoints import Checkpointer, check_same_run, load_checkpoint, plain, prepare_run_dir
from rsdix.training.data_order import restore_rng_states, rng_state
from rsdix.training.ema import EMATeacher
from rsdix.training.loader import ItemFailure, loader_workers, make_loader
from rsdix.training.objectives import Trainee
from rsdix.training.optim import apply_freeze, build_optimizer, cosine_with_warmup
from rsdix.training.tracking import Trackers, check_trackers
from rsdix.utils import atomic_path, progress, seed_everything

log = get_logger(__name__)


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
    # the recipe switches of the loop (rsdix.training.clip fills the unset ones from loss.recipe; outside
    # CLIP training unset means rsdix): ema_schedule rsdix (n = updates so far: 1/10 first) | original
    # (n + 1: 2/11 first); ema_buffers copy (the teacher's buffers, e.g. BatchNorm statistics, copied from
    # the student at every update) | keep (the original's EMA of the parameters only: buffers as built);
    # decay_all: weight decay on every parameter (original) instead of matrices only (rsdix)
    ema_schedule: Literal["rsdix", "original"] | None = None
    ema_buffers: Literal["copy", "keep"] | None = None
    decay_all: bool | None = None
    num_workers: int = option(0, min=-1)  # data-loader worker processes; -1: one per CPU core of this
                                      # process's share of the machine (rsdix.training.loader.loader_workers)
    seed: int = 0
    log_every: int = option(10, min=1)
    ckpt_every: int = option(0, min=0)  # steps between checkpoints (0: only at the end)
    # the last checkpoint keeps the optimizer state, so a finished run can be continued for more
    # steps; false: weights only (the paper's GPT-2 captioner: 2.4 GB, not 7.3 GB per run)
    keep_optimizer_at_end: bool = True
    save_at_end: bool = True          # false: no checkpoint at the end, only the train log (the caller saves
                                      # the model: the studies' many short runs)
    find_unused_parameters: bool = False
    grad_checkpointing: bool = False  # recompute each transformer block in the backward pass (open_clip's
                                      # set_grad_checkpointing): activations of ~one block instead of all
    compile: bool = False             # torch.compile the model's towers (nn.Module.compile; first steps slower)
    cpu: bool = False                 # force CPU even with a GPU
    report_to: list = field(default_factory=list)  # experiment trackers: tensorboard, wandb (none by default;
                                      # rsdix.training.tracking: events under <run folder>/tracking)

    def validate(self):
        self.report_to = check_trackers(self.report_to)


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
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=cfg.find_unused_parameters)]
    # accelerate starts a multi-process CPU run (gloo) only when told it is a CPU run: on a machine
    # without a GPU, `torchrun --nproc_per_node N` would otherwise give N independent processes
    cpu = cfg.cpu or not torch.cuda.is_available()
    return Accelerator(mixed_precision=resolve_precision(cfg.precision, cpu), cpu=cpu, kwargs_handlers=handlers)


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


def seconds_from_log(rows: list[dict], images_per_step: int) -> float:
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
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def checkpoint_bytes(trainee: nn.Module, teacher: bool) -> int:
    """About the size of a checkpoint: the weights, AdamW's two moments and an EMA copy."""
    weights = sum(t.numel() * t.element_size() for t in trainee.state_dict().values())
    return weights * (3 + int(teacher))


def fit(model: nn.Module, objective: nn.Module, dataset, cfg: LoopConfig,
        collate_fn: Callable | None = None, run_dir: str | os.PathLike | None = None,
        resume: bool | str = False, callbacks: Sequence[Callable[[int, dict], None]] = (),
        accelerator=None, desc: str = "train", config_snapshot: dict | None = None,
        grad_callbacks: Sequence[Callable[[int, list], None]] = (),
        on_device: Callable[[dict], dict] | None = None) -> FitResult:
    """Train ``model`` with ``objective`` on ``dataset`` for ``cfg.steps`` optimizer steps.

    ``run_dir`` (optional) receives ``checkpoint.pt`` (every ``cfg.ckpt_every`` steps and at
    the end, there without the optimizer state if ``cfg.keep_optimizer_at_end`` is false; a
    finished run loaded back is not written again) and ``train_log.csv``. ``resume=True`` continues from ``run_dir/checkpoint.pt``
    when it exists (a path: from that file); the result equals an uninterrupted run.
    ``callbacks(step, logs)`` run after every optimizer step (``logs`` holds this step's loss
    terms, tensors still on the device: ``float(logs["loss"])`` waits for the step).
    ``grad_callbacks(step, named_params)`` run on every process after the gradients are
    synchronised and clipped, before the optimizer step (``named_params``: the trainable
    ``(name, parameter)`` pairs, ``.grad`` set). ``on_device(batch)`` runs on each batch once it
    is on the device (e.g. :class:`rsdix.training.collate.DeviceNormalize`: uint8 images to
    normalised floats). A NaN/inf loss raises :class:`NonFiniteLossError` naming the step and
    micro-batch, before anything is saved: the loss is checked on the device and read back at each
    log step and before each checkpoint (:class:`FiniteGuard`), so the loop never waits for the
    device inside a step.

    ``dataset`` is a map-style dataset (indexed through ``rsdix.training.data_order.BatchPlan``: the processes' slices
    concatenated are the single-process batch) or a stream, a ``torch.utils.data.IterableDataset``
    with ``configure(rank, world, batch_size, start)`` (``batch_size`` per process, ``start`` the
    first local batch, for a resume) and ``epoch_of(batch)``, such as
    :class:`rsdix.data.shards.ShardDataset`, which splits itself across processes and workers.
    """
    acc = accelerator or make_accelerator(cfg)
    seed_everything(cfg.seed)
    run_dir = Path(run_dir) if run_dir is not None else None
    ckpt = Checkpointer(run_dir) if run_dir is not None else None
    if cfg.freeze:
        apply_freeze(model, cfg.freeze)
    if cfg.grad_checkpointing:
        enable_grad_checkpointing(model)

    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    trainee = Trainee(model, objective)
    named = [(n[len("model."):] if n.startswith("model.") else n, p) for n, p in trainee.named_parameters()]
    optimizer = build_optimizer(named, cfg.lr, cfg.weight_decay, cfg.lr_mult, betas=cfg.betas, eps=cfg.eps,
                                decay_all=bool(cfg.decay_all))
    scheduler = cosine_with_warmup(optimizer, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio)
    if run_dir is not None:
        # before any step (on every process, so none waits on one that stopped): a read-only or
        # full run folder fails now, not after the run
        existing = ckpt.latest.stat().st_size if ckpt.exists() else 0
        prepare_run_dir(run_dir, checkpoint_bytes(trainee, getattr(objective, "needs_teacher", False)) + existing)
    trainee = trainee.to(acc.device)
    teacher = (EMATeacher(model, cfg.ema_max_decay, schedule=cfg.ema_schedule or "rsdix",
                          copy_buffers=cfg.ema_buffers != "keep").to(acc.device)
               if getattr(objective, "needs_teacher", False) else None)
    trainee, optimizer = acc.prepare(trainee, optimizer)
    core = acc.unwrap_model(trainee)
    if cfg.compile:
        compile_towers(core.model)

    start, history = 0, []
    spent = 0.0  # training seconds before this call (a resumed run carries them in its checkpoint)
    resume_path = (Path(resume) if isinstance(resume, (str, os.PathLike)) and not isinstance(resume, bool)
                   else (ckpt.latest if (resume and ckpt is not None) else None))
    if resume_path is not None and resume_path.exists():
        # onto the CPU: the RNG states must stay there, and the weights are copied onto the
        # device by load_state_dict (no second copy of the whole run kept on the GPU)
        state = load_checkpoint(resume_path, map_location="cpu")
        check_same_run(state.get("config") or {}, config_snapshot or {}, resume_path)
        core.load_state_dict(state["trainee"])
        if state.get("optimizer") is not None:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        elif int(state["step"]) < cfg.steps:
            raise DataError(resume_path, f"the checkpoint of a finished run ({state['step']} steps, saved without "
                                         f"optimizer state: loop.keep_optimizer_at_end false) cannot continue to "
                                         f"{cfg.steps} steps: train anew")
        if teacher is not None:
            teacher.load_state_dict(state["teacher"])
        if acc.scaler is not None and state.get("scaler"):
            acc.scaler.load_state_dict(state["scaler"])
        start = int(state["step"])
        saved_processes = restore_rng_states(state["rng"], acc.process_index, acc.num_processes, cfg.seed, start)
        if saved_processes != acc.num_processes and acc.is_main_process:
            log.warning(f"{resume_path}: written by {saved_processes} process(es), resumed by {acc.num_processes}: "
                        f"the data order is the same, the model-side random streams (dropout) are re-seeded")
        if run_dir is not None:
            history = _read_log(run_dir / "train_log.csv", start)
        spent = float(state["seconds"]) if state.get("seconds") is not None else seconds_from_log(
            history, cfg.batch_size * max(1, cfg.grad_accum) * acc.num_processes)
        del state
        if acc.is_main_process:
            log.info(f"resumed from {resume_path} at step {start}")

    accum = max(1, cfg.grad_accum)
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", acc.num_processes if acc.num_processes > 1 else 1))
    loader, epoch_of = make_loader(dataset, collate_fn, cfg.batch_size, acc.process_index, acc.num_processes,
                                   cfg.seed, start * accum, cfg.steps * accum,
                                   loader_workers(cfg.num_workers, local_processes), pin=acc.device.type == "cuda")
    batches = iter(loader)
    named_params = [(n, p) for n, p in core.named_parameters() if p.requires_grad]
    params = [p for _, p in named_params]
    guard = FiniteGuard(acc.device, accum)

    def check_finite() -> None:
        """Raise :class:`NonFiniteLossError` if any loss since the last check was NaN/inf (one
        host sync; every process raises together)."""
        bad = guard.first_bad(acc.num_processes > 1)
        if bad is not None:
            at, value = bad
            raise NonFiniteLossError(
                f"step {at // accum + 1} (micro-batch {at % accum + 1}/{accum}): the loss is {value}; "
                f"stopped without saving (last good checkpoint: "
                f"{ckpt.latest if ckpt and ckpt.exists() else 'none'}). Lower lr, use bf16/fp32, "
                f"or check the data")

    def save(step: int, finished: bool = False, log_only: bool = False) -> None:
        """A resumable checkpoint; ``finished`` (the run's last) with ``keep_optimizer_at_end``
        false: without optimizer, scheduler and scaler state; ``log_only``: the train log alone."""
        if ckpt is None:
            return
        check_finite()   # nothing non-finite is ever saved
        if log_only:
            if acc.is_main_process:
                _write_log(run_dir / "train_log.csv", history)
            return
        rngs = [rng_state()]
        if acc.num_processes > 1:
            rngs = [None] * acc.num_processes
            torch.distributed.all_gather_object(rngs, rng_state())
        if acc.is_main_process:
            ckpt.save({"step": step, "trainee": core.state_dict(), "finished": finished,
                       "optimizer": None if finished else optimizer.state_dict(),
                       "scheduler": None if finished else scheduler.state_dict(),
                       "teacher": teacher.state_dict() if teacher is not None else None,
                       "scaler": acc.scaler.state_dict() if acc.scaler is not None and not finished else None,
                       "rng": rngs, "config": plain(config_snapshot or {}), "loop": plain(cfg.__dict__),
                       "seconds": spent + time.perf_counter() - t0})
            _write_log(run_dir / "train_log.csv", history)
        acc.wait_for_everyone()

    trainee.train()
    bar = progress(total=cfg.steps, initial=start, desc=desc, disable=not acc.is_local_main_process)
    tracked = check_trackers(cfg.report_to) if acc.is_main_process else []
    trackers = Trackers(tracked, desc, ((run_dir if run_dir is not None else runs_dir() / desc) / "tracking")
                        if tracked else ".", config_snapshot)
    t0 = time.perf_counter()
    t_log, n_img = t0, 0
    step = start
    for step in range(start, cfg.steps):
        if teacher is not None:
            teacher.update(core.model)
        parts: dict[str, list] = {}   # this step's terms per micro-batch, on the device until a log step
        for micro in range(accum):
            batch = next(batches)
            if isinstance(batch, ItemFailure):  # an unreadable item (in a worker or not): one line
                raise batch.error()
            n_img += _batch_len(batch) * acc.num_processes
            batch = _to_device(batch, acc.device)
            if on_device is not None:
                batch = on_device(batch)
            sync = acc.no_sync(trainee) if (micro < accum - 1 and acc.num_processes > 1) else nullcontext()
            with sync:
                out = trainee(batch, teacher=teacher)
                loss = out["loss"]
                guard.record(loss, step * accum + micro)
                acc.backward(loss / accum)
            for k, v in out.items():
                parts.setdefault(k, []).append(v.detach() if torch.is_tensor(v) else v)
        if cfg.grad_clip:
            parts["grad_norm"] = [acc.clip_grad_norm_(params, cfg.grad_clip)]
        for cb in grad_callbacks:
            cb(step + 1, named_params)
        optimizer.step()
        if not acc.optimizer_step_was_skipped:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        lr = optimizer.param_groups[0]["lr"] / optimizer.param_groups[0].get("lr_mult", 1.0)
        if done % cfg.log_every == 0 or done == cfg.steps:
            check_finite()
            terms = _host_terms(parts, accum, acc.device)
            now = time.perf_counter()
            row = {"step": done, "epoch": epoch_of(done * accum - 1), "lr": lr,
                   "img_per_s": n_img / max(now - t_log, 1e-9), **terms}
            if teacher is not None:
                row["ema_decay"] = teacher.decay()
            history.append(row)
            trackers.log(row, done)
            t_log, n_img = now, 0
            bar.set_postfix(loss=f"{terms['loss']:.4f}", lr=f"{lr:.2e}", img_s=f"{row['img_per_s']:.1f}")
        bar.update(1)
        if callbacks:
            step_terms = _step_terms(parts, accum)
            for cb in callbacks:
                cb(done, step_terms)
        if ckpt is not None and cfg.ckpt_every and done % cfg.ckpt_every == 0 and done < cfg.steps:
            save(done)
    bar.close()
    trackers.finish()
    final = cfg.steps
    if final > start:   # a finished run loaded back is not written again
        save(final, finished=not cfg.keep_optimizer_at_end, log_only=not cfg.save_at_end)
    check_finite()
    return FitResult(model=core.model, objective=core.objective, teacher=teacher, history=history,
                     step=final, seconds=spent + time.perf_counter() - t0, run_dir=run_dir)


class FiniteGuard:
    """The first non-finite loss of a run, noted on the device without waiting for it: every
    micro-step costs a few device operations, and only :meth:`first_bad` (called by the loop at
    each log step and before each checkpoint) reads it back. A NaN therefore still stops the run
    before anything is saved, at the next log or checkpoint boundary instead of at once (the steps
    between run on with non-finite weights; none of them is saved or logged)."""

    NONE = 2 ** 62

    def __init__(self, device, accum: int):
        self.at = torch.full((), self.NONE, dtype=torch.long, device=device)
        self.value = torch.zeros((), dtype=torch.float32, device=device)
        self.recorded = False

    def record(self, loss: torch.Tensor, micro_step: int) -> None:
        self.recorded = True
        value = loss.detach().float()
        first = ~torch.isfinite(value) & (self.at == self.NONE)
        self.at = torch.where(first, torch.full_like(self.at, micro_step), self.at)
        self.value = torch.where(first, value, self.value)

    def first_bad(self, distributed: bool) -> tuple[int, float] | None:
        """``(micro_step, loss)`` of the first non-finite loss on any process, or None."""
        if not self.recorded and not distributed:   # nothing trained since the start (a finished run reloaded)
            return None
        at = self.at.clone()
        if distributed:
            torch.distributed.all_reduce(at, op=torch.distributed.ReduceOp.MIN)
        at_host, local = at.tolist(), self.at.tolist()
        if at_host == self.NONE:
            return None
        return at_host, (self.value.item() if local == at_host else math.nan)


def _host_terms(parts: dict[str, list], accum: int, device) -> dict[str, float]:
    """The logged terms of one step as numbers: every tensor read back in one transfer, each term
    summed as ``sum(value / accum)`` over its micro-batches."""
    tensors = [v for vs in parts.values() for v in vs if torch.is_tensor(v)]
    numbers = iter(torch.stack([t.float().reshape(()).to(device) for t in tensors]).tolist() if tensors else [])
    terms = {}
    for k, vs in parts.items():
        total = 0.0
        for v in vs:
            total += (next(numbers) if torch.is_tensor(v) else float(v)) / (accum if k != "grad_norm" else 1)
        terms[k] = total
    return terms


def _step_terms(parts: dict[str, list], accum: int) -> dict:
    """This step's terms for the callbacks, still on the device (``float(logs["loss"])`` reads one)."""
    out = {}
    for k, vs in parts.items():
        if k == "grad_norm" or len(vs) == 1:
            out[k] = vs[0]
        else:
            out[k] = sum(v / accum for v in vs)
    return out


def enable_grad_checkpointing(model: nn.Module) -> None:
    """``loop.grad_checkpointing``: open_clip's ``set_grad_checkpointing`` (each transformer block's
    activations recomputed in the backward pass instead of stored)."""
    fn = getattr(model, "set_grad_checkpointing", None)
    if fn is None:
        raise ConfigError(f"loop.grad_checkpointing: {type(model).__name__} has no set_grad_checkpointing "
                          f"(open_clip models have it); set it false")
    fn(True)


def compile_towers(model: nn.Module) -> list[str]:
    """``loop.compile``: ``torch.compile`` in place (``nn.Module.compile``, state-dict keys unchanged)
    of a CLIP model's towers (``visual``; ``transformer`` or ``text``), else of the model itself.
    Returns the names compiled."""
    names = [n for n in ("visual", "transformer", "text") if isinstance(getattr(model, n, None), nn.Module)]
    for n in names:
        getattr(model, n).compile()
    if not names:
        model.compile()
    return names or ["model"]


def _to_device(batch, device):
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and batch and torch.is_tensor(batch[0]):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch
