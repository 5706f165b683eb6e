"""Zero-shot classification with prompt ensembles (any language): class embeddings from class
names x templates, scored against cached image features.

    res = zero_shot(bundle, load_classification("whu_rs19"), templates="rs")   # res.metrics["top1"]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from rsdix.data.classification import ClassificationDataset
from rsdix.errors import DataError
from rsdix.evaluation.accuracy import classification_metrics, confusion, zero_shot_weights
from rsdix.evaluation.datasets import resolve_class_names
from rsdix.evaluation.templates import get_templates
from rsdix.models.features import FeatureCache, encode_images, encode_texts


@dataclass
class ZeroShotResult:
    metrics: dict[str, float]
    confusion: np.ndarray
    class_names: list[str]
    scores: torch.Tensor
    labels: list[int]


ENSEMBLES = ("normalised_mean", "raw_mean")


def class_embeddings(bundle, class_names: Sequence[str], templates, cache: FeatureCache | None = None,
                     ensemble: str = "normalised_mean") -> torch.Tensor:
    """Zero-shot classifier weights ``(classes, dim)`` from class names x templates.

    ``ensemble``: ``normalised_mean`` (each prompt embedding normalised, averaged, renormalised:
    open_clip, CLIP_benchmark) or ``raw_mean`` (raw embeddings averaged, then normalised: ITRA,
    GeoRSCLIP); equal for a single template."""
    if ensemble not in ENSEMBLES:
        raise DataError("ensemble", f"{ensemble!r} is not one of {ENSEMBLES}")
    templates = get_templates(templates)
    class_names = list(class_names)
    if not class_names:
        raise DataError("class_names", "no class names")
    # one template's prompts at a time, raw: cached per template and class list, so sets sharing
    # templates (GeoRSCLIP's in RS-TransCLIP's) and both ensembles encode each prompt once
    feats = torch.stack([encode_texts(bundle, [t.format(c) for c in class_names], cache, desc="encode prompts",
                                      normalize=False) for t in templates], dim=1)   # (classes, templates, dim)
    if ensemble == "raw_mean":
        return torch.nn.functional.normalize(feats.float().mean(dim=1), dim=-1)
    return zero_shot_weights(feats)


def zero_shot(bundle, dataset: ClassificationDataset, templates="rs", class_names: Sequence[str] | None = None,
              cache: FeatureCache | None = None, dataset_name: str | None = None, batch_size: int = 64,
              num_workers: int = 0, indices: Sequence[int] | None = None,
              ensemble: str = "normalised_mean") -> ZeroShotResult:
    """Zero-shot classification of ``dataset`` with prompt ensembles (any language); ``indices``
    scores only those images (a protocol's test part; the features of the whole set are encoded
    once and cached)."""
    cache = cache if cache is not None else FeatureCache()
    names = resolve_class_names(class_names, dataset.classes, dataset.source) or dataset.class_names
    image_feats = encode_images(bundle, dataset, cache, dataset_name=dataset_name, split="all",
                                batch_size=batch_size, num_workers=num_workers)
    weights = class_embeddings(bundle, names, templates, cache, ensemble)
    labels = dataset.labels
    if indices is not None:
        index = torch.as_tensor(list(indices), dtype=torch.long)
        image_feats, labels = image_feats[index], [labels[i] for i in index.tolist()]
    scores = image_feats @ weights.T
    task = f"zero-shot {dataset_name or dataset.source}"
    return ZeroShotResult(classification_metrics(scores, labels, len(names), task=task),
                          confusion(scores, labels, len(names)), names, scores, labels)
