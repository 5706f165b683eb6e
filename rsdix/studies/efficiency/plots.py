"""The study's figures: paired differences per data share with their 95% CIs and a zero line
(:func:`plot_paired`), the learning curves that set the training length (:func:`plot_curves`).
Colours are the package palette (:func:`rsdix.viz.model_colour`, one per arm)."""
from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rsdix import viz
from rsdix.studies.efficiency.analysis import ARM_TITLES, HEADLINE, headline


def _label(a, wa, b) -> str:
    if wa == "ema":
        return f"{ARM_TITLES.get(a, a)}: EMA teacher - student"
    return f"{ARM_TITLES.get(a, a)} - {ARM_TITLES.get(b, b)}"


def plot_paired(paired: pd.DataFrame, runs: pd.DataFrame, kind: str = "arms",
                path: str | os.PathLike | None = None):
    """One panel per headline metric: for each comparison, the mean paired difference at each
    data share with its paired-t 95% CI (bars) and the seed-wise differences (dots); zero line."""
    sub = paired[paired.kind == kind]
    metrics = list(HEADLINE.values())
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4.2), squeeze=False)
    comps = list(dict.fromkeys(zip(sub.a, sub.a_weights, sub.b)))
    shares = sorted(set(sub.fraction))
    rows = headline(runs)
    for ax, metric in zip(axes[0], metrics):
        for j, (a, wa, b) in enumerate(comps):
            g = sub[(sub.a == a) & (sub.a_weights == wa) & (sub.b == b) & (sub.metric == metric)]
            if g.empty:
                continue
            offset = (j - (len(comps) - 1) / 2) * 0.12
            x = np.array([shares.index(f) for f in g.fraction]) + offset
            colour = viz.model_colour(a)
            ax.errorbar(x, g["mean"], yerr=[g["mean"] - g["t_low"], g["t_high"] - g["mean"]], fmt="o",
                        capsize=4, color=colour, label=f"{_label(a, wa, b)} (n={int(g['n'].max())})")
            for xi, r in zip(x, g.itertuples()):   # the seeds' own differences
                seeds = [int(s) for s in r.seeds.split()]
                m = rows[(rows.label == metric) & (rows.fraction == r.fraction)]
                va = m[(m.arm == a) & (m.weights == wa)].set_index("seed")["value"]
                vb = m[(m.arm == b) & (m.weights == ("student"))].set_index("seed")["value"]
                d = (va.loc[seeds] - vb.loc[seeds]).to_numpy()
                ax.scatter(np.full(len(d), xi + 0.04), d, s=9, color=colour, alpha=0.45, linewidths=0)
        ax.axhline(0, color="black", lw=0.8, ls="--")
        ax.set_xlim(-0.5, len(shares) - 0.5)
        ax.set_xticks(range(len(shares)))
        ax.set_xticklabels([f"{100 * f:g}%" for f in shares])
        ax.set_xlabel("share of UCM-Captions training images")
        ax.set_ylabel("paired difference A - B (points)" if "%" in metric else "paired difference A - B (mR)")
        ax.set_title(metric)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=min(4, len(labels)), fontsize=8, frameon=False)
    lo, hi = (int(sub["n"].min()), int(sub["n"].max())) if len(sub) else (0, 0)
    n = f"{lo}" if lo == hi else f"{lo} to {hi}"
    fig.tight_layout(rect=(0, 0.06, 1, 0.92))
    viz.caption(fig, f"A - B as in the legend. Bars: mean paired difference (same seed: same initial weights, image subset and data "
                     f"order) with its Student-t 95% CI over n={n} paired seeds (n per comparison in the legend); dots: "
                     f"the seeds' own differences; dashed: no difference.")
    if path is not None:
        viz.save(fig, path)
    return fig


def plot_curves(curves: pd.DataFrame, lengths: pd.DataFrame, path: str | os.PathLike | None = None):
    """UCM val mR against training step for each data share (InfoNCE), with the plateau step and
    the study's training length marked."""
    shares = sorted(set(curves.fraction))
    fig, axes = plt.subplots(1, len(shares), figsize=(4.6 * len(shares), 3.8), squeeze=False)
    colour = viz.model_colour("infonce")
    for ax, f in zip(axes[0], shares):
        for seed, g in curves[curves.fraction == f].groupby("seed"):
            ax.plot(g["step"], g["val_mR"], marker=".", color=colour, label=f"InfoNCE, seed {int(seed)}")
        row = lengths[lengths.fraction == f]
        if len(row):
            r = row.iloc[0]
            ax.axvline(r.plateau_step, color="grey", ls=":", label=f"stopped rising: step {int(r.plateau_step)}")
            if pd.notna(r.study_steps):
                ax.axvline(r.study_steps, color="black", ls="--", label=f"study length: {int(r.study_steps)}")
        ax.set_xlabel("optimizer step (batch 64)")
        ax.set_ylabel("UCM validation mR")
        ax.set_title(f"{100 * f:g}% of the training images")
        ax.legend(fontsize=7)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    viz.caption(fig, "One run per share, cosine schedule over the curve's length, checked every few steps on "
                     "the 210 UCM validation images; 'stopped rising': first step whose 3-check running mean is "
                     "within the tolerance of the best (no interval: one seed).")
    if path is not None:
        viz.save(fig, path)
    return fig
