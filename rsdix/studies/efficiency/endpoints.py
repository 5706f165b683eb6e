"""The metrics of a study run: UCM-Captions test retrieval (mR and R@k), UCM validation mR (for the
learning curves), zero-shot top-1 on each zero-shot set (WHU-RS19, EuroSAT-MS), the same as
notebook 05 computes them (:class:`rsdix.evaluation.quick_check.QuickCheck`: same templates, class
embeddings and metrics). Images are decoded and preprocessed once per process."""
from __future__ import annotations

from typing import Sequence

import torch

from rsdix.data.registry import get_info
from rsdix.errors import DataError
from rsdix.evaluation.accuracy import classification_metrics
from rsdix.evaluation.quick_check import QuickCheck

RETRIEVAL_TITLE = "UCM"


def dataset_title(name: str) -> str:
    """``whu_rs19`` -> ``WHU-RS19`` (the registry's title)."""
    try:
        return get_info(name, "classification").title
    except DataError:  # a path or a key the registry lacks: keep the name
        return name


class EndpointCheck:
    """``check(bundle) -> {(dataset, task, metric, split): value}`` for a trained study model.

    ``val_only=True`` computes only UCM validation mR (the learning curves' check)."""

    def __init__(self, bundle, data_root=None, zero_shot: Sequence[str] = ("whu_rs19", "eurosat_ms"),
                 zero_shot_max: int | None = None):
        zero_shot = list(zero_shot)
        self.test = QuickCheck(bundle, data_root, zero_shot=zero_shot[0] if zero_shot else None,
                               max_zero_shot=zero_shot_max, split="test")
        self.val = QuickCheck(bundle, data_root, zero_shot=None, split="val")
        self.more = {name: QuickCheck(bundle, data_root, zero_shot=name, max_zero_shot=zero_shot_max)
                     for name in zero_shot[1:]}
        self.zero_shot = zero_shot
        self.n_images = {RETRIEVAL_TITLE: len(self.test.images)}
        if zero_shot:
            self.n_images[dataset_title(zero_shot[0])] = len(self.test.zs[1])
        self.n_images.update({dataset_title(k): len(q.zs[1]) for k, q in self.more.items()})

    def val_mR(self, bundle) -> float:
        return float(self.val(bundle)["mR"])

    @torch.no_grad()
    def __call__(self, bundle) -> dict:
        out = {}
        test = self.test(bundle)
        for key in ("mR", "i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10"):
            out[(RETRIEVAL_TITLE, "retrieval", key, "test")] = float(test[key])
        out[(RETRIEVAL_TITLE, "retrieval", "mR", "val")] = self.val_mR(bundle)
        if self.zero_shot:
            out[(dataset_title(self.zero_shot[0]), "zero-shot", "top1", self.test.zero_shot_split)] = \
                float(test["zs_top1"])
        model = bundle.model
        was_training = model.training
        model.eval()
        try:
            for name, q in self.more.items():
                _, labels, names = q.zs
                top1 = classification_metrics(q.zero_shot_scores(bundle), labels.tolist(), len(names))["top1"]
                out[(dataset_title(name), "zero-shot", "top1", q.zero_shot_split)] = float(top1)
        finally:
            model.train(was_training)
        return out
