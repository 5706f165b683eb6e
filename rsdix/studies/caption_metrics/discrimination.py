"""Discrimination: does a metric score an image's held-out reference higher against the image's
other references than against other images' (random or same-class distractors)?
Leave-one-reference-out queries (:func:`discrimination_queries`), their scores
(:func:`score_queries`), per-query AUC and hit (:func:`per_query_discrimination`) and the table with
bootstrap CIs (:func:`discrimination_table`), each metric against S-BERT paired by query
(:func:`discrimination_vs_reference`); :func:`study_queries` builds the queries of all caption
sets and distractor modes."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from rsdix.captioning.metrics import pairwise_scores
from rsdix.errors import DataError
from rsdix.intervals import BOOTSTRAP_RESAMPLES, bootstrap_mean
from rsdix.log import get_logger
from rsdix.studies.caption_metrics.caption_sets import CaptionSet, seeded_rng, subsample
from rsdix.studies.caption_metrics.scoring import METRICS
from rsdix.utils import progress

log = get_logger(__name__)

DISTRACTORS = ("random", "same-class")  # distractor images: any other image, or one of the same class


def discrimination_queries(cs: CaptionSet, n_images: int | None, k: int = 4, seed: int = 0,
                           distractors: str = "random") -> pd.DataFrame:
    """Leave-one-reference-out queries: for each sampled image with >= 2 distinct captions, one
    held-out caption is scored against the image's remaining captions (``target == 'own'``) and
    against the remaining captions of ``k`` other images.

    Distractors come from cyclic shifts of a seeded permutation of ``n_images`` sampled images
    (``random``) or of each class's images (``same-class``: about ``n_images / n_classes`` images
    per class, at least k + 1; classes with <= k usable images are dropped), so every image's
    reference set appears exactly k + 1 times and CIDEr's IDF equals that of the image set.
    """
    if distractors == "random":
        groups = [[int(i) for i in subsample(cs, n_images, seed) if len(cs.captions[i]) >= 2]]
    elif distractors == "same-class":
        by_class: dict[str, list[int]] = {}
        for i, cls in enumerate(cs.classes):
            if cls is not None and len(cs.captions[i]) >= 2:
                by_class.setdefault(cls, []).append(i)
        by_class = {c: g for c, g in by_class.items() if len(g) > k}
        if not by_class:
            raise DataError(cs.source or cs.dataset, f"same-class distractors need image classes with more "
                            f"than {k} images (with 2+ distinct captions)")
        per_class = max(k + 1, (n_images or 10**9) // len(by_class))
        groups = []
        for cls in sorted(by_class):
            g = by_class[cls]
            rng = seeded_rng(seed, cs.dataset, cls, "class-sample")
            groups.append(sorted(int(i) for i in rng.choice(g, size=min(per_class, len(g)), replace=False)))
    else:
        raise ValueError(f"distractors must be 'random' or 'same-class', got {distractors!r}")
    held, rest = {}, {}
    for g in groups:
        for i in g:
            rng = seeded_rng(seed, cs.dataset, cs.filenames[i], "held-out")
            h = int(rng.integers(len(cs.captions[i])))
            held[i] = cs.captions[i][h]
            rest[i] = [c for j, c in enumerate(cs.captions[i]) if j != h]
    rows = []
    rng = seeded_rng(seed, cs.dataset, distractors, "permutation")
    for g in groups:
        if len(g) <= k:
            raise DataError(cs.dataset, f"{len(g)} images are too few for {k} distractors")
        perm = [g[j] for j in rng.permutation(len(g))]
        for p, i in enumerate(perm):
            targets = [("own", i)] + [("other", perm[(p + s) % len(perm)]) for s in range(1, k + 1)]
            for target, j in targets:
                rows.append({"dataset": cs.dataset, "distractors": distractors, "query": i,
                             "filename": cs.filenames[i], "class": cs.classes[i], "target": target,
                             "target_image": j, "candidate": held[i], "references": rest[j]})
    if not rows:
        raise DataError(cs.dataset, "no discrimination queries (too few images with 2+ distinct captions)")
    return pd.DataFrame(rows)


def study_queries(caption_sets: Sequence[CaptionSet], n_images: int | None, k: int = 4, seed: int = 0,
                  modes: Sequence[str] = DISTRACTORS) -> pd.DataFrame:
    """:func:`discrimination_queries` of every caption set and distractor mode, one frame; a set
    without classes gets no same-class queries (printed)."""
    queries = []
    for cs in caption_sets:
        for mode in modes:
            if mode == "same-class" and all(c is None for c in cs.classes):
                log.info(f"{cs.dataset}: no classes, same-class distractors skipped")
                continue
            queries.append(discrimination_queries(cs, n_images, k=k, seed=seed, distractors=mode))
    return pd.concat(queries, ignore_index=True)


def score_queries(queries: pd.DataFrame, metrics: Sequence[str] = METRICS, sbert=None,
                  tokenizer: str = "ptb") -> pd.DataFrame:
    if not queries.index.is_unique:
        queries = queries.reset_index(drop=True)
    parts = []
    for _, group in progress(queries.groupby(["dataset", "distractors"], sort=False), desc="score queries"):
        scores = pairwise_scores(group["candidate"].tolist(), group["references"].tolist(), metrics=metrics,
                                 sbert=sbert, tokenizer=tokenizer, source="discrimination queries")
        scores.index = group.index
        parts.append(pd.concat([group, scores], axis=1))
    return pd.concat(parts).loc[queries.index]


def per_query_discrimination(scored_queries: pd.DataFrame, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Per query and metric: ``auc`` = share of distractors scored below the own image (ties
    half), ``hit`` = own image ranked first (ties shared: 1 / number tied at the top)."""
    rows = []
    for (dataset, mode, query), group in scored_queries.groupby(["dataset", "distractors", "query"], sort=False):
        own = group[group.target == "own"]
        other = group[group.target == "other"]
        for m in metrics:
            o = float(own[m].iloc[0])
            d = other[m].to_numpy(float)
            tied_top = 1 + int((d == o).sum()) if o >= d.max() else 0
            rows.append({"dataset": dataset, "distractors": mode, "query": query, "metric": m,
                         "auc": float(((d < o) + 0.5 * (d == o)).mean()),
                         "hit": 1.0 / tied_top if tied_top else 0.0, "k": len(d)})
    return pd.DataFrame(rows)


