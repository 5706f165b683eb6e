"""Webdataset shards: caption datasets written as tar files of ``{key}.jpg`` + ``{key}.txt`` +
``{key}.json`` (the format of RS5M and open_clip), read back as a stream through the
``webdataset`` library for runs on more images than a folder dataset serves well.

    write_shards(records, image_dir, "shards/ucm", shard_size=100)   # shard-000000.tar ... + sizes.json
    ds = ShardDataset(shard_urls("shards:shards/ucm/shard-{000000..000020}.tar"), transform)
    ds.configure(rank=0, world=2, batch_size=8)       # what rsdix.training.loop.fit does
    for image, caption in ds: ...

``.txt`` holds the first caption (what open_clip reads); ``.json`` holds all captions, their
languages, the file name, split and dataset, and :class:`ShardDataset` draws one caption per image
and epoch from it (seeded, like the folder datasets). ``sizes.json`` beside the shards (open_clip's
name) records the samples per shard; without it the shards are counted once when opened.

The split across processes and data-loader workers: in epoch ``e`` the shards are put in an order
seeded by (seed, e) and process ``r`` of ``W`` reads shards ``r, r + W, ...`` of it (each shard is
read by one process), its samples passed through a seeded shuffle buffer; every process makes the
same number of batches in an epoch (the smallest process share divided by its batch, so a process
never waits for a batch another one lacks), and local batch ``b`` is made by worker ``b % K`` of the
``K`` data-loader workers, so the loader hands them out in order. Every sample is seen at most once
per epoch, and exactly once when the shards hold the same number of samples and their count is a
multiple of ``W`` (what :func:`write_shards` makes, the last shard aside); the dropped remainder is in
:meth:`ShardDataset.dropped`. Augmentation and caption draws are seeded by (seed, epoch, key), so
they do not depend on the number of workers.
"""
from __future__ import annotations

import io
import json
import os
import random
import re
import shutil
import tarfile
import tempfile
import warnings
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import webdataset as wds
from PIL import Image, UnidentifiedImageError
from webdataset.shardlists import expand_urls

from rsdix.data.captions import CaptionRecord, find_image_dir, read_captions_dropping_empty, select_split
from rsdix.data.images import check_size, load_image
from rsdix.data.registry import caption_file
from rsdix.errors import ConfigError, DataError
from rsdix.log import get_logger
from rsdix.utils import atomic_path, atomic_write_text, progress, remove_stale_temps, temp_tag, with_umask_mode

log = get_logger(__name__)

PREFIX = "shards:"
SIZES = "sizes.json"
IMAGE_KEYS = ("jpg", "jpeg", "png", "webp", "tif", "tiff")


def is_shard_spec(name) -> bool:
    """A ``data.datasets`` entry naming shards: ``shards:PATH`` (a folder of ``.tar`` files or a
    brace pattern) or a path / pattern ending in ``.tar``."""
    return str(name).startswith(PREFIX) or str(name).endswith(".tar")


def sample_key(index: int, filename: str) -> str:
    """A webdataset key: no dots (webdataset splits the extension at the first dot), unique by index."""
    return f"{index:08d}_" + re.sub(r"[^A-Za-z0-9_-]", "_", Path(filename).stem)


def _image_bytes(path: Path, image_format: str) -> bytes:
    if image_format == "jpg" and path.suffix.lower() in (".jpg", ".jpeg"):
        load_image(path)  # checked like any training image, then copied as it is
        return path.read_bytes()
    buf = io.BytesIO()
    load_image(path).save(buf, format="JPEG" if image_format == "jpg" else "PNG",
                          **({"quality": 95} if image_format == "jpg" else {}))
    return buf.getvalue()


