"""Split manifests: the exact files an evaluation under a protocol reads (the protocol's split rule
applied to a registry dataset as the evaluate config sizes it), with a SHA-256 per file
(:mod:`rsdix.data.manifest`). Every result row carries the hash of its manifest (column
``manifest``); the manifests of the sets in the shared data root are committed under
``rsdix/evaluation/protocols/manifests/`` (``rsdix data manifest NAME --protocol P``).

    frame, header = dataset_manifest("whu_rs19", get_protocol("remoteclip"), load_eval_config("cpu"))
    write_dataset_manifests("whu_rs19", ["all"], out_dir)   # one file per distinct file list
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from rsdix.data.captions import CaptionDataset
from rsdix.data.classification import ClassificationDataset
from rsdix.data.manifest import build_manifest, manifest_hash, write_manifest
from rsdix.data.registry import get_info
from rsdix.errors import DataError
from rsdix.evaluation.datasets import load_classification, load_retrieval
from rsdix.evaluation.protocols import HERE, Protocol, get_protocol, protocols, zero_shot_indices
from rsdix.paths import data_root as resolve_root

MANIFEST_DIR = HERE / "manifests"


def classification_manifest(dataset: ClassificationDataset, root: str | os.PathLike,
                            indices: Sequence[int] | None = None) -> pd.DataFrame:
    """The images of a classification set (``indices`` only, when given), labelled by class folder."""
    samples = dataset.samples if indices is None else [dataset.samples[i] for i in indices]
    return build_manifest([p for p, _ in samples], [dataset.classes[label] for _, label in samples], root)


def caption_manifest(dataset: CaptionDataset, root: str | os.PathLike, split: str) -> pd.DataFrame:
    """The images of a caption split (label: the split) and the caption file itself (label
    ``captions``: its hash covers every caption the queries are made of)."""
    images = build_manifest([dataset.image_dir / f for f in dataset.filenames()], [split] * len(dataset), root)
    captions = build_manifest([dataset.source], ["captions"], root)
    return pd.concat([images, captions], ignore_index=True)


def zero_shot_selection(protocol: Protocol, name: str, dataset: ClassificationDataset,
                        root: str | os.PathLike) -> tuple[np.ndarray | None, str]:
    """``(indices or None, note)`` of the images ``protocol`` scores zero-shot on in ``dataset``."""
    return zero_shot_indices(protocol, name, [p for p, _ in dataset.samples], dataset.labels, root)


def manifest_rule(protocol: Protocol, kind: str, split: str) -> str:
    """The part of a manifest's file name that says which images: the caption split, or the
    protocol's zero-shot image rule (``all``, ``sorted_80_20``, ``<protocol>_list``)."""
    if kind == "captions":
        return split
    if protocol.test_images == "lists" and (protocol.lists or {}):
        return f"{protocol.name}_list"
    return "all" if protocol.test_images == "lists" else protocol.test_images


def dataset_manifest(name: str, protocol: Protocol, config, root: str | os.PathLike | None = None
                     ) -> tuple[pd.DataFrame, dict]:
    """``(rows, header)``: the files ``rsdix evaluate`` reads for registry dataset ``name`` under
    ``protocol`` with ``config`` (an EvalConfig: ``split_from``, ``max_images``, ``retrieval_split``):
    a classification set's zero-shot images, or a caption set's retrieval split and caption file."""
    info = get_info(name)
    base = resolve_root(root)
    if info.kind == "classification":
        ds = load_classification(info.name, root, config.max_images, config.split_seed,
                                 split_from=config.split_from.get(info.name))
        indices, note = zero_shot_selection(protocol, info.name, ds, base)
        frame = classification_manifest(ds, base, indices)
        split = "zero-shot images" + (f": {note}" if note else ": every image") + (
            f" of {config.split_from[info.name]}" if info.name in config.split_from else "")
    else:
        split_name = config.retrieval_split
        cap = config.max_caption_images if config.max_caption_images is not None else config.max_images
        ds = load_retrieval(info.name, root, None if split_name == "all" else split_name, cap, config.split_seed)
        frame = caption_manifest(ds, base, split_name)
        split = f"retrieval split {split_name}" + ("" if protocol.retrieval else
                                                   f" (protocol {protocol.name} reports no retrieval)")
    if getattr(ds, "subset", None):
        split += f"; subsampled: {ds.subset[0]} of {ds.subset[1]} images (max_images, split_seed={config.split_seed})"
    header = {"dataset": info.name, "protocol": protocol.name, "files": split,
              "rule": manifest_rule(protocol, info.kind, config.retrieval_split),
              "paths": "relative to the data root"}
    return frame, header


def manifest_path(out_dir: str | os.PathLike, header: dict) -> Path:
    return Path(out_dir) / f"{header['dataset']}.{header['rule']}.csv"


def write_dataset_manifests(name: str, protocol_names: Sequence[str], out_dir: str | os.PathLike, config,
                            root: str | os.PathLike | None = None) -> list[dict]:
    """Write the manifest of ``name`` under each protocol (``["all"]``: every one) to ``out_dir``;
    protocols that read the same files share one file (``<dataset>.<rule>.csv``). Returns one
    ``{protocol, path, manifest, files}`` per protocol."""
    names = list(protocols()) if list(protocol_names) == ["all"] else list(protocol_names)
    files, out = {}, []
    for pname in names:
        frame, header = dataset_manifest(name, get_protocol(pname), config, root)
        path, digest = manifest_path(out_dir, header), manifest_hash(frame)
        if path in files and files[path][2] != digest:
            raise DataError(path, "two protocols give different file lists under one rule name")
        files.setdefault(path, (frame, header, digest))
        out.append({"protocol": pname, "path": str(path), "manifest": digest, "files": len(frame)})
    for path, (frame, header, _) in files.items():   # a shared file names every protocol reading it
        write_manifest(frame, path, {**header, "protocol": ", ".join(r["protocol"] for r in out
                                                                     if r["path"] == str(path))})
    return out


def committed_manifest(name: str, rule: str) -> Path:
    """The committed manifest of registry dataset ``name`` under ``rule`` (it may not exist)."""
    return MANIFEST_DIR / f"{name}.{rule}.csv"
