"""The data loader of the training loop (:func:`rsdix.training.loop.fit`): guarded items, worker
processes sized from the CPUs, pinned memory, and what a worker may hand back instead of a batch.

* :func:`make_loader` builds the ``torch.utils.data.DataLoader`` over a map-style dataset (indexed
  through :class:`rsdix.training.data_order.BatchPlan`) or a stream that splits itself; its
  batches are pinned when the loop trains on a GPU (so the loop's ``non_blocking`` copies
  overlap with compute) and its workers persist across the run.
* :func:`loader_workers` turns ``loop.num_workers`` into a worker count: ``-1`` means one per
  CPU core this process may use, shared among the processes of this machine, one core left to
  the process itself (at most :data:`MAX_AUTO_WORKERS`).
* :class:`ItemFailure`: an unreadable item (a :class:`rsdix.errors.RsdixError` in a worker)
  travels back as data and the loop raises it as one line.

Images travel as uint8 where the transform allows it (``rsdix.data.transforms.rs_train_transform``
with ``uint8=True``, DINO's crops): a quarter of float32's bytes through shared memory and the
host-to-device copy; :class:`rsdix.training.collate.DeviceNormalize` makes them floats on the device.
"""
from __future__ import annotations

import os
from typing import Callable

import torch

from rsdix.errors import ConfigError, DataError, RsdixError
from rsdix.training.data_order import BatchPlan, SeededView

MAX_AUTO_WORKERS = 16   # past this, workers mostly add start-up time and shared memory


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity mask: a container's or a job's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def loader_workers(requested: int, local_processes: int = 1, cpus: int | None = None) -> int:
    """``requested`` workers, or (``-1``) one per usable core shared among the ``local_processes``
    training processes of this machine, one core per process left to the training loop itself,
    capped at :data:`MAX_AUTO_WORKERS`; 0 on a machine with one core per process."""
    if requested >= 0:
        return requested
    cpus = usable_cpus() if cpus is None else cpus
    return max(0, min(MAX_AUTO_WORKERS, cpus // max(1, local_processes) - 1))


class ItemFailure:
    """What a data worker hands back instead of a batch when an item raised an rsdix error: the
    error's type, file and problem travel intact (torch's worker re-raise keeps only a traceback
    text), and the loop raises it as one line."""

    def __init__(self, exc: RsdixError):
        self.kind, self.args = type(exc), ((exc.where, exc.problem) if isinstance(exc, DataError) else exc.args)

    def error(self) -> RsdixError:
        try:
            return self.kind(*self.args)
        except TypeError:  # a subclass with another signature: the same line as a DataError
            return DataError(*self.args) if len(self.args) == 2 else RsdixError(*self.args)


class _Guarded(torch.utils.data.Dataset):
    def __init__(self, view):
        self.view = view

    def __len__(self):
        return len(self.view)

    def __getitem__(self, key):
        try:
            return self.view[key]
        except RsdixError as exc:
            return ItemFailure(exc)


class _GuardedStream(torch.utils.data.IterableDataset):
    def __init__(self, stream):
        self.stream = stream

    def __iter__(self):
        try:
            yield from self.stream
        except RsdixError as exc:
            yield ItemFailure(exc)


class _GuardedCollate:
    def __init__(self, collate_fn):
        self.collate_fn = collate_fn

    def __call__(self, items):
        failed = next((i for i in items if isinstance(i, ItemFailure)), None)
        return failed if failed is not None else self.collate_fn(items)


def _default_collate(items):
    return torch.utils.data.default_collate(items)


def make_loader(dataset, collate_fn: Callable | None, batch_size: int, rank: int, world: int, seed: int,
                start: int, stop: int, workers: int, pin: bool):
    """``(loader, epoch_of)`` for this process: micro-steps ``start`` to ``stop`` of a map-style
    dataset (:class:`BatchPlan` slices of the global ``batch_size``), or a stream configured for
    this rank from micro-batch ``start``. ``pin``: page-locked batches (a CUDA run)."""
    collate = _GuardedCollate(collate_fn or _default_collate)
    common = dict(collate_fn=collate, num_workers=workers, persistent_workers=workers > 0, pin_memory=pin,
                  # its own generator: making the iterator must not draw from the global RNG
                  # (that would shift dropout after a resume)
                  generator=torch.Generator().manual_seed(seed))
    if isinstance(dataset, torch.utils.data.IterableDataset):  # a stream splits itself (shards)
        if batch_size % world:
            raise ConfigError(f"loop.batch_size {batch_size} is not divisible by the {world} processes")
        stream = dataset.configure(rank, world, batch_size // world, start=start)
        loader = torch.utils.data.DataLoader(_GuardedStream(stream), batch_size=batch_size // world, **common)
        return loader, stream.epoch_of
    plan = BatchPlan(len(dataset), batch_size, rank, world, seed, start=start, stop=stop)
    loader = torch.utils.data.DataLoader(_Guarded(SeededView(dataset, seed)), batch_sampler=plan, **common)
    return loader, plan.epoch_of
