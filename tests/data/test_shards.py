"""Webdataset shards (rsdix.data.shards): written as {key}.jpg/.txt/.json tars, read through
webdataset, split across processes and workers without duplicates, trained on as a data.datasets
entry, 2 processes seeing every sample exactly once per epoch (synthetic shards always; UCM's when
the data root is there)."""
from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rsdix import config
from rsdix.cli import main as cli
from rsdix.data.captions import CaptionRecord, write_karpathy
from rsdix.data.shards import ShardDataset, shard_sizes, shard_urls, write_shards
from rsdix.errors import ConfigError, DataError
from rsdix.paths import repo_root
from rsdix.training.clip import build_model, train_clip
from rsdix.training.clip_data import build_train_dataset

HERE = repo_root() / "tests"   # the fixture modules (distributed_worker.py)


def synthetic(root: Path, n: int = 48) -> Path:
    """n RGB images with two captions each (named by the image) and a Karpathy JSON over them."""
    (root / "images").mkdir(parents=True)
    records = []
    for i in range(n):
        pixels = (np.random.RandomState(i).rand(20, 20, 3) * 255).astype("uint8")
        Image.fromarray(pixels).save(root / "images" / f"img.{i}.png")
        records.append(CaptionRecord(f"img.{i}.png", "train", [f"image {i} one", f"image {i} two"]))
    return write_karpathy(records, root / "dataset_syn.json", dataset="syn")


@pytest.fixture
def shards(tmp_path) -> Path:
    caption_file = synthetic(tmp_path / "syn")
    assert cli(["data", "shards", str(caption_file), "--out", str(tmp_path / "shards"), "--shard-size", "12"]) == 0
    return tmp_path / "shards"


def epoch_keys(ds: ShardDataset, world: int, batch: int, workers: int, batches: int | None = None) -> list[list]:
    """What each of ``world`` processes gets from a DataLoader with ``workers`` workers, per batch."""
    out = []
    for rank in range(world):
        ds.configure(rank, world, batch)
        ds.with_keys = True
        n = batches or ds.batches_in_epoch(0)
        loader = iter(torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=workers, collate_fn=list))
        out.append([[k for _, _, k in next(loader)] for _ in range(n)])
    return out


def test_shards_hold_jpg_txt_json_per_key_and_sizes(shards):
    tars = sorted(shards.glob("*.tar"))
    assert [t.name for t in tars] == [f"shard-{i:06d}.tar" for i in range(4)]
    assert json.loads((shards / "sizes.json").read_text()) == {t.name: 12 for t in tars}
    with tarfile.open(tars[0]) as tar:
        names = tar.getnames()
        key = names[0].split(".")[0]
        assert sorted(names[:3]) == [f"{key}.jpg", f"{key}.json", f"{key}.txt"]   # open_clip / RS5M layout
        meta = json.loads(tar.extractfile(f"{key}.json").read())
        caption = tar.extractfile(f"{key}.txt").read().decode()
        assert Image.open(tar.extractfile(f"{key}.jpg")).format == "JPEG"
    i = int(meta["filename"].split(".")[1])
    assert meta["captions"] == [f"image {i} one", f"image {i} two"] and caption == meta["captions"][0]
    assert meta["split"] == "train" and "." not in key
    # shuffled when written: a shard mixes the images, each image once over all shards
    keys = [k for t in tars for k in tarfile.open(t).getnames() if k.endswith(".txt")]
    assert len(set(keys)) == 48 and keys != sorted(keys)
    assert shard_sizes([str(t) for t in tars]) == [12] * 4
    (shards / "sizes.json").unlink()   # counted from the tars when sizes.json is absent
    assert shard_sizes([str(t) for t in tars]) == [12] * 4


