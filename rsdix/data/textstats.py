"""Caption statistics: tokens per caption, vocabulary, distinct n-grams per image.

Used by the data notebook and by the S2LCD construction to compare caption datasets.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

import numpy as np
import pandas as pd

# letters and digits of any script (not just a-z: translated captions keep their words), an
# optional 's-style suffix of letters; punctuation and underscores split words
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W\d_]+)?")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens, punctuation dropped (the Karpathy ``tokens`` convention);
    letters outside a-z are kept (``café``, ``дорога``)."""
    return _TOKEN.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def caption_stats(captions_per_image: Sequence[Sequence[str]], name: str = "") -> dict:
    """Summary statistics of a caption corpus given as one list of captions per image."""
    tokens_per_caption, words_per_image, vocab = [], [], Counter()
    ngram_sets = {n: set() for n in (1, 2, 3, 4)}
    ngram_totals = {n: 0 for n in (1, 2, 3, 4)}
    n_captions, distinct_captions = 0, set()
    for caps in captions_per_image:
        image_words = set()
        for cap in caps:
            toks = tokenize(cap)
            n_captions += 1
            distinct_captions.add(" ".join(toks))
            tokens_per_caption.append(len(toks))
            vocab.update(toks)
            image_words.update(toks)
            for n in ngram_sets:
                grams = ngrams(toks, n)
                ngram_sets[n].update(grams)
                ngram_totals[n] += len(grams)
        words_per_image.append(len(image_words))
    tpc = np.asarray(tokens_per_caption, dtype=float)
    out = {
        "dataset": name,
        "images": len(captions_per_image),
        "captions": n_captions,
        "captions_per_image": n_captions / max(len(captions_per_image), 1),
        "distinct_captions": len(distinct_captions),
        "vocabulary": len(vocab),
        "tokens_per_caption_mean": float(tpc.mean()) if len(tpc) else 0.0,
        "tokens_per_caption_std": float(tpc.std()) if len(tpc) else 0.0,
        "distinct_words_per_image": float(np.mean(words_per_image)) if words_per_image else 0.0,
        "singleton_words": sum(1 for c in vocab.values() if c == 1),
    }
    for n in ngram_sets:
        # distinct-n: distinct n-grams / total n-grams (diversity, Li et al. 2016)
        out[f"distinct_{n}"] = len(ngram_sets[n]) / max(ngram_totals[n], 1)
    return out


def stats_table(corpora: dict[str, Sequence[Sequence[str]]]) -> pd.DataFrame:
    """One row per corpus (name -> captions per image)."""
    return pd.DataFrame([caption_stats(caps, name) for name, caps in corpora.items()])


def self_overlap(captions_per_image: Sequence[Sequence[str]]) -> float:
    """Mean word-set Jaccard similarity between two captions of the same image, over all pairs
    and images (1: the captions of an image use the same words; low: they describe it in
    different words). Images with one caption are skipped."""
    values = []
    for caps in captions_per_image:
        sets = [set(tokenize(c)) for c in caps]
        for i in range(len(sets)):
            for j in range(i + 1, len(sets)):
                union = sets[i] | sets[j]
                values.append(len(sets[i] & sets[j]) / len(union) if union else 1.0)
    return float(np.mean(values)) if values else float("nan")


def matched_stats(captions_per_image: Sequence[Sequence[str]], n_images: int, repeats: int = 5,
                  seed: int = 0) -> dict:
    """Size-matched diversity: vocabulary and distinct-1..4 of ``n_images`` images drawn at
    random (without replacement), averaged over ``repeats`` draws. Keys end in ``@<n_images>``.

    Vocabulary and distinct-n depend on corpus size, so datasets of different sizes are only
    comparable at a matched size.
    """
    if n_images <= 0 or n_images > len(captions_per_image):
        raise ValueError(f"n_images must be in 1..{len(captions_per_image)}, got {n_images}")
    rng = np.random.default_rng(seed)
    keys = ("vocabulary", "distinct_1", "distinct_2", "distinct_3", "distinct_4")
    draws = {k: [] for k in keys}
    for _ in range(repeats):
        idx = rng.choice(len(captions_per_image), size=n_images, replace=False)
        stats = caption_stats([captions_per_image[i] for i in idx])
        for k in keys:
            draws[k].append(stats[k])
    return {f"{k}@{n_images}": float(np.mean(v)) for k, v in draws.items()}
