"""The metrics of a study run, with every query's outcome: retrieval on the configured caption sets
(``EfficiencyConfig.retrieval``: UCM-Captions test by default, or only some classes' images in the
pretrained regime), validation mR for the learning curves, and zero-shot top-1 on each zero-shot set
(WHU-RS19, EuroSAT-MS). The numbers are notebook 05's (:class:`rsdix.evaluation.quick_check.QuickCheck`):
the same preprocessing, features, ``torch.topk`` hits (the field's tie convention of
:func:`rsdix.evaluation.retrieval.topk_recall`), templates and class embeddings. Images are decoded
and preprocessed once per process.

Every query's hits are kept (:meth:`EndpointCheck.evaluate`): per retrieval image its image->text
hits at 1/5/10, per caption its text->image hits and its image, per zero-shot image whether it was
right, so the hierarchical bootstrap (:mod:`rsdix.studies.efficiency.bootstrap`) can resample test
images as well as seeds.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from rsdix.data.captions import CaptionDataset, find_image_dir, read_captions_dropping_empty, select_split
from rsdix.data.registry import caption_file, get_info
from rsdix.errors import DataError
from rsdix.evaluation.datasets import load_classification, split_label
from rsdix.evaluation.quick_check import QUICK_TEMPLATES
from rsdix.evaluation.zero_shot import class_embeddings
from rsdix.studies.efficiency.design import RetrievalSpec
from rsdix.utils import progress

RETRIEVAL_TITLE = "UCM"
KS = (1, 5, 10)


def dataset_title(name: str) -> str:
    """``whu_rs19`` -> ``WHU-RS19`` (the registry's title)."""
    try:
        return get_info(name, "classification").title
    except DataError:  # a path or a key the registry lacks: keep the name
        return name


def read_labels(dataset: str, labels: str, data_root=None) -> dict[str, str]:
    """``filename -> class`` from the CSV ``labels`` (``filename,label``) beside ``dataset``'s caption file."""
    path = caption_file(dataset, data_root).parent / labels
    if not path.is_file():
        raise DataError(path, "class labels not found (filename,label)")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"filename", "label"} <= set(rows[0]):
        raise DataError(path, "expected the columns filename,label")
    return {r["filename"]: r["label"] for r in rows}