def write_shards(records: Sequence[CaptionRecord], image_dir, out_dir, shard_size: int = 1000,
                 prefix: str = "shard", image_format: str = "jpg", seed: int = 0, shuffle: bool = True,
                 dataset: str = "") -> list[Path]:
    """Write ``records`` (images under ``image_dir``) as shards ``out_dir/{prefix}-000000.tar`` ...
    of ``shard_size`` samples each (the last one smaller) and ``out_dir/sizes.json``.

    Images are stored as JPEG (``image_format="jpg"``: JPEG files copied unchanged, others encoded at
    quality 95) or PNG (``"png"``, lossless). ``shuffle`` writes the samples in a seeded random order
    (a shard then mixes classes, as a training stream needs). The shards are written into a
    temporary folder beside ``out_dir`` and moved into place only when all are complete, so a write
    stopped midway (a missing image) leaves no partial shards in ``out_dir``. Returns the shard paths.
    """
    if image_format not in ("jpg", "png"):
        raise ConfigError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    if shard_size < 1:
        raise ConfigError(f"shard_size must be >= 1, got {shard_size}")
    records = list(records)
    if not records:
        raise DataError(out_dir, "no records to write")
    order = list(range(len(records)))
    if shuffle:
        random.Random(f"shards-{seed}").shuffle(order)
    out, image_dir = Path(out_dir), Path(image_dir)
    check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out.parent)   # a killed write's partial folder (its process gone) goes
    work = with_umask_mode(tempfile.mkdtemp(prefix=f".{out.name}.partial.{temp_tag()}-", suffix=".tmp",
                                            dir=out.parent), directory=True)
    try:
        sizes = _write_into(records, order, image_dir, work, shard_size, prefix, image_format, dataset, out.name)
        atomic_write_text(work / SIZES, json.dumps(sizes, indent=1) + "\n")
        if out.exists():   # earlier shards: replaced whole, so none of theirs is left among the new ones
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(work, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)   # gone after the move; a failed write leaves nothing
    return [out / name for name in sizes]


def check_replaceable(out: Path) -> None:
    """``out`` may receive shards: absent, or a folder holding only shards and ``sizes.json`` (an
    earlier write, replaced whole); anything else there is a DataError (``--out`` of another folder)."""
    if out.exists() and not out.is_dir():
        raise DataError(out, "not a folder: give a new or empty folder for the shards")
    others = sorted(p.name for p in out.iterdir() if p.suffix != ".tar" and p.name != SIZES) if out.is_dir() else []
    if others:
        raise DataError(out, f"holds files other than shards ({', '.join(others[:3])}); give a new or empty "
                             f"folder (the shards replace the folder's content when complete)")


def _write_into(records, order, image_dir: Path, folder: Path, shard_size: int, prefix: str, image_format: str,
                dataset: str, name: str) -> dict:
    """Write the shards into ``folder``; returns ``{shard name: samples}``."""
    sizes = {}
    ext = "jpg" if image_format == "jpg" else "png"
    bar = progress(total=len(order), desc=f"shards {name}", unit="image")
    for s, first in enumerate(range(0, len(order), shard_size)):
        path = folder / f"{prefix}-{s:06d}.tar"
        chunk = order[first:first + shard_size]
        with atomic_path(path) as tmp, wds.TarWriter(str(tmp)) as sink:
            for i in chunk:
                rec = records[i]
                meta = {"captions": list(rec.captions), "langs": list(rec.langs), "filename": rec.filename,
                        "split": rec.split, "dataset": dataset}
                sink.write({"__key__": sample_key(i, rec.filename), ext: _image_bytes(image_dir / rec.filename, ext),
                            "txt": rec.captions[0], "json": json.dumps(meta, ensure_ascii=False)})
                bar.update(1)
        sizes[path.name] = len(chunk)
    bar.close()
    return sizes


def shard_urls(spec: str, data_root=None) -> list[str]:
    """The shard files of a ``data.datasets`` entry (see :func:`is_shard_spec`); a relative path is
    looked up under ``data_root`` too. Every file must exist."""
    text = str(spec)[len(PREFIX):] if str(spec).startswith(PREFIX) else str(spec)
    if not text:
        raise ConfigError(f"data.datasets: {spec!r} names no shards (shards:FOLDER or shards:PATTERN.tar)")
    base = Path(text.split("{")[0] or ".")
    if not base.is_absolute() and not base.exists() and data_root is not None:
        text = str(Path(data_root) / text)
    path = Path(text)
    if path.is_dir():
        urls = sorted(str(p) for p in path.glob("*.tar"))
        if not urls:
            raise DataError(path, "no .tar shards in this folder")
        return urls
    urls = list(expand_urls(text))
    missing = [u for u in urls if not Path(u).is_file()]
    if missing:
        raise DataError(missing[0], f"shard not found ({len(missing)} of {len(urls)} shards of {spec} missing)")
    return urls


