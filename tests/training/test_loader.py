"""rsdix.training.loader: worker counts from the CPUs, pinned and persistent loaders."""
import torch

from rsdix.training.loader import MAX_AUTO_WORKERS, loader_workers, make_loader


def test_auto_workers_share_the_cores_among_the_processes_of_a_machine():
    assert loader_workers(3) == 3 and loader_workers(0) == 0          # an explicit count is kept
    assert loader_workers(-1, cpus=16) == 15                           # one core left to the loop
    assert loader_workers(-1, local_processes=8, cpus=128) == 15
    assert loader_workers(-1, local_processes=8, cpus=16) == 1
    assert loader_workers(-1, local_processes=2, cpus=2) == 0          # no core to spare
    assert loader_workers(-1, cpus=256) == MAX_AUTO_WORKERS
    assert loader_workers(-1) >= 0


class Numbers(torch.utils.data.Dataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        return torch.tensor([i], dtype=torch.uint8)


def test_the_loader_pins_on_a_gpu_run_and_keeps_its_workers():
    loader, epoch_of = make_loader(Numbers(), None, 4, 0, 1, seed=0, start=0, stop=6, workers=1, pin=True)
    assert loader.pin_memory and loader.persistent_workers and loader.num_workers == 1
    loader, _ = make_loader(Numbers(), None, 4, 1, 2, seed=0, start=0, stop=3, workers=0, pin=False)
    assert not loader.pin_memory and not loader.persistent_workers
    batches = [b for b in loader]
    assert len(batches) == 3 and all(b.shape == (2, 1) and b.dtype == torch.uint8 for b in batches)
    assert epoch_of(3) == 1