@pytest.mark.parametrize("world,workers", [(1, 0), (2, 0), (2, 2), (4, 3)])
def test_an_epoch_is_split_across_processes_and_workers_without_duplicates(shards, world, workers):
    ds = ShardDataset(shard_urls(f"shards:{shards}/shard-{{000000..000003}}.tar"), shuffle_buffer=5)
    per_rank = epoch_keys(ds, world, batch=4, workers=workers)
    seen = [k for rank in per_rank for b in rank for k in b]
    assert ds.dropped() == 0 and len(seen) == 48 and len(set(seen)) == 48
    assert {len(rank) for rank in per_rank} == {48 // (4 * world)}   # every process the same batches
    # the worker count does not change what a process sees, nor in which order
    if workers:
        assert per_rank == epoch_keys(ds, world, batch=4, workers=0)


def test_uneven_shares_drop_a_remainder_never_repeat(tmp_path):
    caption_file = synthetic(tmp_path / "syn", n=30)
    cli(["data", "shards", str(caption_file), "--out", str(tmp_path / "sh"), "--shard-size", "8"])   # 8 8 8 6
    ds = ShardDataset(shard_urls(f"shards:{tmp_path / 'sh'}"), shuffle_buffer=0)
    per_rank = epoch_keys(ds, world=2, batch=3, workers=2)
    seen = [k for rank in per_rank for b in rank for k in b]
    assert len(seen) == len(set(seen)) == 30 - ds.dropped() and 0 < ds.dropped() < 2 * 3 + 2


def test_a_resumed_stream_continues_where_it_stopped(shards):
    ds = ShardDataset(shard_urls(f"shards:{shards}"), shuffle_buffer=7)
    whole = epoch_keys(ds, world=2, batch=4, workers=2, batches=14)   # 2 epochs and 2 batches
    ds.configure(1, 2, 4, start=5)
    ds.with_keys = True
    loader = iter(torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=list))
    assert [[k for _, _, k in next(loader)] for _ in range(9)] == whole[1][5:]
    assert ds.epoch_of(5) == 0 and ds.epoch_of(6) == 1   # 6 batches per process per epoch
    assert whole[1][:6] != whole[1][6:12]                # a new shard order and shuffle each epoch


def test_augmentation_and_caption_draw_follow_the_sample_not_the_worker(shards):
    bundle_cfg = config.load("train", "smoke", overrides=[f"data.datasets=[shards:{shards}]", "data.fraction=1",
                                                                  "loop.batch_size=4"])
    ds = build_train_dataset(bundle_cfg, build_model(bundle_cfg))
    assert isinstance(ds, ShardDataset) and len(ds) == 48
    ds.configure(0, 1, 4)
    ds.with_keys = True
    a = next(iter(torch.utils.data.DataLoader(ds, batch_size=4, num_workers=0, collate_fn=list)))
    b = next(iter(torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=list)))
    for (ia, ca, ka), (ib, cb, kb) in zip(a, b):
        assert ka == kb and ca == cb and torch.equal(ia, ib) and ia.shape[-1] == 32


def test_training_on_shards_resumes_exactly(shards, tmp_path):
    over = [f"data.datasets=[shards:{shards}]", "data.fraction=1", "loop.batch_size=8", "loop.log_every=1", "loop.precision=no",
            "loop.ckpt_every=3", "loop.num_workers=2", "data.cache_images=true"]
    full = train_clip(config.load("train", "smoke", overrides=over + ["loop.steps=8"]), run_dir=tmp_path / "a")
    assert [r["epoch"] for r in full.history] == [0] * 6 + [1] * 2   # 48 images, 6 steps of 8 per epoch
    cfg = config.load("train", "smoke", overrides=over + ["loop.steps=8"])

    def crash(step, terms):   # a run that dies in step 5, after its checkpoint of step 3
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_clip(cfg, run_dir=tmp_path / "b", callbacks=[crash])
    part = train_clip(cfg, run_dir=tmp_path / "b", resume=True)
    assert [r["loss"] for r in part.history] == pytest.approx([r["loss"] for r in full.history], rel=1e-6)


