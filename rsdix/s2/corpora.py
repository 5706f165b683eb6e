"""Caption statistics of S2LCD-like corpora against the public caption datasets (UCM, Sydney,
RSICD, RSITMD): the yardstick for a "wide vocabulary, diverse, detailed" claim."""
from __future__ import annotations

import os
from typing import Sequence

import pandas as pd

from rsdix.data.captions import drop_empty_captions, read_karpathy
from rsdix.data.overview import caption_corpora as corpora_under_root
from rsdix.data.textstats import caption_stats, matched_stats, self_overlap
from rsdix.paths import data_root as resolve
from rsdix.s2.construction import result_row
from rsdix.s2.dataset import find_s2lcd


COMPARISON = ("UCM", "Sydney", "RSICD", "RSITMD")   # dataset titles, in table order


def caption_corpora(data_root=None, names: Sequence[str] | None = None,
                    s2lcd_root: str | os.PathLike | None = None) -> dict[str, list[list[str]]]:
    """Captions per image of the comparison datasets found under the data root (and S2LCD's,
    when its ``dataset_s2lcd.json`` is found), read by :func:`rsdix.data.overview.caption_corpora`
    (the same reader and empty-caption policy as notebook 01); absent files are left out."""
    root = resolve(data_root)
    s2 = find_s2lcd(s2lcd_root or root / "s2lcd", required=False)
    wanted = [n for n in COMPARISON + ("S2LCD",) if names is None or n in names]
    found = corpora_under_root(root, names=[n for n in wanted if n != "S2LCD"])
    if s2 is not None and "S2LCD" in wanted:   # the released file has no split fields: not an error here
        found["S2LCD"] = s2lcd_captions(s2)
    return {n: found[n] for n in wanted if n in found}


def s2lcd_captions(path: str | os.PathLike) -> list[list[str]]:
    """S2LCD's captions per image (the file as published, with or without ``split`` fields), empty
    captions and the images left with none left out with one warning (:func:`rsdix.data.captions.drop_empty_captions`)."""
    records = drop_empty_captions(read_karpathy(path, allow_empty=True, missing_split=""), path)
    return [r.captions for r in records]


def compare_caption_datasets(corpora: dict[str, Sequence[Sequence[str]]], sample_images: int | None = None,
                             repeats: int = 5, seed: int = 0) -> pd.DataFrame:
    """Side-by-side caption statistics, one row per dataset.

    Full-corpus statistics come from :func:`rsdix.data.textstats.caption_stats`. Vocabulary and
    distinct-n grow with corpus size, so they are also given at a matched size: the mean over
    ``repeats`` random samples of ``sample_images`` images (default: the smallest corpus),
    columns suffixed ``@N``. ``self_overlap``: mean word-set Jaccard between two captions of the
    same image (low = the captions describe an image in different words).
    """
    n = sample_images or min(len(c) for c in corpora.values())
    rows = []
    for name, caps in corpora.items():
        row = caption_stats(caps, name)
        row["self_overlap"] = self_overlap(caps)
        row.update(matched_stats(caps, n_images=min(n, len(caps)), repeats=repeats, seed=seed))
        rows.append(row)
    return pd.DataFrame(rows)


def stats_columns(n: int) -> list[str]:
    """The columns of the comparison table shown and recorded, at matched size ``n`` images."""
    return ["dataset", "images", "captions", "captions_per_image", "vocabulary", f"vocabulary@{n}",
            "tokens_per_caption_mean", "distinct_words_per_image", f"distinct_1@{n}", f"distinct_2@{n}",
            f"distinct_4@{n}", "self_overlap", "distinct_captions"]


def caption_stats_rows(stats: pd.DataFrame, columns: Sequence[str], profile: str = "",
                       seed: int | None = None) -> list[dict]:
    """Result rows (``rsdix.results`` schema) of the comparison: model ``corpus``, task
    ``caption_stats``, one per dataset and statistic in ``columns`` (but ``dataset``)."""
    return [result_row("corpus", r["dataset"], "caption_stats", m, float(r[m]), profile=profile, seed=seed,
                       n=int(r["images"]))
            for _, r in stats.iterrows() for m in columns if m != "dataset"]


def describe_caption_stats(stats: pd.DataFrame, n: int) -> str:
    """Which dataset has the widest matched-size vocabulary and the longest captions, and S2LCD's
    rank when its row is there (else that the claim cannot be checked here)."""
    top = stats.sort_values(f"vocabulary@{n}", ascending=False).iloc[0]
    longest = stats.sort_values("tokens_per_caption_mean", ascending=False).iloc[0]
    lines = [f"At {n} images, {top.dataset} has the widest vocabulary ({top[f'vocabulary@{n}']:.0f} words); "
             f"{longest.dataset} has the longest captions ({longest.tokens_per_caption_mean:.1f} tokens)."]
    if "S2LCD" in set(stats["dataset"]):
        r = stats.set_index("dataset").loc["S2LCD"]
        rank = int((stats[f"vocabulary@{n}"] > r[f"vocabulary@{n}"]).sum()) + 1
        lines.append(f"S2LCD ranks {rank} of {len(stats)} on matched-size vocabulary.")
    else:
        lines.append("S2LCD is not under the data root, so the paper's 'wide vocabulary' claim cannot be checked "
                     "here: the table above is the yardstick to check it against once dataset_s2lcd.json is available.")
    return "\n".join(lines)
