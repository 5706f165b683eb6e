"""Are the WordNet swaps synonyms in context? A hand-labelled check of the study's one-word swaps.

RSDiX's paraphrase replaces words by WordNet synonyms of their most frequent sense; whether the
replacement means the same *in the caption* was never checked. :func:`swap_sample` draws a seeded
sample of the study's ``synonym-1`` pairs (the same number per dataset) and names the replaced
word; ``synonym_labels.csv`` beside this module holds one person's judgement of each
(``yes``: the replacement is the sense the caption uses and the caption still describes the same
scene; ``no``: another sense, another or a weaker claim, or not grammatical) with a short reason,
keyed by dataset, file name, word and replacement; ``kind: hedge`` marks the colour hedges
(green -> greenish), judged ``no`` (a weaker claim) though a lenient reader might accept them.
:func:`check_swaps` reports the share judged synonyms with its Wilson 95% interval, per dataset
and pooled, the share counting the hedges as synonyms, and how many sampled swaps have no label
(a changed sample is visible, never silently mixed). A small check, by one labeller: its
interval says how small.
"""
from __future__ import annotations

import difflib
from pathlib import Path

import pandas as pd

from rsdix.errors import DataError
from rsdix.intervals import wilson_interval
from rsdix.studies.caption_metrics.caption_sets import seeded_rng

LABELS = Path(__file__).with_name("synonym_labels.csv")
KEY = ["dataset", "filename", "word", "replacement"]


def swapped_word(original: str, candidate: str) -> tuple[str, str]:
    """(replaced word, replacement) between a caption and its one-word synonym swap (an article
    the swap turned from a into an, or back, is not the swap; a multi-word synonym ending in the
    word itself, "part" -> "component part", shows as an insertion before the word)."""
    a, b = original.split(), candidate.split()
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        old, new = a[i1:i2], b[j1:j2]
        if op == "insert" and i1 < len(a):
            old, new = [a[i1]], new + [a[i1]]
        if old and new and old[0] in ("a", "an") and new[0] in ("a", "an"):
            old, new = old[1:], new[1:]
        if old or new:
            return " ".join(old), " ".join(new)
    raise DataError("synonym check", f"no swap between {original!r} and {candidate!r}")


def swap_sample(pairs: pd.DataFrame, per_dataset: int = 25, seed: int = 0) -> pd.DataFrame:
    """``per_dataset`` seeded ``synonym-1`` pairs per dataset (all where fewer) with their swapped
    word: columns dataset, filename, original, candidate, word, replacement."""
    swaps = pairs[pairs.perturbation == "synonym-1"]
    parts = []
    for dataset, group in swaps.groupby("dataset", sort=False):
        rng = seeded_rng(seed, dataset, "synonym-check")
        take = group.iloc[sorted(rng.choice(len(group), size=min(per_dataset, len(group)), replace=False))]
        parts.append(take[["dataset", "filename", "original", "candidate"]])
    if not parts:
        raise DataError("synonym check", "no synonym-1 pairs to sample")
    sample = pd.concat(parts, ignore_index=True)
    words = [swapped_word(o, c) for o, c in zip(sample["original"], sample["candidate"])]
    sample["word"], sample["replacement"] = [w for w, _ in words], [r for _, r in words]
    return sample


def read_labels(path: str | Path | None = None) -> pd.DataFrame:
    path = Path(path or LABELS)
    labels = pd.read_csv(path, dtype=str, keep_default_na=False)
    bad = sorted(set(labels["synonym_in_context"]) - {"yes", "no"})
    if bad:
        raise DataError(path, f"synonym_in_context must be yes or no, found {bad}")
    return labels


def check_swaps(sample: pd.DataFrame, labels: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per dataset and pooled (``all``): sampled swaps, labelled ones, judged synonyms in context,
    their share (%) with its Wilson 95% interval."""
    labels = read_labels() if labels is None else labels
    joined = sample.merge(labels[KEY + ["synonym_in_context", "kind"]].drop_duplicates(KEY), on=KEY, how="left")
    rows = []
    for dataset, group in [*joined.groupby("dataset", sort=False), ("all", joined)]:
        labelled = group[group["synonym_in_context"].isin(["yes", "no"])]
        yes = int((labelled["synonym_in_context"] == "yes").sum())
        share = 100.0 * yes / len(labelled) if len(labelled) else float("nan")
        low, high = wilson_interval(share, len(labelled)) if len(labelled) else (float("nan"), float("nan"))
        hedges = int((labelled["kind"] == "hedge").sum())
        rows.append({"dataset": dataset, "sampled": len(group), "labelled": len(labelled), "synonyms": yes,
                     "share_%": share, "ci_low": low, "ci_high": high, "hedges": hedges,
                     "share_with_hedges_%": 100.0 * (yes + hedges) / len(labelled) if len(labelled) else float("nan")})
    return pd.DataFrame(rows)


def check_sentences(table: pd.DataFrame) -> list[str]:
    pooled = table[table.dataset == "all"]
    if pooled.empty or not pooled["labelled"].iloc[0]:
        return []
    r = pooled.iloc[0]
    missing = int(r.sampled - r.labelled)
    return [f"WordNet swaps checked by hand: {int(r.synonyms)} of {int(r.labelled)} sampled one-word swaps "
            f"({r['share_%']:.0f}%, Wilson 95% CI {r.ci_low:.0f}-{r.ci_high:.0f}%) keep the caption's meaning "
            f"({r['share_with_hedges_%']:.0f}% counting the {int(r.hedges)} colour hedges such as green -> greenish); "
            f"the others (another sense, a weaker claim, broken grammar) are scored as meaning-preserving "
            f"paraphrases by the synonym conditions."
            + (f" {missing} sampled swaps have no label." if missing else "")]