def test_bad_shard_entries_are_one_line(shards, tmp_path, tiny_bundle):
    with pytest.raises(DataError, match="shard-000004.tar: shard not found .6 of 10"):
        shard_urls(f"shards:{shards}/shard-{{000000..000009}}.tar")
    with pytest.raises(DataError, match="no .tar shards"):
        shard_urls(f"shards:{tmp_path}")
    cfg = config.load("train", "smoke", overrides=[f"data.datasets=[shards:{shards},ucm_captions]"])
    with pytest.raises(ConfigError, match="cannot be mixed"):
        build_train_dataset(cfg, tiny_bundle)
    with pytest.raises(ConfigError, match="4 shards for 5 processes"):
        ShardDataset(shard_urls(f"shards:{shards}")).configure(0, 5, 2)
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        for name, data in (("k1.jpg", b"not a jpeg"), ("k1.txt", b"a caption")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    ds = ShardDataset([str(bad)], shuffle_buffer=0).configure(0, 1, 1)
    with pytest.raises(DataError, match=r"bad.tar:k1.jpg: corrupt or unreadable image"):
        next(iter(ds))


def two_process_epochs(shard_dir: Path, root: Path, out: Path, batch: int, steps: int) -> list[list[str]]:
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed beside this Python")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", str(HERE / "distributed_worker.py"), str(out),
           "smoke", f"data.datasets=[shards:{shard_dir}]", "data.fraction=1", f"loop.batch_size={batch}", f"loop.steps={steps}",
           "loop.num_workers=2", "loop.log_every=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RSDIX_NO_PROGRESS": "1", "RSDIX_DATA_ROOT": str(root)}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    got = torch.load(out, weights_only=False)
    assert got["world"] == 2 and len(got["keys"]) == steps
    return got


@pytest.mark.slow
def test_two_processes_see_every_synthetic_sample_once_per_epoch(shards, tmp_path):
    got = two_process_epochs(shards, tmp_path, tmp_path / "keys.pt", batch=8, steps=12)
    for epoch in range(2):   # 48 samples, global batch 8: 6 steps per epoch
        seen = [k for b in got["keys"][6 * epoch:6 * (epoch + 1)] for k in b]
        assert len(seen) == len(set(seen)) == 48
    assert [r["epoch"] for r in got["history"]] == [0] * 6 + [1] * 6


@pytest.mark.data
@pytest.mark.slow
def test_ucm_shards_from_the_cli_and_two_processes_see_each_image_once_per_epoch(ucm_root, tmp_path):
    out = tmp_path / "ucm_test"
    assert cli(["data", "shards", "ucm_captions", "--split", "test", "--out", str(out), "--shard-size", "15",
                "--root", str(ucm_root.parent)]) == 0
    assert sum(json.loads((out / "sizes.json").read_text()).values()) == 210 and len(list(out.glob("*.tar"))) == 14
    got = two_process_epochs(out, ucm_root.parent, tmp_path / "keys.pt", batch=14, steps=30)
    for epoch in range(2):   # 210 test images, 7 shards x 15 per process, 15 steps of 14 per epoch
        seen = [k for b in got["keys"][15 * epoch:15 * (epoch + 1)] for k in b]
        assert len(seen) == len(set(seen)) == 210


