"""Figures of the S2LCD construction (notebook 02): scenes with their patches, sample patches,
caption statistics. Each returns the figure and saves it through :func:`rsdix.viz.save` when
given a ``path``."""
from __future__ import annotations

import os
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from rsdix import viz
from rsdix.s2.render import render_true_colour
from rsdix.s2.tiling import Tiling, patch_rgb

STATUS_COLOUR = {"kept": "lime", "cloud": "magenta", "nodata": "red"}
DPI = 110


def plot_scenes(tilings: Sequence[Tiling], stretch: str = "fixed", pct: Sequence[float] = (2.0, 98.0),
                path: str | os.PathLike | None = None):
    """Every scene in the ``fixed`` (with its patch outlines, coloured by status) and the
    ``percentile`` stretch; the run's own ``stretch`` reuses the rendered RGB."""
    fig, axes = plt.subplots(2, len(tilings), figsize=(4.2 * len(tilings), 8.5), squeeze=False)
    for j, t in enumerate(tilings):
        for i, method in enumerate(("fixed", "percentile")):
            ax = axes[i, j]
            rgb = t.rgb if method == stretch else render_true_colour(t.scene, method, pct=tuple(pct))
            ax.imshow(rgb)
            if i == 0:
                for _, p in t.table.iterrows():
                    ax.add_patch(Rectangle((p.col_off - 0.5, p.row_off - 0.5), p.width, p.height, fill=False,
                                           lw=1.2, ec=STATUS_COLOUR[p.status]))
            ax.set_title(f"{t.scene.name[:28]}\n{method} stretch" + (" + patches" if i == 0 else ""), fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("green: kept, magenta: cloud, red: no-data", fontsize=10)
    fig.tight_layout()
    if path is not None:
        viz.save(fig, path, dpi=DPI)
    return fig


def plot_patches(tilings: Sequence[Tiling], seed: int = 0, n: int = 6, path: str | os.PathLike | None = None):
    """``n`` kept patches (top row) and ``n`` rejected ones (bottom row), drawn with ``seed``."""
    kept = [(t, r) for t in tilings for _, r in t.table.iterrows() if r.status == "kept"]
    rejected = [(t, r) for t in tilings for _, r in t.table.iterrows() if r.status != "kept"]
    rng = np.random.default_rng(seed)
    show = [kept[i] for i in rng.choice(len(kept), min(n, len(kept)), replace=False)] + \
           [rejected[i] for i in rng.choice(len(rejected), min(n, len(rejected)), replace=False)]
    fig, axes = plt.subplots(2, n, figsize=(2.5 * n, 6.8), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (t, r) in zip(list(axes[0][:min(n, len(kept))]) + list(axes[1]), show):
        ax.imshow(patch_rgb(t, r))
        ax.set_title(f"{r.status}: cloud {r.cloud_fraction:.0%}, nodata {r.nodata_fraction:.0%}\n{r.scene[:22]}",
                     fontsize=8)
    fig.suptitle("top: kept patches; bottom: rejected patches", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95), h_pad=2.5)
    if path is not None:
        viz.save(fig, path, dpi=DPI)
    return fig


def plot_caption_stats(stats: pd.DataFrame, n: int, path: str | os.PathLike | None = None):
    """Bars per dataset (S2LCD highlighted) of matched-size vocabulary, tokens per caption,
    distinct words per image, distinct bigrams and caption self-overlap."""
    panels = [(f"vocabulary@{n}", f"vocabulary in {n} images"), ("tokens_per_caption_mean", "tokens per caption"),
              ("distinct_words_per_image", "distinct words per image"),
              (f"distinct_2@{n}", f"distinct bigrams ({n} images)"),
              ("self_overlap", "caption self-overlap (lower = more diverse)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.4))
    for ax, (col, title) in zip(axes, panels):
        ax.bar(stats["dataset"], stats[col], color=["C3" if d == "S2LCD" else "C0" for d in stats["dataset"]])
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", rotation=45, labelsize=8)
    fig.tight_layout()
    if path is not None:
        viz.save(fig, path, dpi=DPI)
    return fig