@torch.no_grad()
def encode_images(model, x: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    return torch.cat([model.encode_image(x[i:i + batch_size], normalize=True).float()
                      for i in range(0, len(x), batch_size)])


@torch.no_grad()
def encode_texts(model, tokenizer, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    return torch.cat([model.encode_text(tokenizer(list(texts[i:i + batch_size])), normalize=True).float()
                      for i in range(0, len(texts), batch_size)])


def query_hits(img: torch.Tensor, txt: torch.Tensor, owner: torch.Tensor, ks=KS) -> tuple[np.ndarray, np.ndarray]:
    """``(i2t, t2i)`` boolean hits, ``(images, len(ks))`` and ``(texts, len(ks))``: the per-query form of
    :func:`rsdix.evaluation.retrieval.topk_recall` (``scores = text @ image.T``, ``torch.topk`` per k; an
    image hits when any of its captions is among its top k). Their means are its recalls."""
    scores = txt @ img.T
    rows = torch.arange(len(img))[:, None]
    t2i = [(scores.topk(min(k, len(img)), dim=1).indices == owner[:, None]).any(dim=1) for k in ks]
    i2t = [(owner[scores.T.topk(min(k, len(txt)), dim=1).indices] == rows).any(dim=1) for k in ks]
    return torch.stack(i2t, 1).numpy(), torch.stack(t2i, 1).numpy()


def recalls(i2t: np.ndarray, t2i: np.ndarray, ks=KS) -> dict[str, float]:
    """``i2t_R@k``, ``t2i_R@k`` (percent) and their mean ``mR`` from per-query hits."""
    out = {f"i2t_R@{k}": 100.0 * float(i2t[:, j].mean()) for j, k in enumerate(ks)}
    out.update({f"t2i_R@{k}": 100.0 * float(t2i[:, j].mean()) for j, k in enumerate(ks)})
    out["mR"] = float(np.mean(list(out.values())))
    return out


class RetrievalSet:
    """The images (preprocessed once) and captions of one :class:`RetrievalSpec`; ``keep``: the image
    file names to keep (a class subset), None for all."""

    def __init__(self, bundle, spec: RetrievalSpec, data_root=None, keep: set | None = None,
                 max_images: int | None = None):
        path = caption_file(spec.dataset, data_root)
        records = select_split(read_captions_dropping_empty(path), spec.split, path)
        if keep is not None:
            records = [r for r in records if r.filename in keep]
        if not records:
            raise DataError(path, f"no {spec.split} images of the classes asked for ({spec.classes})")
        self.split = spec.split
        if max_images is not None and len(records) > max_images:   # evenly spaced: the dry run's caps
            total = len(records)
            records = [records[int(i * total / max_images)] for i in range(max_images)]
            self.split = f"{spec.split}: {max_images} of {total}"
        ds = CaptionDataset(records, find_image_dir(path), transform=bundle.preprocess_val, mode="eval", source=path)
        self.spec, self.texts = spec, ds.texts()
        self.owner = torch.tensor(ds.text_to_image())
        self.images = torch.stack([ds[i] for i in progress(range(len(ds)), desc=f"{spec.title} {spec.split}",
                                                            leave=False)])

    def hits(self, bundle) -> tuple[np.ndarray, np.ndarray]:
        img = encode_images(bundle.model, self.images)
        txt = encode_texts(bundle.model, bundle.tokenizer, self.texts)
        return query_hits(img, txt, self.owner)


class ZeroShotSet:
    """A zero-shot classification set, preprocessed once; ``correct(bundle)`` -> per-image 0/1."""

    def __init__(self, bundle, name: str, data_root=None, max_images: int | None = None,
                 templates=QUICK_TEMPLATES):
        cls = load_classification(name, data_root, max_images=max_images, seed=0)
        cls.transform = bundle.preprocess_val
        self.title, self.split, self.templates = dataset_title(name), split_label("all", cls), templates
        items = [cls[i] for i in progress(range(len(cls)), desc=f"{self.title} images", leave=False)]
        self.images = torch.stack([x[0] if isinstance(x, tuple) else x for x in items])
        self.labels, self.names = torch.tensor(cls.labels), cls.class_names

    def correct(self, bundle) -> np.ndarray:
        scores = encode_images(bundle.model, self.images) @ class_embeddings(bundle, self.names, self.templates).t()
        return (scores.argmax(dim=1) == self.labels).numpy()


class EndpointCheck:
    """``check(bundle) -> {(dataset, task, metric, split): value}`` for a trained study model;
    :meth:`evaluate` also returns every query's outcome. ``keep``: RetrievalSpec.classes -> the image
    file names of those classes (``all`` needs none)."""

    def __init__(self, bundle, data_root=None, zero_shot: Sequence[str] = ("whu_rs19", "eurosat_ms"),
                 zero_shot_max: int | None = None, retrieval: Sequence[RetrievalSpec] = (RetrievalSpec(),),
                 val: RetrievalSpec | None = None, keep: dict | None = None, retrieval_max: int | None = None):
        keep = keep or {}
        val = val or RetrievalSpec(split="val")
        self.sets = [RetrievalSet(bundle, s, data_root, keep.get(s.classes), retrieval_max) for s in retrieval]
        self.val = RetrievalSet(bundle, val, data_root, keep.get(val.classes), retrieval_max)
        self.zs = [ZeroShotSet(bundle, name, data_root, zero_shot_max) for name in zero_shot]
        self.n_images = {s.spec.title: len(s.images) for s in self.sets}
        self.n_images.update({z.title: len(z.images) for z in self.zs})

    def val_mR(self, bundle) -> float:
        with _eval(bundle.model):
            return recalls(*self.val.hits(bundle))["mR"]

    def __call__(self, bundle) -> dict:
        return self.evaluate(bundle)[0]

    @torch.no_grad()
    def evaluate(self, bundle) -> tuple[dict, pd.DataFrame]:
        out, parts = {}, []
        with _eval(bundle.model):
            for s in self.sets:
                i2t, t2i = s.hits(bundle)
                for key, value in recalls(i2t, t2i).items():
                    out[(s.spec.title, "retrieval", key, s.split)] = value
                parts.append(query_frame(s.spec.title, "i2t", np.arange(len(i2t)), i2t))
                parts.append(query_frame(s.spec.title, "t2i", s.owner.numpy(), t2i))
            if len(self.sets) > 1:   # the mean over the sets: one endpoint
                mean = float(np.mean([out[(s.spec.title, "retrieval", "mR", s.split)] for s in self.sets]))
                out[(mean_title(self.sets), "retrieval", "mR", self.sets[0].split)] = mean
            val = self.val
            out[(val.spec.title, "retrieval", "mR", val.split)] = recalls(*val.hits(bundle))["mR"]
            for z in self.zs:
                right = z.correct(bundle)
                out[(z.title, "zero-shot", "top1", z.split)] = 100.0 * float(right.mean())
                parts.append(query_frame(z.title, "zs", np.arange(len(right)), right[:, None]))
        return out, pd.concat(parts, ignore_index=True)


def mean_title(sets) -> str:
    return "mean of " + " + ".join(s.spec.title for s in sets)


def query_frame(title: str, kind: str, image: np.ndarray, hits: np.ndarray) -> pd.DataFrame:
    """One row per query: the set, the kind (i2t | t2i | zs), the image it belongs to, and its hits as
    bits (hit@1 + 2 hit@5 + 4 hit@10; zero-shot: 1 if right)."""
    bits = sum(hits[:, j].astype(np.int64) << j for j in range(hits.shape[1]))
    return pd.DataFrame({"set": title, "kind": kind, "image": image.astype(np.int64), "bits": bits})


def hits_of(frame: pd.DataFrame, title: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """``(image, hits)`` of one set and kind back from a query frame (hits: ``(queries, 3)`` or ``(queries, 1)``)."""
    sub = frame[(frame["set"] == title) & (frame["kind"] == kind)]
    width = 1 if kind == "zs" else len(KS)
    bits = sub["bits"].to_numpy()
    return sub["image"].to_numpy(), np.stack([(bits >> j) & 1 for j in range(width)], 1).astype(bool)


def write_queries(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False, compression="gzip")
    tmp.replace(path)


class _eval:
    """The model in eval mode inside the block, its own mode after."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.was = self.model.training
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was)
