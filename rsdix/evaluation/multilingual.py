"""Evaluation per language (RS-M-CLIP): one caption set per language, the same images.

:func:`language_subsets` splits a multilingual test set into one caption set per language,
:func:`evaluate_per_language` runs any evaluation function on each (rows labelled
``dataset="<name>/<lang>"``), and :func:`retrieval_per_language` does it for image-text retrieval.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

from rsdix.data.parallel_captions import languages_of
from rsdix.data.captions import CaptionDataset, CaptionRecord, find_image_dir, read_captions_dropping_empty, select_split
from rsdix.errors import DataError
from rsdix.evaluation.retrieval import retrieval
from rsdix.models.features import FeatureCache
from rsdix.results import Result


def language_subsets(records: Sequence[CaptionRecord], languages: Sequence[str] | None = None,
                     source: str | os.PathLike = "captions") -> dict[str, list[CaptionRecord]]:
    """``{lang: records with only that language's captions}``; a language without captions is an error."""
    languages = list(languages) if languages is not None else languages_of(records)
    out = {}
    for lang in languages:
        subset = []
        for r in records:
            caps = [c for c, l in zip(r.captions, r.langs) if l == lang]
            if caps:
                subset.append(CaptionRecord(r.filename, r.split, caps, [lang] * len(caps), r.image_id, dict(r.meta)))
        if not subset:
            raise DataError(source, f"no captions in language {lang!r}; languages present: {languages_of(records)}")
        if len(subset) < len(records):
            raise DataError(source, f"{len(records) - len(subset)} image(s) have no {lang!r} caption: "
                                    f"per-language retrieval needs every image in every language")
        out[lang] = subset
    return out


def evaluate_per_language(evaluate: Callable[[CaptionDataset], Mapping[str, float]], records: Sequence[CaptionRecord],
                          image_dir: str | os.PathLike, transform=None, languages: Sequence[str] | None = None,
                          model: str = "", dataset: str = "captions", task: str = "retrieval",
                          seed: int | None = None, profile: str = "", split: str = "test",
                          source: str | os.PathLike | None = None):
    """Run ``evaluate(dataset) -> {metric: value}`` (e.g. ``lambda ds: retrieval(bundle, ds)``
    from :mod:`rsdix.evaluation.retrieval`) on each language's caption set; return :class:`Result` rows
    with ``dataset="<dataset>/<lang>"`` (one row per model x dataset/lang x task x metric x seed)."""
    rows = []
    for lang, subset in language_subsets(records, languages, source or dataset).items():
        ds = CaptionDataset(subset, image_dir, transform=transform, mode="eval", source=source or dataset)
        metrics = evaluate(ds)
        for metric, value in metrics.items():
            rows.append(Result(model=model, dataset=f"{dataset}/{lang}", task=task, metric=metric,
                               value=float(value), seed=seed, split=split, n=len(ds), profile=profile,
                               extra={"lang": lang}))
    return rows


def retrieval_per_language(bundle, caption_file: str | os.PathLike, languages: Sequence[str] | None = None,
                           split: str = "test", image_dir: str | os.PathLike | None = None, model: str = "",
                           dataset: str | None = None, seed: int | None = None, profile: str = "", cache=None):
    """Image-text retrieval (:func:`rsdix.evaluation.retrieval.retrieval`) on each language of a multilingual
    caption file: the same images, queries in every language. Returns :class:`Result` rows with
    ``dataset="<name>/<lang>"``; image features are computed once and shared by all languages."""
    caption_file = Path(caption_file)
    records = select_split(read_captions_dropping_empty(caption_file), split, caption_file)
    name = dataset or caption_file.stem.replace("dataset_", "")
    cache = cache if cache is not None else FeatureCache()
    return evaluate_per_language(
        lambda ds: retrieval(bundle, ds, cache=cache, dataset_name=name, split=split), records,
        image_dir or find_image_dir(caption_file), transform=bundle.preprocess_val, languages=languages,
        model=model or bundle.name, dataset=name, task="retrieval", seed=seed, profile=profile, split=split,
        source=caption_file)
