"""The seeded, resumable data order of the training loop, and the RNG states a checkpoint carries.

:class:`BatchPlan` yields this process's micro-batches ``[(epoch, i), ...]`` from any micro-step
on; :class:`SeededView` seeds every item's randomness (augmentation, caption draw) from
(seed, epoch, i). Together they make the data a run sees depend only on its seed, never on the
number of workers or processes, or on where it was resumed. :func:`rng_state` /
:func:`set_rng_state` save and restore the python, numpy, torch and CUDA generators (the
model-side randomness, e.g. dropout) across a resume.
"""
from __future__ import annotations

import random

import numpy as np
import torch

from rsdix.errors import ConfigError


def rng_state() -> dict:
    """The python, numpy, torch (and CUDA) generator states as tensors and plain values only, so a
    checkpoint holding them loads with ``torch.load(weights_only=True)``."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` saved (also the tuples of checkpoints written before it).
    The saved tensors may lie on any device (a checkpoint loaded onto a GPU): they are read on the
    CPU. CUDA states are restored for the devices both the checkpoint and this machine have."""
    py, npy = state["python"], state["numpy"]
    if isinstance(py, dict):
        py = (py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"])
    if isinstance(npy, dict):
        npy = (npy["kind"], npy["keys"].cpu().numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
               npy["cached_gaussian"])
    random.setstate(py)
    np.random.set_state(npy)
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        for i, cuda_state in enumerate(list(state["cuda"])[:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), i)


def restore_rng_states(saved, rank: int, world: int, seed: int, step: int) -> int:
    """Restore this process's generators from a checkpoint's ``rng`` entry (one state per process
    that wrote it; a single dict in older checkpoints); returns how many processes wrote it.

    Same process count: process ``rank`` continues its own streams exactly. Another count (a
    1-process checkpoint resumed by 2 processes, or the reverse): process 0 restores the first
    state, every other process the state of its rank where there is one, else the first state with
    its torch (and CUDA) generators re-seeded from ``(seed, step, rank)``, so processes never share
    a dropout stream. The data order does not depend on this (:class:`BatchPlan`, :class:`SeededView`).
    """
    states = saved if isinstance(saved, list) else [saved]
    if rank < len(states):
        set_rng_state(states[rank])
    else:
        set_rng_state(states[0])
        torch.manual_seed(_item_seed(seed + 1, step, rank))   # also seeds every CUDA device
    return len(states)


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