def mean_ci(values, n_resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = 0.95,
            seed: int = 0) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean with its percentile bootstrap CI (:func:`rsdix.intervals.bootstrap_mean`);
    NaN/inf values are an error."""
    low, high = bootstrap_mean(values, confidence, n_resamples, seed)
    return float(np.mean(values)), low, high


def discrimination_table(per_query: pd.DataFrame, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    rows = []
    for (dataset, mode, m), group in per_query.groupby(["dataset", "distractors", "metric"], sort=False):
        a, alo, ahi = mean_ci(group["auc"], n_resamples, seed=seed)
        h, hlo, hhi = mean_ci(group["hit"], n_resamples, seed=seed)
        rows.append({"dataset": dataset, "distractors": mode, "metric": m, "n_queries": len(group),
                     "k": int(group["k"].iloc[0]), "auc": a, "auc_low": alo, "auc_high": ahi, "accuracy": h,
                     "acc_low": hlo, "acc_high": hhi})
    return pd.DataFrame(rows)


def discrimination_vs_reference(per_query: pd.DataFrame, reference: str = "SBERT-sim",
                                n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Per dataset, distractor mode and metric: the mean over queries of (the reference's per-query
    AUC - the metric's), paired by query, with its percentile bootstrap 95% CI; ``reference_ahead``
    says where the CI lies above 0 (``yes``), below (``behind``) or includes it (``no``)."""
    wide = per_query.pivot_table(index=["dataset", "distractors", "query"], columns="metric", values="auc")
    if reference not in wide:
        raise DataError("discrimination", f"no {reference} scores to compare with")
    rows = []
    for (dataset, mode), group in wide.groupby(level=["dataset", "distractors"], sort=False):
        for m in [c for c in group.columns if c != reference]:
            diff = (group[reference] - group[m]).to_numpy(float)
            mean, low, high = mean_ci(diff, n_resamples, seed=seed)
            rows.append({"dataset": dataset, "distractors": mode, "metric": m, "n_queries": len(diff),
                         "sbert_minus_metric": mean, "ci_low": low, "ci_high": high,
                         "reference_ahead": "yes" if low > 0 else "behind" if high < 0 else "no"})
    return pd.DataFrame(rows)
