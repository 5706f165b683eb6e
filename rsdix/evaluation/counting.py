"""Count words in captions, and the ten count variants RemoteCount-style evaluation ranks.

    count_variants("There are two airplanes in the airport .")
    -> (2, ["There are one airplanes ...", "There are two airplanes ...", ..., "There are ten ..."])

A caption qualifies when it holds exactly one count between 1 and 10, written as a word
("two", "Three") or digits ("4"). The variants change only that token, keeping its form
(word or digit, capitalisation), so the captions differ in nothing but the count.
"one" is a count only in front of a noun-like word and not after an article or adjective
("a big airplane and a small one" is not a count; "one of the" is not either).

:func:`counting_accuracy` scores features (top-1, top-3, mean absolute error of the count, and
two numbers that say whether the model looks at the image at all: the share of its most frequent
answer and the top-1 it gets with every image replaced by the mean image), :func:`counting`
runs the task on a model and any caption set and :func:`predicted_counts` lists its answers.

Why a model can score near chance or near the majority baseline without counting: the ten
variants differ in one word, so their text features differ by a small, nearly caption-independent
offset per number word; a model whose image features all lean the same way along those offsets
answers the same count for almost every image, and its top-1 is then the share of that count
among the true ones (on UCM-Captions most count captions say "two"). The cpu profile's
text tower is locked, so every model there ranks the same ten text features: which count a model
answers depends only on where its mean image feature lies (``mean_image_top1`` beside ``top1``).
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

import pandas as pd
import torch

from rsdix.data.captions import CaptionDataset
from rsdix.errors import DataError, require_finite
from rsdix.models.features import FeatureCache, encode_images, encode_texts

NUMBER_WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
_WORD_VALUE = {w: i + 1 for i, w in enumerate(NUMBER_WORDS)}
_TOKEN = re.compile(r"\b(one|two|three|four|five|six|seven|eight|nine|ten|10|[1-9])\b", re.IGNORECASE)
# words after which "one" is a pronoun, and words after "one" that make it not a count
_ONE_BEFORE = {"a", "an", "the", "this", "that", "each", "every", "any", "no", "which", "small", "big", "large",
               "little", "other", "another", "long", "short", "white", "green", "red", "blue", "dark", "new",
               "old", "same", "only"}
_ONE_AFTER = {"of", "side", "sides", "another", "by", "end", "ends", "corner", "is", "are", "and", "or", "in",
              "on", "at", "with", "near", "next", "beside", "to", "while", "but", "which", "that", "."}


def _is_count(text: str, match: re.Match) -> bool:
    if match.group(0).lower() != "one":
        # digits glued to units or decimals ("3.5", "10m", "2nd") are excluded by \b + the checks below
        before, after = text[:match.start()], text[match.end():]
        if re.match(r"[.,]\d|st\b|nd\b|rd\b|th\b|%", after) or before.endswith(("-", ".")):
            return False
        return True
    before = text[:match.start()].split()
    after = text[match.end():].split()
    if before and before[-1].lower() in _ONE_BEFORE:
        return False
    if not after or after[0].lower().strip(",;") in _ONE_AFTER or not after[0][0].isalpha():
        return False
    return True


def find_counts(caption: str) -> list[tuple[int, re.Match]]:
    """``(value, match)`` for every count token 1..10 in ``caption``."""
    out = []
    for m in _TOKEN.finditer(caption):
        if _is_count(caption, m):
            token = m.group(0)
            out.append((int(token) if token.isdigit() else _WORD_VALUE[token.lower()], m))
    return out


def _render(value: int, like: str) -> str:
    if like.isdigit():
        return str(value)
    word = NUMBER_WORDS[value - 1]
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[0].isupper():
        return word.capitalize()
    return word


def count_variants(caption: str) -> tuple[int, list[str]] | None:
    """``(true_count, [caption with count 1, ..., count 10])``, or None when the caption does not
    hold exactly one count 1..10."""
    counts = find_counts(caption)
    if len(counts) != 1:
        return None
    value, m = counts[0]
    token = m.group(0)
    variants = [caption[:m.start()] + _render(v, token) + caption[m.end():] for v in range(1, 11)]
    return value, variants


def count_distribution(captions) -> dict[int, int]:
    """How often each true count 1..10 occurs among the qualifying captions (for the chance and
    majority-count baselines of counting accuracy)."""
    found = (count_variants(c) for c in captions)
    return dict(sorted(Counter(f[0] for f in found if f is not None).items()))


def _checked(image_features, variant_features) -> tuple[torch.Tensor, torch.Tensor]:
    img = torch.as_tensor(image_features, dtype=torch.float32)
    var = torch.as_tensor(variant_features, dtype=torch.float32)
    if len(img) == 0:
        raise DataError("counting", "no captions with a count 1..10")
    require_finite(img, "counting image features", "feature rows")
    require_finite(var, "counting caption features", "feature rows")
    return img, var


def count_predictions(image_features: torch.Tensor, variant_features: torch.Tensor) -> torch.Tensor:
    """The count (1..10) whose variant scores highest for each image (``variant_features``:
    ``(n, 10, dim)``; ties: the smaller count)."""
    img, var = _checked(image_features, variant_features)
    return torch.einsum("nd,nkd->nk", img, var).argmax(dim=1) + 1


def counting_accuracy(image_features: torch.Tensor, variant_features: torch.Tensor,
                      true_counts: Sequence[int]) -> dict[str, float]:
    """RemoteCount-style: for each image, the ten captions differing only in the count (1..10,
    ``variant_features`` is ``(n, 10, dim)``); top1 = the true count's caption ranks first,
    top3 likewise within three; ``mean_abs_error`` between predicted and true count;
    ``modal_share`` = % of images given the model's most frequent answer; ``mean_image_top1`` =
    top1 with every image feature replaced by the mean of them all (the same answer for every
    caption's image, so what the model scores without looking at the individual image)."""
    img, var = _checked(image_features, variant_features)
    truth = torch.as_tensor(list(true_counts), dtype=torch.long) - 1
    sims = torch.einsum("nd,nkd->nk", img, var)
    top3 = sims.topk(3, dim=1).indices
    pred = sims.argmax(dim=1)
    mean_image = img.mean(dim=0, keepdim=True).expand_as(img)
    blind = count_predictions(mean_image, var) - 1
    return {"top1": 100.0 * float((pred == truth).float().mean()),
            "top3": 100.0 * float((top3 == truth[:, None]).any(dim=1).float().mean()),
            "mean_abs_error": float((pred - truth).abs().float().mean()),
            "modal_share": 100.0 * float(torch.bincount(pred, minlength=10).max()) / len(pred),
            "mean_image_top1": 100.0 * float((blind == truth).float().mean())}


def _features(bundle, dataset: CaptionDataset, cache: FeatureCache | None, dataset_name: str | None,
              split: str, batch_size: int, num_workers: int, max_captions: int | None):
    """(image features of the qualifying captions' images, their variants' features, true counts)."""
    cache = cache if cache is not None else FeatureCache()
    items = []
    for i, rec in enumerate(dataset.records):
        for cap in rec.captions:
            found = count_variants(cap)
            if found is not None:
                items.append((i, found[0], found[1]))
    if not items:
        raise DataError(dataset.source, "no caption mentions a count 1..10: nothing to evaluate")
    if max_captions is not None and len(items) > max_captions:
        items = [items[int(k * len(items) / max_captions)] for k in range(max_captions)]
    image_feats = encode_images(bundle, dataset, cache, dataset_name=dataset_name, split=split,
                                batch_size=batch_size, num_workers=num_workers)
    texts = [v for _, _, variants in items for v in variants]
    text_feats = encode_texts(bundle, texts, cache, desc="encode count variants")
    return image_feats[[i for i, _, _ in items]], text_feats.view(len(items), 10, -1), [c for _, c, _ in items]


def counting(bundle, dataset: CaptionDataset, cache: FeatureCache | None = None, dataset_name: str | None = None,
             split: str = "test", batch_size: int = 64, num_workers: int = 0,
             max_captions: int | None = None) -> dict[str, float]:
    """RemoteCount-style counting on any caption set: every caption with exactly one count
    (1..10, word or digit) becomes ten variants (:func:`count_variants`). ``max_captions``: at
    most that many of those captions, evenly spaced (ten text encodings each)."""
    images, variants, truth = _features(bundle, dataset, cache, dataset_name, split, batch_size, num_workers,
                                        max_captions)
    out = counting_accuracy(images, variants, truth)
    out["n_captions"] = float(len(truth))
    return out


def predicted_counts(bundle, dataset: CaptionDataset, cache: FeatureCache | None = None,
                     dataset_name: str | None = None, split: str = "test", batch_size: int = 64,
                     num_workers: int = 0, max_captions: int | None = None) -> pd.DataFrame:
    """One row per qualifying caption: its ``true`` count and the model's ``predicted`` one (the
    features come from ``cache`` when :func:`counting` ran with it)."""
    images, variants, truth = _features(bundle, dataset, cache, dataset_name, split, batch_size, num_workers,
                                        max_captions)
    return pd.DataFrame({"true": truth, "predicted": count_predictions(images, variants).tolist()})


def counting_answers(bundles: dict, dataset: CaptionDataset, cache: FeatureCache | None = None,
                     dataset_name: str | None = None, split: str = "test", max_captions: int | None = None
                     ) -> pd.DataFrame:
    """:func:`predicted_counts` of every model in ``bundles`` (label -> bundle), with a ``model`` column."""
    return pd.concat([predicted_counts(bundle, dataset, cache, dataset_name=dataset_name, split=split,
                                       max_captions=max_captions).assign(model=label)
                      for label, bundle in bundles.items()], ignore_index=True)
