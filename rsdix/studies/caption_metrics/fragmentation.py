"""METEOR's penalty, shown on controlled cases: one caption and candidates that differ from it
in one word (a WordNet synonym, a class noun at the end or in the middle, a quantifier), in word
order only, or not at all, scored by BLEU-1, METEOR, ROUGE-L and S-BERT (:func:`fragmentation_table`).

Meteor 1.5 multiplies its recall-weighted F-mean by one minus a fragmentation penalty that grows
with the number of contiguous matched chunks; with its English parameters the penalty is large as
soon as the candidate is not a word-for-word match, so one unmatched word costs METEOR about half
its score while BLEU-1 and ROUGE-L lose one word's share. METEOR also matches WordNet synonyms
itself (its synonym module), so a WordNet paraphrase costs it almost nothing. Both together give
METEOR a near-perfect separation of WordNet paraphrases from one-word edits by construction:
:func:`fragmentation_sentences` says so from the table's numbers.
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from rsdix.captioning.metrics import pairwise_scores

# (reference, kind, candidate): each candidate differs from its reference as ``kind`` says
CASES = [
    ("many buildings are near a river", "identity", "many buildings are near a river"),
    ("many buildings are near a river", "WordNet synonym (buildings -> edifices)", "many edifices are near a river"),
    ("many buildings are near a river", "class swap, last word (river -> forest)", "many buildings are near a forest"),
    ("many buildings are near a river", "class swap, second word (buildings -> forests)",
     "many forests are near a river"),
    ("many buildings are near a river", "quantifier swap (many -> some)", "some buildings are near a river"),
    ("many buildings are near a river", "same words, other order", "near a river are many buildings"),
    ("a green playground is surrounded by many buildings", "identity",
     "a green playground is surrounded by many buildings"),
    ("a green playground is surrounded by many buildings", "WordNet synonym (buildings -> edifices)",
     "a green playground is surrounded by many edifices"),
    ("a green playground is surrounded by many buildings", "class swap, third word (playground -> stadium)",
     "a green stadium is surrounded by many buildings"),
    ("a green playground is surrounded by many buildings", "colour swap (green -> red)",
     "a red playground is surrounded by many buildings"),
]
METRICS = ("BLEU-1", "METEOR", "ROUGE-L", "SBERT-sim")
HALVED = 0.75   # fragmentation_sentences: METEOR below this share of BLEU-1 for every one-word edit


def changed_words(reference: str, candidate: str) -> int:
    """Words of the candidate not in the reference (as a multiset): 0 for a reordering."""
    pool = reference.split()
    missing = 0
    for word in candidate.split():
        if word in pool:
            pool.remove(word)
        else:
            missing += 1
    return missing


def fragmentation_table(cases: Sequence[tuple[str, str, str]] = CASES, metrics: Sequence[str] = METRICS,
                        tokenizer: str = "ptb", sbert=None) -> pd.DataFrame:
    """Each case scored (sentence level, :func:`rsdix.captioning.metrics.pairwise_scores`):
    ``reference``, ``kind``, ``candidate``, ``words_changed``, one column per metric, and
    ``METEOR / BLEU-1``."""
    frame = pd.DataFrame(list(cases), columns=["reference", "kind", "candidate"])
    scores = pairwise_scores(frame["candidate"].tolist(), frame["reference"].tolist(), metrics=metrics,
                             sbert=sbert, tokenizer=tokenizer, source="METEOR fragmentation cases")
    scores.index = frame.index
    frame.insert(3, "words_changed", [changed_words(r, c) for r, c in zip(frame["reference"], frame["candidate"])])
    frame = pd.concat([frame, scores], axis=1)
    if {"METEOR", "BLEU-1"} <= set(frame.columns):
        frame["METEOR / BLEU-1"] = frame["METEOR"] / frame["BLEU-1"]
    return frame


def fragmentation_sentences(table: pd.DataFrame) -> list[str]:
    """What the controlled cases show, from their numbers: METEOR against BLEU-1 for one unmatched
    word, and for a WordNet synonym."""
    one = table[(table["words_changed"] == 1) & ~table["kind"].str.startswith("WordNet")]
    syn = table[table["kind"].str.startswith("WordNet")]
    if one.empty or "METEOR" not in table:
        return []
    lines = [f"METEOR on controlled cases (one caption, candidates one word apart): one unmatched word gives METEOR "
             f"{one['METEOR'].min():.2f}-{one['METEOR'].max():.2f} where BLEU-1 gives "
             f"{one['BLEU-1'].min():.2f}-{one['BLEU-1'].max():.2f} (METEOR / BLEU-1 "
             f"{one['METEOR / BLEU-1'].min():.2f}-{one['METEOR / BLEU-1'].max():.2f}), whether the word ends the "
             "caption or sits inside it"]
    if len(syn):
        lines[0] += (f"; a WordNet synonym in the same place keeps METEOR at {syn['METEOR'].min():.2f}-"
                     f"{syn['METEOR'].max():.2f} (its synonym module matches it)")
    lines[0] += "."
    if len(syn) and one["METEOR / BLEU-1"].max() < HALVED and syn["METEOR"].min() > one["METEOR"].max():
        lines.append("So METEOR's separation of WordNet paraphrases from one-word edits is built into the metric "
                     "(synonym matching plus the penalty), not a sign that it reads meaning.")
    return lines