def inspect_shard(url: str) -> tuple[int, str | None]:
    """``(complete samples, problem)`` of one tar shard, reading its headers only: the problem (None
    when whole) when it is not a tar, a member's data runs past the end of the file, or the
    end-of-archive marker every finished tar ends with is missing (a shard cut short at a member
    boundary reads as a shorter tar without this check)."""
    keys: dict[str, set] = {}
    try:
        size = Path(url).stat().st_size
        with tarfile.open(url) as tar:
            for member in tar:
                if member.offset_data + member.size > size:
                    return _complete(keys), f"cut short inside {member.name} (truncated copy or interrupted write)"
                if member.isfile() and "." in Path(member.name).name:
                    key, ext = member.name.split(".", 1)
                    keys.setdefault(key, set()).add(ext.lower())
            end = tar.offset
        with open(url, "rb") as fh:
            fh.seek(end)
            tail = fh.read(1024)
    except (tarfile.TarError, OSError, EOFError) as exc:
        reason = f"{exc.__class__.__name__}: {' '.join(str(exc).split())[:160]}"
        if keys:
            return _complete(keys), f"cut short or damaged after {_complete(keys)} whole sample(s) ({reason})"
        return 0, f"not a readable tar shard ({reason})"
    if len(tail) < 1024 or tail.strip(b"\0"):
        return _complete(keys), f"cut short after {_complete(keys)} whole sample(s): no end-of-archive marker"
    return len(keys), None


def _complete(keys: dict) -> int:
    """Samples that hold an image and a caption (the last one of a cut shard may lack either)."""
    return sum(1 for exts in keys.values() if exts & set(IMAGE_KEYS) and exts & {"txt", "json"})


def count_samples(url: str, skip_bad: bool = False) -> int:
    """Samples (distinct keys) in one tar shard; a damaged shard is a DataError naming it, or with
    ``skip_bad`` counts its complete samples."""
    n, problem = inspect_shard(url)
    if problem is not None and not skip_bad:
        raise DataError(url, f"{problem}; rewrite it (rsdix data shards), or skip what it lost with "
                             f"data.skip_bad=true")
    return n


def shard_sizes(urls: Sequence[str], skip_bad: bool = False) -> list[int]:
    """Samples per shard, from ``sizes.json`` beside the shards where it lists them, else counted
    (:func:`count_samples`)."""
    listed: dict = {}
    for folder in sorted({str(Path(u).parent) for u in urls}):
        f = Path(folder) / SIZES
        if f.exists():
            try:
                listed.update({str(Path(folder) / k): int(v) for k, v in json.loads(f.read_text()).items()})
            except (ValueError, AttributeError) as exc:
                raise DataError(f, f"not a {{shard: count}} JSON object ({exc})") from exc
    return [listed[u] if u in listed else count_samples(u, skip_bad) for u in urls]