def test_an_unreadable_image_in_a_worker_ends_training_with_one_line(shards, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for src in sorted(shards.glob("*.tar")):   # the same shards, one JPEG broken
        with tarfile.open(src) as tin, tarfile.open(bad / src.name, "w") as tout:
            for member in tin:
                data = tin.extractfile(member).read()
                if src.name.endswith("000001.tar") and member.name.endswith(".jpg") and not tout.getmembers():
                    data, broken = b"not a jpeg", member.name
                member.size = len(data)
                tout.addfile(member, io.BytesIO(data))
    cfg = config.load("train", "smoke", overrides=[f"data.datasets=[shards:{bad}]", "data.fraction=1",
                                                  "loop.batch_size=8", "loop.steps=12", "loop.num_workers=2"])
    with pytest.raises(DataError, match=rf"shard-000001.tar:{broken}: corrupt or unreadable image"):
        train_clip(cfg)


def test_png_shards_are_lossless(tmp_path):
    synthetic(tmp_path / "syn", n=4)
    records = [CaptionRecord(f"img.{i}.png", "train", [f"image {i}"]) for i in range(4)]
    write_shards(records, tmp_path / "syn" / "images", tmp_path / "png", shard_size=2, image_format="png")
    ds = ShardDataset(shard_urls(f"shards:{tmp_path / 'png'}"), shuffle_buffer=0).configure(0, 1, 1)
    for image, caption in itertools.islice(ds, 4):   # the stream runs over epochs without end
        i = int(caption.split()[1])
        assert np.array_equal(np.asarray(image), np.asarray(Image.open(tmp_path / "syn" / "images" / f"img.{i}.png")))


# ---------------------------------------------------------------- issue 33: cut-short shards, partial writes

def _cut(shard: Path, keep: float) -> None:
    data = shard.read_bytes()
    shard.write_bytes(data[:int(len(data) * keep)])


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_a_cut_short_shard_is_named_and_with_skip_bad_its_lost_samples_are_counted(shards, keep, caplog):
    _cut(shards / "shard-000001.tar", keep)
    ds = ShardDataset(shard_urls(f"shards:{shards}"), shuffle_buffer=0).configure(0, 1, 4)
    with pytest.raises(DataError, match=r"shard-000001\.tar: cut short .*; rewrite it \(rsdix data shards\)") as err:
        list(itertools.islice(iter(ds), 48))
    assert "\n" not in str(err.value)
    ds = ShardDataset(shard_urls(f"shards:{shards}"), shuffle_buffer=0, skip_bad=True).configure(0, 1, 4)
    got = list(itertools.islice(iter(ds), 96))          # two epochs: every batch still made
    lost = ds.skipped[str(shards / "shard-000001.tar")]
    assert len(got) == 96 and 0 < lost < 12
    assert f"skipped {lost} of its 12 samples (data.skip_bad)" in caplog.text


def test_a_shard_that_is_not_a_tar_is_named_when_counted(tmp_path):
    bad = tmp_path / "sh" / "shard-000000.tar"
    bad.parent.mkdir()
    bad.write_bytes(b"not a tar at all" * 40)
    with pytest.raises(DataError, match=r"shard-000000\.tar: not a readable tar shard \(ReadError"):
        ShardDataset([str(bad)])


def test_data_shards_stopped_by_a_missing_image_leaves_no_partial_shards(tmp_path, capsys):
    caption_file = synthetic(tmp_path / "syn", 30)
    (tmp_path / "syn" / "images" / "img.25.png").unlink()
    out = tmp_path / "shards"
    assert cli(["data", "shards", str(caption_file), "--out", str(out), "--shard-size", "4"]) == 2
    assert "img.25.png: image file not found" in capsys.readouterr().err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["syn"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=r"other: holds files other than shards \(notes\.txt\)"):
        write_shards([CaptionRecord("img.0.png", "train", ["a"])], tmp_path / "syn" / "images", tmp_path / "other")


def test_shards_written_again_replace_the_earlier_ones_whole(tmp_path):
    caption_file = synthetic(tmp_path / "syn", 24)
    out = tmp_path / "shards"
    assert cli(["data", "shards", str(caption_file), "--out", str(out), "--shard-size", "4"]) == 0
    assert cli(["data", "shards", str(caption_file), "--out", str(out), "--shard-size", "12"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["shard-000000.tar", "shard-000001.tar", "sizes.json"]


def test_a_killed_shard_writes_partial_folder_is_cleared_by_the_next_write(tmp_path):
    """A `data shards` killed mid-write (SIGKILL: no finally) left `.shards.partial-*` beside the
    output for good; the next write now removes the folders of processes no longer running."""
    caption_file = synthetic(tmp_path / "syn", 8)
    code = ("import sys, rsdix.data.shards as s; orig = s._write_into\n"
            "def stop(*a, **k):\n    r = orig(*a, **k); import os; os._exit(9)\n"
            "s._write_into = stop\nfrom rsdix.cli import main; main(sys.argv[1:])\n")
    done = subprocess.run([sys.executable, "-c", code, "data", "shards", str(caption_file), "--out",
                           str(tmp_path / "shards"), "--shard-size", "4"], cwd=repo_root(), capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(repo_root())}, check=False)
    assert done.returncode == 9
    left = [p.name for p in tmp_path.iterdir() if ".partial" in p.name]
    assert len(left) == 1 and left[0].endswith(".tmp")
    assert cli(["data", "shards", str(caption_file), "--out", str(tmp_path / "shards"), "--shard-size", "4"]) == 0
    assert [p.name for p in tmp_path.iterdir() if ".partial" in p.name] == []
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["shard-000000.tar", "shard-000001.tar", "sizes.json"]
