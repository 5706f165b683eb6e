"""Our numbers beside the published ones (``rsdix/data/reference/reference_numbers.csv``):
side-by-side tables per dataset x task x metric, and one published series for a plot."""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from rsdix.errors import DataError
from rsdix.evaluation.retrieval import TIE_EXPECTED
from rsdix.results import method_name, reference_numbers, with_reference

RETRIEVAL_METRICS = ["i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10", "mR"]


def compare_with_published(results: pd.DataFrame, reference: pd.DataFrame | None = None,
                           metrics: Sequence[str] | None = None, mean_over_seeds: bool = True) -> pd.DataFrame:
    """Our numbers (one column per model) beside every published number for the same
    dataset/task/metric (one column per published model and backbone), one row per
    dataset x task x metric. Rows without a published number keep empty published columns.
    With ``mean_over_seeds``, run names ``method_s0``, ``method_s1`` become one column
    ``method`` holding the mean over seeds."""
    ours = results if metrics is None else results[results["metric"].isin(list(metrics))]
    if "split" in ours:  # published numbers are test numbers: validation rows (model selection) stay out
        ours = ours[ours["split"].fillna("") != "val"]
    if ours.empty:
        raise DataError("results", "no rows to compare")
    if mean_over_seeds:   # the same pooling as rsdix.results.summarise (RESULTS.md)
        ours = ours.assign(model=ours["model"].map(method_name))
    key = ["dataset", "task", "metric"]
    wide = ours.groupby(key + ["model"])["value"].mean().unstack("model")
    ref = reference_numbers() if reference is None else reference
    merged = with_reference(wide.reset_index()[key].drop_duplicates(), reference=ref)
    merged = merged.dropna(subset=["published"])
    if merged.empty:
        return wide.reset_index()
    merged["column"] = "published: " + merged["ref_model"] + " " + merged["ref_backbone"].astype(str)
    published = merged.pivot_table(index=key, columns="column", values="published", aggfunc="first")
    return wide.join(published, how="left").reset_index()


def retrieval_vs_published(results: pd.DataFrame) -> pd.DataFrame:
    """:func:`compare_with_published` for the retrieval rows, metrics in the papers' order
    (image->text R@1/5/10, text->image R@1/5/10, mR), then the other metrics (such as the
    ``_tie_expected`` ones) in the same order, each keeping its name."""
    side = compare_with_published(results[results["task"] == "retrieval"])
    base = [m.removesuffix(TIE_EXPECTED) for m in side["metric"]]
    rank = [RETRIEVAL_METRICS.index(b) if b in RETRIEVAL_METRICS else len(RETRIEVAL_METRICS) for b in base]
    side = side.assign(_tie=[m.endswith(TIE_EXPECTED) for m in side["metric"]], _rank=rank)
    side = side.sort_values(["dataset", "_tie", "_rank", "metric"], kind="stable")
    return side.drop(columns=["_tie", "_rank"]).reset_index(drop=True)


def published_for(task: str, metric: str, model: str, backbone: str,
                  reference: pd.DataFrame | None = None) -> pd.Series:
    """One published model's numbers for ``task`` / ``metric``: a series indexed by dataset
    (e.g. ``published_for("zero-shot", "top1", "RSDiX-CLIP", "ViT-B/32")``)."""
    ref = reference_numbers() if reference is None else reference
    ref = ref[(ref["task"] == task) & (ref["metric"] == metric) & (ref["model"] == model)
              & (ref["backbone"] == backbone)]
    return ref.set_index("dataset")["value"]