def _decode_image(sample: dict) -> Image.Image:
    where = f"{sample.get('__url__', '?')}:{sample.get('__key__', '?')}"
    ext = next((k for k in IMAGE_KEYS if k in sample), None)
    if ext is None:
        raise DataError(where, f"sample has no image (one of .{', .'.join(IMAGE_KEYS)})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(sample[ext])) as im:
                check_size(f"{where}.{ext}", *im.size)
                return im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as exc:
        raise DataError(f"{where}.{ext}", f"corrupt or unreadable image ({exc.__class__.__name__}: {exc})") from exc


def _captions(sample: dict) -> list[str]:
    where = f"{sample.get('__url__', '?')}:{sample.get('__key__', '?')}"
    if "json" in sample:
        try:
            caps = json.loads(sample["json"]).get("captions")
        except (ValueError, AttributeError) as exc:
            raise DataError(f"{where}.json", f"not a JSON object ({exc})") from exc
        if caps is not None:
            if not isinstance(caps, list) or not caps or not all(isinstance(c, str) and c.strip() for c in caps):
                raise DataError(f"{where}.json", "'captions' must be a non-empty list of non-empty strings")
            return caps
    if "txt" in sample:
        text = sample["txt"].decode("utf-8", errors="strict").strip()
        if text:
            return [text]
    raise DataError(where, "sample has no caption (.txt or .json 'captions')")


def _seed(*parts) -> int:
    return zlib.crc32("-".join(map(str, parts)).encode()) & 0x7FFFFFFF


class ShardDataset(torch.utils.data.IterableDataset):
    """A stream of ``(image, caption)`` from webdataset shards, split across processes and workers.

    ``urls``: the shard files (:func:`shard_urls`); ``transform``: applied to the PIL image under
    RNGs seeded by (seed, epoch, key); ``shuffle_buffer``: samples held for the seeded in-process
    shuffle (0: shard order). :meth:`configure` sets the process, the world size, the local batch and
    the local batch to start from (a resume); the stream then runs over epochs without end.

    A shard cut short (:func:`inspect_shard`) or a sample that does not decode is a DataError naming
    it. With ``skip_bad``, the samples a cut shard lost and the samples that do not decode are skipped
    and counted (``skipped``: shard or sample -> count, each also a log warning); their places in the
    epoch are filled by repeats (a cut shard: samples read again from the start of this process's
    share; a bad sample: another sample of its batch), so every process still makes the same batches.
    """

    def __init__(self, urls: Sequence[str], transform: Callable | None = None, seed: int = 0,
                 shuffle_buffer: int = 1000, source: str = "shards", skip_bad: bool = False):
        self.urls = list(urls)
        if not self.urls:
            raise DataError(source, "no shards")
        self.transform, self.seed, self.shuffle_buffer, self.source = transform, seed, shuffle_buffer, source
        self.skip_bad, self.skipped, self._checked = skip_bad, {}, {}
        self.sizes = shard_sizes(self.urls, skip_bad)
        self.rank, self.world, self.batch, self.start = 0, 1, 1, 0
        self.with_keys = False  # items (image, caption, key): which sample each one was, for checks

    def __len__(self) -> int:
        return sum(self.sizes)

    def configure(self, rank: int = 0, world: int = 1, batch_size: int = 1, start: int = 0) -> "ShardDataset":
        if len(self.urls) < world:
            raise ConfigError(f"{self.source}: {len(self.urls)} shards for {world} processes; write at least "
                              f"one shard per process (rsdix data shards --shard-size)")
        self.rank, self.world, self.batch, self.start = rank, world, batch_size, start
        if self.batches_in_epoch(0) < 1:
            raise ConfigError(f"{self.source}: a process's share of the shards holds fewer samples than one "
                              f"batch of {batch_size}")
        return self

    def _shards(self, epoch: int, rank: int) -> list[int]:
        order = list(range(len(self.urls)))
        random.Random(_seed("shard-order", self.seed, epoch)).shuffle(order)
        return order[rank::self.world]

    def batches_in_epoch(self, epoch: int) -> int:
        """Local batches every process makes in ``epoch`` (the same on all processes)."""
        return min(sum(self.sizes[i] for i in self._shards(epoch, r)) for r in range(self.world)) // self.batch

    def dropped(self, epoch: int = 0) -> int:
        """Samples of ``epoch`` no process sees (the remainder of uneven shares)."""
        return len(self) - self.batches_in_epoch(epoch) * self.batch * self.world

    def locate(self, batch: int) -> tuple[int, int]:
        """(epoch, batch within it) of this process's local batch number ``batch``."""
        epoch = 0
        while batch >= (n := self.batches_in_epoch(epoch)):
            batch, epoch = batch - n, epoch + 1
        return epoch, batch

    def epoch_of(self, batch: int) -> int:
        return self.locate(batch)[0]

    def _raw(self, epoch: int):
        urls = [self.urls[i] for i in self._shards(epoch, self.rank)]
        samples = (s for url in urls for s in self._shard_samples(url))
        if self.shuffle_buffer <= 1:
            yield from samples
            return
        rng, buf = random.Random(_seed("buffer", self.seed, epoch, self.rank)), []
        for s in samples:
            buf.append(s)
            if len(buf) >= self.shuffle_buffer:
                j = rng.randrange(len(buf))
                buf[j], buf[-1] = buf[-1], buf[j]
                yield buf.pop()
        rng.shuffle(buf)
        yield from buf

    def _shard_samples(self, url: str):
        """The samples of one shard through webdataset; a damaged shard is a DataError naming it,
        or with ``skip_bad`` gives its complete samples and counts the rest."""
        if url not in self._checked:
            self._checked[url] = inspect_shard(url)
        complete, problem = self._checked[url]
        if problem is not None and not self.skip_bad:
            raise DataError(url, f"{problem}; rewrite it (rsdix data shards), or skip what it lost with "
                                 f"data.skip_bad=true")
        expected, read = self.sizes[self.urls.index(url)], 0
        try:
            for sample in wds.DataPipeline(wds.SimpleShardList([url]), wds.tarfile_to_samples()):
                if read >= complete and problem is not None:
                    break   # the cut sample at the end
                read += 1
                yield sample
        except (tarfile.TarError, OSError, ValueError, EOFError) as exc:   # what webdataset meets in a damaged tar
            if not self.skip_bad:
                raise DataError(url, f"unreadable shard ({exc.__class__.__name__}: "
                                     f"{' '.join(str(exc).split(' @ ')[0].split())[:160]})") from exc
        if read < expected and url not in self.skipped:
            if not self.skip_bad:
                raise DataError(url, f"holds {read} sample(s) where {SIZES} lists {expected}: rewrite the "
                                     f"shards (rsdix data shards)")
            self.skipped[url] = expected - read
            log.warning(f"{url}: {problem or 'ends early'}; skipped {expected - read} of its {expected} "
                        f"samples (data.skip_bad)")

    def _stream(self, epoch: int):
        """:meth:`_raw` without end: with ``skip_bad``, samples a cut shard lost are made up by reading
        this process's share again from its start; without, running out is a DataError."""
        while True:
            produced = 0
            for s in self._raw(epoch):
                produced += 1
                yield s
            if not self.skip_bad or produced == 0:
                raise DataError(self.source, "the shards hold fewer samples than their sizes promise "
                                             f"(epoch {epoch}, process {self.rank}); rewrite them")

    def decode_batch(self, items: list, epoch: int) -> list:
        """The decoded items of one batch; with ``skip_bad`` a sample that does not decode is counted
        and replaced by the next one of the batch that does (wrapping around)."""
        if not self.skip_bad:
            return [self.decode(s, epoch) for s in items]
        out, bad = [None] * len(items), {}
        for i in range(len(items)):
            for j in [i, *range(i + 1, len(items)), *range(i)]:
                if j in bad:
                    continue
                try:
                    out[i] = self.decode(items[j], epoch)
                    break
                except DataError as exc:
                    bad[j] = exc
                    where = f"{items[j].get('__url__', '?')}:{items[j].get('__key__', '?')}"
                    if where not in self.skipped:
                        self.skipped[where] = 1
                        log.warning(f"{exc}; skipped (data.skip_bad), its place taken by another sample of the batch")
            if out[i] is None:
                raise DataError(self.source, f"no sample of a batch decodes: {next(iter(bad.values()))}")
        return out

    def decode(self, sample: dict, epoch: int):
        image, captions = _decode_image(sample), _captions(sample)
        s = _seed(self.seed, epoch, sample["__key__"])
        caption = captions[random.Random(s).randrange(len(captions))]
        extra = (sample["__key__"],) if self.with_keys else ()
        if self.transform is None:
            return (image, caption, *extra)
        # the augmentation depends on (seed, epoch, key) only; the worker's RNG streams are restored
        torch_state, py_state = torch.default_generator.get_state(), random.getstate()
        torch.default_generator.manual_seed(s)
        random.seed(s)
        np.random.seed(s)
        try:
            return (self.transform(image), caption, *extra)
        finally:
            torch.default_generator.set_state(torch_state)
            random.setstate(py_state)

    def keys(self, epoch: int = 0) -> list[str]:
        """The keys this process reads in ``epoch``, in order (for checks; no decoding)."""
        n = self.batches_in_epoch(epoch) * self.batch
        return [s["__key__"] for _, s in zip(range(n), self._stream(epoch))]

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        epoch, offset = self.locate(self.start)
        g = self.start
        while True:
            raw = self._stream(epoch)
            for _ in range(offset * self.batch):  # a resume: skip what was seen, without decoding
                next(raw)
            for _ in range(offset, self.batches_in_epoch(epoch)):
                items = [next(raw) for _ in range(self.batch)]
                if (g - self.start) % workers == worker:
                    yield from self.decode_batch(items, epoch)
                g += 1
            epoch, offset = epoch + 1, 0


def write_dataset_shards(name, out_dir, split: str | None = "train", shard_size: int = 1000,
                         image_format: str = "jpg", root=None, seed: int = 0) -> list[Path]:
    """``rsdix data shards NAME --out DIR``: a registry caption dataset (or a caption file) written
    as shards, one split (``None``: every split; the split is kept in each sample's ``.json``)."""
    path = Path(name) if str(name).endswith((".json", ".csv", ".tsv")) else caption_file(name, root)
    records = select_split(read_captions_dropping_empty(path), split, path) if split else read_captions_dropping_empty(path)
    return write_shards(records, find_image_dir(path), out_dir, shard_size=shard_size, image_format=image_format,
                        seed=seed, dataset=Path(path).stem if str(name).endswith((".json", ".csv", ".tsv")) else str(name))
