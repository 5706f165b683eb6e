"""Notebook 05's figures: zero-shot top-1 per dataset (chance and a published model marked), the
confusion matrix of one zero-shot result, few-shot accuracy against shots, the counts each
model answers in the counting task beside the true ones, a retrieval gallery (text queries and
their top images). Each returns the
figure and, given ``path``, saves it through :func:`rsdix.viz.save`.

Models keep their colour of :func:`rsdix.viz.model_colour`; intervals stay inside 0-100 %
(:func:`rsdix.intervals.accuracy_interval`) and a caption line under the axes says what they are; a
published number is marked only on the dataset release it was published on (:func:`same_release`)."""
from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from rsdix import viz
from rsdix.data.registry import REGISTRY
from rsdix.evaluation.retrieval import GalleryQuery
from rsdix.evaluation.zero_shot import ZeroShotResult
from rsdix.intervals import accuracy_interval, bootstrap_mean
from rsdix.log import get_logger
from rsdix.results import method_name

log = get_logger(__name__)


def _saved(fig, path: str | os.PathLike | None):
    if path is not None:
        log.info("saved %s", viz.save(fig, path))
    return fig


def same_release(published: pd.Series) -> pd.Series:
    """``published`` (dataset title -> number) without the datasets whose numbers were published on
    another release of their images (``DatasetInfo.published_as``, e.g. EuroSAT-MS, whose
    reference rows are the papers' EuroSAT RGB numbers): only a like-for-like number is marked."""
    other_release = {info.title for info in REGISTRY.values() if info.published_as}
    return published[[ds not in other_release for ds in published.index]]


def _pooled(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset x method (seeds pooled): mean, 95% interval (its kind) and the seeds."""
    rows = rows.assign(method=rows["model"].map(method_name))
    n = rows["n"] if "n" in rows else pd.Series(np.nan, index=rows.index)
    out = []
    for (ds, method), group in rows.assign(n=n).groupby(["dataset", "method"], sort=False):
        values = group["value"].astype(float).tolist()
        low, high, kind = accuracy_interval(values, group["n"].iloc[0] if len(values) == 1 else None)
        out.append({"dataset": ds, "method": method, "mean": float(np.mean(values)), "low": low, "high": high,
                    "kind": kind, "values": values})
    return pd.DataFrame(out)


def plot_zero_shot_top1(results: pd.DataFrame, n_classes: Mapping[str, int], published: pd.Series | None = None,
                        published_label: str = "published", path: str | os.PathLike | None = None):
    """Bars of zero-shot top-1 per dataset and model (seeds pooled: bar = mean, dots = seeds),
    95% intervals (Wilson over the test images for one seed, bootstrap over seeds for several),
    chance as a dashed line, ``published`` (dataset -> top-1, e.g.
    :func:`~rsdix.evaluation.published.published_for`) as stars on the same dataset release only."""
    top1 = results[(results["task"] == "zero-shot") & (results["metric"] == "top1")]
    pooled = _pooled(top1)
    datasets = list(dict.fromkeys(pooled["dataset"]))
    methods = list(dict.fromkeys(pooled["method"]))
    width = 0.8 / max(1, len(methods))
    fig, ax = plt.subplots(figsize=(max(6, 2.2 * len(datasets)), 4))
    kinds = set()
    for j, method in enumerate(methods):
        part = pooled[pooled["method"] == method]
        xs = np.array([datasets.index(d) for d in part["dataset"]]) - 0.4 + width * (j + 0.5)
        colour = viz.model_colour(method)
        ax.bar(xs, part["mean"], width=width * 0.95, color=colour, label=method)
        ax.errorbar(xs, part["mean"], yerr=[part["mean"] - part["low"], part["high"] - part["mean"]], fmt="none",
                    ecolor="black", elinewidth=1, capsize=2)
        for x, values in zip(xs, part["values"]):
            if len(values) > 1:
                ax.scatter([x] * len(values), values, s=10, color="black", zorder=3)
        kinds |= set(part["kind"])
    marked = same_release(published if published is not None else pd.Series(dtype=float))
    first_published = next((ds for ds in datasets if ds in marked.index), None)
    for i, ds in enumerate(datasets):
        ax.hlines(100.0 / n_classes[ds], i - 0.4, i + 0.4, colors=viz.CHANCE_COLOUR, linestyles="--", lw=1,
                  label="chance" if i == 0 else None)
        if ds in marked.index:
            ax.scatter([i], [marked[ds]], marker="*", s=120, color=viz.PUBLISHED_COLOUR, zorder=4,
                       label=published_label if ds == first_published else None)
    ax.set_xticks(range(len(datasets)))
    ax.set_xticklabels(datasets)
    ax.set_ylim(0, 100)
    ax.set_ylabel("zero-shot top-1 (%)")
    ax.set_xlabel("dataset")
    ax.set_title("Zero-shot top-1 per dataset")
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    whiskers = "; ".join(viz.INTERVAL_TEXT[k] for k in sorted(kinds) if k in viz.INTERVAL_TEXT)
    viz.caption(fig, f"Bars: mean top-1; whiskers: {whiskers or 'none (no test-set size in the rows)'}. "
                     "Dashed: chance (1 / classes). Stars: the published number on the same dataset release "
                     "(none where the papers used another release, e.g. EuroSAT RGB for EuroSAT-MS).")
    return _saved(fig, path)


def plot_confusion(result: ZeroShotResult, title: str = "", path: str | os.PathLike | None = None):
    """The row-normalised confusion matrix (fraction of each true class predicted as each class)."""
    cm = result.confusion / result.confusion.sum(axis=1, keepdims=True).clip(min=1)
    size = 0.38 * len(result.class_names)
    fig, ax = plt.subplots(figsize=(size + 3, size + 2))
    sns.heatmap(cm, xticklabels=result.class_names, yticklabels=result.class_names, cmap="Blues", vmin=0, vmax=1,
                ax=ax, cbar_kws={"label": "fraction of the true class"})
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _saved(fig, path)


def plot_few_shot(details: Mapping[str, dict], results: pd.DataFrame, path: str | os.PathLike | None = None):
    """Few-shot top-1 against images per class, one line per model in its colour: the mean over
    draws with the percentile bootstrap 95% interval of that mean (inside 0-100 %), with the
    model's linear probe on all training images dotted."""
    fs = pd.concat([info["few_shot"].assign(model=m) for m, info in details.items() if len(info["few_shot"])],
                   ignore_index=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for model, group in fs.groupby("model"):
        shots, means, lows, highs = [], [], [], []
        for k, draws in group.groupby("shots"):
            low, high = bootstrap_mean(draws["top1"].astype(float).tolist())
            shots.append(k), means.append(draws["top1"].mean()), lows.append(low), highs.append(high)
        means = np.array(means)
        colour = viz.model_colour(model)
        ax.errorbar(shots, means, yerr=[means - np.array(lows), np.array(highs) - means], marker="o", capsize=3,
                    label=model, color=colour)
        full = results[(results["model"] == model) & (results["task"] == "linear-probe")
                       & (results["metric"] == "top1")]
        if len(full):
            ax.axhline(full["value"].mean(), color=colour, ls=":", lw=1)
    shots = sorted(fs["shots"].unique())
    ax.set_xscale("log", base=2)
    ax.set_xticks(shots)
    ax.set_xticklabels([str(k) for k in shots])
    ax.set_ylim(0, 100)
    ax.set_xlabel("training images per class")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(f"Few-shot linear probe on {fs['dataset'].iloc[0]}")
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    viz.caption(fig, "Points: mean top-1 over the draws of training images; whiskers: 95% percentile bootstrap "
                     "of that mean over draws. Dotted: the model's linear probe on all training images.")
    return _saved(fig, path)


def plot_counting_answers(answers: pd.DataFrame, path: str | os.PathLike | None = None):
    """Counting: the share of captions (%) per count 1..10, first the true counts, then each model's
    answers (``answers``: columns ``model``, ``true``, ``predicted``, one row per caption and model,
    :func:`rsdix.evaluation.counting.predicted_counts`); each row's top-1 in its label."""
    counts = list(range(1, 11))
    first = answers[answers["model"] == answers["model"].iloc[0]]
    rows = {"true counts": first["true"].value_counts(normalize=True).reindex(counts, fill_value=0.0)}
    for model, part in answers.groupby("model", sort=True):
        top1 = 100.0 * float((part["true"] == part["predicted"]).mean())
        rows[f"{model} (top-1 {top1:.1f}%)"] = part["predicted"].value_counts(normalize=True).reindex(
            counts, fill_value=0.0)
    shares = 100.0 * pd.DataFrame(rows).T
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(shares) + 1.6))
    sns.heatmap(shares, annot=True, fmt=".0f", cmap="Blues", vmin=0, vmax=100, cbar=False, ax=ax,
                annot_kws={"fontsize": 7})
    ax.set_xlabel("count")
    ax.set_ylabel("")
    ax.set_title(f"Counting: answers per count ({len(first)} captions)")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    viz.caption(fig, "Cells: % of the captions with that count, first the true counts, then each model's answers "
                     "(the variant it ranks first). A model whose answers pile on one count scores that count's "
                     "share of the true counts.")
    return _saved(fig, path)


