"""rsdix.training.checkpoints: a damaged or missing checkpoint names its file."""
import json

import pytest

from rsdix.config import to_dict
from rsdix.errors import DataError
from rsdix.training.checkpoints import config_diff, load_checkpoint
from rsdix.training.clip import load_clip_config


def test_corrupt_checkpoint_names_file(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="checkpoint.pt"):
        load_checkpoint(bad)
    with pytest.raises(DataError, match="missing.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


# ---------------------------------------------------------------- safe loading (issue 19)
import errno  # noqa: E402
import os  # noqa: E402
from malicious import Touch  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rsdix.training import checkpoints  # noqa: E402
from rsdix.training.checkpoints import (checkpoint_config_differs, prepare_run_dir, retire_stale_run,  # noqa: E402
                                        save_checkpoint)



def malicious_checkpoint(path, marker):
    torch.save({"step": 1, "config": {"a": 1}, "payload": Touch(marker)}, path)
    return path


def test_the_malicious_file_runs_code_under_plain_pickle(tmp_path):
    marker = tmp_path / "control"
    torch.load(malicious_checkpoint(tmp_path / "c.pt", marker), weights_only=False)
    assert marker.exists()  # the test file is really malicious


def test_a_checkpoint_that_would_run_code_is_refused_by_every_reader(tmp_path):
    marker = tmp_path / "marker"
    run = tmp_path / "run"
    run.mkdir()
    bad = malicious_checkpoint(run / "checkpoint.pt", marker)
    for read in (lambda: checkpoints.load_checkpoint(bad), lambda: checkpoints.load_checkpoint(bad, mmap=True),
                 lambda: checkpoint_config_differs(bad, {"a": 2}), lambda: retire_stale_run(run, {"a": 2})):
        with pytest.raises(DataError, match="checkpoint.pt: refused") as err:
            read()
        assert "\n" not in str(err.value) and "weights_only" not in str(err.value)
    assert not marker.exists() and bad.exists()


def test_a_truncated_or_foreign_checkpoint_is_one_line_naming_it(tmp_path):
    good = save_checkpoint(tmp_path / "good.pt", {"step": 3, "w": torch.randn(64, 64)})
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    foreign = tmp_path / "foreign.pt"
    torch.save(torch.randn(3), foreign)   # a tensor, not a training checkpoint
    for path, problem in ((cut, "not a readable checkpoint"), (foreign, "not an rsdix training checkpoint")):
        with pytest.raises(DataError, match=f"{path.name}: {problem}") as err:
            load_checkpoint(path)
        assert "\n" not in str(err.value)


def test_checkpoints_written_before_tensor_rng_states_still_load(tmp_path):
    # the old format: numpy's RNG state as a tuple holding an ndarray
    old = tmp_path / "old.pt"
    torch.save({"step": 2, "rng": [{"numpy": np.random.get_state()}], "config": {}}, old)
    state = load_checkpoint(old)
    assert state["step"] == 2 and isinstance(state["rng"][0]["numpy"][1], np.ndarray)


def test_prepare_run_dir_refuses_an_unwritable_or_full_folder(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match=r"file/run: run folder is not writable"):
        prepare_run_dir(tmp_path / "file" / "run")
    with pytest.raises(DataError, match=r"full: disk full: \d+ MB free, a checkpoint needs about"):
        prepare_run_dir(tmp_path / "full", need_bytes=1 << 60)

    def read_only(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(checkpoints.tempfile, "mkstemp", read_only)   # (tests may run as root)
    with pytest.raises(DataError, match=r"ro: run folder is not writable \(Permission denied\)"):
        prepare_run_dir(tmp_path / "ro")


def test_prepare_run_dir_removes_temporary_files_of_killed_writes(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    orphans = [run / ".checkpoint.pt.abc123.tmp", run / "train_log.csv.tmp"]
    for p in orphans:
        p.write_bytes(b"half")
    old = orphans[0].stat().st_mtime - 3600
    os.utime(orphans[0], (old, old))   # unchanged for an hour: a killed write's
    (run / "checkpoint.pt").write_bytes(b"kept")
    prepare_run_dir(run)
    assert not any(p.exists() for p in orphans) and (run / "checkpoint.pt").exists()


def test_a_full_disk_while_checkpointing_says_so_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})

    def full(obj, f, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(DataError, match=f"{tmp_path}: disk full while writing checkpoint.pt"):
        save_checkpoint(tmp_path / "checkpoint.pt", {"step": 2})

    def torn(obj, f, *a, **k):   # what torch's zip writer raises on a full disk
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", torn)
    with pytest.raises(DataError, match="disk full while writing checkpoint.pt"):
        save_checkpoint(tmp_path / "checkpoint.pt", {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]   # no temporary file left


def test_runs_saved_before_the_gpu_options_stay_the_same_run():
    """issue #28 added loop.grad_checkpointing, loop.compile and dino.crops.on_device: a checkpoint
    whose config snapshot predates them (or sets them otherwise) resumes instead of being retrained."""
    now = to_dict(load_clip_config("paper"))
    old = json.loads(json.dumps(now))
    for key in ("grad_checkpointing", "compile"):
        del old["loop"][key]
    del old["dino"]["crops"]["on_device"]
    assert config_diff(old, now) == []
    assert config_diff(now, to_dict(load_clip_config("paper_l14"))) == ["loop", "model"]   # the lr, the model
