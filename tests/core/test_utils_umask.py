"""Files rsdix writes get the user's umask (a colleague on a shared GPU box can read tables,
checkpoints and models), not tempfile's 0600: tables, figures, checkpoints and model folders."""
from __future__ import annotations

import os
import stat
import tempfile
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rsdix import viz  # noqa: E402
from rsdix.results import write_table  # noqa: E402
from rsdix.utils import atomic_write_text, current_umask, torch_save_atomic, with_umask_mode  # noqa: E402


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                                        (0o002, 0o664, 0o775)])
def test_tables_figures_checkpoints_follow_the_umask(tmp_path, mask, file_mode, dir_mode):
    with umask(mask):
        assert current_umask() == mask
        text = atomic_write_text(tmp_path / "notes.md", "x")
        csv, md = write_table(pd.DataFrame({"a": [1]}), "table", tmp_path / "figs")
        ckpt = torch_save_atomic({"w": torch.zeros(2)}, tmp_path / "run" / "checkpoint.pt")
        fig = plt.figure()
        png = viz.save(fig, tmp_path / "figs" / "f.png")
        plt.close(fig)
        folder = with_umask_mode(tempfile.mkdtemp(dir=tmp_path), directory=True)   # as wordnet install does
    for path in (text, csv, md, ckpt, png):
        assert mode(path) == file_mode, path
    assert mode(tmp_path / "figs") == dir_mode and mode(folder) == dir_mode
    assert not list(tmp_path.rglob(".*.tmp"))               # no temporary file left behind


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_saved_model_folder_follows_the_umask(tmp_path, mask, file_mode, dir_mode):
    from rsdix.models import load_model, save_model  # heavy: open_clip, only for this test

    bundle = load_model("rsdix-tiny")
    with umask(mask):
        folder = save_model(bundle, tmp_path / "models" / "tiny")
    assert mode(folder) == dir_mode
    assert {p.name: mode(p) for p in folder.iterdir()} == {
        "open_clip_model.safetensors": file_mode, "open_clip_config.json": file_mode}


def test_replacing_a_0600_file_gives_the_umask_mode(tmp_path):
    old = tmp_path / "results.csv"
    old.write_text("old")
    old.chmod(0o600)                      # written by an earlier rsdix with tempfile's mode
    with umask(0o022):
        atomic_write_text(old, "new")
    assert mode(old) == 0o644 and old.read_text() == "new"
