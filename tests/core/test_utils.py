"""Atomic writes, hashing, seeding."""
from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys

import pytest

from rsdix.errors import DataError
from rsdix.utils import atomic_path, progress, remove_stale_temps


def test_atomic_write_keeps_old_file_on_crash(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_stale_temporary_files_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname().replace(".", "_")
    by_dead = tmp_path / f".t.csv.{host}-{dead.pid}-x1.tmp"
    by_me = tmp_path / f".t.csv.{host}-{os.getpid()}-x2.tmp"       # a write in progress
    by_other_host = tmp_path / f".t.csv.elsewhere-{dead.pid}-x3.tmp"  # may be writing on a shared disk
    old = tmp_path / ".t.csv.abc.tmp"                               # old naming, unchanged for an hour
    for p in (by_dead, by_me, by_other_host, old):
        p.write_text("half")
    hour_ago = old.stat().st_mtime - 3600
    os.utime(old, (hour_ago, hour_ago))
    assert sorted(p.name for p in remove_stale_temps(tmp_path)) == sorted([by_dead.name, old.name])
    assert by_me.exists() and by_other_host.exists()


def test_a_full_disk_in_an_atomic_write_names_the_folder(tmp_path):
    target = tmp_path / "t.csv"
    target.write_text("old")
    with pytest.raises(DataError, match=f"{tmp_path}: disk full while writing t.csv"):
        with atomic_path(target):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["t.csv"]


@pytest.mark.parametrize("value, disabled", [("1", True), ("yes", True), ("0", False), ("", False),
                                             ("false", False)])
def test_no_progress_variable(value, disabled, monkeypatch):
    monkeypatch.setenv("RSDIX_NO_PROGRESS", value)
    bar = progress(range(3))
    assert bar.disable is disabled
    bar.close()


def test_tf32_matmul_is_a_scoped_setting(monkeypatch):
    """Evaluation and decoding run under rsdix.utils.tf32_matmul: TF32 on CUDA inside, the previous
    settings restored after; nothing changes without CUDA."""
    import torch   # noqa: PLC0415 - torch is heavy; the rest of this file does not need it

    from rsdix.utils import tf32_matmul   # noqa: PLC0415 - beside the torch import above

    before = torch.backends.cuda.matmul.allow_tf32
    with tf32_matmul():
        assert torch.backends.cuda.matmul.allow_tf32 == before   # no CUDA here: untouched
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    torch.backends.cuda.matmul.allow_tf32 = False
    with tf32_matmul():
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert torch.backends.cuda.matmul.allow_tf32 is False
    torch.backends.cuda.matmul.allow_tf32 = before