def plot_retrieval_gallery(dataset, gallery: Sequence[GalleryQuery], title: str = "",
                           path: str | os.PathLike | None = None, size: float = 1.7):
    """One row per text query (:func:`rsdix.evaluation.retrieval.retrieval_gallery`): the caption,
    then its retrieved images best first, the image the caption describes framed in green."""
    gallery = list(gallery)
    k = max((len(q.retrieved) for q in gallery), default=1)
    fig, axes = plt.subplots(len(gallery), k + 1, figsize=((k + 1) * size + 1.2, len(gallery) * (size + 0.3)),
                             squeeze=False, gridspec_kw={"width_ratios": [1.7] + [1] * k})
    for row, query in zip(axes, gallery):
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].axis("off")
        found = f"its image: rank {query.rank}" if query.rank else f"its image: not in the top {k}"
        row[0].text(0, 0.5, "\n".join(textwrap.wrap(f"\u201c{query.text}\u201d", 26)[:6] + [f"({found})"]),
                    fontsize=8, va="center", ha="left", transform=row[0].transAxes)
        for rank, (ax, image) in enumerate(zip(row[1:], query.retrieved), start=1):
            ax.imshow(dataset.load(image))
            hit = image == query.truth
            ax.set_title(f"{rank}" + (" \u2713 match" if hit else ""), fontsize=8,
                         color="tab:green" if hit else "black")
            for spine in ax.spines.values():
                spine.set_edgecolor("tab:green" if hit else "0.8")
                spine.set_linewidth(4 if hit else 0.5)
        for ax in row[1 + len(query.retrieved):]:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    viz.caption(fig, "Each row: a caption of the test split as a text query, then the images it retrieves, best "
                     "first; the image the caption was written for is framed in green.")
    return _saved(fig, path)
