"""Notebook 05's figures: zero-shot top-1 per dataset (chance and a published model marked), the
confusion matrix of one zero-shot result, few-shot accuracy against shots. Each returns the
figure and, given ``path``, saves it through :func:`rsdix.viz.save`."""
from __future__ import annotations

import os
from collections.abc import Mapping

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from rsdix import viz
from rsdix.evaluation.zero_shot import ZeroShotResult


def _saved(fig, path: str | os.PathLike | None):
    if path is not None:
        print("saved", viz.save(fig, path))
    return fig


def plot_zero_shot_top1(results: pd.DataFrame, n_classes: Mapping[str, int], published: pd.Series | None = None,
                        published_label: str = "published", path: str | os.PathLike | None = None):
    """Bars of zero-shot top-1 per dataset and model, chance as a dashed line, ``published``
    (dataset -> top-1, e.g. :func:`~rsdix.evaluation.published.published_for`) as stars."""
    top1 = results[(results["task"] == "zero-shot") & (results["metric"] == "top1")]
    fig, ax = plt.subplots(figsize=(max(6, 2.2 * top1["dataset"].nunique()), 4))
    sns.barplot(data=top1, x="dataset", y="value", hue="model", ax=ax)
    published = published if published is not None else pd.Series(dtype=float)
    datasets = top1["dataset"].unique()          # seaborn's order: first appearance
    first_published = next((ds for ds in datasets if ds in published.index), None)
    for i, ds in enumerate(datasets):
        ax.hlines(100.0 / n_classes[ds], i - 0.4, i + 0.4, colors="k", linestyles="--", lw=1,
                  label="chance" if i == 0 else None)
        if ds in published.index:
            ax.scatter([i], [published[ds]], marker="*", s=120, color="crimson", zorder=3,
                       label=published_label if ds == first_published else None)
    ax.set_ylabel("zero-shot top-1 (%)")
    ax.set_xlabel("")
    ax.set_title("Zero-shot top-1 per dataset")
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
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
    """Few-shot top-1 against images per class (mean ± std over draws), one line per model, with
    the model's linear probe on all training images dotted."""
    fs = pd.concat([info["few_shot"].assign(model=m) for m, info in details.items() if len(info["few_shot"])],
                   ignore_index=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (model, group) in enumerate(fs.groupby("model")):
        stats = group.groupby("shots")["top1"].agg(["mean", "std"]).reset_index()
        colour = f"C{i}"
        ax.errorbar(stats["shots"], stats["mean"], yerr=stats["std"], marker="o", capsize=3, label=model,
                    color=colour)
        full = results[(results["model"] == model) & (results["task"] == "linear-probe")
                       & (results["metric"] == "top1")]
        if len(full):
            ax.axhline(full["value"].mean(), color=colour, ls=":", lw=1)
    shots = sorted(fs["shots"].unique())
    ax.set_xscale("log", base=2)
    ax.set_xticks(shots)
    ax.set_xticklabels([str(k) for k in shots])
    ax.set_xlabel("training images per class")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(f"Few-shot linear probe on {fs['dataset'].iloc[0]}\n"
                 "(mean ± std over draws; dotted: probe on all training images)")
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _saved(fig, path)
