"""The metric study's figures: score distributions per perturbation (:func:`plot_distributions`),
AUCs with their CIs (:func:`plot_auc`) and the correlation heatmap (:func:`plot_correlation`);
each returns the figure and, given a ``path``, saves it through :func:`rsdix.viz.save`."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from rsdix import viz
from rsdix.studies.caption_metrics.perturb import PERTURBATIONS
from rsdix.studies.caption_metrics.scoring import METRICS, long_scores


def plot_distributions(scored: pd.DataFrame, metrics: Sequence[str] = METRICS, path=None):
    """Box plots of each metric under each perturbation (one panel per metric, datasets pooled
    as hue)."""
    tidy = long_scores(scored, metrics)
    order = [p for p in PERTURBATIONS if p in set(tidy.perturbation)]
    ncol = 4
    nrow = int(np.ceil(len(metrics) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    for ax, m in zip(axes.flat, metrics):
        sns.boxplot(data=tidy[tidy.metric == m], x="perturbation", y="score", hue="dataset", order=order, ax=ax,
                    fliersize=1, linewidth=0.7)
        ax.set_title(m)
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=45)
        if ax is not axes.flat[0]:
            legend = ax.get_legend()
            if legend:
                legend.remove()
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.tight_layout()
    if path:
        viz.save(fig, path)
    return fig


def plot_auc(table: pd.DataFrame, x: str = "auc", lo: str = "ci_low", hi: str = "ci_high", hue: str = "dataset",
             title: str = "", path=None):
    """Point estimates with 95% CI bars per metric (rows) and hue."""
    metrics = list(dict.fromkeys(table.metric))
    hues = list(dict.fromkeys(table[hue]))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(metrics) * max(1, len(hues)) / 2 + 1.5))
    width = 0.8 / max(1, len(hues))
    for h, name in enumerate(hues):
        sub = table[table[hue] == name].set_index("metric").reindex(metrics)
        ypos = np.arange(len(metrics)) + (h - (len(hues) - 1) / 2) * width
        ax.errorbar(sub[x], ypos, xerr=[sub[x] - sub[lo], sub[hi] - sub[x]], fmt="o", ms=4, capsize=2, label=name)
    ax.axvline(0.5, color="grey", ls="--", lw=0.8)
    ax.set_yticks(np.arange(len(metrics)), metrics)
    ax.invert_yaxis()
    ax.set_xlabel(x.upper() + " (95% bootstrap CI)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    if path:
        viz.save(fig, path)
    return fig


def plot_correlation(corr: pd.DataFrame, dataset: str = "all", path=None):
    """Heatmap of the Spearman correlations between metrics (``dataset='all'``: pooled)."""
    sub = corr[corr.dataset == dataset]
    order = list(dict.fromkeys(sub.metric_a))
    mat = sub.pivot(index="metric_a", columns="metric_b", values="rho").loc[order, order]
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    sns.heatmap(mat, annot=True, fmt=".2f", cmap="vlag", vmin=-1, vmax=1, square=True, ax=ax,
                cbar_kws={"label": "Spearman rho"})
    ax.set_title(f"Spearman correlation between metrics\n({dataset}, {int(sub.n.iloc[0])} caption pairs)")
    ax.set_xlabel("")
    ax.set_ylabel("")
    fig.tight_layout()
    if path:
        viz.save(fig, path)
    return fig
