"""Scoring caption pairs with the caption metrics (sentence-level BLEU-1..4, METEOR, ROUGE-L,
CIDEr-D, S-BERT similarity through :func:`rsdix.captioning.metrics.pairwise_scores`), wide
(:func:`score_pairs`) or tidy (:func:`long_scores`)."""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from rsdix.captioning.metrics import pairwise_scores
from rsdix.utils import progress

METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr", "SBERT-sim")
NGRAM_METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
REFERENCE_METRIC = "SBERT-sim"


def score_pairs(pairs: pd.DataFrame, metrics: Sequence[str] = METRICS, sbert=None,
                tokenizer: str = "ptb") -> pd.DataFrame:
    """Score every candidate against its original (per dataset, so CIDEr's IDF is the dataset's).

    Returns ``pairs`` with one column per metric (wide); :func:`long_scores` makes it tidy.
    """
    if not pairs.index.is_unique:
        pairs = pairs.reset_index(drop=True)
    parts = []
    for dataset, group in progress(pairs.groupby("dataset", sort=False), desc="score pairs"):
        scores = pairwise_scores(group["candidate"].tolist(), group["original"].tolist(), metrics=metrics,
                                 sbert=sbert, tokenizer=tokenizer, source=f"metric study {dataset}")
        scores.index = group.index
        parts.append(pd.concat([group, scores], axis=1))
    return pd.concat(parts).loc[pairs.index]


def long_scores(scored: pd.DataFrame, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    ids = [c for c in scored.columns if c not in metrics]
    return scored.melt(id_vars=ids, value_vars=[m for m in metrics if m in scored], var_name="metric",
                       value_name="score")
