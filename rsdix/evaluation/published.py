"""Our numbers beside the published ones (``rsdix/data/reference/reference_numbers.csv``):
side-by-side tables per dataset x task x metric, one published series for a plot, and the pairs
of our numbers with published ones, each saying whether it is like for like (same dataset
release, split, protocol and backbone) or why not (:func:`published_pairs`)."""
from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

from rsdix.errors import DataError
from rsdix.evaluation.datasets import SUBSET_SUFFIX, base_split
from rsdix.evaluation.retrieval import TIE_EXPECTED
from rsdix.models.bundle import backbone_label
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


PAIR_COLUMNS = ["dataset", "task", "metric", "model", "ours", "our_protocol", "our_split", "our_backbone",
                "published_model", "published", "their_protocol", "their_split", "their_backbone", "paper",
                "comparable"]




def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def pair_reasons(ours: dict, theirs: dict) -> list[str]:
    """Why a published number is not like for like with ours: other release, split, protocol,
    backbone, or a caveat on either side (in-domain, not zero-shot). Empty: comparable."""
    reasons = []
    if _text(theirs.get("published_on")):
        reasons.append(f"other release: published on {theirs['published_on']}")
    label = _text(ours.get("split"))
    split, subset = base_split(label), SUBSET_SUFFIX.search(label)
    if subset:
        reasons.append(f"ours on a subsample ({subset.group(0)[2:]} images)")
    their_split = _text(theirs.get("split"))
    if their_split and split and their_split != split:
        reasons.append(f"other split ({their_split} vs ours {label})")
    their_protocol, our_protocol = _text(theirs.get("protocol")), _text(ours.get("protocol"))
    if their_protocol and their_protocol != our_protocol:
        reasons.append(f"other protocol ({their_protocol} vs ours {our_protocol or 'unnamed'})")
    if _text(theirs.get("backbone")) != _text(ours.get("backbone")):
        reasons.append(f"other backbone ({_text(theirs.get('backbone'))} vs ours {_text(ours.get('backbone')) or 'unknown'})")
    reasons += [c for c in (_text(theirs.get("caveat")), _text(ours.get("caveat"))) if c]
    return reasons


def published_pairs(results: pd.DataFrame, reference: pd.DataFrame | None = None,
                    metrics: Sequence[str] | None = None, backbones: dict[str, str] | None = None,
                    comparable_only: bool = False) -> pd.DataFrame:
    """Every (our model, published number) pair on the same dataset, task and metric, one row
    each (:data:`PAIR_COLUMNS`): our mean over seeds with the protocol, split and backbone of our
    rows, the published number with the paper's, and ``comparable``: ``yes`` where dataset
    release, split, protocol and backbone match and neither side carries a caveat, else ``no: ``
    and every reason (:func:`pair_reasons`). ``backbones`` (model -> architecture) fills rows
    without a ``backbone`` column. ``comparable_only`` keeps the ``yes`` rows."""
    ours = results if metrics is None else results[results["metric"].isin(list(metrics))]
    if "split" in ours:
        ours = ours[ours["split"].fillna("") != "val"]
    if ours.empty:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    ours = ours.assign(model=ours["model"].map(method_name))
    for col in ("protocol", "caveat", "backbone", "split"):
        if col not in ours:
            ours = ours.assign(**{col: ""})
    if backbones:
        given = ours["model"].map({method_name(k): backbone_label(v) for k, v in backbones.items()})
        ours = ours.assign(backbone=given.where(given.notna(), ours["backbone"]))
    ours = ours.assign(**{c: ours[c].map(_text) for c in ("protocol", "caveat", "backbone", "split")})
    key = ["dataset", "task", "metric", "model", "protocol", "split", "backbone"]
    mean = ours.groupby(key, dropna=False).agg(ours_value=("value", "mean"),
                                               caveat=("caveat", lambda c: next((x for x in c if x), "")))
    mean = mean.reset_index()
    ref = reference_numbers() if reference is None else reference
    rows = []
    for _, o in mean.iterrows():
        hits = ref[(ref["dataset"] == o["dataset"]) & (ref["task"] == o["task"]) & (ref["metric"] == o["metric"])]
        for _, t in hits.iterrows():
            reasons = pair_reasons(o.to_dict(), t.to_dict())
            rows.append({"dataset": o["dataset"], "task": o["task"], "metric": o["metric"], "model": o["model"],
                         "ours": o["ours_value"], "our_protocol": o["protocol"], "our_split": o["split"],
                         "our_backbone": o["backbone"], "published_model": t["model"], "published": t["value"],
                         "their_protocol": _text(t.get("protocol")), "their_split": _text(t.get("split")),
                         "their_backbone": _text(t.get("backbone")), "paper": _text(t.get("source")),
                         "comparable": "yes" if not reasons else "no: " + "; ".join(reasons)})
    out = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    if comparable_only:
        out = out[out["comparable"] == "yes"].reset_index(drop=True)
    return out
