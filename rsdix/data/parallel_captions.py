"""Multilingual captions (RS-M-CLIP): parallel caption sets and the training dataset that draws one
caption per language.

Captions in several languages live in one Karpathy file (a ``lang`` field per sentence; no
field means English) or in parallel files, one per language, with the same images and
sentence order (:func:`merge_parallel`, :func:`read_parallel`). RS-M-CLIP translated the English
captions into nine languages (:mod:`rsdix.data.translation`). :class:`MultilingualCaptionDataset`
returns, per image, one caption drawn per language; :class:`rsdix.training.collate.LanguageCollate`
picks one language per batch::

    ds = MultilingualCaptionDataset(records, image_dir, transform, languages=["en", "pt", "de"])

A multilingual text tower comes from the model factory, e.g.
``load_model("xlm-roberta-base-ViT-B-32", pretrained="laion5b_s13b_b90k")`` (paper profile).
"""
from __future__ import annotations

import os
import random
import warnings
from collections import Counter
from typing import Mapping, Sequence

from rsdix.data.captions import CaptionDataset, CaptionRecord, read_captions
from rsdix.errors import DataError

RSMCLIP_LANGUAGES = ("en", "pt", "es", "fr", "de", "nl", "it", "zh", "ko", "ru")


def languages_of(records: Sequence[CaptionRecord]) -> list[str]:
    """Languages present, English first, then alphabetical."""
    langs = {l for r in records for l in r.langs}
    return sorted(langs, key=lambda l: (l != "en", l))


def language_coverage(records: Sequence[CaptionRecord]) -> dict[str, int]:
    """Number of images with at least one caption in each language."""
    counts: Counter = Counter()
    for r in records:
        counts.update(set(r.langs))
    return {l: counts[l] for l in languages_of(records)}


def merge_parallel(base: Sequence[CaptionRecord], others: Mapping[str, Sequence[CaptionRecord]],
                   sources: Mapping[str, str | os.PathLike] | None = None) -> list[CaptionRecord]:
    """Merge parallel caption sets: ``others[lang]`` has the same images (by filename) and the
    same number of sentences per image as ``base``; its captions are added with language ``lang``.
    A missing image or a different sentence count is an error naming the file."""
    by_name = {r.filename: r for r in base}
    merged = {r.filename: CaptionRecord(r.filename, r.split, list(r.captions), list(r.langs), r.image_id, dict(r.meta))
              for r in base}
    for lang, recs in others.items():
        where = (sources or {}).get(lang, f"captions[{lang}]")
        names = {r.filename for r in recs}
        missing = [n for n in by_name if n not in names]
        if missing:
            raise DataError(where, f"{len(missing)} image(s) of the base set are missing, first: {missing[0]}")
        for r in recs:
            if r.filename not in by_name:
                raise DataError(where, f"image {r.filename!r} is not in the base caption set")
            n_base = sum(1 for l in by_name[r.filename].langs if l == by_name[r.filename].langs[0])
            if len(r.captions) != n_base:
                raise DataError(where, f"{r.filename}: {len(r.captions)} sentences, the base set has {n_base}")
            merged[r.filename].captions.extend(r.captions)
            merged[r.filename].langs.extend([lang] * len(r.captions))
    return [merged[r.filename] for r in base]


def read_parallel(files: Mapping[str, str | os.PathLike], base_lang: str = "en") -> list[CaptionRecord]:
    """Read ``{lang: caption file}`` (Karpathy JSON or CSV, one language each) into one record set."""
    if base_lang not in files:
        raise DataError(", ".join(map(str, files.values())), f"no {base_lang!r} file among the parallel files")
    read = {lang: read_captions(path) for lang, path in files.items()}
    for lang, recs in read.items():
        for r in recs:
            r.langs = [lang] * len(r.captions)
    others = {l: r for l, r in read.items() if l != base_lang}
    return merge_parallel(read[base_lang], others, sources={l: str(p) for l, p in files.items()})


class MultilingualCaptionDataset(CaptionDataset):
    """Training view: ``ds[i] -> (image, {lang: caption}, i)``, one caption drawn per language.

    ``languages`` restricts the languages (default: all present). Images lacking one of them
    are kept; :class:`LanguageCollate` then uses another of their languages and counts it.
    """

    def __init__(self, records, image_dir, transform=None, languages: Sequence[str] | None = None, **kwargs):
        super().__init__(records, image_dir, transform=transform, mode="train", languages=languages, **kwargs)
        self.languages = list(languages) if languages is not None else languages_of(self.records)
        coverage = language_coverage(self.records)
        thin = {l: coverage.get(l, 0) for l in self.languages if coverage.get(l, 0) < len(self.records)}
        if thin:
            warnings.warn(f"{self.source}: some languages lack captions for some of the {len(self.records)} images "
                          f"(images with captions: {thin}); those images fall back to another language")

    def captions_by_language(self, index: int) -> dict[str, str]:
        rec = self.records[index]
        rng = random.Random(f"{self.seed}-{self.epoch}-{index}")
        out: dict[str, list[str]] = {}
        for cap, lang in zip(rec.captions, rec.langs):
            out.setdefault(lang, []).append(cap)
        return {lang: caps[rng.randrange(len(caps))] for lang, caps in out.items()}

    def __getitem__(self, index: int):
        return self.load(index), self.captions_by_language(index), index
